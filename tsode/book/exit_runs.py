r"""Chapter 5's cached ensembles: plateau exit times per run, computed from sweep specs.

A spec ``book/specs/finite_n/NAME.toml`` is an ordinary sweep spec (:mod:`tsode.sweeps`): its
tasks (one per N), settings, output times and per-task seeds are those of ``tsode sweep``.
Unlike a sweep, every run starts from its own random start (:func:`starts`), so that averages
over runs are averages over starts and SGD noise together. What is stored in
``book/data/finite_n/NAME.nc`` is small, per task (N) and run:

* ``exit`` (run,) — the exit time (:func:`tsode.plateau.exit_times`: first α with
  ε_g < ε_plateau / 2, NaN if the run never leaves within ``alpha_max``);
* ``eg_path`` (run, path) — ε_g at the recorded times nearest to multiples of ``PATH_STEP``;
* ``eg_probe`` (run, probe), ``Q_probe`` (run, probe, k, k2), ``R_probe`` (run, probe, k, m) —
  the state at the probe times (:data:`PROBES`: on the plateau and at the end);
* ``seconds`` (wall clock), ``cpu_seconds`` (process CPU time: the cost on an idle core) and
  the seeds of each task; the spec, its hash and the provenance in the attributes.

``python -m tsode.book.exit_runs NAME [NAME ...]`` computes them task by task (finished tasks
are kept in ``NAME.parts/`` as npz without pickle, so an interrupted computation resumes).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from ..plateau import exit_times, symmetric_plateau
from ..sweeps import load_spec

#: How each run's start is drawn (stored in the data's attributes).
STARTS = ("run i: tsode.sde.wishart_state(K, M, N, SeedSequence(init_seed, spawn_key=(i,))), "
          "the law of initial_state(K, M, 'random', N, orthogonal_teacher=True)")

__all__ = ["SPECS", "DATA", "PROBES", "PATH_STEP", "names", "compute", "load", "main"]

ROOT = Path(__file__).resolve().parents[2]
SPECS = ROOT / "book" / "specs" / "finite_n"
DATA = ROOT / "book" / "data" / "finite_n"
#: Spacing of the stored ε_g paths (α).
PATH_STEP = 5.0
#: Probe times per (K, eta): on the plateau for every N of the chapter, and the end.
PROBES = {(2, 1.0): 25.0, (4, 0.2): 150.0, (8, 0.2): 150.0}


def names() -> list[str]:
    return sorted(p.stem for p in SPECS.glob("*.toml"))


def _paths(name):
    spec = SPECS / f"{name}.toml"
    if not spec.exists():
        raise ValueError(f"unknown exit-time data set {name!r}; known: {', '.join(names())}")
    return spec, DATA / f"{name}.nc"


def plateau_of(settings: dict):
    """The symmetric plateau of a task's settings (K = M, erf, first layer only)."""
    if settings["K"] != settings["M"] or settings["activation"] != "erf" or settings["eta_v"]:
        raise ValueError("exit-time data sets need K = M, erf and a frozen second layer")
    return symmetric_plateau(settings["K"], settings["eta"], settings["sigma"])


def starts(s: dict, init_seed: int) -> list:
    """Run i's start: :func:`tsode.sde.wishart_state` (the law of ``initial_state(K, M,
    "random", N, orthogonal_teacher=True)``, at a cost independent of N) with seed
    ``SeedSequence(init_seed, spawn_key=(i,))``: a fresh random start for every run."""
    from ..sde import wishart_state

    if s["init"] != "random" or not s["orthogonal_teacher"] or s["init_std"] not in (None, 1.0):
        raise ValueError("exit-time specs use init = 'random', init_std = 1 and "
                         "orthogonal_teacher = true")
    return [wishart_state(s["K"], s["M"], s["N"], np.random.SeedSequence(init_seed,
                                                                         spawn_key=(i,)))
            for i in range(s["runs"])]


def simulate_runs(states, setup, N: int, alphas, seed: int, engine: str = "reduced"):
    """Runs i = 0..len(states)-1 from their own starts ``states[i]``, ε_g, Q, R recorded at
    ``alphas``: arrays (runs, T), (runs, T, K, K), (runs, T, K, M) and the recorded times.

    Run i is run i of ``simulate(states[i], setup, N, engine=engine, seed=seed, n_runs=i + 1)``
    (same random streams, :func:`tsode.simulate._streams`); the reduced chain advances groups
    of runs in lockstep as :func:`tsode.simulate` does, each lane from its own start.
    """
    from ..simulate import _LANES, RANK_RTOL, _ReducedRuns, _streams, record_steps

    if engine == "sde":
        from ..sde import simulate_states

        eg, Q, R, _, alpha = simulate_states(states, setup, N, alphas, seed)
        return eg, Q, R, alpha
    steps = record_steps(N, alphas[-1], alphas)
    K, M, runs = states[0].K, states[0].M, len(states)
    eg = np.empty((runs, steps.size))
    Q, R = np.empty((runs, steps.size, K, K)), np.empty((runs, steps.size, K, M))
    pars = (setup.act.code, setup.eta, setup.eta_v, setup.sigma, setup.weight_decay, 1e8)
    for first in range(0, runs, _LANES):
        idx = range(first, min(runs, first + _LANES))
        group = _ReducedRuns(states[first], N, [_streams(seed, i)[0] for i in idx], pars,
                             RANK_RTOL, True)
        for j, i in enumerate(idx):
            group.G[:, :, j] = states[i].covariance
        done = 0
        for t, s in enumerate(steps):
            if s > done and group.advance(int(s - done)) < s - done:
                raise RuntimeError(f"a run of {list(idx)} diverged")
            done = int(s)
            q, r, v = group.observe()
            Q[first:first + len(idx), t], R[first:first + len(idx), t] = q, r
    from .._common import covariance
    from ..order_parameters import eg_from_covariance

    T = np.asarray(states[0].T, float)
    eg = eg_from_covariance(covariance(Q, R, T), np.ones((runs, steps.size, K)),
                            np.asarray(states[0].v_star, float), setup.act)
    return eg, Q, R, steps / N


