"""``tsode sweep SPEC.toml -o OUT [--scheduler ADDRESS | --workers N] [--resume]`` and
``tsode sweep --dry-run SPEC.toml`` (task list and estimated cost)."""

from __future__ import annotations

import argparse
import math
import sys
import time

from .spec import SGD_ENGINES, SpecError, load_spec

__all__ = ["main", "estimate_costs"]


def _sgd_rate(s: dict) -> float:
    """Measured run-steps/s of one simulator thread for this task's engine, sizes and N."""
    from .. import Setup, initial_state, simulate

    state0 = initial_state(s["K"], s["M"], "random", N=s["N"], seed=0)
    setup = Setup(s["activation"], s["eta"], s["eta_v"], s["sigma"], s["weight_decay"])
    steps = 20_000 if s["engine"] == "reduced" else max(200, int(2e7 / (s["N"] * 6)))
    simulate(state0, setup, s["N"], 10 / s["N"], engine=s["engine"], workers=1)  # compile
    t0 = time.perf_counter()
    simulate(state0, setup, s["N"], steps / s["N"], engine=s["engine"], workers=1)
    return steps / (time.perf_counter() - t0)


def _ode_seconds(s: dict, alpha_max: float) -> float:
    """Seconds of one integration to min(alpha_max, 100), scaled by 1 + log10(alpha_max/100)
    (LSODA's steps grow roughly with log α once the dynamics settle): a rough estimate."""
    from .. import Setup, initial_state, integrate

    state0 = initial_state(s["K"], s["M"], s["init"], N=s["N"], seed=0)
    setup = Setup(s["activation"], s["eta"], s["eta_v"], s["sigma"], s["weight_decay"])
    a = min(alpha_max, 100.0)
    t0 = time.perf_counter()
    integrate(state0, setup, a, rtol=s["rtol"], atol=s["atol"])
    return (time.perf_counter() - t0) * (1 + max(0.0, math.log10(alpha_max / a)))


def estimate_costs(spec) -> list[tuple]:
    """[(task, run_steps or None, estimated seconds on one core)] for every task.

    SGD: run-steps = runs × round(α_max N), divided by a rate measured here for each distinct
    (engine, activation, K, M, N) — a second short simulation after a warm-up one. ODE and
    fixed points: one timed integration per distinct (activation, K, M, init), see
    :func:`_ode_seconds`. Rates measured on a loaded machine overestimate the cost.
    """
    cache = {}
    out = []
    for task in spec.tasks():
        s = task.settings
        amax = task.alphas[-1]
        if s["engine"] in SGD_ENGINES:
            key = (s["engine"], s["activation"], s["K"], s["M"],
                   s["N"] if s["engine"] == "full" else 0)
            if key not in cache:
                cache[key] = _sgd_rate(s)
            steps = s["runs"] * round(amax * s["N"])
            out.append((task, steps, steps / cache[key]))
        else:
            key = (s["activation"], s["K"], s["M"], s["init"], amax)
            if key not in cache:
                cache[key] = _ode_seconds(s, amax)
            out.append((task, None, cache[key]))
    return out


def _hms(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m{seconds % 60:02d}s"


def dry_run(spec_path, workers: int) -> int:
    spec = load_spec(spec_path)
    costs = estimate_costs(spec)
    cols = list(spec.swept) or ["(single task)"]
    print(f"spec {spec_path}: engine {spec.engine}, {len(costs)} tasks, hash {spec.hash}")
    print("  ".join(f"{c:>12}" for c in ["task", *cols, "run-steps", "est. seconds"]))
    for i, (task, steps, sec) in enumerate(costs):
        vals = [task.settings[c] for c in spec.swept] if spec.swept else ["-"]
        row = [i, *vals, "-" if steps is None else f"{steps:.3g}", f"{sec:.3g}"]
        print("  ".join(f"{str(x):>12}" for x in row))
    total = sum(c[2] for c in costs)
    longest = max(c[2] for c in costs)
    wall = max(total / workers, longest)
    print(f"estimated cost: {_hms(total)} of CPU; about {_hms(wall)} of wall time on {workers} "
          f"worker(s) (longest task {_hms(longest)})")
    return 0


def _parser():
    p = argparse.ArgumentParser(
        prog="tsode sweep", description="Run a sweep spec (see README, 'Running sweeps on a "
        "cluster') and write the results to a netCDF file.")
    p.add_argument("spec", help="TOML spec file")
    p.add_argument("-o", "--output", help="netCDF file to write (required unless --dry-run)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="Dask scheduler address, e.g. tcp://10.0.0.5:8786")
    where.add_argument("--workers", type=int, metavar="N",
                       help="local worker processes (default: all cores)")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted sweep of the same spec at OUT")
    p.add_argument("--overwrite", action="store_true",
                   help="discard whatever is at OUT (another spec's results included)")
    p.add_argument("--dry-run", action="store_true",
                   help="list the tasks and their estimated cost, run nothing")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv=None) -> int:
    from .run import _cpus, sweep
    from .store import SpecMismatch

    args = _parser().parse_args(argv)
    if args.workers is not None and args.workers < 1:
        print(f"tsode sweep: --workers must be >= 1, got {args.workers}", file=sys.stderr)
        return 2
    try:
        if args.dry_run:
            return dry_run(args.spec, args.workers or _cpus())
        if not args.output:
            print("tsode sweep: -o/--output is required (or --dry-run)", file=sys.stderr)
            return 2
        t0 = time.perf_counter()
        ds = sweep(args.spec, executor=args.scheduler, output=args.output,
                   workers=args.workers, resume=args.resume, overwrite=args.overwrite,
                   progress=False if args.no_progress else None)
    except (SpecError, SpecMismatch, FileExistsError, FileNotFoundError) as e:
        print(f"tsode sweep: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ntsode sweep: interrupted; finished tasks are kept in {args.output}.parts/ — "
              "re-run with --resume to continue", file=sys.stderr)
        return 130
    n = int(ds["seconds"].size)
    print(f"wrote {args.output}: {n} tasks in {time.perf_counter() - t0:.1f} s")
    return 0
