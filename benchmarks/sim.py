"""Throughput of tsode.simulate (prints timings; never asserted in tests).

    python benchmarks/sim.py            # all cases, targets of issue 3
    python benchmarks/sim.py --quick    # shorter runs

Targets (2-core machine): full engine, N=500, K=5, M=2, erf, one run >= 50 000 SGD steps/s;
16 batched runs >= 4x that in run-steps/s; reduced engine, K+M <= 7, 64 batched runs >= 1e6
run-steps/s at N=1e2 and at N=1e6. Times include recording at the default ~200 output times and
the closed-form eps_g, but not the one-off numba compilation (a warm-up call is made first).
"""

from __future__ import annotations

import argparse
import os
import time

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


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="shorter runs (noisier numbers)")
    args = p.parse_args()
    f = 0.2 if args.quick else 1.0
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"cpus: {os.cpu_count()}; load average before: {load}; best of 3 repetitions")
    print("run-steps/s = runs x SGD steps / s; 'idle' = per CPU-second x worker threads")
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
