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

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from scipy.special import erf as _erf

__all__ = ["Activation", "ACTIVATIONS", "activation", "check_covariance"]

#: Variances below this are treated as exactly zero (a dead unit) in divisions.
TINY = 1e-300
#: Relative tolerance on negative eigenvalues when checking positive semi-definiteness.
PSD_RTOL = 1e-8

_INV_PI = 1.0 / np.pi
_SQRT2 = np.sqrt(2.0)


def _asin(x):
    """arcsin with its argument clipped to [-1, 1] (rounding can push |x| past 1)."""
    return np.arcsin(np.clip(x, -1.0, 1.0))


def _sqrt(x):
    """Square root of a quantity that is non-negative up to rounding."""
    return np.sqrt(np.maximum(x, 0.0))


# --------------------------------------------------------------------------------------------
# erf(x / sqrt 2)
# --------------------------------------------------------------------------------------------

def _erf_g(x):
    return _erf(np.asarray(x, dtype=float) / _SQRT2)


def _erf_dg(x):
    x = np.asarray(x, dtype=float)
    return np.sqrt(2.0 * _INV_PI) * np.exp(-0.5 * x * x)


def _erf_I2(C):
    """(2/pi) asin(C_ab / sqrt((1 + C_aa)(1 + C_bb)))."""
    a, b, ab = C[..., 0, 0], C[..., 1, 1], C[..., 0, 1]
    return 2.0 * _INV_PI * _asin(ab / np.sqrt((1.0 + a) * (1.0 + b)))


def _erf_I3(C):
    """(2/pi) (C_bc (1 + C_aa) - C_ab C_ac) / ((1 + C_aa) sqrt(L3)), L3 = (1+C_aa)(1+C_cc) - C_ac^2."""
    aa, ab, ac = C[..., 0, 0], C[..., 0, 1], C[..., 0, 2]
    bc, cc = C[..., 1, 2], C[..., 2, 2]
    lam3 = (1.0 + aa) * (1.0 + cc) - ac * ac
    return 2.0 * _INV_PI * (bc * (1.0 + aa) - ab * ac) / ((1.0 + aa) * np.sqrt(lam3))


def _erf_I4(C):
    """Saad & Solla: (4/pi^2) asin(L0 / sqrt(L1 L2)) / sqrt(L4)."""
    aa, bb, cc, dd = C[..., 0, 0], C[..., 1, 1], C[..., 2, 2], C[..., 3, 3]
    ab, ac, ad = C[..., 0, 1], C[..., 0, 2], C[..., 0, 3]
    bc, bd, cd = C[..., 1, 2], C[..., 1, 3], C[..., 2, 3]
    lam4 = (1.0 + aa) * (1.0 + bb) - ab * ab
    lam0 = lam4 * cd - bc * bd * (1.0 + aa) - ac * ad * (1.0 + bb) + ab * ac * bd + ab * ad * bc
    lam1 = lam4 * (1.0 + cc) - bc * bc * (1.0 + aa) - ac * ac * (1.0 + bb) + 2.0 * ab * ac * bc
    lam2 = lam4 * (1.0 + dd) - bd * bd * (1.0 + aa) - ad * ad * (1.0 + bb) + 2.0 * ab * ad * bd
    return 4.0 * _INV_PI**2 * _asin(lam0 / np.sqrt(lam1 * lam2)) / np.sqrt(lam4)


def _erf_J2(C):
    """(2/pi) / sqrt(1 + C_aa + C_bb + C_aa C_bb - C_ab^2)."""
    a, b, ab = C[..., 0, 0], C[..., 1, 1], C[..., 0, 1]
    return 2.0 * _INV_PI / np.sqrt(1.0 + a + b + a * b - ab * ab)


# --------------------------------------------------------------------------------------------
# relu
# --------------------------------------------------------------------------------------------

def _relu_g(x):
    return np.maximum(np.asarray(x, dtype=float), 0.0)


def _relu_dg(x):
    return (np.asarray(x, dtype=float) > 0.0).astype(float)


def _correlation(ab, a, b):
    """C_ab / sqrt(C_aa C_bb), with 0 for a zero-variance field."""
    s = np.sqrt(a * b)
    return np.where(s > TINY, ab / np.maximum(s, TINY), 0.0)


def _relu_I2(C):
    """E[relu(u_a) relu(u_b)] = sqrt(C_aa C_bb)/(2 pi) (sin t + (pi - t) cos t), cos t = rho_ab.

    This is the full expectation (equal to C_aa/2 on the diagonal), not the half of it that a
    widely copied snippet returns.
    """
    a, b = C[..., 0, 0], C[..., 1, 1]
    rho = np.clip(_correlation(C[..., 0, 1], a, b), -1.0, 1.0)
    theta = np.arccos(rho)
    return np.sqrt(a * b) * 0.5 * _INV_PI * (np.sqrt(1.0 - rho * rho) + (np.pi - theta) * rho)


