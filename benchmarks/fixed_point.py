"""Cost of one `tsode.fixed_point` call at K = 10, M = 2 (target: <= 2 s).

Run:  python benchmarks/fixed_point.py

Cases (erf, eta = 0.1, sigma = 0.1):
  first layer only  -- full Newton on the 75 packed unknowns, started from an informed state
                       (specialised units exact, 8 extra units orthogonal with norm 0.02);
  both layers       -- the denoising fixed point (copies coincide: solved on the invariant set,
                       spectrum of the full 85 x 85 Jacobian);
  from integration  -- polish the end of an integration to alpha = 1e4 from random weights
                       (the integration itself is timed separately).
Each line prints the best of `repeat` wall-clock times, Newton steps, residual and eg*.
"""

import time

import numpy as np

import tsode
from tsode.asymptotics import denoising_fixed_point, fixed_point
from tsode.ode import Drift


def best_of(fn, repeat=3):
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main():
    K, M, eta, sigma = 10, 2, 0.1, 0.1
    first = tsode.Setup("erf", eta=eta, sigma=sigma)
    guess = tsode.initial_state(K, M, kind="informed", extra_std=0.02)
    f = Drift.from_state(guess, first)
    y = f.pack(np.asarray(guess.Q), np.asarray(guess.R), np.asarray(guess.v))
    f(0.0, y)  # warm-up (compilation of the integrals)
    t_rhs, _ = best_of(lambda: f(0.0, y), 20)
    t_jac, _ = best_of(lambda: f.jacobian(0.0, y), 5)
    print(f"drift K={K} M={M}: one RHS {1e3 * t_rhs:.2f} ms, one FD Jacobian "
          f"({f.size} x {f.size}) {1e3 * t_jac:.1f} ms")

    t, fp = best_of(lambda: fixed_point(guess, first))
    print(f"fixed_point erf first layer K={K} M={M} (informed guess): {t:.3f} s, "
          f"{fp.n_iter} Newton steps, residual {fp.residual:.1e}, eg* {fp.eg:.5g}")

    t, fp = best_of(lambda: denoising_fixed_point(K, M, eta, eta, sigma))
    print(f"fixed_point erf both layers K={K} M={M} (denoiser): {t:.3f} s, "
          f"{fp.n_iter} Newton steps, residual {fp.residual:.1e}, eg* {fp.eg:.5g}")

    state0 = tsode.initial_state(K, M, kind="random", N=10_000, seed=0, orthogonal_teacher=True)
    t0 = time.perf_counter()
    traj = tsode.integrate(state0, first, 1e4)
    t_int = time.perf_counter() - t0
    t, fp = best_of(lambda: fixed_point(traj, first, raise_on_failure=False))
    print(f"fixed_point erf first layer K={K} M={M} (end of integration to alpha=1e4, "
          f"{t_int:.2f} s): {t:.3f} s, {fp.n_iter} Newton steps, converged={fp.converged}, "
          f"eg* {fp.eg:.5g}")
    if not fp.converged:
        print(f"  (expected for L = 8 from random weights: slow drift, no fixed point nearby) "
              f"{fp.message}")


if __name__ == "__main__":
    main()
