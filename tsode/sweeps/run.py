"""Running a sweep on an executor: a local process pool, any concurrent.futures.Executor, or
Dask (a ``distributed.Client``, or a scheduler address).

There is no scheduler or retry logic here: tasks are submitted once; the executor places them
(Dask reschedules the tasks of a worker that dies). Results are stored as they arrive, in
completion order, and assembled in grid order, so the output does not depend on the executor.
On Ctrl-C the results that already arrived are stored, the rest is cancelled and the workers
of a local pool are terminated, so the driver exits at once.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import multiprocessing
import os
import sys
import time

from .spec import load_spec
from .tasks import limit_threads, run_task

__all__ = ["sweep", "ExecutorError"]

#: How long to try to reach a Dask scheduler given by its address.
CONNECT_TIMEOUT = "30s"


class ExecutorError(RuntimeError):
    """The executor cannot be used: a malformed or unreachable scheduler address."""


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
        return _connect(executor)
    if hasattr(executor, "get_executor") and hasattr(executor, "scheduler_info"):
        address = getattr(executor.scheduler, "address", "?")
        return executor.get_executor(pure=False), False, f"dask client of {address}"
    if isinstance(executor, cf.Executor):
        return executor, False, type(executor).__name__
    raise TypeError(
        "executor must be None (local process pool), a concurrent.futures.Executor, a "
        f"distributed.Client or a scheduler address, got {type(executor).__name__}")


def _check_address(address: str) -> None:
    """ExecutorError unless ``address`` reads PROTOCOL://HOST:PORT (checked before the
    output is touched)."""
    from distributed.comm import parse_address

    try:
        _, location = parse_address(address)
        host, _, port = location.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError("expected tcp://HOST:PORT")
    except (ValueError, TypeError) as e:
        raise ExecutorError(f"malformed scheduler address {address!r}: {e}") from None


def _connect(address: str):
    """(executor, client, description) of the Dask scheduler at ``address``; ExecutorError
    when the address is malformed or nothing answers within ``CONNECT_TIMEOUT``."""
    from distributed import Client

    _check_address(address)
    try:
        client = Client(address, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError, ValueError) as e:
        raise ExecutorError(f"cannot reach the Dask scheduler at {address} within "
                            f"{CONNECT_TIMEOUT}: {_first_line(e)}") from None
    return client.get_executor(pure=False), client, f"dask scheduler {address}"


def _first_line(err) -> str:
    return (str(err).splitlines() or [type(err).__name__])[0]


def _progress(total, initial, progress):
    if progress is None:
        progress = sys.stderr.isatty()
    if not progress:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="task", desc="sweep", file=sys.stderr)


def _run_all(pending, submit, on_result, bar):
    """Submit every task, store each result as it completes; on error or Ctrl-C cancel the
    rest and re-raise. On Ctrl-C the results that have arrived but were not stored yet are
    stored first."""
    futures = {submit(run_task, t.payload()): t for t in pending}
    stored = set()
    try:
        for fut in cf.as_completed(futures):
            stored.add(fut)
            on_result(futures[fut], fut.result())
            if bar is not None:
                bar.update(1)
    except BaseException as err:
        for fut in futures:
            fut.cancel()
        if isinstance(err, KeyboardInterrupt):
            for fut, task in futures.items():
                if fut not in stored and _succeeded(fut):
                    on_result(task, fut.result())
        raise


def _succeeded(fut) -> bool:
    return fut.done() and not fut.cancelled() and fut.exception(timeout=0) is None


def _terminate(pool) -> None:
    """Stop the worker processes of a local pool at once (their tasks are cancelled)."""
    for proc in (getattr(pool, "_processes", None) or {}).values():
        with contextlib.suppress(Exception):
            proc.terminate()


def _execute(pending, executor, workers, on_result, bar) -> str:
    """Run ``pending`` on the executor; return its description (for the provenance)."""
    pool, owned, where = _resolve_executor(executor, workers)
    interrupted = False
    try:
        _run_all(pending, pool.submit, on_result, bar)
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        if bar is not None:
            bar.close()
        if owned is True:
            if interrupted:
                _terminate(pool)
            pool.shutdown(wait=False, cancel_futures=True)
        elif owned:
            owned.close(timeout=2 if interrupted else None)
    return where


def sweep(spec, executor=None, output=None, *, workers=None, resume=False, overwrite=False,
          progress=None, on_task=None, max_memory=None):
    """Run every task of a sweep spec and return the results as an ``xarray.Dataset``.

    Parameters
    ----------
    spec : path of a TOML spec, TOML text, a nested dict ({"setup": {...}, "network": {...},
        "run": {...}}) or a ``Spec`` — see the README, "Running sweeps on a cluster".
    executor : None (default: a local process pool with ``workers`` or all cores), any
        ``concurrent.futures.Executor``, a ``distributed.Client`` or a Dask scheduler address
        ("tcp://host:8786").
    output : path of the netCDF file to write (optional). The sweep holds an exclusive lock
        (``output + ".lock"``) while it runs; finished tasks are kept, verified, in
        ``output + ".parts/"``, so an interrupted sweep can be resumed.
    resume : continue a sweep of the same spec at ``output``: every stored part is checked
        (:meth:`tsode.sweeps.store.PartStore.check`), and only missing or invalid tasks run.
    overwrite : discard whatever is at ``output`` (another spec's results, a corrupt file);
        the old file is replaced only when the new one is complete.
    progress : tqdm bar of finished tasks (default: when stderr is a terminal).
    on_task : optional callback(task, result) called in the driver as each task finishes.
    max_memory : bytes the sweep may use (default: 80 % of the memory available now); a spec
        whose estimated memory (:func:`tsode.sweeps.spec.estimate`) exceeds it is refused
        before any task starts.

    Returns
    -------
    xarray.Dataset: dims = the swept settings (in spec order), run, alpha (and k, k2, m, m2
    for Q, R, v); variables eg, Q, R, v, T_teacher, v_star, alpha_recorded, per-task seconds,
    host, error, init_seed, sim_seed (+ fixed-point variables for engine = "fixed_point");
    attributes: spec (JSON), spec_hash, seed rule, versions, git commit, wall time, executor.
    Results are bitwise identical for every executor, worker count and completion order.

    Raises
    ------
    SpecError (ValueError) for a bad spec, MemoryError for one above ``max_memory``, both
    before any task starts; OutputLocked if another sweep is writing ``output``; SpecMismatch
    if ``output`` belongs to another spec (unless overwrite); FileExistsError if it holds this
    spec's results and neither resume nor overwrite is given; StoreError (naming the path and
    the cause) when ``output`` cannot be read or written; ExecutorError for a scheduler
    address that is malformed or does not answer.
    """
    from . import store
    from .spec import check_memory_ceiling

    t0 = time.perf_counter()
    spec = load_spec(spec)
    if isinstance(executor, str):
        _check_address(executor)
    local = executor is None
    check_memory_ceiling(spec, (workers or _cpus()) if local else 1, max_memory,
                         driver_only=not local)
    if output is None:
        return _sweep(spec, store.MemoryStore(), executor, workers, progress, on_task, t0,
                      store.git_commit())
    with store.OutputLock(output):
        commit = store.git_commit()  # the code that runs, even if HEAD moves meanwhile
        results = store.PartStore(output, spec)
        if resume and not overwrite and results.output.is_file() and not results.dir.exists():
            ds = store.read_output(results.output)
            if ds.attrs.get("spec_hash") == spec.hash:
                return ds
        results.prepare(resume, overwrite)
        return _sweep(spec, results, executor, workers, progress, on_task, t0, commit)


def _pending(tasks, results, swept) -> list:
    """Tasks without a valid stored result; an invalid part is reported (and recomputed)."""
    pending = []
    for t in tasks:
        why = results.check(t)
        if why not in (None, "missing"):
            print(f"sweep: part {results.path(t)} (task {_describe(t, swept)}) is invalid: "
                  f"{why}; recomputing it", file=sys.stderr)
        if why is not None:
            pending.append(t)
    done = len(tasks) - len(pending)
    if done:
        print(f"sweep: {done} of {len(tasks)} tasks already done, {len(pending)} to run",
              file=sys.stderr)
    return pending


def _describe(task, swept) -> str:
    return ", ".join(f"{k}={task.settings[k]}" for k in swept) or "the only task"


def _sweep(spec, results, executor, workers, progress, on_task, t0, commit):
    from . import store

    tasks = spec.tasks()
    pending = _pending(tasks, results, spec.swept)

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
