"""Storage of a sweep: one part file per finished task, then one netCDF file.

One writer per output: :class:`OutputLock` holds an exclusive ``fcntl.flock`` on ``OUT.lock``
(which names the holder's host and pid) from before anything at OUT is read or deleted until the
sweep ends; a second sweep on the same output fails at once naming the holder.

While a sweep runs, ``OUT.parts/`` holds ``spec.json`` (the validated spec and its hash) and one
``<task key>.npz`` per finished task (plain arrays, no pickle), each written to a temporary
file and renamed, so a crash or Ctrl-C never leaves a half-written part. Each part records the
spec hash, the task key, the seeds, the shape and dtype of every array and a SHA-256 checksum of
their bytes; a part that fails any check (:meth:`PartStore.check`) is recomputed. The final
assembly writes ``OUT`` (netCDF4 via h5netcdf, readable by any netCDF tool) atomically and
removes the parts. xarray is imported here, never by ``import tsode``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from .spec import Spec

__all__ = ["PartStore", "MemoryStore", "OutputLock", "StoreError", "OutputLocked", "SpecMismatch",
           "assemble", "write_netcdf", "read_netcdf", "read_output", "provenance"]

#: Per-task scalar and string results (dims: the swept settings).
TASK_SCALARS = ("seconds", "host", "cpu", "error", "init_seed", "sim_seed", "eg_star",
                "max_re_eig", "fp_converged", "fp_residual")


class SpecMismatch(RuntimeError):
    """The output already belongs to a different spec (pass overwrite=True to replace it)."""


class StoreError(RuntimeError):
    """An output that cannot be used as given: unreadable, not a file, not writable. The
    message names the path and the cause."""


class OutputLocked(StoreError):
    """Another sweep holds the output's lock (the message names its host and pid)."""


#: Layout of a part file (the ``_meta`` JSON string inside it).
PART_FORMAT = "tsode.sweep-part/1"


def _why(err: OSError) -> str:
    return err.strerror or str(err)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True


class OutputLock:
    """Exclusive lock of one sweep output: ``fcntl.flock`` on ``OUT.lock``, which holds
    ``"host pid"`` of the holder.

    The OS releases a flock when its holder exits, however it exits (SIGKILL included), so a
    lock file left behind by a dead sweep is stale and taken over (with a message naming the old
    holder). :meth:`acquire` raises :class:`OutputLocked` at once, naming the holder, when
    another process holds the lock, and :class:`StoreError` when the lock file cannot be
    created (missing directory, read-only file system, ...). The lock file is removed on
    release.
    """

    def __init__(self, output):
        self.output = Path(output)
        self.path = self.output.with_name(self.output.name + ".lock")
        self.fd = None
        self.stale = ""  # "host pid" of a dead previous holder, if any

    def acquire(self) -> "OutputLock":
        for _ in range(20):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as e:
                raise StoreError(f"cannot create the lock file {self.path}: {_why(e)}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_fd(fd)
                os.close(fd)
                raise OutputLocked(
                    f"{self.output} is being written by another sweep ({_describe(holder)}; "
                    f"lock file {self.path}): wait for it to finish, or stop it") from None
            except OSError as e:
                os.close(fd)
                raise StoreError(f"cannot lock {self.path}: {_why(e)}") from None
            try:  # the previous holder may have removed the file between our open and flock
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        else:
            raise StoreError(f"cannot lock {self.path}: it keeps being replaced")
        self.stale = _read_fd(fd).strip()
        me = f"{socket.gethostname()} {os.getpid()}\n".encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, me, 0)
        self.fd = fd
        if self.stale:
            print(f"sweep: took over the stale lock {self.path} of {_describe(self.stale)}",
                  file=sys.stderr)
        return self

    def release(self) -> None:
        if self.fd is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()  # before unlocking: no one else can hold this inode's lock yet
        os.close(self.fd)
        self.fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def _read_fd(fd) -> str:
    try:
        return os.pread(fd, 200, 0).decode(errors="replace")
    except OSError:
        return ""


