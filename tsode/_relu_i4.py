r"""Exact four-point Gaussian integral of the ReLU ODEs.

.. math::

    I_4(C) = \mathbb{E}\,[\theta(u_0)\,\theta(u_1)\,\mathrm{relu}(u_2)\,\mathrm{relu}(u_3)],
    \qquad u \sim \mathcal{N}(0, C),

with :math:`\theta` the Heaviside step (:math:`\theta(0) = 0`). No closed form is known; this
module reduces it to a one-dimensional integral of a closed-form integrand, evaluated by a
compiled (numba) adaptive Gauss–Kronrod rule, for any number of leading batch axes.

Method
------
Normalise the fields, :math:`u_j = \sqrt{C_{jj}}\,x_j`, so that
:math:`I_4 = \sqrt{C_{22}C_{33}}\;F(\rho)` with :math:`\rho` the correlation matrix.
Write :math:`x_0, x_1` in an orthonormal basis :math:`(z_a, z_b)` of their plane,
:math:`x_0 = z_a`, :math:`x_1 = \rho_{01} z_a + s_{01} z_b`, and the relu fields as

.. math::

    x_j = \alpha_j z_a + \beta_j z_b + \gamma_j \eta_j \quad (j = 2, 3),
    \qquad \operatorname{corr}(\eta_2, \eta_3) = r,

so :math:`\gamma_j^2` and :math:`r` are the conditional variance and correlation of the relu
fields given the θ-fields. In polar coordinates of the plane, :math:`z = R\,e_\psi`, the
θ-factors select the wedge :math:`W = (\theta_{01} - \pi/2,\ \pi/2)`,
:math:`\cos\theta_{01} = \rho_{01}`. Integrating the radius out turns the Rayleigh weight
into an extra relu (Plackett's derivative trick), and

.. math::

    F = \frac{1}{\sqrt{2\pi}} \int_W \mathbb{E}\,[\mathrm{relu}(x)\,\mathrm{relu}(y)\,
        \mathrm{relu}(w)]_{S(\psi)}\, d\psi ,

a three-point *relu* moment under the covariance :math:`S(\psi)` of
:math:`(x, y, w) = (e_\psi\cdot z, x_2, x_3)` given :math:`n_\psi\cdot z = 0`:
:math:`S_{xx} = 1`, :math:`S_{xy} = c_2 = \alpha_2\cos\psi + \beta_2\sin\psi`,
:math:`S_{yy} = c_2^2 + \gamma_2^2`, :math:`S_{yw} = c_2 c_3 + r\gamma_2\gamma_3`, etc.
Gaussian integration by parts (Stein) gives that moment in closed form,

.. math::

    \sqrt{2\pi}\,\mathbb{E}[\mathrm{relu}^3] = I_2(\Gamma) + 2c_2c_3 P_{yw|x}
        + A_2 P_{xw|y} + A_3 P_{xy|w},

with :math:`I_2(\Gamma) = \tfrac{\gamma_2\gamma_3}{2\pi}(\sqrt{1-r^2} + r(\pi/2 + \arcsin r))`
(independent of ψ), :math:`A_2 = (c_2 S_{yw} + c_3 S_{yy})/\sqrt{S_{yy}}` (2↔3 for
:math:`A_3`) and the conditional quadrant probabilities
:math:`P_{ab|c} = \tfrac14 + \arcsin(\rho_{ab\cdot c})/2\pi`, whose partial correlations simplify
to :math:`\rho_{xw\cdot y} = (c_3\gamma_2 - r c_2\gamma_3)/\sqrt{D}`,
:math:`\rho_{yw\cdot x} = r`, :math:`D = (1-r^2)\gamma_2^2\gamma_3^2
+ (1-r^2)\gamma_3^2 c_2^2 + (c_3\gamma_2 - r c_2\gamma_3)^2`. Hence

.. math::

    F = \frac{|W|}{2\pi} I_2(\Gamma) + \frac{1}{2\pi}\int_W
        \big[2c_2c_3P_{yw|x} + A_2P_{xw|y} + A_3P_{xy|w}\big]\,d\psi .

Every term is bounded, and all singular structure is explicit:

* the only kinks of the integrand sit where a relu field lying (nearly) in the θ-plane
  changes sign, :math:`c_j(\psi) = 0`, and where the two relu fields become parallel given the
  ray (:math:`|r| \to 1`); the wedge is split there (when that singularity is close, γ or
  1 − |r| < 0.3) and each piece is integrated by adaptive bisection with Gauss–Kronrod 7/15;
* a relu field nearly in the θ-plane (γ_j < 0.01, e.g. nearly parallel to a θ-field) makes
  the integrand vary on the scale :math:`w = \gamma_j/|(\alpha_j, \beta_j)|` around its kink
  :math:`c_j = 0` — often at or just outside a wedge edge, where no split falls and the
  Gauss–Kronrod error estimate missed the feature (errors up to 7e-9 for 1 − ρ ~ 1e-8 … 5e-7);
  breakpoints graded geometrically (ratio 4) from w to 0.25 around the kink and its twin
  ψ ± π resolve it;
* partial correlations enter as ``atan2(n, sqrt(D − n²))`` with ``D − n²`` in closed form,
  so no precision is lost when they approach ±1;
* nearly parallel θ-fields (:math:`\rho_{01}\to 1`) only change the wedge's end point, so the
  :math:`\sqrt{1-\rho_{01}}` behaviour is exact;
* exactly parallel pairs (repeated indices) are detected (|ρ| ≥ 1 − 1e-15) and given their
  exact coordinates; anti-parallel pairs give 0; both relu fields in the θ-plane use the exact
  limit :math:`\mathbb{E}[\mathrm{relu}^3] = 2\,\mathrm{relu}(c_2)\mathrm{relu}(c_3)/\sqrt{2\pi}`;
* a field with zero variance gives 0 (θ(0) = 0, relu(0) = 0).

Accuracy (absolute, in units of :math:`\sqrt{C_{22}C_{33}}`): ≲ 1e-11 on generic covariances
(measured ~1e-14 against 300-node graded Gauss–Legendre and ~1e-13 against scipy dblquad);
exact (≤ 1e-15) for repeated indices. For nearly parallel pairs the problem itself is
conditioned like :math:`\epsilon/\sqrt{\delta}` (δ = 1 − |ρ|, ε = machine epsilon); measured
against a 30-digit mpmath evaluation of the same integral on all-distinct fields with one pair
(θ-θ, θ-relu or relu-relu, ±) at δ = 1e-10 … 1e-5: ≤ 1.3e-13 (the largest: θ-θ pairs at
δ ≤ 1e-9), and ≤ 1e-12 against the closed forms on repeated-index covariances with a relu field
at δ = 1e-8 … 5e-7 from a θ-field (7e-9 before the graded breakpoints).

Indexed kernel
--------------
:func:`relu_I4_indexed` evaluates I4 on index tuples (i, k, a, b) into one field covariance,
as the ODEs need it (``Drift.idx4``). Repeated indices are known exactly from the tuple and
reduce the integrand (θ² = θ, θ·relu = relu on the same field) to closed forms obtained by
Stein's lemma: E[relu relu] (I2), E[relu²] = C/2, E[θ relu relu], E[θ relu²] and
E[θ θ relu²] (formulas in the comment block above ``_i4_tuple``). They are written without
divisions by vanishing quantities and agree with their 40-digit evaluation to ~1e-16 down to
exactly (anti-)parallel fields; correlations within ``PARALLEL_TOL`` of ±1 are snapped to ±1
as here. Only all-distinct tuples (~25 % of the ODE's) use the quadrature, through a scalar
numba port of the steps above (same guards; agrees with :func:`relu_I4` to ≤ 1e-13).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["relu_I4", "relu_I4_indexed"]

#: Local error tolerance of the adaptive quadrature, per radian, relative to √(C₂₂C₃₃).
QUAD_TOL = 1e-12
#: Split the wedge at a near-singular angle only if γ_j (or 1 − |r|) is below this.
SPLIT_BELOW = 0.3
#: Maximum number of sub-intervals per piece of the adaptive quadrature.
MAX_INTERVALS = 200
#: A relu field with conditional std γ below this (relative to its in-plane norm) gets
#: breakpoints graded geometrically (ratio GRADE_RATIO) from w = γ/|(α, β)| to ~GRADE_MAX
#: around its kink angle (and the angle ± π), inside the wedge.
GRADE_BELOW = 1e-2
GRADE_RATIO = 4.0
GRADE_MAX = 0.25
#: Size of the breakpoint scratch array: 2 edges + 3 splits + 2 fields × ≤ 2 angles × 2 sides
#: × ≤ 13 graded points (γ ≥ √ZERO_VAR_TOL) = 109 at most; extra points would be dropped.
MAX_BREAKS = 128
#: |ρ| ≥ 1 − PARALLEL_TOL counts as exactly (anti-)parallel.
PARALLEL_TOL = 1e-15
#: Conditional variances below this (in units of the field's variance) are exactly zero.
ZERO_VAR_TOL = 4e-16
#: Tolerated violation of positive semi-definiteness (|correlation| - 1) before raising.
from ._common import PSD_RTOL as PSD_TOL  # noqa: E402  (one PSD tolerance)

_TWO_PI = 2.0 * np.pi
# Gauss–Kronrod 7/15 abscissae and weights (QUADPACK qk15).
_XGK = np.array([0.991455371120812639206854697526329, 0.949107912342758524526189684047851,
                 0.864864423359769072789712788640926, 0.741531185599394439863864773280788,
                 0.586087235467691130294144845693013, 0.405845151377397166906606412076961,
                 0.207784955007898467600689403773245, 0.0])
_WGK = np.array([0.022935322010529224963732008058970, 0.063092092629978553290700663189204,
                 0.104790010322250183839876322541518, 0.140653259715525918745189590510238,
                 0.169004726639267902826583426598550, 0.190350578064785409913256402421014,
                 0.204432940075298892414161999234649, 0.209482141084727828012999174891714])
_WG = np.array([0.129484966168869693270611432679082, 0.279705391489276667901467771423780,
                0.381830050505118944950369775488975, 0.417959183673469387755102040816327])


def _safe_div(num, den):
    """num / den, with 0 where den == 0."""
    out = np.zeros(np.broadcast(num, den).shape)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _one_minus_sq(a):
    """1 − a² computed as (1 − |a|)(1 + |a|), accurate for |a| → 1."""
    a = np.abs(a)
    return (1.0 - a) * (1.0 + a)


def _correlations(C):
    """Variances (B, 4) and clipped correlation matrix (B, 4, 4); raises if C is not PSD."""
    var = np.einsum("bii->bi", C).copy()
    if np.any(var < 0):
        raise ValueError("relu_I4: covariance has a negative variance (not PSD)")
    sd = np.sqrt(var)
    scale = sd[:, :, None] * sd[:, None, :]
    R = _safe_div(C, scale)
    if np.any(np.abs(R) > 1 + PSD_TOL):
        raise ValueError("relu_I4: covariance is not positive semi-definite (|corr| > 1)")
    return var, np.clip(R, -1.0, 1.0)


def _plane_coordinates(R):
    r"""Coordinates of the relu fields relative to the plane of the θ-fields.

    Returns ``theta01`` (B,), ``alpha``, ``beta``, ``gamma`` (B, 2) and ``r`` (B,) such that
    :math:`x_j = \alpha_j z_a + \beta_j z_b + \gamma_j\eta_j` (see module docstring).
    Exactly parallel pairs get exact coordinates.
    """
    par = R >= 1.0 - PARALLEL_TOL
    rho01 = R[:, 0, 1]
    s01 = np.sqrt(_one_minus_sq(rho01))
    s01 = np.where(par[:, 0, 1], 0.0, s01)       # parallel θ-fields: z_b is a free direction
    theta01 = np.where(par[:, 0, 1], 0.0, np.arccos(rho01))

    alpha = R[:, 0, 2:].copy()
    beta = _safe_div(R[:, 1, 2:] - rho01[:, None] * alpha, s01[:, None])
    big, small = np.maximum(abs(alpha), abs(beta)), np.minimum(abs(alpha), abs(beta))
    g = np.clip(_one_minus_sq(big) - small**2, 0.0, None)
    # exact coordinates for relu fields parallel to a θ-field
    on0, on1 = par[:, 0, 2:], par[:, 1, 2:] & ~par[:, 0, 2:]
    alpha = np.where(on0, 1.0, np.where(on1, rho01[:, None], alpha))
    beta = np.where(on0, 0.0, np.where(on1, s01[:, None], beta))
    g = np.where(on0 | on1 | (g <= ZERO_VAR_TOL), 0.0, g)
    gamma = np.sqrt(g)

    kappa = R[:, 2, 3] - alpha[:, 0] * alpha[:, 1] - beta[:, 0] * beta[:, 1]
    r = np.clip(_safe_div(kappa, gamma[:, 0] * gamma[:, 1]), -1.0, 1.0)
    # parallel relu fields: identical coordinates
    p23 = par[:, 2, 3]
    alpha[:, 1] = np.where(p23, alpha[:, 0], alpha[:, 1])
    beta[:, 1] = np.where(p23, beta[:, 0], beta[:, 1])
    gamma[:, 1] = np.where(p23, gamma[:, 0], gamma[:, 1])
    r = np.where(p23, np.where(gamma[:, 0] > 0, 1.0, 0.0), r)
    return theta01, alpha, beta, gamma, r


@njit(cache=True, fastmath=False)
def _integrand(psi, a2, b2, g2, a3, b3, g3, r, p1):
    """2c₂c₃P_{yw|x} + A₂P_{xw|y} + A₃P_{xy|w} at angle ψ (module docstring); scalar."""
    return _integrand_cs(np.cos(psi), np.sin(psi), a2, b2, g2, a3, b3, g3, r, p1)


@njit(cache=True, fastmath=False)
def _integrand_cs(cos, sin, a2, b2, g2, a3, b3, g3, r, p1):
    """_integrand at the angle with cosine ``cos`` and sine ``sin``."""
    c2 = a2 * cos + b2 * sin
    c3 = a3 * cos + b3 * sin
    if g2 == 0.0 and g3 == 0.0:           # both relu fields in the θ-plane: exact limit
        return 2.0 * max(c2, 0.0) * max(c3, 0.0)
    syy = c2 * c2 + g2 * g2
    sww = c3 * c3 + g3 * g3
    syw = c2 * c3 + r * g2 * g3
    one_m_r2 = (1.0 - abs(r)) * (1.0 + abs(r))
    # arcsin of the partial correlations ρ = n/√D as atan2(n, √(D − n²)), with D − n² in
    # closed form: no loss of accuracy when |ρ| → 1 (0 for identical relu fields, D = 0).
    n2 = c3 * g2 - r * c2 * g3
    n3 = c2 * g3 - r * c3 * g2
    asin2 = np.arctan2(n2, g3 * np.sqrt(one_m_r2 * syy))
    asin3 = np.arctan2(n3, g2 * np.sqrt(one_m_r2 * sww))
    f = 2.0 * c2 * c3 * p1
    if syy > 0.0:
        f += (c2 * syw + c3 * syy) / np.sqrt(syy) * (0.25 + asin2 / _TWO_PI)
    if sww > 0.0:
        f += (c3 * syw + c2 * sww) / np.sqrt(sww) * (0.25 + asin3 / _TWO_PI)
    return f


@njit(cache=True)
def _gk15(lo, hi, a2, b2, g2, a3, b3, g3, r, p1):
    """Gauss–Kronrod 7/15 on [lo, hi]: the Kronrod value and a QUADPACK-style error estimate."""
    mid, half = 0.5 * (lo + hi), 0.5 * (hi - lo)
    cm, sm = math.cos(mid), math.sin(mid)
    fc = _integrand_cs(cm, sm, a2, b2, g2, a3, b3, g3, r, p1)
    k = fc * _WGK[7]
    g = fc * _WG[3]
    for j in range(7):
        dx = half * _XGK[j]
        cd, sd = math.cos(dx), math.sin(dx)     # cos/sin of mid ± dx by the addition theorem
        fs = (_integrand_cs(cm * cd + sm * sd, sm * cd - cm * sd, a2, b2, g2, a3, b3, g3, r, p1)
              + _integrand_cs(cm * cd - sm * sd, sm * cd + cm * sd, a2, b2, g2, a3, b3, g3, r, p1))
        k += _WGK[j] * fs
        if j % 2 == 1:
            g += _WG[j // 2] * fs
    # |K − G| is the error of the 7-point rule; the 15-point one is far smaller for smooth
    # integrands (QUADPACK's heuristic, with the integrand scale O(1) after normalisation).
    return k * half, half * min(abs(k - g), (200.0 * abs(k - g)) ** 1.5)


@njit(cache=True)
def _adaptive_piece(lo, hi, a2, b2, g2, a3, b3, g3, r, p1, tol, stack):
    """∫_lo^hi integrand dψ by adaptive bisection with Gauss–Kronrod 7/15 until the estimated
    error is below tol per radian (at most MAX_INTERVALS rules); ``stack`` is scratch space of
    shape (MAX_INTERVALS + 2, 2)."""
    total = 0.0
    stack[0, 0], stack[0, 1] = lo, hi
    n = 1
    budget = MAX_INTERVALS
    while n > 0:
        n -= 1
        budget -= 1
        lo, hi = stack[n, 0], stack[n, 1]
        val, err = _gk15(lo, hi, a2, b2, g2, a3, b3, g3, r, p1)
        if err <= tol * (hi - lo) or budget <= n:
            total += val
        else:
            m = 0.5 * (lo + hi)
            stack[n, 0], stack[n, 1] = m, hi
            stack[n + 1, 0], stack[n + 1, 1] = lo, m
            n += 2
    return total


@njit(cache=True)
def _add_graded(brk, n, lo, hi, a, b, g):
    """Append to brk[n:] the breakpoints ψ_k ± w·GRADE_RATIO^m (w = g/|(a, b)| < GRADE_MAX)
    that fall inside (lo, hi), for the kink ψ_k of a cos ψ + b sin ψ and its twins ψ_k ± π;
    returns the new count."""
    nrm = math.hypot(a, b)
    if not (g > 0.0 and g < GRADE_BELOW * nrm):
        return n
    w = g / nrm
    k0 = _kink(a, b)
    for base in (k0 - math.pi, k0, k0 + math.pi):
        if base + GRADE_MAX <= lo or base - GRADE_MAX >= hi:
            continue
        d = w
        while d < GRADE_MAX:
            for p in (base - d, base + d):
                if lo < p < hi and n < brk.shape[0]:
                    brk[n] = p
                    n += 1
            d *= GRADE_RATIO
    return n


@njit(cache=True)
def _wedge_integral(lo, hi, a2, b2, g2, a3, b3, g3, r, p1, tol, stack, brk):
    """∫_lo^hi integrand dψ: the wedge is split where the integrand is nearly singular
    (c₂ = 0, c₃ = 0 if γ < SPLIT_BELOW; c₃γ₂ = r c₂γ₃ if |r| > 1 − SPLIT_BELOW), with
    breakpoints graded towards the kinks of relu fields nearly in the θ-plane (γ < GRADE_BELOW:
    a feature of width ~γ that the adaptive rule's error estimate can miss, also when the kink
    lies at a wedge edge), then each piece is integrated by _adaptive_piece. ``stack`` and
    ``brk`` (MAX_BREAKS,) are scratch space."""
    brk[0], brk[1] = lo, hi
    n = 2
    if g2 < SPLIT_BELOW:
        brk[n] = min(max(_kink(a2, b2), lo), hi)
        n += 1
    if g3 < SPLIT_BELOW:
        brk[n] = min(max(_kink(a3, b3), lo), hi)
        n += 1
    if abs(r) > 1.0 - SPLIT_BELOW:
        brk[n] = min(max(_kink(a3 * g2 - r * a2 * g3, b3 * g2 - r * b2 * g3), lo), hi)
        n += 1
    n = _add_graded(brk, n, lo, hi, a2, b2, g2)
    n = _add_graded(brk, n, lo, hi, a3, b3, g3)
    for i in range(1, n):                   # insertion sort (n is small), no allocation
        x = brk[i]
        j = i - 1
        while j >= 0 and brk[j] > x:
            brk[j + 1] = brk[j]
            j -= 1
        brk[j + 1] = x
    total = 0.0
    for i in range(n - 1):
        if brk[i + 1] > brk[i]:
            total += _adaptive_piece(brk[i], brk[i + 1], a2, b2, g2, a3, b3, g3, r, p1,
                                     tol, stack)
    return total


@njit(cache=True)
def _wedge_integrals(lo, hi, params, tol):
    """∫_lo[b]^hi[b] integrand dψ for each row b of params (a₂, b₂, γ₂, a₃, b₃, γ₃, r, p₁),
    by _wedge_integral."""
    nb = lo.shape[0]
    out = np.zeros(nb)
    stack = np.empty((MAX_INTERVALS + 2, 2))
    brk = np.empty(MAX_BREAKS)
    for b in range(nb):
        a2, b2, g2, a3, b3, g3, r, p1 = params[b]
        out[b] = _wedge_integral(lo[b], hi[b], a2, b2, g2, a3, b3, g3, r, p1, tol, stack, brk)
    return out


def _relu_I2_corr(r):
    """E[relu(x) relu(y)] for unit variances and correlation r."""
    return (np.sqrt(_one_minus_sq(r)) + r * (np.pi / 2 + np.arcsin(r))) / _TWO_PI


def _normalised_I4(R):
    """F(ρ) = I4 for unit variances, (B,) from correlation matrices (B, 4, 4)."""
    theta01, alpha, beta, gamma, r = _plane_coordinates(R)
    lo = theta01 - np.pi / 2
    hi = np.full_like(lo, np.pi / 2)
    p1 = 0.25 + np.arcsin(r) / _TWO_PI
    params = np.stack([alpha[:, 0], beta[:, 0], gamma[:, 0],
                       alpha[:, 1], beta[:, 1], gamma[:, 1], r, p1], axis=1)
    integral = _wedge_integrals(lo, hi, params, QUAD_TOL)
    const = gamma[:, 0] * gamma[:, 1] * _relu_I2_corr(r)
    return ((np.pi - theta01) * const + integral) / _TWO_PI


def relu_I4(C: np.ndarray) -> np.ndarray:
    r"""E[θ(u₀) θ(u₁) relu(u₂) relu(u₃)] for u ~ N(0, C).

    Parameters
    ----------
    C : array_like, shape (..., 4, 4)
        Symmetric positive semi-definite covariance matrices; singular ones (repeated,
        parallel or anti-parallel fields, zero variances) are allowed.

    Returns
    -------
    ndarray, shape C.shape[:-2]

    Notes
    -----
    Exact up to quadrature: a one-dimensional integral over the angle in the plane of the
    θ-fields of a closed-form three-point relu moment (see the module docstring), evaluated
    by adaptive Gauss–Kronrod quadrature (numba). Deterministic; absolute error
    ≲ 1e-11·√(C₂₂C₃₃) on generic covariances and measured ≲ 1e-12·√(C₂₂C₃₃) with nearly
    parallel fields (1 − |ρ| ≥ 1e-10; see the module docstring).
    Raises ``ValueError`` if C is not PSD (|correlation| > 1 + 1e-8 or negative variance).
    """
    C = np.asarray(C, dtype=float)
    if C.shape[-2:] != (4, 4):
        raise ValueError(f"relu_I4 expects covariances of shape (..., 4, 4), got {C.shape}")
    batch = C.shape[:-2]
    C = C.reshape(-1, 4, 4)
    var, R = _correlations(C)
    out = np.zeros(len(C))
    anti = np.any(R <= -1.0 + PARALLEL_TOL, axis=(1, 2))
    live = np.all(var > 0, axis=1) & ~anti
    if np.any(live):
        out[live] = np.sqrt(var[live, 2] * var[live, 3]) * _normalised_I4(R[live])
    return out.reshape(batch)


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
def _kink(a, b):
    """Angle ψ in (−π/2, π/2] where a cos ψ + b sin ψ vanishes."""
    psi = math.atan2(-a, b)
    if psi > 0.5 * math.pi:
        psi -= math.pi
    if psi <= -0.5 * math.pi:
        psi += math.pi
    return psi


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
