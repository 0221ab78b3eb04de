r"""Diffusion approximation of finite-N online SGD (``simulate(..., engine="sde")``).

(filled in below)
"""

from __future__ import annotations

import numpy as np

from ._common import check_int, check_number
from .order_parameters import OrderParameters

__all__ = ["wishart_state"]


def wishart_state(K: int, M: int, N: int, seed, *, init_std: float = 1.0,
                  orthogonal_teacher: bool = True) -> OrderParameters:
    r"""A random start with the law of ``initial_state(K, M, "random", N, orthogonal_teacher=True)``
    drawn at a cost independent of N (any N >= K + M).

    Student rows :math:`w_k \sim \mathcal N(0, s^2 I_N)` (s = ``init_std``), teacher rows an
    orthonormal frame scaled by √N (T = I). Writing :math:`w_k` in that frame plus its
    complement: :math:`R_{kn} = s z_{kn}/\sqrt N` with :math:`z_{kn}\sim\mathcal N(0,1)` and
    :math:`Q = s^2 (z z^\top + A A^\top)/N` with :math:`AA^\top \sim` Wishart\ :sub:`K`\ (N − M, I),
    A from Bartlett's decomposition (:math:`A_{ii}^2 \sim \chi^2_{N-M-i+1}`, :math:`A_{ij}
    \sim \mathcal N(0, 1)` below the diagonal). v = v* = 1.

    ``seed`` is anything ``numpy.random.default_rng`` accepts (an int or a SeedSequence).
    """
    K, M = check_int(K, "K", 1), check_int(M, "M", 1)
    N = check_int(N, "N", K + M, integral_float=True)
    init_std = check_number(init_std, "init_std")
    if not orthogonal_teacher:
        raise ValueError("wishart_state draws the orthonormal teacher only (T = I)")
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((K, M))
    A = np.tril(rng.standard_normal((K, K)), -1)
    A[np.diag_indices(K)] = np.sqrt(rng.chisquare(N - M - np.arange(K)))
    Q = init_std**2 * (z @ z.T + A @ A.T) / N
    R = init_std * z / np.sqrt(N)
    return OrderParameters(Q=Q, R=R, T=np.eye(M), v=np.ones(K), v_star=np.ones(M))
