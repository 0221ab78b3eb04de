"""The book's long runs: sweep specs in ``book/specs/NAME.toml``, cached results in
``book/data/NAME.nc`` (netCDF written by :func:`tsode.sweep`, with provenance).

``python -m tsode.book long [NAME ...] [--dry-run] [--workers N | --scheduler ADDRESS]``
computes them (resuming an interrupted computation); notebooks call :func:`load`, which checks
that the cache was computed from the current spec and with the chapter's settings, and otherwise
raises :class:`StaleCache` saying how to recompute it. :func:`check` and
:func:`recompute_prefix` are what CI runs on every cached file: provenance, then run 0 of the
first task recomputed up to a small α, which must equal the cache bitwise.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from ..sweeps import load_spec
from ..sweeps.run import ExecutorError
from ..sweeps.spec import SpecError
from ..sweeps.store import SpecMismatch, StoreError
from ..sweeps.tasks import cpu_signature, run_task

__all__ = ["SPECS", "DATA", "names", "load", "check", "recompute_prefix", "StaleCache", "main"]

ROOT = Path(__file__).resolve().parents[2]
SPECS = ROOT / "book" / "specs"
DATA = ROOT / "book" / "data"
#: Variables compared bitwise by :func:`recompute_prefix`.
PREFIX_VARS = ("eg", "Q", "R", "v")


class StaleCache(RuntimeError):
    """The cached long run is missing, or was computed from other settings than asked for."""


def names() -> list[str]:
    """Names of the long-run specs (``book/specs/*.toml``)."""
    return sorted(p.stem for p in SPECS.glob("*.toml"))


def _paths(name: str) -> tuple[Path, Path]:
    spec = SPECS / f"{name}.toml"
    if not spec.exists():
        raise ValueError(f"unknown long run {name!r}; known: {', '.join(names())}")
    return spec, DATA / f"{name}.nc"


def _how(name: str) -> str:
    return (f"recompute it with `python -m tsode.book long {name}` (estimated cost: "
            f"`python -m tsode.book long --dry-run {name}`)")


def _matches(spec_value, wanted) -> bool:
    have = spec_value if isinstance(spec_value, list) else [spec_value]
    want = wanted if isinstance(wanted, (list, tuple)) else [wanted]
    return all(w in have for w in want)


def check(name: str, **expected) -> list[str]:
    """Problems with the cache of ``name`` ([] if it is usable).

    Checks that ``book/data/NAME.nc`` exists, that its spec hash is that of the current
    ``book/specs/NAME.toml`` and that the spec has the chapter's settings ``expected`` (a value
    per setting, or a list of values that the spec must include, e.g. ``L=[0, 2]``).
    """
    from ..sweeps.store import read_netcdf

    spec_path, data = _paths(name)
    spec = load_spec(spec_path)
    problems = []
    for key, wanted in expected.items():
        if key not in spec.values:
            problems.append(f"{key!r} is not a sweep setting")
        elif not _matches(spec.values[key], wanted):
            problems.append(f"{key} = {wanted!r} asked, the spec has {spec.values[key]!r}")
    if not data.exists():
        parts = data.with_name(data.name + ".parts")
        done = len(list(parts.glob("*.npz"))) if parts.exists() else 0
        where = f" ({done} of {len(spec.tasks())} tasks in {parts.name}/)" if done else ""
        return problems + [f"{data.relative_to(ROOT)} does not exist{where}"]
    attrs = read_netcdf(data).attrs
    if attrs.get("spec_hash") != spec.hash:
        problems.append(f"{data.relative_to(ROOT)} was computed from another spec (hash "
                        f"{attrs.get('spec_hash')}, {spec_path.name} now has {spec.hash})")
    for key in ("tsode_version", "git_commit", "created", "seed_rule", "versions"):
        if key not in attrs or (key != "git_commit" and not attrs[key]):  # commit "" = no git
            problems.append(f"{data.relative_to(ROOT)} lacks the provenance attribute {key!r}")
    return problems


def load(name: str, **expected):
    """The cached long run ``name`` as an xarray.Dataset, after :func:`check`.

    Raises StaleCache (missing, computed from another spec, or the spec lacks the chapter's
    settings ``expected``), with the command that recomputes it.
    """
    from ..sweeps.store import read_netcdf

    problems = check(name, **expected)
    if problems:
        raise StaleCache(f"the cached long run {name!r} is stale: " + "; ".join(problems)
                         + f". {_how(name)}")
    return read_netcdf(_paths(name)[1])


def recompute_prefix(name: str, max_steps: float = 2e4) -> dict:
    """Recompute run 0 of the first task of ``name`` up to the largest stored α with at most
    ``max_steps`` SGD steps; return {"alpha": (T,), "recomputed": {var: array},
    "cached": {var: array}, "same_cpu": bool} for eg (T,), Q (T,K,K), R (T,K,M), v (T,K).

    A run's random streams depend only on the task's settings and the sweep seed (not on
    ``runs`` nor ``alpha_max``) and SGD does not depend on where it is observed, so on a CPU
    with the cache's signature (``same_cpu``: same LLVM CPU name and features, hence the same
    compiled kernels) the simulated state Q, R, v must equal the cache bitwise (ε_g, evaluated
    from it by closed forms, to the accuracy of those forms). Elsewhere fused multiply-adds
    and vector widths may change the last bits (the kernels allow contraction and
    reassociation); the default prefix (2·10⁴ steps, α ≤ 20 at N = 1000) stays in the early
    phase, where such differences do not grow beyond ~1e-12.
    """
    spec_path, data = _paths(name)
    from ..sweeps.store import read_netcdf

    ds = read_netcdf(data)
    task = load_spec(spec_path).tasks()[0]
    s = dict(task.settings, runs=1)
    alphas = [a for a in task.alphas if a * s.get("N", 1) <= max_steps]
    if len(alphas) < 2:
        raise ValueError(f"no stored time of {name!r} within {max_steps:g} steps")
    payload = dict(task.payload(), settings=s, alphas=alphas)
    res = run_task(payload)
    K, M, T = s["K"], s["M"], len(alphas)
    first = {d: 0 for d in load_spec(spec_path).swept}
    cached = ds.isel(dict(first, run=0, alpha=slice(0, T)))
    cut = dict(eg=np.s_[:T], Q=np.s_[:T, :K, :K], R=np.s_[:T, :K, :M], v=np.s_[:T, :K])
    same_cpu = str(ds["cpu"].values[tuple(first.values())]) == cpu_signature() if (
        "cpu" in ds) else False
    return dict(alpha=np.asarray(alphas), same_cpu=same_cpu,
                recomputed={k: res[k][0] for k in PREFIX_VARS},
                cached={k: cached[k].values[cut[k]] for k in PREFIX_VARS})


def compute(name: str, executor=None, workers=None, overwrite=False):
    """Run the spec of ``name`` into ``book/data/NAME.nc`` (resuming a partial run)."""
    from .. import sweep

    spec_path, data = _paths(name)
    DATA.mkdir(parents=True, exist_ok=True)
    return sweep(spec_path, executor=executor, output=data, workers=workers, resume=True,
                 overwrite=overwrite)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tsode.book long",
                                description="compute the book's cached long runs")
    p.add_argument("names", nargs="*", metavar="NAME", help=f"default: all ({', '.join(names())})")
    p.add_argument("--dry-run", action="store_true", help="list tasks and estimated cost")
    p.add_argument("--status", action="store_true", help="say which caches are usable")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int)
    where.add_argument("--scheduler", metavar="ADDRESS")
    p.add_argument("--overwrite", action="store_true", help="recompute a cache of an old spec")
    args = p.parse_args(argv)
    chosen = args.names or names()
    for name in chosen:
        spec_path, data = _paths(name)
        if args.status:
            problems = check(name)
            print(f"{name}: " + ("ok" if not problems else "; ".join(problems)))
        elif args.dry_run:
            from ..sweeps.cli import dry_run
            from ..sweeps.run import _cpus

            dry_run(spec_path, args.workers or _cpus())
        else:
            try:
                compute(name, executor=args.scheduler, workers=args.workers,
                        overwrite=args.overwrite)
            except (SpecError, SpecMismatch, StoreError, ExecutorError, MemoryError) as e:
                # the same one-line errors as `tsode sweep` (a held lock, a damaged output, ...)
                print(f"{name}: {e}", file=sys.stderr)
                return 2
            except KeyboardInterrupt:
                print(f"\n{name}: interrupted; finished tasks are kept in {data}.parts/ — "
                      f"`python -m tsode.book long {name}` (without --overwrite) continues",
                      file=sys.stderr)
                return 130
            print(f"{name}: wrote {data.relative_to(ROOT)}", file=sys.stderr)
    return 0
