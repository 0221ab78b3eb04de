r"""Activation functions and their Gaussian integrals.

For jointly Gaussian local fields :math:`u \sim \mathcal N(0, C)` the ODEs of online SGD need

.. math::

    I_2(a,b)     &= \mathbb E[g(u_a)\,g(u_b)]                          \\
    I_3(a,b,c)   &= \mathbb E[g'(u_a)\,u_b\,g(u_c)]                    \\
    I_4(a,b,c,d) &= \mathbb E[g'(u_a)\,g'(u_b)\,g(u_c)\,g(u_d)]        \\
    J_2(a,b)     &= \mathbb E[g'(u_a)\,g'(u_b)]

Every integral takes the covariance of the fields it involves, an array of shape ``(..., n, n)``
with ``n`` = 2, 3, 4, 2 respectively (fields in the order of the arguments above), and returns an
array of shape ``(...)``; all functions are vectorised over the leading axes.

Activations (``g``):

* ``"erf"``: :math:`g(x) = \operatorname{erf}(x/\sqrt2)`; closed forms of Saad & Solla (PRE 1995).
* ``"relu"``: :math:`g(x) = \max(0, x)`, :math:`g'(x) = \theta(x)` with :math:`\theta(0)=0`;
  closed forms for I2, I3, J2 (Cho & Saul 2009 arc-cosine kernel, Stein's lemma), and an exact
  deterministic I4 (:mod:`tsode._relu_i4`).
* ``"linear"``: :math:`g(x) = x`.

The public methods of :class:`Activation` check that ``C`` is a symmetric positive semi-definite
covariance and raise :class:`ValueError` otherwise; the engines call the unchecked kernels
(``Activation.kernels``) on covariances built from a validated state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from numba import guvectorize, njit

from ._common import PSD_RTOL, psd_violation
from ._relu_i4 import relu_I4_indexed

__all__ = ["Activation", "ACTIVATIONS", "activation", "check_covariance", "gather", "index_tuples"]

#: Variances below this are treated as exactly zero (a dead unit) in divisions.
TINY = 1e-300
#: Largest variance accepted by the public integrals of erf and ReLU: beyond it products of
#: three covariance entries in the closed forms would overflow.
MAX_VARIANCE = 1e100

_INV_PI = 1.0 / np.pi
_SQRT2 = np.sqrt(2.0)


def index_tuples(*sizes: int) -> np.ndarray:
    """All index tuples of range(sizes[0]) x range(sizes[1]) x ..., row-major: (P, m) int64."""
    grids = np.meshgrid(*(np.arange(s) for s in sizes), indexing="ij")
    return np.ascontiguousarray(np.stack([g.ravel() for g in grids], axis=1), dtype=np.int64)


def gather(C, idx):
    """Sub-covariances ``C[idx_p, idx_p]``: C (..., n, n), idx (P, m) -> (..., P, m, m)."""
    C = np.asarray(C, dtype=float)
    n = C.shape[-1]
    flat = (idx[:, :, None] * n + idx[:, None, :]).ravel()
    out = np.take(C.reshape(C.shape[:-2] + (n * n,)), flat, axis=-1)
    return out.reshape(C.shape[:-2] + idx.shape + idx.shape[-1:])


@njit(cache=True)
def _asin(x):
    """arcsin with its argument clipped to [-1, 1] (rounding can push |x| past 1)."""
    return math.asin(min(1.0, max(-1.0, x)))


@njit(cache=True)
def _corr(C, a, b):
    """C_ab / sqrt(C_aa C_bb) clipped to [-1, 1]; 0 when a field has zero variance."""
    s = math.sqrt(C[a, a] * C[b, b])
    if s <= TINY:
        return 0.0
    return min(1.0, max(-1.0, C[a, b] / s))


@njit(cache=True)
def _orthant2(rho):
    """P(x_1 > 0, x_2 > 0) for a standard bivariate normal with correlation rho."""
    return 0.25 + _asin(rho) / (2.0 * math.pi)


# --------------------------------------------------------------------------------------------
# g and g': one code table for the integrals and the simulators
# --------------------------------------------------------------------------------------------

_ERF, _RELU, _LINEAR = 0, 1, 2
#: Integer codes of the activations inside the compiled kernels (integrals and simulators).
ACT_CODES = {"erf": _ERF, "relu": _RELU, "linear": _LINEAR}
_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


@njit(cache=True, nogil=True, inline="always")
def g_scalar(code, x):
    """g(x) for activation ``code`` (0 erf(x/√2), 1 max(0, x), 2 x)."""
    if code == _ERF:
        return math.erf(x * _INV_SQRT2)
    if code == _RELU:
        return x if x > 0.0 else 0.0
    return x


@njit(cache=True, nogil=True, inline="always")
def dg_scalar(code, x):
    """g'(x) for activation ``code``: √(2/π) exp(−x²/2), θ(x) with θ(0) = 0, or 1."""
    if code == _ERF:
        return _SQRT_2_OVER_PI * math.exp(-0.5 * x * x)
    if code == _RELU:
        return 1.0 if x > 0.0 else 0.0
    return 1.0


