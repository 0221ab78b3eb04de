"""Running a sweep on an executor: a local process pool, any concurrent.futures.Executor, or
Dask (a ``distributed.Client``, or a scheduler address).

There is no scheduler or retry logic here: tasks are submitted once; the executor places them
(Dask reschedules the tasks of a worker that dies). Results are stored as they arrive, in
completion order, and assembled in grid order, so the output does not depend on the executor.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import sys
import time

from .spec import load_spec
from .tasks import limit_threads, run_task

__all__ = ["sweep"]


def _cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _resolve_executor(executor, workers):
    """(executor, owned, description). ``owned`` executors are shut down by :func:`sweep`."""
    if executor is None:
        n = workers or _cpus()
        pool = cf.ProcessPoolExecutor(
            max_workers=n, mp_context=multiprocessing.get_context("spawn"),
            initializer=limit_threads)
        return pool, True, f"local process pool, {n} workers"
    if isinstance(executor, str):  # a Dask scheduler address
        from distributed import Client

        client = Client(executor, timeout="30s")
        return client.get_executor(pure=False), client, f"dask scheduler {executor}"
    if hasattr(executor, "get_executor") and hasattr(executor, "scheduler_info"):
        address = getattr(executor.scheduler, "address", "?")
        return executor.get_executor(pure=False), False, f"dask client of {address}"
    if isinstance(executor, cf.Executor):
        return executor, False, type(executor).__name__
    raise TypeError(
        "executor must be None (local process pool), a concurrent.futures.Executor, a "
        f"distributed.Client or a scheduler address, got {type(executor).__name__}")


def _progress(total, initial, progress):
    if progress is None:
        progress = sys.stderr.isatty()
    if not progress:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="task", desc="sweep", file=sys.stderr)


def _run_all(pending, submit, on_result, bar):
    """Submit every task, store each result as it completes; on error or Ctrl-C cancel the
    rest (finished parts are kept) and re-raise."""
    futures = {submit(run_task, t.payload()): t for t in pending}
    try:
        for fut in cf.as_completed(futures):
            on_result(futures[fut], fut.result())
            if bar is not None:
                bar.update(1)
    except BaseException:
        for fut in futures:
            fut.cancel()
        raise


def _execute(pending, executor, workers, on_result, bar) -> str:
    """Run ``pending`` on the executor; return its description (for the provenance)."""
    pool, owned, where = _resolve_executor(executor, workers)
    try:
        _run_all(pending, pool.submit, on_result, bar)
    finally:
        if bar is not None:
            bar.close()
        if owned is True:
            pool.shutdown(wait=False, cancel_futures=True)
        elif owned:
            owned.close()
    return where


def sweep(spec, executor=None, output=None, *, workers=None, resume=False, overwrite=False,
          progress=None, on_task=None):
    """Run every task of a sweep spec and return the results as an ``xarray.Dataset``.

    Parameters
    ----------
    spec : path of a TOML spec, TOML text, a nested dict ({"setup": {...}, "network": {...},
        "run": {...}}) or a ``Spec`` — see the README, "Running sweeps on a cluster".
    executor : None (default: a local process pool with ``workers`` or all cores), any
        ``concurrent.futures.Executor``, a ``distributed.Client`` or a Dask scheduler address
        ("tcp://host:8786").
    output : path of the netCDF file to write (optional). Finished tasks are kept in
        ``output + ".parts/"`` while the sweep runs, so an interrupted sweep can be resumed.
    resume : continue a sweep of the same spec at ``output``, computing only missing tasks.
    overwrite : discard whatever is at ``output`` (another spec's results included).
    progress : tqdm bar of finished tasks (default: when stderr is a terminal).
    on_task : optional callback(task, result) called in the driver as each task finishes.

    Returns
    -------
    xarray.Dataset: dims = the swept settings (in spec order), run, alpha (and k, k2, m, m2
    for Q, R, v); variables eg, Q, R, v, T_teacher, v_star, alpha_recorded, per-task seconds,
    host, error, init_seed, sim_seed (+ fixed-point variables for engine = "fixed_point");
    attributes: spec (JSON), spec_hash, seed rule, versions, git commit, wall time, executor.
    Results are bitwise identical for every executor, worker count and completion order.

    Raises
    ------
    SpecError (ValueError) for a bad spec, before any task starts; SpecMismatch if ``output``
    belongs to another spec (unless overwrite); FileExistsError if it holds this spec's
    results and neither resume nor overwrite is given.
    """
    from . import store

    t0 = time.perf_counter()
    commit = store.git_commit()  # the code that runs, even if HEAD moves meanwhile
    spec = load_spec(spec)
    tasks = spec.tasks()
    results = store.MemoryStore()
    if output is not None:
        results = store.PartStore(output, spec)
        if resume and not overwrite and results.output.exists() and not results.dir.exists():
            ds = store.read_netcdf(results.output)
            if ds.attrs.get("spec_hash") == spec.hash:
                return ds
        results.prepare(resume, overwrite)
    pending = [t for t in tasks if not results.done(t)]
    if len(pending) < len(tasks):
        print(f"sweep: {len(tasks) - len(pending)} of {len(tasks)} tasks already done, "
              f"{len(pending)} to run", file=sys.stderr)

    def on_result(task, result):
        results.save(task, result)
        if on_task is not None:
            on_task(task, result)

    where = "nothing to run"
    if pending:
        bar = _progress(len(tasks), len(tasks) - len(pending), progress)
        where = _execute(pending, executor, workers, on_result, bar)
    ds = store.assemble(spec, tasks, {t.key: results.load(t) for t in tasks},
                        store.provenance(spec, time.perf_counter() - t0, where, commit))
    results.finish(ds)
    return ds