def _describe(holder: str) -> str:
    """'host H, pid P' (+ whether that process is alive, when it runs on this host)."""
    parts = holder.split()
    if len(parts) != 2 or not parts[1].isdigit():
        return "holder unknown: the lock was just taken" if not holder.strip() else \
            f"holder {holder.strip()!r}"
    host, pid = parts[0], int(parts[1])
    text = f"host {host}, pid {pid}"
    if host == socket.gethostname() and not _alive(pid):
        text += " (that process is gone)"
    return text


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
    """``OUT.parts/``: finished tasks of one spec, keyed by ``Task.key``.

    Use under an :class:`OutputLock` of ``output``: nothing here is safe against a second
    writer.
    """

    def __init__(self, output, spec: Spec):
        self.output = Path(output)
        self.dir = self.output.with_name(self.output.name + ".parts")
        self.spec = spec

    def existing_hash(self) -> str | None:
        """Spec hash of what is already at OUT (parts or final file), None if nothing.

        Raises StoreError for a parts directory whose spec.json is unreadable and for an OUT
        that is not a readable netCDF file."""
        meta = self.dir / "spec.json"
        if self.dir.exists() and not self.dir.is_dir():
            raise StoreError(f"{self.dir} is not a directory: move it away or pass --overwrite")
        if meta.exists():
            try:
                return json.loads(meta.read_text())["hash"]
            except (OSError, ValueError, KeyError, TypeError) as e:
                raise StoreError(
                    f"{meta} is unreadable ({_cause(e)}): cannot tell which spec the parts in "
                    f"{self.dir} belong to; move them away or pass --overwrite to discard "
                    "them") from None
        if self.dir.is_dir() and any(self.dir.glob("*.npz")):
            raise StoreError(f"{self.dir} holds parts but no spec.json: cannot tell which spec "
                             "they belong to; move them away or pass --overwrite")
        if self.output.exists():
            return read_output(self.output).attrs.get("spec_hash", "?")
        return None

    def prepare(self, resume: bool, overwrite: bool) -> None:
        """Create the parts directory; refuse a different spec unless ``overwrite``.

        With ``overwrite`` nothing is read: old parts are removed and OUT (whatever it holds)
        is replaced when the new result is written (:meth:`finish`)."""
        if self.output.is_dir():
            raise StoreError(f"{self.output} is a directory: give the path of a netCDF file")
        if overwrite:
            try:
                if self.dir.is_dir():
                    shutil.rmtree(self.dir)
                elif self.dir.exists():
                    self.dir.unlink()
            except OSError as e:
                raise StoreError(f"cannot remove {self.dir}: {_why(e)}") from None
        else:
            old = self.existing_hash()
            if old is not None and old != self.spec.hash:
                raise SpecMismatch(
                    f"{self.output} holds results of another spec (hash {old}, this spec "
                    f"{self.spec.hash}); pass overwrite=True (--overwrite) to replace them")
            if old is not None and not resume:
                raise FileExistsError(
                    f"{self.output} already holds (part of) this sweep: pass resume=True "
                    "(--resume) to continue it or overwrite=True (--overwrite) to start again")
        meta = self.dir / "spec.json"
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            if not meta.exists():
                text = json.dumps(dict(hash=self.spec.hash, spec=self.spec.values), indent=1)
                _atomic(meta, lambda f: f.write(text.encode()))
        except OSError as e:
            raise StoreError(f"cannot write {meta}: {_why(e)}") from None

    def path(self, task) -> Path:
        return self.dir / f"{task.key}.npz"

    def check(self, task) -> str | None:
        """Why the part of ``task`` cannot be used ("missing", "unreadable (...)", "spec hash
        ... differs", "checksum mismatch", ...), or None when it passes every check."""
        path = self.path(task)
        if not path.exists():
            return "missing"
        try:
            with np.load(path, allow_pickle=False) as f:
                arrays = {k: f[k] for k in f.files}
        except Exception as e:  # noqa: BLE001 - truncated, foreign or pickled: all unusable
            return f"unreadable ({_cause(e)})"
        return verify_part(arrays, task, self.spec.hash)

    def done(self, task) -> bool:
        return self.check(task) is None

    def save(self, task, result: dict) -> None:
        arrays = with_meta(_with_seeds(task, result), task, self.spec.hash)
        try:
            _atomic(self.path(task), lambda f: np.savez(f, **arrays))
        except OSError as e:
            raise StoreError(f"cannot write {self.path(task)}: {_why(e)}") from None

    def load(self, task) -> dict:
        """The verified arrays of a task's part (StoreError if it fails a check)."""
        why = self.check(task)
        if why is not None:
            raise StoreError(f"part {self.path(task)} of task {task.index} is invalid: {why}")
        with np.load(self.path(task), allow_pickle=False) as f:
            return {k: f[k] for k in f.files if k != "_meta"}

    def finish(self, ds) -> None:
        """Write OUT, then drop the parts."""
        try:
            write_netcdf(ds, self.output)
        except OSError as e:
            raise StoreError(f"cannot write {self.output}: {_why(e)}") from None
        shutil.rmtree(self.dir, ignore_errors=True)