@njit(cache=True, nogil=True)
def _g_flat(code, x, derivative):
    out = np.empty_like(x)
    for i in range(x.size):
        out[i] = dg_scalar(code, x[i]) if derivative else g_scalar(code, x[i])
    return out


def _elementwise(code, derivative):
    """g (or g') of activation ``code`` as a numpy-style elementwise function."""

    def fn(x):
        x = np.asarray(x, dtype=float)
        return _g_flat(code, np.ascontiguousarray(x).ravel(), derivative).reshape(x.shape)

    fn.__name__ = ("dg" if derivative else "g") + f"_{code}"
    return fn


# --------------------------------------------------------------------------------------------
# erf(x / sqrt 2)
# --------------------------------------------------------------------------------------------

@njit(cache=True)
def _erf_I2(C, a, b):
    """(2/pi) asin(C_ab / sqrt((1 + C_aa)(1 + C_bb)))."""
    return 2.0 / math.pi * _asin(C[a, b] / math.sqrt((1.0 + C[a, a]) * (1.0 + C[b, b])))


@njit(cache=True)
def _erf_I3(C, a, b, c):
    """(2/pi) (C_bc (1 + C_aa) - C_ab C_ac) / ((1 + C_aa) sqrt(L3)), L3 = (1+C_aa)(1+C_cc) - C_ac^2."""
    aa1 = 1.0 + C[a, a]
    lam3 = aa1 * (1.0 + C[c, c]) - C[a, c] ** 2
    return 2.0 / math.pi * (C[b, c] * aa1 - C[a, b] * C[a, c]) / (aa1 * math.sqrt(lam3))


@njit(cache=True)
def _erf_I4(C, a, b, c, d):
    """Saad & Solla (1995): (4/pi^2) asin(L0 / sqrt(L1 L2)) / sqrt(L4)."""
    aa1, bb1 = 1.0 + C[a, a], 1.0 + C[b, b]
    ab, ac, ad, bc, bd, cd = C[a, b], C[a, c], C[a, d], C[b, c], C[b, d], C[c, d]
    lam4 = aa1 * bb1 - ab * ab
    lam0 = lam4 * cd - bc * bd * aa1 - ac * ad * bb1 + ab * ac * bd + ab * ad * bc
    lam1 = lam4 * (1.0 + C[c, c]) - bc * bc * aa1 - ac * ac * bb1 + 2.0 * ab * ac * bc
    lam2 = lam4 * (1.0 + C[d, d]) - bd * bd * aa1 - ad * ad * bb1 + 2.0 * ab * ad * bd
    if lam1 < 1e150 and lam2 < 1e150:
        den = math.sqrt(lam1 * lam2)
    else:  # huge variances: L1 L2 would overflow
        den = math.sqrt(lam1) * math.sqrt(lam2)
    return 4.0 / math.pi**2 * _asin(lam0 / den) / math.sqrt(lam4)


@njit(cache=True)
def _erf_J2(C, a, b):
    """(2/pi) / sqrt(1 + C_aa + C_bb + C_aa C_bb - C_ab^2)."""
    aa, bb, ab = C[a, a], C[b, b], C[a, b]
    return 2.0 / math.pi / math.sqrt(1.0 + aa + bb + aa * bb - ab * ab)


# --------------------------------------------------------------------------------------------
# relu
# --------------------------------------------------------------------------------------------

@njit(cache=True)
def _relu_I2(C, a, b):
    """E[relu(u_a) relu(u_b)] = sqrt(C_aa C_bb)/(2 pi) (sin t + (pi - t) cos t), cos t = rho_ab.

    The full expectation (C_aa/2 on the diagonal), not the half of it that a widely copied
    snippet returns.
    """
    rho = _corr(C, a, b)
    t = math.acos(rho)
    return math.sqrt(C[a, a] * C[b, b]) / (2.0 * math.pi) * (math.sqrt(1.0 - rho * rho) + (math.pi - t) * rho)


