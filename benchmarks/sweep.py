"""Overhead of Dask: 64 short ODE tasks on a two-worker LocalCluster vs the local process pool.

    PYTHONPATH=. python benchmarks/sweep.py [--tasks 64] [--repeat 2]

Prints the wall time of each executor (pool/cluster start-up excluded: both are started before
the clock, warm-up sweep run first), the ratio cluster / pool (issue 11 target: <= 1.3) and the
peak memory of the driver. Every sweep is checked bitwise against the first one.
"""

import argparse
import multiprocessing
import resource
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

import tsode
from tsode.sweeps.tasks import limit_threads


def spec(n_tasks: int) -> dict:
    """n_tasks ODE integrations (erf, M = 2, K = 2..5, 16 values of eta), alpha_max = 20."""
    etas = [round(0.1 + 0.02 * i, 3) for i in range(n_tasks // 4)]
    return dict(setup=dict(activation="erf", eta=etas, sigma=0.1),
                network=dict(M=2, K=[2, 3, 4, 5], init="random"),
                run=dict(engine="ode", alpha_max=20.0, N=1000))


def timed(s, executor, repeat):
    best, ds = np.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        ds = tsode.sweep(s, executor=executor, progress=False)
        best = min(best, time.perf_counter() - t0)
    return best, ds


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--tasks", type=int, default=64)
    p.add_argument("--repeat", type=int, default=2)
    a = p.parse_args()
    s = spec(a.tasks)
    from distributed import Client, LocalCluster

    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(2, mp_context=ctx, initializer=limit_threads) as pool:
        timed(s, pool, 1)  # warm-up: imports, numba caches
        t_pool, ref = timed(s, pool, a.repeat)
    with LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        timed(s, client, 1)
        t_dask, ds = timed(s, client, a.repeat)
    assert np.array_equal(ds.eg.values, ref.eg.values, equal_nan=True)
    per_task = float(ref.seconds.mean())
    print(f"{a.tasks} ODE tasks (mean {per_task * 1e3:.0f} ms of compute each), best of "
          f"{a.repeat}:")
    print(f"  local process pool, 2 workers : {t_pool:7.2f} s")
    print(f"  dask LocalCluster, 2 workers  : {t_dask:7.2f} s")
    print(f"  ratio dask / pool             : {t_dask / t_pool:7.2f}  (target <= 1.3)")
    print(f"  peak RSS of the driver        : "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