def _cause(err: BaseException) -> str:
    text = str(err).splitlines()[0] if str(err) else ""
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _checksum(arrays: dict) -> str:
    """SHA-256 of every array's name, dtype, shape and bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def with_meta(arrays: dict, task, spec_hash: str) -> dict:
    """``arrays`` plus ``_meta``: a JSON string with the part format, spec hash, task key,
    seeds, shapes and dtypes of the arrays and their :func:`_checksum`."""
    init_seed, sim_seed = task.seeds()
    meta = dict(format=PART_FORMAT, spec_hash=spec_hash, key=task.key, init_seed=init_seed,
                sim_seed=sim_seed, sha256=_checksum(arrays),
                shapes={k: list(np.shape(a)) for k, a in arrays.items()},
                dtypes={k: np.asarray(a).dtype.str for k, a in arrays.items()})
    return dict(arrays, _meta=np.array(json.dumps(meta)))


#: Variables that must be finite in a task that finished without error.
_FINITE = ("eg", "Q", "R", "v", "T_teacher", "v_star", "alpha_recorded")
_FIXED_POINT = ("eg_star", "Q_star", "R_star", "v_fp", "max_re_eig", "fp_converged",
                "fp_residual")


def expected_shapes(task) -> dict:
    """Shape of every array of a task's result (:func:`tsode.sweeps.tasks.run_task`)."""
    s = task.settings
    runs, T, K, M = s["runs"], len(task.alphas), s["K"], s["M"]
    shapes = dict(eg=(runs, T), Q=(runs, T, K, K), R=(runs, T, K, M), v=(runs, T, K),
                  T_teacher=(M, M), v_star=(M,), alpha_recorded=(T,), seconds=(), host=(),
                  cpu=(), error=(), init_seed=(), sim_seed=())
    if s["engine"] == "fixed_point":
        shapes.update(eg_star=(), Q_star=(K, K), R_star=(K, M), v_fp=(K,), max_re_eig=(),
                      fp_converged=(), fp_residual=())
    return shapes


def verify_part(arrays: dict, task, spec_hash: str) -> str | None:
    """None if the arrays of a part file are this task's result, else the first reason why
    not: metadata, spec hash, key, seeds, names and shapes, checksum, NaN without an error."""
    try:
        meta = json.loads(str(arrays["_meta"][()]))
        fmt = meta["format"]
    except (KeyError, ValueError, TypeError, IndexError):
        return "not a tsode part file (no valid metadata)"
    if fmt != PART_FORMAT:
        return f"unknown part format {fmt!r} (expected {PART_FORMAT!r})"
    data = {k: a for k, a in arrays.items() if k != "_meta"}
    init_seed, sim_seed = task.seeds()
    checks = [
        (meta.get("spec_hash") == spec_hash, f"spec hash {meta.get('spec_hash')!r} is not "
                                             f"this spec's {spec_hash!r}"),
        (meta.get("key") == task.key, f"task key {meta.get('key')!r} is not {task.key!r}"),
        ((meta.get("init_seed"), meta.get("sim_seed")) == (init_seed, sim_seed),
         "recorded seeds differ from the task's"),
        (meta.get("sha256") == _checksum(data), "checksum mismatch (the arrays were changed)"),
    ]
    for ok, why in checks:
        if not ok:
            return why
    expected = expected_shapes(task)
    if set(data) != set(expected):
        missing, extra = sorted(set(expected) - set(data)), sorted(set(data) - set(expected))
        return f"arrays missing {missing}, unexpected {extra}"
    bad = [f"{k} {data[k].shape} (expected {shape})" for k, shape in expected.items()
           if data[k].shape != shape]
    if bad:
        return "wrong shapes: " + ", ".join(bad)
    if (int(data["init_seed"]), int(data["sim_seed"])) != (init_seed, sim_seed):
        return "stored seeds differ from the task's"
    if data["error"].dtype.kind != "U":
        return "error is not a string"
    if str(data["error"]) == "":
        nonfinite = [k for k in _FINITE if data[k].dtype.kind != "f"
                     or not np.isfinite(data[k]).all()]
        if nonfinite:
            return f"non-finite values in {nonfinite} of a task without error"
    return None


class MemoryStore:
    """The same interface without an output file (results kept in memory)."""

    def __init__(self):
        self.results = {}

    def check(self, task) -> str | None:
        return None if task.key in self.results else "missing"

    def done(self, task) -> bool:
        return task.key in self.results

    def save(self, task, result: dict) -> None:
        self.results[task.key] = _with_seeds(task, result)

    def load(self, task) -> dict:
        return self.results[task.key]

    def finish(self, ds) -> None:
        pass


def _with_seeds(task, result: dict) -> dict:
    """The result's arrays plus the task's seeds; a result with non-finite values but no error
    (which the engines never return: they raise) gets an error naming the variables, so that
    no stored task is NaN without an error."""
    arrays = {k: np.asarray(v) for k, v in result.items()}
    init_seed, sim_seed = task.seeds()
    arrays.update(init_seed=np.int64(init_seed), sim_seed=np.int64(sim_seed))
    if str(arrays.get("error", "")) == "":
        bad = [k for k in _FINITE if k in arrays and not np.isfinite(arrays[k]).all()]
        if bad:
            arrays["error"] = np.asarray(f"non-finite values in {bad} without an error")
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


def read_output(path):
    """:func:`read_netcdf`, with StoreError naming the path and the cause when the file is not
    a readable netCDF/HDF5 file (truncated, foreign, a directory, no permission)."""
    try:
        return read_netcdf(path)
    except Exception as e:  # noqa: BLE001 - h5py, xarray and OS errors alike
        raise StoreError(f"{path} is not a readable netCDF file ({_cause(e)}): pass --overwrite "
                         "(overwrite=True) to replace it, or move it away") from None


def read_netcdf(path):
    """The dataset at ``path``, loaded into memory (file closed)."""
    import xarray as xr

    with _local_io(), xr.open_dataset(path, engine="h5netcdf") as ds:
        return ds.load()
