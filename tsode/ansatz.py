r"""Fixed points known in closed or reduced form.

* :func:`linear_eg_star` — exact asymptotic error of a linear network, first layer only.
* :func:`erf_eg_star_leading` — erf, first layer only, leading order in η (Goldt et al. 2019).
* :func:`erf_symmetric_fixed_point` — the exact erf first-layer fixed point under the symmetric
  ansatz (M specialised units, L equivalent extra units, v = v* = 1, T = I), solved on the
  ansatz's eight overlaps (:data:`ANSATZ_PARAMETERS`) and returned with the full spectrum.
* :func:`denoising_fixed_point` — erf, both layers: student units copying teacher units and
  sharing their output weight.
"""

from __future__ import annotations

import numpy as np

from ._common import check_int, check_number
from .fixed_points import FixedPoint, FixedPointError, _Reduction, _result, fixed_point
from .ode import Drift
from .order_parameters import OrderParameters, Setup, initial_state

__all__ = [
    "linear_eg_star",
    "erf_eg_star_leading",
    "erf_symmetric_fixed_point",
    "ANSATZ_PARAMETERS",
    "denoising_fixed_point",
]


def linear_eg_star(K: int, eta: float, sigma: float) -> float:
    r"""Exact asymptotic error of a linear student, first layer only (v = v* = 1).

    All K units receive the same update, so only :math:`s = \sum_k w_k` matters and it performs
    online regression with learning rate :math:`\eta K`; with :math:`e = |s - s^*|^2/N`,
    :math:`\dot e = -\eta K (2 - \eta K) e + (\eta K)^2 \sigma^2`, hence

    .. math::  \epsilon_g^* = \frac{\eta \sigma^2 K}{2 (2 - \eta K)},

    stable if and only if :math:`\eta K < 2`.

    Raises ``ValueError`` for :math:`\eta K \ge 2` (no stable fixed point: the error diverges).
    """
    K = check_int(K, "K", 1)
    eta = check_number(eta, "eta", strict=True)
    sigma = check_number(sigma, "sigma")
    if eta * K >= 2:
        raise ValueError(
            f"no stable fixed point for a linear network with eta*K >= 2 (eta={eta}, K={K}, "
            f"eta*K={eta * K:g}); need eta < {2 / K:g}"
        )
    return eta * sigma**2 * K / (2 * (2 - eta * K))


def erf_eg_star_leading(M: int, L: int, eta: float, sigma: float) -> float:
    r"""Leading order in η of the erf first-layer asymptotic error (Goldt et al. 2019):

    .. math::  \epsilon_g^* \approx \frac{\eta \sigma^2}{2\pi}\Big(L + \frac{M}{\sqrt 3}\Big),

    for M teacher units, K = M + L student units, v = v* = 1, T = I.
    """
    M = check_int(M, "M", 1)
    L = check_int(L, "L", 0)
    eta = check_number(eta, "eta", strict=True)
    sigma = check_number(sigma, "sigma")
    return eta * sigma**2 / (2 * np.pi) * (L + M / np.sqrt(3.0))


#: Names of the distinct overlaps of the symmetric ansatz (units 0..M-1 specialised on teacher
#: units 0..M-1, units M..K-1 the L extra units).
ANSATZ_PARAMETERS = (
    "Q_spec",        # Q_mm, m < M            (norm² of a specialised unit)
    "Q_spec_cross",  # Q_mm', m != m' < M     (between specialised units)
    "R_diag",        # R_mm                   (specialised unit m on its teacher unit m)
    "R_off",         # R_mn, m != n           (specialised unit on another teacher unit)
    "Q_extra",       # Q_ee                   (norm² of an extra unit)
    "Q_extra_cross", # Q_ee', e != e'         (between extra units; = Q_extra when they coincide)
    "Q_extra_spec",  # Q_em                   (extra unit with a specialised unit)
    "R_extra",       # R_en                   (extra unit on any teacher unit)
)


