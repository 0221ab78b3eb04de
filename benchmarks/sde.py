"""Cost per run of the diffusion engine against N (prints timings; never asserted in tests).

    python benchmarks/sde.py            # N = 1e3 ... 1e9, 16 runs to alpha = 50
    python benchmarks/sde.py --quick    # 4 runs to alpha = 10

erf, K = M = 2, eta = 1, sigma = 0.1 (chapter 5), one random start (tsode.sde.wishart_state)
per N, one worker. The SDE's step in alpha (tsode.sde.DALPHA) and its quadrature do not depend
on N, so the cost per run should not either; the exact reduced chain is printed beside it for
N <= 1e4 (its cost grows like N: N alpha steps). Wall-clock and process CPU seconds per run are
printed (CPU time is what an idle machine gives; the machine may be shared).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import tsode
from tsode.sde import wishart_state


def per_run(engine, N, runs, alpha_max):
    state0 = wishart_state(2, 2, N, 1)
    setup = tsode.Setup("erf", eta=1.0, sigma=0.1)
    alphas = np.linspace(0, alpha_max, 11)
    t0, c0 = time.perf_counter(), time.process_time()
    tsode.simulate(state0, setup, N=N, alpha_max=alpha_max, alphas=alphas, engine=engine,
                   n_runs=runs, seed=0, workers=1)
    return (time.perf_counter() - t0) / runs, (time.process_time() - c0) / runs


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    runs, alpha_max = (4, 10.0) if args.quick else (16, 50.0)
    per_run("sde", 1000, 2, 1.0)  # compile
    per_run("reduced", 1000, 2, 1.0)
    print(f"erf K = M = 2, eta = 1, sigma = 0.1, {runs} runs to alpha = {alpha_max:g}, 1 worker")
    print(f"{'N':>12} {'engine':>8} {'wall s/run':>11} {'cpu s/run':>10}")
    for N in (10**3, 10**4, 10**6, 10**8, 10**9):
        for engine in ("sde", "reduced"):
            if engine == "reduced" and N > 10**4:
                continue
            wall, cpu = per_run(engine, N, runs, alpha_max)
            print(f"{N:>12.0e} {engine:>8} {wall:>11.3f} {cpu:>10.3f}")


if __name__ == "__main__":
    main()
