"""Wall times of the adaptive ODE engine (issue 2 targets on a 2-core machine).

    python benchmarks/ode.py

1. erf, M=2, K=5, eta=0.5, sigma=0.1, first layer only, random state (N=1000), to alpha=1e4
   (target <= 0.5 s; the authors' C++ fixed-step Euler code needs ~13 s);
2. the same for ReLU (target <= 10x the erf time);
3. erf, K=10, M=2, both layers, to alpha=1e4 (target <= 5 s).

Each line is the best of a few repeats, after one warm-up call (numba kernels are compiled and
cached on first use).
"""

import time

import tsode


def best_time(state0, setup, alpha_max, repeats=3):
    tsode.integrate(state0, setup, 1.0)  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        traj = tsode.integrate(state0, setup, alpha_max)
        times.append(time.perf_counter() - t0)
    return min(times), traj


def main():
    cases = [
        ("erf  K=5  M=2 first layer", 5, "erf", 0.0, "ones"),
        ("relu K=5  M=2 first layer", 5, "relu", 0.0, "ones"),
        ("erf  K=10 M=2 both layers", 10, "erf", 0.5, "normal"),
    ]
    results = {}
    for label, K, act, eta_v, v in cases:
        state0 = tsode.initial_state(K, 2, "random", N=1000, seed=0, v=v, v_star=v)
        setup = tsode.Setup(act, eta=0.5, eta_v=eta_v, sigma=0.1)
        seconds, traj = best_time(state0, setup, 1e4)
        results[label] = seconds
        print(
            f"{label}: {seconds:7.3f} s to alpha=1e4  (rhs evaluations {traj.info['nfev']}, "
            f"jacobians {traj.info['njev']}, final eps_g {traj.eg[-1]:.4g})"
        )
    ratio = results["relu K=5  M=2 first layer"] / results["erf  K=5  M=2 first layer"]
    print(f"relu / erf time ratio: {ratio:.1f}")


if __name__ == "__main__":
    main()
