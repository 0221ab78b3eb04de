"""Per-batch timing of tsode._relu_i4.relu_I4 (the ReLU four-point integral of the ODEs).

Run: ``PYTHONPATH=. python benchmarks/relu_i4.py``. Covariances are built like the ODE engine
builds them: index tuples (i, k, a, b) into a random (K+M)×(K+M) Gram matrix, so repeated
indices (exactly singular covariances) are included.

The last block times the indexed kernel ``relu_I4_indexed(C, idx)`` on the ODE's own tuples
(Drift.idx4: i ≤ k students, a ≤ b all fields) against the gathered ``relu_I4`` path, at the
random initial state and at the end of the benchmark trajectory (students nearly aligned with
teachers, where the quadrature of all-distinct tuples needs more sub-intervals).
"""

import itertools
import time

import numpy as np

import tsode
from tsode._relu_i4 import relu_I4, relu_I4_indexed
from tsode.activations import gather
from tsode.ode import Drift


def ode_like_batch(n_fields, n_students, seed=0):
    """All (i, k, a, b) covariances, i, k students, a, b any field: (B, 4, 4)."""
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((n_fields, 50))
    G = W @ W.T / 50
    idx = np.array([t for t in itertools.product(range(n_students), range(n_students),
                                                 range(n_fields), range(n_fields))])
    return G[idx[:, :, None], idx[:, None, :]]


def time_batch(C, repeat=50, fn=relu_I4):
    fn(C)                                        # compile / warm up
    best = np.inf
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(repeat):
            fn(C)
        best = min(best, (time.perf_counter() - t) / repeat)
    return best


def ode_indexed(K=5, M=2):
    """Indexed kernel vs gathered quadrature on Drift.idx4 at two states of the ODE benchmark."""
    state0 = tsode.initial_state(K, M, "random", N=1000, seed=0, v="ones", v_star="ones")
    setup = tsode.Setup("relu", eta=0.5, sigma=0.1)
    f = Drift.from_state(state0, setup)
    traj = tsode.integrate(state0, setup, 1e4, alphas=[0.0, 1e4])
    idx = f.idx4
    distinct = np.array([len(set(t)) == 4 for t in idx])
    print(f"ODE I4 tuples (K={K}, M={M}): {len(idx)}, all-distinct {distinct.sum()}")
    for label, j in (("alpha=0  ", 0), ("alpha=1e4", -1)):
        C = f.covariance(traj.Q[j], traj.R[j])
        t_new = time_batch(C, 200, lambda C: relu_I4_indexed(C, idx))
        t_dist = time_batch(C, 200, lambda C: relu_I4_indexed(C, idx[distinct]))
        t_old = time_batch(C, 20, lambda C: relu_I4(gather(C, idx)))
        err = np.abs(relu_I4_indexed(C, idx) - relu_I4(gather(C, idx))).max()
        print(f"  {label}: indexed {t_new * 1e6:7.1f} us (all-distinct part {t_dist * 1e6:6.1f} us)"
              f", gathered relu_I4 {t_old * 1e6:7.1f} us, max |diff| {err:.1e}")


if __name__ == "__main__":
    rng = np.random.default_rng(1)
    for size in (420, 1225):
        A = rng.standard_normal((size, 4, 6))
        C = A @ A.transpose(0, 2, 1) / 6
        print(f"random covariances, batch {size:5d}: {time_batch(C) * 1e3:7.3f} ms")
    for K, M in ((5, 2), (7, 0)):
        C = ode_like_batch(K + M, K)
        print(f"ODE-like (K+M={K + M}, K={K}), batch {len(C):5d}: {time_batch(C) * 1e3:7.3f} ms")
    ode_indexed()