@njit(cache=True)
def _relu_I3(C, a, b, c):
    """E[theta(u_a) u_b relu(u_c)] by Stein's lemma:

    C_ab sqrt(C_aa C_cc - C_ac^2) / (2 pi C_aa) + C_bc P(u_a > 0, u_c > 0).
    """
    aa = C[a, a]
    if aa <= TINY:
        return 0.0  # theta(0) = 0: a dead unit has zero derivative
    # C_ab E[delta(u_a) relu(u_c)] with E[delta(u_a) relu(u_c)] = sd(u_c | u_a = 0) / (2 pi sd(u_a))
    delta = C[a, b] / math.sqrt(aa) * math.sqrt(max(C[c, c] - C[a, c] ** 2 / aa, 0.0)) / (2.0 * math.pi)
    if C[c, c] <= TINY:
        return delta
    return delta + C[b, c] * _orthant2(_corr(C, a, c))


@njit(cache=True)
def _relu_J2(C, a, b):
    """E[theta(u_a) theta(u_b)] = 1/4 + asin(rho_ab)/(2 pi) (0 if a field has zero variance)."""
    if C[a, a] <= TINY or C[b, b] <= TINY:
        return 0.0
    return _orthant2(_corr(C, a, b))


# --------------------------------------------------------------------------------------------
# linear
# --------------------------------------------------------------------------------------------

@njit(cache=True)
def _linear_I2(C, a, b):
    return C[a, b]


@njit(cache=True)
def _linear_I3(C, a, b, c):
    return C[b, c]


@njit(cache=True)
def _linear_I4(C, a, b, c, d):
    return C[c, d]


@njit(cache=True)
def _linear_J2(C, a, b):
    return 1.0


# --------------------------------------------------------------------------------------------
# Indexed kernels: one compiled loop per integral, dispatching on the activation
# --------------------------------------------------------------------------------------------
#
# Each gufunc takes field covariances C (..., n, n), index tuples idx (P, m) and an activation
# code, and returns (..., P): the integral over the fields idx[p]. Gathering the sub-covariance
# inside the compiled loop is what makes the ODE right-hand side cheap.


def _pair_loop(C, idx, code, derivative, out):
    """I2 (``derivative`` 0) or J2 (1): the two-point integrals share one compiled loop."""
    for p in range(idx.shape[0]):
        a, b = idx[p, 0], idx[p, 1]
        if code == _ERF:
            out[p] = _erf_J2(C, a, b) if derivative else _erf_I2(C, a, b)
        elif code == _RELU:
            out[p] = _relu_J2(C, a, b) if derivative else _relu_I2(C, a, b)
        else:
            out[p] = _linear_J2(C, a, b) if derivative else _linear_I2(C, a, b)


def _I3_loop(C, idx, code, out):
    for p in range(idx.shape[0]):
        a, b, c = idx[p, 0], idx[p, 1], idx[p, 2]
        if code == _ERF:
            out[p] = _erf_I3(C, a, b, c)
        elif code == _RELU:
            out[p] = _relu_I3(C, a, b, c)
        else:
            out[p] = _linear_I3(C, a, b, c)


def _I4_loop(C, idx, code, out):
    for p in range(idx.shape[0]):
        a, b, c, d = idx[p, 0], idx[p, 1], idx[p, 2], idx[p, 3]
        if code == _ERF:
            out[p] = _erf_I4(C, a, b, c, d)
        else:
            out[p] = _linear_I4(C, a, b, c, d)


_ARGS = "float64[:, :], int64[:, :], int64"
#: loop, numba type signature and layout of each gufunc; "pair" serves I2 and J2
_LOOPS = {
    "pair": (_pair_loop, f"void({_ARGS}, int64, float64[:])", "(n,n),(p,m),(),()->(p)"),
    "I3": (_I3_loop, f"void({_ARGS}, float64[:])", "(n,n),(p,m),()->(p)"),
    "I4": (_I4_loop, f"void({_ARGS}, float64[:])", "(n,n),(p,m),()->(p)"),
}
#: The gufuncs built so far, by name ("pair", "I3", "I4").
BUILT: dict = {}


def indexed_gufunc(which: str):
    """The compiled gufunc ``(C, idx, code[, derivative]) -> (..., P)`` named ``which``, built on
    first use and cached on disk by numba (``cache=True``): importing tsode compiles (or loads)
    nothing, and a run compiles only the integrals it calls."""
    fn = BUILT.get(which)
    if fn is None:
        loop, sig, layout = _LOOPS[which]
        fn = BUILT[which] = guvectorize([sig], layout, cache=True)(loop)
    return fn


def _bind(name, which, code, *extra):
    """The indexed kernel ``(C, idx) -> (..., P)`` of one integral and activation."""

    def kernel(C, idx):
        return indexed_gufunc(which)(C, idx, code, *extra)

    kernel.__name__ = f"{name}_indexed"
    return kernel


