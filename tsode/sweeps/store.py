"""Storage of a sweep: one part file per finished task, then one netCDF file.

While a sweep runs, ``OUT.parts/`` holds ``spec.json`` (the validated spec and its hash) and one
``<task key>.npz`` per finished task (plain arrays, no pickle), each written to a temporary
file and renamed, so a crash or Ctrl-C never leaves a half-written part. The final assembly
writes ``OUT`` (netCDF4 via h5netcdf, readable by any netCDF tool) atomically and removes the
parts. xarray is imported here, never by ``import tsode``.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np

from .spec import Spec

__all__ = ["PartStore", "MemoryStore", "assemble", "write_netcdf", "read_netcdf", "provenance"]

#: Per-task scalar and string results (dims: the swept settings).
TASK_SCALARS = ("seconds", "host", "cpu", "error", "init_seed", "sim_seed", "eg_star",
                "max_re_eig", "fp_converged", "fp_residual")


class SpecMismatch(RuntimeError):
    """The output already belongs to a different spec (pass overwrite=True to replace it)."""


def _atomic(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


class PartStore:
    """``OUT.parts/``: finished tasks of one spec, keyed by ``Task.key``."""

    def __init__(self, output, spec: Spec):
        self.output = Path(output)
        self.dir = self.output.with_name(self.output.name + ".parts")
        self.spec = spec

    def existing_hash(self) -> str | None:
        """Spec hash of what is already at OUT (parts or final file), None if nothing."""
        meta = self.dir / "spec.json"
        if meta.exists():
            return json.loads(meta.read_text())["hash"]
        if self.output.exists():
            return read_netcdf(self.output).attrs.get("spec_hash", "?")
        return None

    def prepare(self, resume: bool, overwrite: bool) -> None:
        """Create the parts directory; refuse a different spec unless ``overwrite``."""
        old = self.existing_hash()
        if old is not None and (overwrite or (old != self.spec.hash)):
            if not overwrite:
                raise SpecMismatch(
                    f"{self.output} holds results of another spec (hash {old}, this spec "
                    f"{self.spec.hash}); pass overwrite=True (--overwrite) to replace them")
            shutil.rmtree(self.dir, ignore_errors=True)
            self.output.unlink(missing_ok=True)
        elif old is not None and not resume:
            raise FileExistsError(
                f"{self.output} already holds (part of) this sweep: pass resume=True (--resume) "
                "to continue it or overwrite=True (--overwrite) to start again")
        self.dir.mkdir(parents=True, exist_ok=True)
        meta = self.dir / "spec.json"
        if not meta.exists():
            text = json.dumps(dict(hash=self.spec.hash, spec=self.spec.values), indent=1)
            _atomic(meta, lambda f: f.write(text.encode()))

    def path(self, task) -> Path:
        return self.dir / f"{task.key}.npz"

    def done(self, task) -> bool:
        return self.path(task).exists()

    def save(self, task, result: dict) -> None:
        arrays = _with_seeds(task, result)
        _atomic(self.path(task), lambda f: np.savez(f, **arrays))

    def load(self, task) -> dict:
        with np.load(self.path(task), allow_pickle=False) as f:
            return {k: f[k] for k in f.files}

    def finish(self, ds) -> None:
        """Write OUT, then drop the parts."""
        write_netcdf(ds, self.output)
        shutil.rmtree(self.dir, ignore_errors=True)


class MemoryStore:
    """The same interface without an output file (results kept in memory)."""

    def __init__(self):
        self.results = {}

    def done(self, task) -> bool:
        return task.key in self.results

    def save(self, task, result: dict) -> None:
        self.results[task.key] = _with_seeds(task, result)

    def load(self, task) -> dict:
        return self.results[task.key]

    def finish(self, ds) -> None:
        pass


def _with_seeds(task, result: dict) -> dict:
    arrays = {k: np.asarray(v) for k, v in result.items()}
    init_seed, sim_seed = task.seeds()
    arrays.update(init_seed=np.int64(init_seed), sim_seed=np.int64(sim_seed))
    return arrays


def git_commit() -> str:
    """HEAD of the checkout tsode runs from (+ "-dirty" if tsode/ has changes), or ""."""
    try:
        root = Path(__file__).resolve().parents[2]
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "tsode"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "") if out.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        return ""


def provenance(spec: Spec, wall: float, executor: str, commit: str) -> dict:
    """Attributes of the netCDF file: spec, hash, versions, commit (``git_commit()`` when the
    sweep started), host, wall time."""
    from .. import __version__
    import numba
    import scipy

    return dict(
        spec=spec.to_json(), spec_hash=spec.hash, engine=spec.engine,
        swept=json.dumps(list(spec.swept)),
        seed_rule="init_seed, sim_seed = SeedSequence(seed, spawn_key=sha256(settings)) "
                  "(tsode.sweeps.spec.Task.seeds); run i of a task uses "
                  "SeedSequence(sim_seed, spawn_key=(i, j)) (tsode.simulate)",
        tsode_version=__version__, git_commit=commit,
        versions=f"python {platform.python_version()}, numpy {np.__version__}, "
                 f"scipy {scipy.__version__}, numba {numba.__version__}",
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        assembled_on=platform.node(), executor=executor, wall_seconds=float(wall),
    )


def _shapes(spec: Spec, tasks) -> dict:
    Ks = [t.settings["K"] for t in tasks]
    Ms = [t.settings["M"] for t in tasks]
    runs = [t.settings["runs"] for t in tasks]
    return dict(run=max(runs), alpha=len(spec.grid()), k=max(Ks), k2=max(Ks), m=max(Ms),
                m2=max(Ms))


#: variable -> dims after the swept ones (names from ``_shapes``)
_VAR_DIMS = dict(
    eg=("run", "alpha"), Q=("run", "alpha", "k", "k2"), R=("run", "alpha", "k", "m"),
    v=("run", "alpha", "k"), T_teacher=("m", "m2"), v_star=("m",), alpha_recorded=("alpha",),
    Q_star=("k", "k2"), R_star=("k", "m"), v_fp=("k",),
)


def _empty(name, lead, sizes):
    if name in ("host", "cpu", "error"):
        return np.full(lead, "", dtype=object)
    if name in ("init_seed", "sim_seed"):
        return np.full(lead, -1, dtype=np.int64)
    if name == "fp_converged":
        return np.full(lead, -1, dtype=np.int8)
    return np.full(lead + tuple(sizes[d] for d in _VAR_DIMS.get(name, ())), np.nan)


def assemble(spec: Spec, tasks, results, attrs: dict):
    """xarray.Dataset with one dimension per swept setting, then run, alpha (and k, m).

    ``results`` maps task.key -> result dict. Arrays are padded with NaN where a task has
    fewer runs, units or output times than the largest one (e.g. K swept).
    """
    import xarray as xr

    lead = tuple(len(spec.values[k]) for k in spec.swept)
    sizes = _shapes(spec, tasks)
    names = [n for n in (*_VAR_DIMS, *TASK_SCALARS)
             if any(n in results[t.key] for t in tasks)]
    data = {n: _empty(n, lead, sizes) for n in names}
    for t in tasks:
        res = results[t.key]
        for n in names:
            if n in res:
                a = np.asarray(res[n])
                data[n][t.index + tuple(slice(0, s) for s in a.shape)] = (
                    str(a) if a.dtype.kind == "U" else a)
    for n in ("host", "cpu", "error"):  # fixed-width strings, as netCDF reads them back
        if n in data:
            data[n] = data[n].astype(str)
    dims = tuple(spec.swept)
    ds = xr.Dataset(
        {n: (dims + _VAR_DIMS.get(n, ()), a) for n, a in data.items()},
        coords={**{k: list(spec.values[k]) for k in spec.swept}, "alpha": spec.grid(),
                "run": np.arange(sizes["run"])},
        attrs=attrs,
    )
    ds["eg"].attrs["long_name"] = "generalisation error (noiseless teacher)"
    ds["alpha_recorded"].attrs["long_name"] = "exact recorded time steps/N (SGD) per task"
    return ds


def _local_io():
    """File I/O happens in this process: a Dask client made default earlier (even one closed
    since) must not be asked to choose xarray's file lock (it raises without an active one)."""
    try:
        import dask
    except ImportError:
        return contextlib.nullcontext()
    return dask.config.set(scheduler="synchronous")


def write_netcdf(ds, path) -> None:
    """Write atomically (temporary file + rename) with the h5netcdf engine."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        enc = {n: {"zlib": True, "complevel": 4} for n, v in ds.data_vars.items()
               if v.dtype.kind == "f" and v.size > 64}
        with _local_io():
            ds.to_netcdf(tmp, engine="h5netcdf", encoding=enc)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def read_netcdf(path):
    """The dataset at ``path``, loaded into memory (file closed)."""
    import xarray as xr

    with _local_io(), xr.open_dataset(path, engine="h5netcdf") as ds:
        return ds.load()
