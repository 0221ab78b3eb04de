r"""Exact four-point Gaussian integral of the ReLU ODEs over index tuples (the ODEs' access
pattern).

.. math::

    I_4(i, k, a, b) = \mathbb{E}\,[\theta(u_i)\,\theta(u_k)\,
                      \mathrm{relu}(u_a)\,\mathrm{relu}(u_b)],
    \qquad u \sim \mathcal{N}(0, C),

with :math:`\theta` the Heaviside step (:math:`\theta(0) = 0`).

:func:`relu_I4_indexed` evaluates I4 on index tuples (i, k, a, b) into one field covariance,
as the ODEs need it (``Drift.idx4``). Repeated indices are known exactly from the tuple and
reduce the integrand (θ² = θ, θ·relu = relu on the same field) to closed forms obtained by
Stein's lemma: E[relu relu] (I2), E[relu²] = C/2, E[θ relu relu], E[θ relu²] and
E[θ θ relu²] (formulas in the comment block above ``_i4_tuple``). They are written without
divisions by vanishing quantities and agree with their 40-digit evaluation to ~1e-16 down to
exactly (anti-)parallel fields; correlations within ``PARALLEL_TOL`` of ±1 are snapped to ±1
as there. Only all-distinct tuples (~25 % of the ODE's) use the quadrature, through a scalar
numba port of :func:`tsode._relu_quadrature.relu_I4` (same guards, same ``_wedge_integral``;
agrees with it to ≤ 1e-13).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ._relu_quadrature import (
    MAX_BREAKS,
    MAX_INTERVALS,
    PARALLEL_TOL,
    QUAD_TOL,
    ZERO_VAR_TOL,
    _TWO_PI,
    _wedge_integral,
    relu_I4,
)

__all__ = ["relu_I4", "relu_I4_indexed"]


# --------------------------------------------------------------------------------------------
# Indexed kernel: I4 over index tuples into one field covariance (the ODE's access pattern)
# --------------------------------------------------------------------------------------------
#
# For a tuple (i, k, a, b) into a field covariance C (n, n), repeated indices are known exactly
# and reduce the integrand θ_i θ_k relu_a relu_b to a product over the *distinct* fields:
# θ(u)² = θ(u), θ(u) relu(u) = relu(u) (θ(0) = relu(0) = 0), so the θ-fields equal to a relu
# field drop out. With x, y, t the distinct θ-fields and a, b the relu fields, what remains is
#
# ====================  ===================================  ==============================
# θ-fields left         a ≠ b                                a == b
# ====================  ===================================  ==============================
# none                  E[relu_a relu_b]           (I2)      E[relu_a²] = C_aa / 2
# one (t)               E[θ_t relu_a relu_b]       (F1)      E[θ_t relu_a²]             (F3)
# two (x ≠ y)           quadrature (relu_I4)                 E[θ_x θ_y relu_a²]         (F2)
# ====================  ===================================  ==============================
#
# Closed forms (Stein's lemma, relu(u) = u θ(u), E[δ(x) θ(y) relu(z)] from the conditional
# law given x = 0), in units of the relu fields' standard deviations, with correlations
# ρ_ta = A, ρ_tb = B, ρ_ab = c, sA = √(1 − A²) etc. and the orthant probability
# P3(A, B, c) = 1/8 + (asin A + asin B + asin c)/4π:
#
#   F1 = [A sB + B sA + sc] / 4π + c P3(A, B, c)
#   F3 = 1/4 + (asin A + A sA) / 2π
#   F2 = [B sB + C sC + s (p² − q²)] / 4π + P3(ρ_xy, B, C),   B = ρ_xa, C = ρ_ya,
#        s = √(1 − ρ_xy²), p² = (B + C)² / 2(1 + ρ_xy), q² = (B − C)² / 2(1 − ρ_xy),
#
# where (p, q) are the coordinates of u_a (normalised) along the unit bisectors of the θ-fields
# (x ± y)/|x ± y|, so p² + q² ≤ 1 (enforced against rounding). F2 is the sum of two boundary
# terms E[δ(x) θ(y) relu_a²]-like whose ±1/√(1 − ρ_xy²) singularities cancel exactly; in this
# form it has no division by a vanishing quantity, and every formula is continuous up to
# exactly (anti-)parallel fields. A θ-field of zero variance gives 0 (θ(0) = 0), as does a relu
# field of zero variance. All-distinct tuples use the same quadrature as relu_I4 (scalar port).

_INV_4PI = 1.0 / (4.0 * math.pi)


@njit(cache=True)
def _clip1(x):
    return min(1.0, max(-1.0, x))


@njit(cache=True)
def _sqrt_1m_sq(a):
    """√(1 − a²) as √((1 − |a|)(1 + |a|)), for |a| ≤ 1."""
    a = abs(a)
    return math.sqrt(max((1.0 - a) * (1.0 + a), 0.0))


@njit(cache=True)
def _rho(C, a, b):
    """Correlation C_ab / (σ_a σ_b), clipped to [−1, 1] and snapped to ±1 within
    PARALLEL_TOL (as relu_I4 does: rounding of an exactly parallel pair must not leave a
    √ulp ~ 1e-8 error); 0 if a field has zero variance."""
    s = math.sqrt(max(C[a, a], 0.0)) * math.sqrt(max(C[b, b], 0.0))
    if s == 0.0:
        return 0.0
    r = C[a, b] / s
    if r >= 1.0 - PARALLEL_TOL:
        return 1.0
    if r <= -1.0 + PARALLEL_TOL:
        return -1.0
    return r


@njit(cache=True)
def _orthant3(A, B, c):
    """P(x > 0, y > 0, z > 0) for unit variances and correlations A, B, c."""
    return 0.125 + (math.asin(A) + math.asin(B) + math.asin(c)) * _INV_4PI


@njit(cache=True)
def _relu_relu(C, a, b):
    """E[relu(u_a) relu(u_b)] (Cho & Saul)."""
    c = _rho(C, a, b)
    sd = math.sqrt(max(C[a, a], 0.0)) * math.sqrt(max(C[b, b], 0.0))
    return sd * (_sqrt_1m_sq(c) + c * (0.5 * math.pi + math.asin(c))) / _TWO_PI


@njit(cache=True)
def _theta_relu_relu(C, t, a, b):
    """F1 = E[θ(u_t) relu(u_a) relu(u_b)], t, a, b distinct."""
    if C[t, t] <= 0.0:
        return 0.0
    A, B, c = _rho(C, t, a), _rho(C, t, b), _rho(C, a, b)
    sd = math.sqrt(max(C[a, a], 0.0)) * math.sqrt(max(C[b, b], 0.0))
    f = (A * _sqrt_1m_sq(B) + B * _sqrt_1m_sq(A) + _sqrt_1m_sq(c)) * _INV_4PI
    return sd * (f + c * _orthant3(A, B, c))


@njit(cache=True)
def _theta_relu_sq(C, t, a):
    """F3 = E[θ(u_t) relu(u_a)²], t ≠ a."""
    if C[t, t] <= 0.0:
        return 0.0
    A = _rho(C, t, a)
    return max(C[a, a], 0.0) * (0.25 + (math.asin(A) + A * _sqrt_1m_sq(A)) / _TWO_PI)


@njit(cache=True)
def _theta_theta_relu_sq(C, x, y, a):
    """F2 = E[θ(u_x) θ(u_y) relu(u_a)²], x, y, a distinct."""
    if C[x, x] <= 0.0 or C[y, y] <= 0.0:
        return 0.0
    r, B, Cc = _rho(C, x, y), _rho(C, x, a), _rho(C, y, a)
    one_p, one_m = 1.0 + r, 1.0 - r
    p2 = (B + Cc) ** 2 / (2.0 * one_p) if one_p > 0.0 else 0.0
    q2 = (B - Cc) ** 2 / (2.0 * one_m) if one_m > 0.0 else 0.0
    n2 = p2 + q2
    if n2 > 1.0:                       # rounding outside the PSD cone: project back
        p2, q2 = p2 / n2, q2 / n2
    s = math.sqrt(max(one_p * one_m, 0.0))
    f = (B * _sqrt_1m_sq(B) + Cc * _sqrt_1m_sq(Cc) + s * (p2 - q2)) * _INV_4PI
    return max(C[a, a], 0.0) * (f + _orthant3(r, B, Cc))


@njit(cache=True)
def _corr_q(C, a, b, sa, sb):
    """Clipped correlation of fields a, b with standard deviations sa, sb > 0."""
    return _clip1(C[a, b] / (sa * sb))


@njit(cache=True)
def _plane_coord(R0j, R1j, rho01, s01):
    """(α, β, γ) of a relu field with correlations R0j, R1j to the θ-fields (see
    _plane_coordinates), with exact coordinates when it is parallel to a θ-field."""
    par_tol = 1.0 - PARALLEL_TOL
    if R0j >= par_tol:
        return 1.0, 0.0, 0.0
    if R1j >= par_tol:
        return rho01, s01, 0.0
    alpha = R0j
    beta = (R1j - rho01 * alpha) / s01 if s01 != 0.0 else 0.0
    big, small = max(abs(alpha), abs(beta)), min(abs(alpha), abs(beta))
    g = max((1.0 - big) * (1.0 + big) - small * small, 0.0)
    if g <= ZERO_VAR_TOL:
        g = 0.0
    return alpha, beta, math.sqrt(g)


@njit(cache=True)
def _quad_indexed(C, i0, i1, i2, i3, stack, brk):
    """relu_I4 of the sub-covariance C[idx, idx], idx = (i0, i1, i2, i3): a scalar port of
    _correlations, _plane_coordinates and _normalised_I4 (same method, same guards, same
    _wedge_integral), without the PSD checks."""
    v0, v1, v2, v3 = C[i0, i0], C[i1, i1], C[i2, i2], C[i3, i3]
    if v0 <= 0.0 or v1 <= 0.0 or v2 <= 0.0 or v3 <= 0.0:
        return 0.0                                      # θ(0) = relu(0) = 0
    s0, s1, s2, s3 = math.sqrt(v0), math.sqrt(v1), math.sqrt(v2), math.sqrt(v3)
    R01, R02, R03 = _corr_q(C, i0, i1, s0, s1), _corr_q(C, i0, i2, s0, s2), _corr_q(C, i0, i3, s0, s3)
    R12, R13, R23 = _corr_q(C, i1, i2, s1, s2), _corr_q(C, i1, i3, s1, s3), _corr_q(C, i2, i3, s2, s3)
    anti = -1.0 + PARALLEL_TOL
    if min(min(R01, R02), min(min(R03, R12), min(R13, R23))) <= anti:
        return 0.0                                      # an anti-parallel pair
    par_tol = 1.0 - PARALLEL_TOL
    # plane coordinates of the relu fields (see _plane_coordinates)
    if R01 >= par_tol:
        s01, theta01 = 0.0, 0.0
    else:
        s01, theta01 = _sqrt_1m_sq(R01), math.acos(R01)
    a2, b2, g2 = _plane_coord(R02, R12, R01, s01)
    a3, b3, g3 = _plane_coord(R03, R13, R01, s01)
    gg = g2 * g3
    r = _clip1((R23 - a2 * a3 - b2 * b3) / gg) if gg != 0.0 else 0.0
    if R23 >= par_tol:                                  # parallel relu fields
        a3, b3, g3 = a2, b2, g2
        r = 1.0 if g2 > 0.0 else 0.0
    lo, hi = theta01 - 0.5 * math.pi, 0.5 * math.pi
    p1 = 0.25 + math.asin(r) / _TWO_PI
    total = _wedge_integral(lo, hi, a2, b2, g2, a3, b3, g3, r, p1, QUAD_TOL, stack, brk)
    const = g2 * g3 * (_sqrt_1m_sq(r) + r * (0.5 * math.pi + math.asin(r))) / _TWO_PI
    return s2 * s3 * ((math.pi - theta01) * const + total) / _TWO_PI


@njit(cache=True)
def _i4_tuple(C, i, k, a, b, stack, brk):
    """I4(i, k, a, b) = E[θ_i θ_k relu_a relu_b] on the field covariance C (n, n), dispatching
    on the index pattern (table above)."""
    # θ-fields that are not also relu fields (θ(u) relu(u) = relu(u)); θ² = θ
    x, y = -1, -1
    if i != a and i != b:
        x = i
    if k != a and k != b and k != i:
        if x < 0:
            x = k
        else:
            y = k
    if a == b:
        if x < 0:
            return 0.5 * max(C[a, a], 0.0)
        if y < 0:
            return _theta_relu_sq(C, x, a)
        return _theta_theta_relu_sq(C, x, y, a)
    if x < 0:
        return _relu_relu(C, a, b)
    if y < 0:
        return _theta_relu_relu(C, x, a, b)
    return _quad_indexed(C, i, k, a, b, stack, brk)


@njit(cache=True)
def _indexed_batch(C, idx, out):
    """out[m, p] = I4(idx[p]) on C[m], C (B, n, n), idx (P, 4), out (B, P)."""
    stack = np.empty((MAX_INTERVALS + 2, 2))
    brk = np.empty(MAX_BREAKS)
    for m in range(C.shape[0]):
        Cm = C[m]
        for p in range(idx.shape[0]):
            out[m, p] = _i4_tuple(Cm, idx[p, 0], idx[p, 1], idx[p, 2], idx[p, 3], stack, brk)


def relu_I4_indexed(C, idx) -> np.ndarray:
    r"""I4 over index tuples: ``out[..., p] = relu_I4(C[..., idx[p], idx[p]])``.

    Parameters
    ----------
    C : array_like, shape (..., n, n)
        Field covariances (symmetric PSD; not checked).
    idx : array_like of int, shape (P, 4)
        Index tuples (i, k, a, b) into the n fields: E[θ(u_i) θ(u_k) relu(u_a) relu(u_b)].

    Returns
    -------
    ndarray, shape C.shape[:-2] + (P,)

    Notes
    -----
    Tuples with repeated indices use exact closed forms (see the comment block above
    ``_i4_tuple``), accurate to ~1e-16 relative; all-distinct tuples use the adaptive
    quadrature of :func:`relu_I4` (scalar port, same result to ≤ 1e-13). On generic
    covariances the closed forms agree with ``relu_I4`` on the gathered sub-covariances to
    ~1e-16; with nearly parallel fields they are the more accurate of the two.
    """
    C = np.asarray(C, dtype=float)
    idx = np.ascontiguousarray(idx, dtype=np.int64)
    if C.ndim < 2 or C.shape[-1] != C.shape[-2]:
        raise ValueError(f"relu_I4_indexed expects covariances (..., n, n), got {C.shape}")
    if idx.ndim != 2 or idx.shape[1] != 4:
        raise ValueError(f"relu_I4_indexed expects index tuples (P, 4), got {idx.shape}")
    n = C.shape[-1]
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise ValueError(f"relu_I4_indexed: indices out of range for {n} fields")
    lead = C.shape[:-2]
    Cb = np.ascontiguousarray(C.reshape((-1, n, n)))
    out = np.empty((Cb.shape[0], idx.shape[0]))
    _indexed_batch(Cb, idx, out)
    return out.reshape(lead + (idx.shape[0],))
