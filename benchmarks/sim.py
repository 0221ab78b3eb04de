"""Throughput of tsode.simulate (prints timings; never asserted in tests).

    python benchmarks/sim.py            # all cases, targets of issues 3 and 11
    python benchmarks/sim.py --quick    # shorter runs
    python benchmarks/sim.py --reduced  # only the reduced engine's case of issue 11

Issue 11 (item 6): the reduced engine at erf, K=4, M=2, first layer only, N=1000, 64 runs, is
printed beside a plain numpy loop of full SGD at N=500 (one run, the same network) measured in the
same process, so that the ratio stays meaningful on a shared, loaded machine.

Targets (2-core machine): full engine, N=500, K=5, M=2, erf, one run >= 50 000 SGD steps/s;
16 batched runs >= 4x that in run-steps/s; reduced engine, K+M <= 7, 64 batched runs >= 1e6
run-steps/s at N=1e2 and at N=1e6. Times include recording at the default ~200 output times and
the closed-form eps_g, but not the one-off numba compilation (a warm-up call is made first).
"""

from __future__ import annotations

import argparse
import math
import os
import time

import numpy as np
from scipy.special import erf

import tsode


def measure(engine, N, n_runs, steps_per_run, K=5, M=2, act="erf", repeat=3):
    """Best of ``repeat`` calls: (wall-clock run-steps/s, CPU-time run-steps/s x workers).

    The second number is what an otherwise idle machine would give (process CPU time counts the
    work of all threads); on a shared, loaded machine the wall-clock rate is lower.
    """
    state0 = tsode.initial_state(K, M, "random", N=N, seed=1)
    setup = tsode.Setup(act, eta=0.5, eta_v=0.5)
    tsode.simulate(state0, setup, N=N, alpha_max=20 / N, engine=engine, n_runs=min(n_runs, 2))
    best_wall = best_cpu = 0.0
    for rep in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        traj = tsode.simulate(
            state0, setup, N=N, alpha_max=steps_per_run / N, engine=engine, n_runs=n_runs,
            seed=rep,
        )
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        work = traj.info["steps"] * n_runs
        best_wall = max(best_wall, work / wall)
        best_cpu = max(best_cpu, work / cpu * traj.info["workers"])
    return best_wall, best_cpu


def numpy_sgd_rate(N=500, K=4, M=2, n_steps=20_000, repeat=3):
    """Best of ``repeat``: SGD steps/s of a plain numpy loop (erf, first layer, eta = 0.5)."""
    rng = np.random.default_rng(0)
    W, Ws = rng.standard_normal((K, N)), rng.standard_normal((M, N))
    v, vs = np.ones(K), np.ones(M)
    eta, isq = 0.5, 1.0 / math.sqrt(N)
    best = 0.0
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(n_steps):
            x = rng.standard_normal(N)
            lam, rho = W @ x * isq, Ws @ x * isq
            delta = v @ erf(lam / math.sqrt(2)) - vs @ erf(rho / math.sqrt(2))
            c = -eta * v * math.sqrt(2 / math.pi) * np.exp(-0.5 * lam**2) * delta * isq
            W += np.outer(c, x)
        best = max(best, n_steps / (time.perf_counter() - t0))
    return best


def reduced_target(f, repeat=3):
    """Issue 11: (wall, idle) run-steps/s of the reduced engine beside the numpy loop's steps/s."""
    state0 = tsode.initial_state(4, 2, "random", N=1000, seed=1)
    setup = tsode.Setup("erf", eta=0.5, eta_v=0.0)
    kw = dict(N=1000, engine="reduced", n_runs=64)
    tsode.simulate(state0, setup, alpha_max=0.02, **kw)  # compile
    best_wall = best_cpu = 0.0
    for rep in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        traj = tsode.simulate(state0, setup, alpha_max=100 * f, seed=rep, **kw)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        work = traj.info["steps"] * 64
        best_wall = max(best_wall, work / wall)
        best_cpu = max(best_cpu, work / cpu * traj.info["workers"])
    return best_wall, best_cpu


def print_reduced_target(f):
    for _ in range(2):  # numpy loop, engine, numpy loop, engine: the load changes over time
        ref = numpy_sgd_rate(n_steps=int(20_000 * f))
        wall, idle = reduced_target(f)
        print(f"numpy full-SGD loop N=500 K=4 M=2 erf 1 run : {ref:12,.0f} steps/s")
        print(f"reduced N=1000 K=4 M=2 erf first layer 64 runs: wall {wall:12,.0f}  idle "
              f"{idle:12,.0f} run-steps/s  = {wall / ref:6.1f} x the numpy loop (wall)")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="shorter runs (noisier numbers)")
    p.add_argument("--reduced", action="store_true", help="only the reduced case of issue 11")
    args = p.parse_args()
    f = 0.2 if args.quick else 1.0
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"cpus: {os.cpu_count()}; load average before: {load}; best of 3 repetitions")
    print("run-steps/s = runs x SGD steps / s; 'idle' = per CPU-second x worker threads")
    print_reduced_target(f)
    if args.reduced:
        return
    rows = []
    one = measure("full", 500, 1, int(500_000 * f))
    rows.append(("full    N=500     K=5 M=2 erf  1 run ", one, 5e4))
    b16 = measure("full", 500, 16, int(200_000 * f))
    rows.append(("full    N=500     K=5 M=2 erf 16 runs", b16, 2e5))
    for N in (100, 10**6):
        r = measure("reduced", N, 64, int(200_000 * f))
        rows.append((f"reduced N={N:<8d}K=5 M=2 erf 64 runs", r, 1e6))
    for name, (wall, idle), target in rows:
        ok = "ok " if wall >= target else "LOW"
        print(f"{name}: wall {wall:12,.0f}  idle {idle:12,.0f}   target >= {target:10,.0f}  {ok}")
    print(f"16-run / 1-run wall-clock speed-up of the full engine: {b16[0] / one[0]:.2f}x")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"load average after: {load} (numbers are only meaningful when it is below the cpus)")


if __name__ == "__main__":
    main()