def _kernels(code) -> dict:
    return {
        "I2": _bind("I2", "pair", code, 0),
        "I3": _bind("I3", "I3", code),
        "I4": relu_I4_indexed if code == _RELU else _bind("I4", "I4", code),
        "J2": _bind("J2", "pair", code, 1),
    }


# --------------------------------------------------------------------------------------------
# The Activation object
# --------------------------------------------------------------------------------------------

def check_covariance(C, n: int, name: str = "C") -> np.ndarray:
    """Return ``C`` as a float array after checking shape ``(..., n, n)``, symmetry and PSD.

    Raises ValueError naming ``name`` when the shape is wrong, an entry is not finite, the matrix
    is not symmetric, or it fails the relative PSD test of :func:`tsode._common.psd_violation`
    (smallest eigenvalue of the covariance scaled to unit diagonal below ``-PSD_RTOL``).
    """
    C = np.asarray(C, dtype=float)
    if C.ndim < 2 or C.shape[-2:] != (n, n):
        raise ValueError(f"{name} must have shape (..., {n}, {n}), got {C.shape}")
    if not np.all(np.isfinite(C)):
        raise ValueError(f"{name} contains non-finite entries")
    scale = np.maximum(np.abs(C).max(axis=(-1, -2), initial=0.0), 1.0)
    asym = np.abs(C - np.swapaxes(C, -1, -2)).max(axis=(-1, -2), initial=0.0)
    if np.any(asym > 1e-10 * scale):
        raise ValueError(f"{name} must be symmetric (max asymmetry {asym.max():.3g})")
    bad = psd_violation(C)
    if np.any(bad > PSD_RTOL):
        raise ValueError(
            f"{name} is not positive semi-definite (smallest eigenvalue of the covariance scaled "
            f"to unit diagonal: {-bad.max():.3g}); a covariance of local fields must be PSD"
        )
    return C


_IDENTITY = {n: np.arange(n)[None, :] for n in (2, 3, 4)}


@dataclass(frozen=True)
class Activation:
    """An activation g with its derivative and Gaussian integrals.

    Attributes
    ----------
    name : str
    code : int, the activation's code in the compiled kernels (``ACT_CODES``; the simulators
        use it too, through :func:`g_scalar` / :func:`dg_scalar`).
    g, dg : callables, elementwise g(x) and g'(x) (the same compiled scalar functions).
    max_variance : the public integrals refuse covariances with a larger variance.
    kernels : dict "I2"/"I3"/"I4"/"J2" -> indexed integral ``(C, idx) -> (..., P)``: for
        field covariances C (..., n, n) and index tuples idx (P, m) (int64), the integral over
        the fields idx[p], unchecked. This is what the engines call.
    """

    name: str
    code: int
    g: Callable = field(repr=False)
    dg: Callable = field(repr=False)
    kernels: dict = field(repr=False)
    max_variance: float = np.inf

    def _call(self, which: str, n: int, C):
        C = check_covariance(C, n, f"C for {self.name} {which}")
        top = np.max(np.einsum("...ii->...i", C), initial=0.0)
        if top > self.max_variance:
            raise ValueError(
                f"C for {self.name} {which} has a variance {top:.3g} > {self.max_variance:g}: "
                "beyond the range where the closed forms can be evaluated without overflow"
            )
        return self.kernels[which](C, _IDENTITY[n])[..., 0]

    def I2(self, C):
        """E[g(u_0) g(u_1)], C of shape (..., 2, 2) -> (...)."""
        return self._call("I2", 2, C)

    def I3(self, C):
        """E[g'(u_0) u_1 g(u_2)], C of shape (..., 3, 3) -> (...)."""
        return self._call("I3", 3, C)

    def I4(self, C):
        """E[g'(u_0) g'(u_1) g(u_2) g(u_3)], C of shape (..., 4, 4) -> (...)."""
        return self._call("I4", 4, C)

    def J2(self, C):
        """E[g'(u_0) g'(u_1)], C of shape (..., 2, 2) -> (...)."""
        return self._call("J2", 2, C)


def _make(name, max_variance=np.inf) -> Activation:
    code = ACT_CODES[name]
    return Activation(name, code, _elementwise(code, False), _elementwise(code, True),
                      _kernels(code), max_variance)


ACTIVATIONS: dict[str, Activation] = {
    "erf": _make("erf", MAX_VARIANCE),
    "relu": _make("relu", MAX_VARIANCE),
    "linear": _make("linear"),
}

def activation(name) -> Activation:
    """Look up an activation by name (``"erf"``, ``"relu"`` or ``"linear"``).

    An :class:`Activation` passes through unchanged.
    """
    if isinstance(name, Activation):
        return name
    try:
        return ACTIVATIONS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown activation {name!r}; allowed: {', '.join(sorted(ACTIVATIONS))}"
        ) from None
