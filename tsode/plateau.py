r"""The symmetric plateau of K = M erf networks and the finite-N law of its exit time.

Set-up: soft committee machine (first layer trained, v = v* = 1), g = erf(x/√2), K = M student
units, an orthonormal teacher T = I, learning rate η, label noise σ. The set of states on
which all student units are equivalent and treat every teacher unit alike,

.. math::  Q = (q - c) I + c\,\mathbf 1\mathbf 1^\top,\qquad R = r\,\mathbf 1\mathbf 1^\top,

is invariant under the ODEs (simultaneous permutations of the student and of the teacher units
map it onto itself). On it the ODEs reduce to three equations for (q, c, r), whose fixed point
is the *unspecialised plateau*: every student unit has learned the same average of the teacher
units. It is attractive within the set and unstable in the full equations: the eigenvalue
:math:`\lambda_{\max} > 0` of the Jacobian of the full drift (:class:`tsode.ode.Drift`) belongs
to a direction that breaks the student–teacher symmetry (specialisation).

**Exit-time law.** A run started at random at input dimension N enters the plateau with a
symmetry-breaking component :math:`\delta` of order :math:`N^{-1/2}` (the random overlaps
R = O(N^{-1/2}) of the start, and the SGD noise, whose variance per unit α is O(1/N)). Near the
plateau it grows like :math:`\delta\,e^{\lambda_{\max}\alpha}` and the run leaves when it has
become O(1), at

.. math::  \alpha_{\rm exit}(N) = a + \frac{\ln N}{2\lambda_{\max}},

where a (the time to reach the plateau and to leave it once δ = O(1), plus the mean of
:math:`-\ln|\xi|/\lambda_{\max}` for the O(1) random amplitude ξ of δ√N) does not depend on N.
The spread of :math:`\alpha_{\rm exit}` is that of :math:`\ln|\xi|/\lambda_{\max}`: it does not
shrink with N.

* :func:`symmetric_plateau` — the fixed point on the invariant set (damped Newton of
  :mod:`tsode.fixed_points` on (q, c, r)) and the spectrum of the full Jacobian.
* :func:`exit_times` — per-run exit time from recorded ε_g(α).
* :func:`fit_exit_law` — weighted least-squares fit of a + b ln N with standard errors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._common import check_int, check_number
from .fixed_points import FixedPointError, _Reduction, _spectrum
from .ode import Drift
from .order_parameters import OrderParameters, Setup

__all__ = ["Plateau", "symmetric_plateau", "exit_law", "exit_times", "ExitFit", "fit_exit_law",
           "EXIT_FRACTION"]

#: A run has left the plateau when ε_g falls below this fraction of the plateau's ε_g.
EXIT_FRACTION = 0.5


@dataclass(frozen=True, eq=False)
class Plateau:
    """The symmetric (unspecialised) plateau fixed point of a K = M erf network.

    state : OrderParameters at the fixed point (Q = (q − c) I + c 11ᵀ, R = r 11ᵀ, T = I,
        v = v* = 1).
    setup : the Setup (erf, η, σ, second layer frozen).
    q, c, r : the three distinct overlaps.
    eg : ε_g at the plateau.
    eigenvalues : (K(K+1)/2 + K²,) complex spectrum of the Jacobian of the full packed drift,
        sorted by decreasing real part.
    residual : max|drift| of the full system at ``state``.
    """

    state: OrderParameters
    setup: Setup
    q: float
    c: float
    r: float
    eg: float
    eigenvalues: np.ndarray
    residual: float

    @property
    def lambda_max(self) -> float:
        """Largest real part of the spectrum: the growth rate of the specialising direction."""
        return float(self.eigenvalues.real.max())

    @property
    def slope(self) -> float:
        """d α_exit / d ln N = 1 / (2 λ_max)."""
        return 1.0 / (2.0 * self.lambda_max)


def _labels(K):
    """Classes of the invariant set: Q diagonal (0), Q off-diagonal (1), R (2)."""
    return np.where(np.eye(K, dtype=bool), 0, 1), np.full((K, K), 2)


def symmetric_plateau(K: int, eta: float, sigma: float = 0.0, *, tol: float = 1e-13,
                      max_iter: int = 50, guess=(0.5, 0.3, 0.4)) -> Plateau:
    r"""The unspecialised plateau of a K = M soft committee machine with erf units.

    Solves the ODEs of :class:`tsode.ode.Drift` restricted to the invariant set
    Q = (q − c) I + c 11ᵀ, R = r 11ᵀ (T = I, v = v* = 1; see the module docstring): the reduced
    drift of each of (q, c, r) is the class average of the full drift (exact on the set). The
    reduced system is first integrated from ``guess`` (the plateau attracts within the set),
    then polished by damped Newton to max|reduced drift| <= ``tol``. The spectrum is that of the
    central-difference Jacobian of the *full* drift, so ``lambda_max`` is the growth rate of
    the symmetry-breaking perturbations.

    Parameters
    ----------
    K : student = teacher units (>= 2; for K = 1 there is no plateau).
    eta : learning rate > 0. sigma : label-noise standard deviation >= 0.
    tol, max_iter : Newton's convergence threshold and budget.
    guess : (q, c, r) starting point of the reduced integration.

    Raises
    ------
    ValueError for bad arguments; FixedPointError if Newton fails or the fixed point found is
    not a plateau (no unstable direction).
    """
    from scipy.integrate import solve_ivp

    K = check_int(K, "K", 2)
    eta = check_number(eta, "eta", strict=True)
    sigma = check_number(sigma, "sigma")
    setup = Setup("erf", eta=eta, sigma=sigma)
    blank = OrderParameters(np.eye(K), np.zeros((K, K)), np.eye(K), np.ones(K), np.ones(K))
    f = Drift.from_state(blank, setup)
    red = _Reduction(f, *_labels(K))
    sol = solve_ivp(lambda t, p: red.F(p), (0.0, 50.0 / eta), np.asarray(guess, float),
                    rtol=1e-10, atol=1e-12, method="LSODA")
    p, res, _, message, ok = red.solve(sol.y[:, -1], tol=tol, max_iter=max_iter)
    if not ok:
        raise FixedPointError(f"symmetric_plateau(K={K}, eta={eta}, sigma={sigma}): {message}")
    Q, R, v = red.full(p)
    y = f.pack(Q, R, v)
    ev = _spectrum(f.jacobian(0.0, y))
    if not ev.real.max() > 0:
        raise FixedPointError(
            f"symmetric_plateau(K={K}, eta={eta}, sigma={sigma}): the symmetric fixed point "
            f"found (q, c, r) = {tuple(np.round(p, 6))} has no unstable direction (largest "
            f"Re λ = {ev.real.max():.3g}): it is not a plateau"
        )
    state = blank.replace(Q=np.array(Q), R=np.array(R))
    return Plateau(state=state, setup=setup, q=float(p[0]), c=float(p[1]), r=float(p[2]),
                   eg=float(f.eg(y)), eigenvalues=ev,
                   residual=float(np.abs(f(0.0, y)).max()))


def exit_law(N, a: float, lambda_max: float) -> np.ndarray:
    r"""α_exit(N) = a + ln N / (2 λ_max), vectorised over N (any shape)."""
    lambda_max = check_number(lambda_max, "lambda_max", strict=True)
    return a + np.log(np.asarray(N, dtype=float)) / (2.0 * lambda_max)


def exit_times(alpha, eg, eg_plateau: float, fraction: float = EXIT_FRACTION) -> np.ndarray:
    r"""Exit time from the plateau of each run: the first α at which ε_g < fraction · ε_plateau.

    Runs start above the plateau (ε_g(0) > ε_plateau, checked) and descend onto it, so the
    first crossing of ``fraction * eg_plateau`` (< ε_plateau) comes after the plateau was
    reached. The crossing is located by linear interpolation of ln ε_g between the two recorded
    times that bracket it (ε_g falls roughly exponentially there).

    Parameters
    ----------
    alpha : (T,) increasing recorded times.
    eg : (..., T) ε_g of each run at those times.
    eg_plateau : ε_g of the plateau (> 0).
    fraction : in (0, 1).

    Returns
    -------
    (...,) exit times; NaN for runs that never cross within the record (censored).
    """
    alpha = np.asarray(alpha, dtype=float)
    eg = np.asarray(eg, dtype=float)
    if alpha.ndim != 1 or alpha.size < 2 or np.any(np.diff(alpha) <= 0):
        raise ValueError("alpha must be a 1-D increasing array with at least two times")
    if eg.shape[-1:] != alpha.shape:
        raise ValueError(f"eg must have shape (..., {alpha.size}) to match alpha, got {eg.shape}")
    eg_plateau = check_number(eg_plateau, "eg_plateau", strict=True)
    fraction = check_number(fraction, "fraction", strict=True, upper=1.0)
    if fraction == 1.0:
        raise ValueError("fraction must be < 1")
    if np.any(eg[..., 0] <= eg_plateau):
        raise ValueError("every run must start above the plateau (eg[..., 0] > eg_plateau)")
    level = fraction * eg_plateau
    below = eg < level
    hit = below.any(axis=-1)
    j = np.where(hit, np.argmax(below, axis=-1), 1)  # j >= 1 since eg[..., 0] > level
    e1 = np.take_along_axis(eg, j[..., None], -1)[..., 0]
    e0 = np.take_along_axis(eg, (j - 1)[..., None], -1)[..., 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        l0, l1 = np.log(e0), np.log(np.maximum(e1, 1e-300))
        t = np.clip((l0 - np.log(level)) / (l0 - l1), 0.0, 1.0)
    out = alpha[j - 1] + t * (alpha[j] - alpha[j - 1])
    return np.where(hit, out, np.nan)


@dataclass(frozen=True)
class ExitFit:
    """Weighted least-squares fit α_exit = a + b ln N.

    a, b : intercept and slope; stderr_a, stderr_b : their standard errors (from the
    standard errors of the means, not rescaled); chi2, dof : the fit's χ² and degrees of
    freedom (χ²/dof ≈ 1 when the law holds within the errors).
    """

    a: float
    b: float
    stderr_a: float
    stderr_b: float
    chi2: float
    dof: int


def fit_exit_law(N, mean, stderr) -> ExitFit:
    """Fit mean exit times ``mean`` (n,) with standard errors ``stderr`` (n,) at input
    dimensions ``N`` (n,) by a + b ln N (weights 1/stderr²; n >= 3)."""
    N, mean, stderr = (np.asarray(x, dtype=float).ravel() for x in (N, mean, stderr))
    if not N.size == mean.size == stderr.size or N.size < 3:
        raise ValueError("N, mean and stderr must have the same length >= 3")
    if np.any(N <= 0) or np.any(stderr <= 0) or not np.all(np.isfinite(mean)):
        raise ValueError("N and stderr must be > 0 and mean finite")
    X = np.stack([np.ones_like(N), np.log(N)], axis=1)
    w = 1.0 / stderr**2
    A = X.T @ (w[:, None] * X)
    cov = np.linalg.inv(A)
    coef = cov @ (X.T @ (w * mean))
    chi2 = float(np.sum(w * (mean - X @ coef) ** 2))
    return ExitFit(a=float(coef[0]), b=float(coef[1]), stderr_a=float(np.sqrt(cov[0, 0])),
                   stderr_b=float(np.sqrt(cov[1, 1])), chi2=chi2, dof=N.size - 2)
