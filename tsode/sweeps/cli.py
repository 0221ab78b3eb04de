"""``tsode sweep SPEC.toml -o OUT [--scheduler ADDRESS | --workers N] [--resume] [--overwrite]
[--max-memory GB]`` and ``tsode sweep --dry-run SPEC.toml`` (task list and estimated cost:
run-steps and memory from the settings alone, nothing computed). Exit codes: 0 done, 2 a
one-line error (spec, paths, lock, scheduler, memory), 130 interrupted."""

from __future__ import annotations

import argparse
import itertools
import sys
import time

from .spec import SGD_ENGINES, SpecError, estimate, load_spec, task_cost

__all__ = ["main", "dry_run"]


#: Rows of the task table printed by ``--dry-run`` (the totals always cover every task).
MAX_ROWS = 50


def dry_run(spec_path, workers: int, max_memory=None) -> int:
    """Print the tasks of a spec and its estimated cost (:func:`tsode.sweeps.spec.estimate`:
    SGD run-steps and memory, from the settings alone; nothing is computed)."""
    from .._common import available_memory, format_bytes

    spec = load_spec(spec_path)
    cost = estimate(spec)
    cols = list(spec.swept) or ["(single task)"]
    print(f"spec {spec_path}: engine {spec.engine}, {cost.n_tasks} tasks, hash {spec.hash}")
    print("  ".join(f"{c:>12}" for c in ["task", *cols, "run-steps", "memory"]))
    for i, task in enumerate(itertools.islice(spec.iter_tasks(), MAX_ROWS)):
        steps, n_bytes = task_cost(spec, task.settings)
        vals = [task.settings[c] for c in spec.swept] if spec.swept else ["-"]
        row = [i, *vals, "-" if steps is None else f"{steps:.3g}", format_bytes(n_bytes)]
        print("  ".join(f"{str(x):>12}" for x in row))
    if cost.n_tasks > MAX_ROWS:
        print(f"... and {cost.n_tasks - MAX_ROWS} more tasks")
    ceiling = 0.8 * available_memory() if max_memory is None else float(max_memory)
    peak = cost.peak_bytes(workers)
    if peak > ceiling:
        print(f"refused as it stands: {format_bytes(peak)} on {workers} local worker(s) exceeds "
              f"the memory ceiling {format_bytes(ceiling)}")
    work = (f"{cost.run_steps:.3g} SGD run-steps in total" if spec.engine in SGD_ENGINES
            else f"{cost.n_tasks} ODE integrations")
    print(f"estimated cost: {work}; memory: largest task {format_bytes(cost.task_bytes)}, "
          f"results {format_bytes(cost.result_bytes)}, about {format_bytes(peak)} on "
          f"{workers} local worker(s) (ceiling {format_bytes(ceiling)})")
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
                   help="list the tasks and their estimated cost (run-steps, memory); computes "
                   "nothing")
    p.add_argument("--max-memory", type=float, metavar="GB",
                   help="refuse a sweep whose estimated memory exceeds this many GB (default: "
                   "80%% of the memory available now)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv=None) -> int:
    """``tsode sweep``: 0 on success, 2 (one line on stderr, no traceback) for anything a user
    can get wrong — spec, output path, lock, scheduler, memory — and 130 on Ctrl-C."""
    from .run import ExecutorError, _cpus, sweep
    from .store import SpecMismatch, StoreError

    args = _parser().parse_args(argv)
    if args.workers is not None and args.workers < 1:
        return _fail(f"--workers must be >= 1, got {args.workers}")
    if args.max_memory is not None and not args.max_memory > 0:
        return _fail(f"--max-memory must be > 0 (GB), got {args.max_memory}")
    max_memory = None if args.max_memory is None else args.max_memory * 1e9
    try:
        if args.dry_run:
            return dry_run(args.spec, args.workers or _cpus(), max_memory)
        if not args.output:
            return _fail("-o/--output is required (or --dry-run)")
        t0 = time.perf_counter()
        ds = sweep(args.spec, executor=args.scheduler, output=args.output,
                   workers=args.workers, resume=args.resume, overwrite=args.overwrite,
                   progress=False if args.no_progress else None, max_memory=max_memory)
    except (SpecError, SpecMismatch, StoreError, ExecutorError, FileExistsError,
            MemoryError) as e:
        return _fail(str(e))
    except OSError as e:  # the spec file: missing, a directory, unreadable
        where = f"{e.filename}: " if e.filename else ""
        return _fail(f"{where}{e.strerror or e}")
    except KeyboardInterrupt:
        print(f"\ntsode sweep: interrupted; finished tasks are kept in {args.output}.parts/ — "
              "re-run with --resume to continue", file=sys.stderr)
        return 130
    n = int(ds["seconds"].size)
    print(f"wrote {args.output}: {n} tasks in {time.perf_counter() - t0:.1f} s")
    return 0


def _fail(message: str) -> int:
    print(f"tsode sweep: {message}", file=sys.stderr)
    return 2