def _ansatz_classes(M, L, coincident):
    """Class index (into ANSATZ_PARAMETERS) of every entry of Q (K,K) and R (K,M)."""
    K = M + L
    labQ = np.empty((K, K), dtype=int)
    labR = np.empty((K, M), dtype=int)
    for i in range(K):
        for j in range(K):
            if i < M and j < M:
                labQ[i, j] = 0 if i == j else 1
            elif i >= M and j >= M:
                labQ[i, j] = 4 if (i == j or coincident) else 5
            else:
                labQ[i, j] = 6
        for n in range(M):
            labR[i, n] = (2 if i == n else 3) if i < M else 7
    return labQ, labR


def _ansatz_start(red: _Reduction, names, q_extra: float, guess) -> np.ndarray:
    """Starting parameters (P,) for ``names``: the small-η picture Q_spec = R_diag = 1,
    Q_extra = Q_extra_cross = ``q_extra``, everything else 0, updated by ``guess`` (name -> value);
    ValueError for unknown names or overlaps that are not a Gram matrix."""
    start = {"Q_spec": 1.0, "R_diag": 1.0, "Q_extra": q_extra, "Q_extra_cross": q_extra}
    if guess is not None:
        unknown = set(guess) - set(ANSATZ_PARAMETERS)
        if unknown:
            raise ValueError(
                f"unknown ansatz parameters {sorted(unknown)}; allowed: {ANSATZ_PARAMETERS}"
            )
        start.update({k: float(x) for k, x in guess.items()})
    p0 = np.array([start.get(n, 0.0) for n in names])
    if not red.admissible(p0):
        raise ValueError(
            f"the starting overlaps {dict(zip(names, p0.tolist()))} are not a Gram matrix "
            "([[Q, R], [R^T, T]] must be positive semi-definite); change `guess`"
        )
    return p0


