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
    state0 = tsode.initial_state(K, M, "random", N=N, seed=1)
    setup = tsode.Setup(act, eta=0.5, eta_v=0.5)
    tsode.simulate(state0, setup, N=N, alpha_max=20 / N, engine=engine, n_runs=min(n_runs, 2))
    best = 0.0
    for rep in range(repeat):
        t0 = time.perf_counter()
        traj = tsode.simulate(
            state0, setup, N=N, alpha_max=steps_per_run / N, engine=engine, n_runs=n_runs,
            seed=rep,
        )
        dt = time.perf_counter() - t0
        best = max(best, traj.info["steps"] * n_runs / dt)
    return best


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="shorter runs (noisier numbers)")
    args = p.parse_args()
    f = 0.2 if args.quick else 1.0
    print(f"cpus: {os.cpu_count()}; best of 3 repetitions; run-steps/s = runs x SGD steps / wall s")
    rows = []
    one = measure("full", 500, 1, int(500_000 * f))
    rows.append(("full    N=500     K=5 M=2 erf  1 run ", one, 5e4))
    b16 = measure("full", 500, 16, int(200_000 * f))
    rows.append(("full    N=500     K=5 M=2 erf 16 runs", b16, 2e5))
    for N in (100, 10**6):
        r = measure("reduced", N, 64, int(200_000 * f))
        rows.append((f"reduced N={N:<8d}K=5 M=2 erf 64 runs", r, 1e6))
    for name, rate, target in rows:
        ok = "ok " if rate >= target else "LOW"
        print(f"{name}: {rate:12,.0f} run-steps/s   target >= {target:10,.0f}  {ok}")
    print(f"16-run / 1-run speed-up of the full engine: {b16 / one:.2f}x")


if __name__ == "__main__":
    main()