def run_exit_task(payload: dict) -> dict:
    """One task of an exit-time spec: simulate its runs, each from its own start
    (:func:`starts`), and reduce them (see the module docstring)."""
    from .. import Setup

    t0, c0 = time.perf_counter(), time.process_time()
    s = payload["settings"]
    alphas = np.asarray(payload["alphas"], dtype=float)
    setup = Setup(s["activation"], s["eta"], s["eta_v"], s["sigma"], s["weight_decay"])
    eg, Q, R, alpha = simulate_runs(starts(s, payload["init_seed"]), setup, s["N"], alphas,
                                    payload["sim_seed"], s["engine"])
    plateau = plateau_of(s)
    path_idx = _nearest(alpha, np.arange(0.0, alpha[-1] + 1e-9, PATH_STEP))
    probe_idx = _nearest(alpha, [PROBES[(s["K"], s["eta"])], alpha[-1]])
    return dict(
        exit=exit_times(alpha, eg, plateau.eg), eg_path=eg[:, path_idx],
        eg_probe=eg[:, probe_idx], Q_probe=Q[:, probe_idx], R_probe=R[:, probe_idx],
        path_alpha=alpha[path_idx], probe_alpha=alpha[probe_idx],
        seconds=np.float64(time.perf_counter() - t0),
        cpu_seconds=np.float64(time.process_time() - c0), init_seed=np.int64(payload["init_seed"]),
        sim_seed=np.int64(payload["sim_seed"]),
    )


def _nearest(grid, targets):
    grid = np.asarray(grid)
    return np.unique([int(np.argmin(np.abs(grid - t))) for t in targets])


def compute(name: str, log=sys.stderr, keep_parts: bool = False):
    """Compute ``book/data/finite_n/NAME.nc`` (resuming from ``NAME.parts/``, which is removed
    afterwards unless ``keep_parts``)."""
    from ..sweeps.store import _atomic, git_commit, provenance, write_netcdf

    spec_path, out = _paths(name)
    spec = load_spec(spec_path)
    parts = out.with_name(out.name + ".parts")
    parts.mkdir(parents=True, exist_ok=True)
    commit, t0 = git_commit(), time.perf_counter()
    results = []
    for task in spec.tasks():
        part = parts / f"{task.key}.npz"
        if part.exists():
            with np.load(part, allow_pickle=False) as f:
                res = {k: f[k] for k in f.files}
            res.setdefault("cpu_seconds", np.float64(np.nan))  # parts written before it existed
            results.append(res)
            continue
        res = run_exit_task(task.payload())
        _atomic(part, lambda f: np.savez(f, **res))
        results.append(res)
        print(f"{name}: N={task.settings['N']} done in {float(res['seconds']):.1f} s, "
              f"{np.isnan(res['exit']).sum()} censored", file=log, flush=True)
    ds = _assemble(spec, results, dict(provenance(spec, time.perf_counter() - t0, "local",
                                                  commit), starts=STARTS))
    write_netcdf(ds, out)
    if keep_parts:
        return ds
    for p in parts.glob("*.npz"):
        p.unlink()
    parts.rmdir()
    return ds


def _assemble(spec, results, attrs):
    import xarray as xr

    if spec.swept != ("N",):
        raise ValueError(f"exit-time specs sweep N only, got {spec.swept}")
    Ns = list(spec.values["N"])
    stack = {k: np.stack([r[k] for r in results]) for k in results[0]}
    dims = dict(exit=("run",), eg_path=("run", "path"), eg_probe=("run", "probe"),
                Q_probe=("run", "probe", "k", "k2"), R_probe=("run", "probe", "k", "m"),
                path_alpha=("path",), probe_alpha=("probe",), seconds=(), cpu_seconds=(),
                init_seed=(),
                sim_seed=())
    ds = xr.Dataset({k: (("N",) + dims[k], v) for k, v in stack.items()}, coords={"N": Ns},
                    attrs=attrs)
    ds["exit"].attrs["long_name"] = "first alpha with eps_g < plateau eps_g / 2 (NaN: censored)"
    return ds


def load(name: str):
    """The cached data set ``name`` (xarray.Dataset); raises RuntimeError if missing or if it
    was computed from another spec than ``book/specs/finite_n/NAME.toml``."""
    from ..sweeps.store import read_netcdf

    spec_path, out = _paths(name)
    how = f"compute it with `python -m tsode.book.exit_runs {name}`"
    if not out.exists():
        raise RuntimeError(f"{out.relative_to(ROOT)} does not exist: {how}")
    ds = read_netcdf(out)
    if ds.attrs.get("spec_hash") != load_spec(spec_path).hash:
        raise RuntimeError(f"{out.relative_to(ROOT)} was computed from another spec: {how}")
    return ds


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tsode.book.exit_runs",
                                description="compute chapter 5's exit-time data sets")
    p.add_argument("names", nargs="*", metavar="NAME", help=f"default: all ({', '.join(names())})")
    args = p.parse_args(argv)
    for name in args.names or names():
        t0 = time.perf_counter()
        ds = compute(name)
        print(f"{name}: wrote {DATA.relative_to(ROOT)}/{name}.nc in "
              f"{time.perf_counter() - t0:.0f} s; " + json.dumps(
                  {int(n): float(np.nanmean(e)) for n, e in zip(ds.N.values, ds.exit.values)}),
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
