r"""Exact four-point Gaussian integral of the ReLU ODEs: the quadrature.

.. math::

    I_4(C) = \mathbb{E}\,[\theta(u_0)\,\theta(u_1)\,\mathrm{relu}(u_2)\,\mathrm{relu}(u_3)],
    \qquad u \sim \mathcal{N}(0, C),

with :math:`\theta` the Heaviside step (:math:`\theta(0) = 0`). No closed form is known; this
module reduces it to a one-dimensional integral of a closed-form integrand, evaluated by a
compiled (numba) adaptive Gauss–Kronrod rule, for any number of leading batch axes
(:func:`relu_I4`). The ODEs call it through the indexed kernel of :mod:`tsode._relu_i4`, which
uses closed forms for repeated indices and this quadrature (``_wedge_integral``) for
all-distinct ones.

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
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["relu_I4"]

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
def _kink(a, b):
    """Angle ψ in (−π/2, π/2] where a cos ψ + b sin ψ vanishes."""
    psi = math.atan2(-a, b)
    if psi > 0.5 * math.pi:
        psi -= math.pi
    if psi <= -0.5 * math.pi:
        psi += math.pi
    return psi


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