def erf_symmetric_fixed_point(
    M: int,
    L: int,
    eta: float,
    sigma: float,
    *,
    coincident_extras: bool = True,
    guess: dict | None = None,
    tol: float = 1e-13,
    max_iter: int = 50,
    soft_tol: float | None = None,
    soft_rtol: float = 1e-3,
    raise_on_failure: bool = True,
) -> FixedPoint:
    r"""Exact erf fixed point, first layer only, under the symmetric ansatz.

    Set-up: g = erf(x/√2), K = M + L student units, v = v* = 1, T = I (exactly), learning rate
    η, label noise σ, second layer frozen. Ansatz: student unit m < M is specialised on teacher
    unit m and all M specialised units are equivalent; the L extra units are equivalent and treat
    all teacher and specialised units alike. The overlaps then take at most eight distinct
    values (:data:`ANSATZ_PARAMETERS`):

    .. math::

        Q = \begin{pmatrix} (q_s - c_s) I + c_s \mathbf 1\mathbf 1^\top
                                & d\,\mathbf 1\mathbf 1^\top\\
                            d\,\mathbf 1\mathbf 1^\top & (q_e - c_e) I + c_e \mathbf 1\mathbf 1^\top
            \end{pmatrix},\quad
        R = \begin{pmatrix} (r - r_o) I + r_o \mathbf 1\mathbf 1^\top \\ r_e \mathbf 1\mathbf 1^\top
            \end{pmatrix}

    (q_s = Q_spec, c_s = Q_spec_cross, r = R_diag, r_o = R_off, q_e = Q_extra,
    c_e = Q_extra_cross, d = Q_extra_spec, r_e = R_extra). This set is invariant under the ODEs
    (it is the set of states symmetric under simultaneous permutations of teacher units with their
    specialised students and of the extra units), so on it the full drift of
    :class:`tsode.ode.Drift` is itself of ansatz form; the reduced drift of each parameter is the
    average of the full drift over the entries of its class, and the reduced equations are solved
    by damped Newton. With ``coincident_extras=True`` (default) the extra units are moreover
    identical vectors, Q_extra_cross = Q_extra: the invariant set on which the fixed point lies
    that the paper's analysis and the authors' Mathematica notebook (sgoldt/pyscm) refer to
    (for L >= 2 it is unstable in the full equations through
    extra units pairing with opposite signs: see :func:`slow_mode_scan`).

    Parameters
    ----------
    M : teacher units (>= 1). L : extra student units (>= 0). eta : > 0. sigma : >= 0.
    coincident_extras : tie Q_extra_cross to Q_extra (only matters for L >= 2).
    guess : optional starting values for some parameters (name -> value); defaults are the
        small-η picture Q_spec = R_diag = 1, Q_extra = ησ²/(2L), everything else 0.
    tol : convergence of the reduced Newton iteration (max|reduced drift|); the returned
        ``residual`` is max|drift| of the *full* packed system at the full state.
    soft_tol, soft_rtol, raise_on_failure : as in :func:`fixed_point`.

    Returns
    -------
    FixedPoint of the full K×M system, with ``parameters`` the distinct overlaps and the
    eigenvalues of the full Jacobian (stability in the full equations, not only on the ansatz).
    """
    M = check_int(M, "M", 1)
    L = check_int(L, "L", 0)
    eta = check_number(eta, "eta", strict=True)
    sigma = check_number(sigma, "sigma")
    tol = check_number(tol, "tol", strict=True)
    max_iter = check_int(max_iter, "max_iter", 1)
    K = M + L
    setup = Setup(activation="erf", eta=eta, eta_v=0.0, sigma=sigma)
    labQ, labR = _ansatz_classes(M, L, bool(coincident_extras))
    used = np.unique(np.concatenate([labQ.ravel(), labR.ravel()]))
    names = [ANSATZ_PARAMETERS[c] for c in used]
    # v = v* = 1, T = I; Q and R are the unknowns
    blank = OrderParameters(np.zeros((K, K)), np.zeros((K, M)), np.eye(M), np.ones(K), np.ones(M))
    f = Drift.from_state(blank, setup)
    red = _Reduction(f, labQ, labR)
    p0 = _ansatz_start(red, names, eta * sigma**2 / (2 * max(L, 1)), guess)
    p, res, n_iter, message, ok = red.solve(p0, tol=tol, max_iter=max_iter)
    if not ok and raise_on_failure:
        raise FixedPointError(
            f"erf_symmetric_fixed_point (M={M}, L={L}, eta={eta}, sigma={sigma}): {message}"
        )
    Q, R, _ = red.full(p)
    y = f.pack(Q, R, np.ones(K))
    full_res = float(np.abs(f(0.0, y)).max())
    params = dict(zip(names, map(float, p)))
    if coincident_extras and L >= 2:
        params["Q_extra_cross"] = params["Q_extra"]
    return _result(
        f, y, blank.replace(Q=Q, R=R), setup, full_res, ok, "symmetric ansatz: " + message,
        n_iter, soft_tol, soft_rtol, 1e-7, parameters=params,
    )


def denoising_fixed_point(
    K: int,
    M: int,
    eta: float,
    eta_v: float,
    sigma: float,
    *,
    v_star="ones",
    **fixed_point_kwargs,
) -> FixedPoint:
    """erf, both layers trained: the *denoising* fixed point.

    Student unit k copies teacher unit k mod M (the copies are identical vectors) and the copies
    of teacher unit m share its output weight, Σ_copies v_k ≈ v*_m. Solved by :func:`fixed_point`
    on the full K×M system (second layer included) started from
    ``initial_state(K, M, kind="denoise")``; the copies stay identical because that set is
    invariant. For M=2, η=η_v=0.1, σ=0.1 the errors are ≈ 1.886e-4, 9.31e-5, 6.18e-5, 3.69e-5
    for K = 2, 4, 6, 10 (≈ (M/K) ε_g*(K=M)).

    Parameters
    ----------
    K >= M >= 1, eta > 0, eta_v > 0, sigma >= 0; v_star as in :func:`tsode.initial_state`;
    other keyword arguments go to :func:`fixed_point`.
    """
    K = check_int(K, "K", 1)
    M = check_int(M, "M", 1)
    if K < M:
        raise ValueError(f"a denoising fixed point needs K >= M, got K={K}, M={M}")
    eta_v = check_number(eta_v, "eta_v", strict=True)
    setup = Setup(activation="erf", eta=eta, eta_v=eta_v, sigma=sigma)
    state0 = initial_state(K, M, kind="denoise", v_star=v_star)
    return fixed_point(state0, setup, **fixed_point_kwargs)
