"""Per-batch timing of tsode._relu_i4.relu_I4 (the ReLU four-point integral of the ODEs).

Run: ``PYTHONPATH=. python benchmarks/relu_i4.py``. Covariances are built like the ODE engine
builds them: index tuples (i, k, a, b) into a random (K+M)×(K+M) Gram matrix, so repeated
indices (exactly singular covariances) are included.
"""

import itertools
import time

import numpy as np

from tsode._relu_i4 import relu_I4


def ode_like_batch(n_fields, n_students, seed=0):
    """All (i, k, a, b) covariances, i, k students, a, b any field: (B, 4, 4)."""
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((n_fields, 50))
    G = W @ W.T / 50
    idx = np.array([t for t in itertools.product(range(n_students), range(n_students),
                                                 range(n_fields), range(n_fields))])
    return G[idx[:, :, None], idx[:, None, :]]


def time_batch(C, repeat=50):
    relu_I4(C)                                   # compile / warm up
    best = np.inf
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(repeat):
            relu_I4(C)
        best = min(best, (time.perf_counter() - t) / repeat)
    return best


if __name__ == "__main__":
    rng = np.random.default_rng(1)
    for size in (420, 1225):
        A = rng.standard_normal((size, 4, 6))
        C = A @ A.transpose(0, 2, 1) / 6
        print(f"random covariances, batch {size:5d}: {time_batch(C) * 1e3:7.3f} ms")
    for K, M in ((5, 2), (7, 0)):
        C = ode_like_batch(K + M, K)
        print(f"ODE-like (K+M={K + M}, K={K}), batch {len(C):5d}: {time_batch(C) * 1e3:7.3f} ms")