def _orthant2(rho):
    """P(x_1 > 0, x_2 > 0) for standard bivariate normal with correlation rho."""
    return 0.25 + 0.5 * _INV_PI * _asin(rho)


def _relu_I3(C):
    """E[theta(u_a) u_b relu(u_c)] by Stein's lemma:

    C_ab sqrt(C_aa C_cc - C_ac^2) / (2 pi C_aa) + C_bc P(u_a > 0, u_c > 0).
    """
    aa, ab, ac = C[..., 0, 0], C[..., 0, 1], C[..., 0, 2]
    bc, cc = C[..., 1, 2], C[..., 2, 2]
    alive = aa > TINY
    aa_safe = np.where(alive, aa, 1.0)
    # E[delta(u_a) relu(u_c)] = sqrt(C_cc - C_ac^2/C_aa) / (2 pi sqrt(C_aa)); times C_ab.
    delta_term = np.where(
        alive, ab / np.sqrt(aa_safe) * _sqrt(cc - ac * ac / aa_safe) * 0.5 * _INV_PI, 0.0
    )
    p = np.where(alive & (cc > TINY), _orthant2(_correlation(ac, aa, cc)), 0.0)
    return delta_term + bc * p


def _relu_J2(C):
    """E[theta(u_a) theta(u_b)] = 1/4 + asin(rho_ab)/(2 pi) (0 if a field has zero variance)."""
    a, b = C[..., 0, 0], C[..., 1, 1]
    alive = (a > TINY) & (b > TINY)
    return np.where(alive, _orthant2(_correlation(C[..., 0, 1], a, b)), 0.0)


def _relu_I4(C):
    from ._relu_i4 import relu_I4

    return relu_I4(C)


# --------------------------------------------------------------------------------------------
# linear
# --------------------------------------------------------------------------------------------

def _linear_g(x):
    return np.asarray(x, dtype=float).copy()


def _linear_dg(x):
    return np.ones_like(np.asarray(x, dtype=float))


def _linear_I2(C):
    return C[..., 0, 1].copy()


def _linear_I3(C):
    return C[..., 1, 2].copy()


def _linear_I4(C):
    return C[..., 2, 3].copy()


def _linear_J2(C):
    return np.ones(C.shape[:-2])


# --------------------------------------------------------------------------------------------
# The Activation object
# --------------------------------------------------------------------------------------------

def check_covariance(C, n: int, name: str = "C") -> np.ndarray:
    """Return ``C`` as a float array after checking shape ``(..., n, n)``, symmetry and PSD.

    Raises ValueError naming ``name`` when the shape is wrong, an entry is not finite, the matrix
    is not symmetric, or an eigenvalue is below ``-PSD_RTOL * max(1, largest eigenvalue)``.
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
    eig = np.linalg.eigvalsh(C)
    bad = eig[..., 0] < -PSD_RTOL * np.maximum(eig[..., -1], 1.0)
    if np.any(bad):
        raise ValueError(
            f"{name} is not positive semi-definite (smallest eigenvalue {eig[..., 0].min():.3g});"
            " a covariance of local fields must be PSD"
        )
    return C


@dataclass(frozen=True)
class Activation:
    """An activation g with its derivative and Gaussian integrals.

    Attributes
    ----------
    name : str
    g, dg : callables, elementwise g(x) and g'(x).
    kernels : dict name -> unchecked vectorised integral (used by the engines).
    """

    name: str
    g: Callable
    dg: Callable
    kernels: dict = field(repr=False)

    def _call(self, which: str, n: int, C):
        return self.kernels[which](check_covariance(C, n, f"C for {self.name} {which}"))

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


def _make(name, g, dg, I2, I3, I4, J2) -> Activation:
    return Activation(name, g, dg, {"I2": I2, "I3": I3, "I4": I4, "J2": J2})


ACTIVATIONS: dict[str, Activation] = {
    "erf": _make("erf", _erf_g, _erf_dg, _erf_I2, _erf_I3, _erf_I4, _erf_J2),
    "relu": _make("relu", _relu_g, _relu_dg, _relu_I2, _relu_I3, _relu_I4, _relu_J2),
    "linear": _make("linear", _linear_g, _linear_dg, _linear_I2, _linear_I3, _linear_I4, _linear_J2),
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
