r"""Slow drifts: where a "final" generalisation error is read, and power-law decays.

* :func:`slow_mode_scan` — integrate and characterise the dynamics at a few times: ε_g, its
  local power-law exponent, the drift and the leading Jacobian eigenvalues, anti-aligned pairs
  (erf first layer with L >= 2 extra units; linear and ReLU networks with both layers trained).
* :func:`fit_power_law` — ε_g = c α^p in log-log coordinates (ε_g ∝ α^(-1/2) for linear
  networks with both layers trained); :func:`power_law_slope_error` — the accuracy its slope
  needs; :func:`local_exponents` — d ln ε_g / d ln α from the drift.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._common import check_int, check_number
from .fixed_points import _check_state_setup, _spectrum
from .ode import Drift, integrate
from .order_parameters import OrderParameters, Setup
from .roles import describe
from .trajectory import Trajectory

__all__ = [
    "SlowModeScan",
    "slow_mode_scan",
    "fit_power_law",
    "local_exponents",
    "power_law_slope_error",
]


@dataclass(frozen=True, eq=False)
class SlowModeScan:
    r"""ε_g and the local dynamics at several times α of one long integration.

    Attributes
    ----------
    alpha : (P,) scan times.
    eg : (P,) generalisation error.
    local_exponent : (P,) :math:`d\ln\epsilon_g/d\ln\alpha = \alpha\,(\nabla\epsilon_g\cdot F)/
        \epsilon_g`, the instantaneous power-law exponent (≈ 0 once settled, ≈ −1/2 for the
        linear both-layer decay), from the drift F at the state of the tighter integration.
    exponent_error : (P,) accuracy of ``local_exponent``: the largest change when the solver
        tolerances are divided by 100 or the state is perturbed at 1e-12 relative.
    drift_norm : (P,) max|F| of the packed drift.
    leading_eigenvalues : (P, n_modes) complex, the Jacobian eigenvalues with the largest real
        parts at each scan time (near-zero or positive: slow/unstable directions), or empty.
    n_anti_aligned : (P,) number of anti-aligned student pairs (:func:`describe`).
    trajectory : the integration (at the tighter tolerances).
    """

    alpha: np.ndarray
    eg: np.ndarray
    local_exponent: np.ndarray
    exponent_error: np.ndarray
    drift_norm: np.ndarray
    leading_eigenvalues: np.ndarray
    n_anti_aligned: np.ndarray
    trajectory: Trajectory

    def settled_alpha(self, max_exponent: float = 0.01):
        """The first scan time from which |local_exponent| + exponent_error <= max_exponent at
        every later scan time (ε_g then changes by less than a factor 10^max_exponent per decade,
        whatever the numerical error of the exponent), or None."""
        ok = np.abs(self.local_exponent) + self.exponent_error <= max_exponent
        for i in range(len(ok)):
            if ok[i:].all():
                return float(self.alpha[i])
        return None

    def __str__(self):
        lines = ["     alpha          eg   d ln eg/d ln alpha   max|drift|   largest Re λ   "
                 "anti-aligned pairs"]
        for i, a in enumerate(self.alpha):
            lead = (f"{self.leading_eigenvalues[i, 0].real:+.3e}"
                    if self.leading_eigenvalues.size else "-")
            lines.append(f"{a:10.3g}  {self.eg[i]:10.4e}   {self.local_exponent[i]:+10.4f}"
                         f"          {self.drift_norm[i]:9.3e}    {lead:>11s}    "
                         f"{self.n_anti_aligned[i]}")
        return "\n".join(lines)


#: smallest rtol that solve_ivp accepts without clipping (100 machine epsilons), times 100 for
#: the tighter of the two integrations of :func:`slow_mode_scan`
_MIN_SCAN_RTOL = 100 * 100 * np.finfo(float).eps


def local_exponents(f: Drift, Y, alpha) -> np.ndarray:
    r"""d ln ε_g / d ln α = α (∇ε_g · F(y)) / ε_g(y) at packed states Y (P, size), times α (P,).

    Exact in α (no differencing of a trajectory): the derivative of ε_g along the drift F is a
    central difference of ε_g at fixed α, y ± h F(y), with a step h F of 1e-6 |y| (truncation
    error ~1e-12 relative, round-off ~1e-10 relative of the directional derivative).
    """
    Y = np.atleast_2d(Y)
    Fy = f(0.0, Y)
    h = 1e-6 * np.abs(Y).max(axis=1) / np.maximum(np.abs(Fy).max(axis=1), 1e-300)
    deg = (f.eg(Y + h[:, None] * Fy) - f.eg(Y - h[:, None] * Fy)) / (2 * h)
    return np.asarray(alpha) * deg / f.eg(Y)


def _exponent_error(f: Drift, Y_loose, Y_tight, alpha, rel_perturbation=1e-12, seed=0):
    """Largest change of the local exponents between the two integrations and under random
    relative perturbations of the tight states (``rel_perturbation``, 4 draws), shape (P,)."""
    p_tight = local_exponents(f, Y_tight, alpha)
    err = np.abs(local_exponents(f, Y_loose, alpha) - p_tight)
    rng = np.random.default_rng(seed)
    for _ in range(4):
        Yp = Y_tight * (1 + rel_perturbation * rng.standard_normal(Y_tight.shape))
        err = np.maximum(err, np.abs(local_exponents(f, Yp, alpha) - p_tight))
    return p_tight, err


def slow_mode_scan(
    state0: OrderParameters,
    setup: Setup,
    alphas=(1e3, 1e4, 1e5, 1e6),
    *,
    n_modes: int = 3,
    spectrum: bool = True,
    rtol: float = 1e-10,
    atol: float = 1e-14,
    exponent_tol: float = 1e-2,
) -> SlowModeScan:
    r"""Integrate from ``state0`` and characterise the dynamics at the times ``alphas``.

    Use it to decide at which α a "final" error is read: e.g. erf, first layer only, L >= 2 from
    random initialisation, where ε_g keeps drifting below the symmetric-ansatz value while
    extra units pair up with opposite signs; or linear networks with both layers trained, which
    have no finite fixed point (ε_g ∝ α^(-1/2), :func:`fit_power_law`).

    The local exponent α ε̇_g/ε_g is evaluated from the drift, but the drift at late times is
    dominated by whatever the integration error leaves in the fast directions: an error δ of
    the state moves the exponent by ~ α |λ_fast| |∇ε_g·δ| / ε_g, which grows with α (ReLU,
    K = M = 1, both layers: at rtol = 1e-8 the exponent at α = 1e7 is off by 0.15). So the
    scan integrates twice, at (rtol, atol) and at (rtol/100, atol/100), reports the tighter
    one and, as ``exponent_error``, the change between the two and under a 1e-12 relative
    perturbation of the state; it refuses (ValueError) when that error exceeds
    ``exponent_tol``.

    Parameters
    ----------
    state0, setup : as for :func:`tsode.integrate`.
    alphas : increasing scan times > 0.
    n_modes : number of leading Jacobian eigenvalues kept per scan time.
    spectrum : compute the Jacobian spectra (one batched finite-difference Jacobian per time).
    rtol, atol : integration tolerances of the looser integration (rtol >= 2.2e-12).
    exponent_tol : largest accepted ``exponent_error`` (> 0).
    """
    state0 = _check_state_setup(state0, setup)
    alphas = np.asarray(alphas, dtype=float)
    if alphas.ndim != 1 or alphas.size < 1 or np.any(alphas <= 0) or np.any(np.diff(alphas) <= 0):
        raise ValueError(
            f"alphas must be a non-empty increasing sequence of times > 0, got {alphas}"
        )
    n_modes = check_int(n_modes, "n_modes", 1)
    rtol = check_number(rtol, "rtol", lower=_MIN_SCAN_RTOL, upper=0.1)
    atol = check_number(atol, "atol", strict=True)
    exponent_tol = check_number(exponent_tol, "exponent_tol", strict=True)
    loose = integrate(state0, setup, alphas[-1], alphas=alphas, rtol=rtol, atol=atol)
    traj = integrate(state0, setup, alphas[-1], alphas=alphas, rtol=rtol / 100, atol=atol / 100)
    f = Drift.from_state(state0, setup)
    Y = f.pack(traj.Q, traj.R, traj.v)
    exponent, err = _exponent_error(f, f.pack(loose.Q, loose.R, loose.v), Y, alphas)
    if np.any(err > exponent_tol):
        i = int(np.argmax(err > exponent_tol))
        raise ValueError(
            f"rtol={rtol:g}, atol={atol:g} cannot support local exponents to exponent_tol="
            f"{exponent_tol:g}: at alpha={alphas[i]:g} the exponent {exponent[i]:+.4f} moves by "
            f"{err[i]:.2g} when the tolerances are divided by 100 or the state is perturbed at "
            "1e-12 relative (the drift at late times amplifies integration errors by ~alpha); "
            "use a smaller rtol and atol, a larger exponent_tol, or earlier alphas"
        )
    lead = np.empty((len(alphas), n_modes if spectrum else 0), dtype=complex)
    if spectrum:
        for i, y in enumerate(Y):
            lead[i] = _spectrum(f.jacobian(0.0, y))[:n_modes]
    n_anti = np.array([len(describe(traj.state(i)).anti_aligned_pairs)
                       for i in range(len(alphas))])
    return SlowModeScan(
        alpha=np.asarray(traj.alpha), eg=f.eg(Y), local_exponent=exponent, exponent_error=err,
        drift_norm=np.abs(f(0.0, Y)).max(axis=1), leading_eigenvalues=lead,
        n_anti_aligned=n_anti, trajectory=traj,
    )


def power_law_slope_error(alpha, rel_error: float) -> float:
    r"""Bound on the error of the least-squares log-log slope when every ε_g carries a relative
    error <= ``rel_error``: :math:`|\delta p| \le \epsilon \sum_i |x_i-\bar x| / \sum_i
    (x_i-\bar x)^2` with :math:`x = \ln\alpha` — the closer the times, the larger the bound."""
    x = np.log(np.asarray(alpha, dtype=float))
    d = x - x.mean()
    return float(rel_error * np.abs(d).sum() / (d @ d))


def fit_power_law(alpha, eg, *, alpha_min: float | None = None, rel_error: float = 0.0,
                  max_slope_error: float | None = None):
    r"""Least-squares fit of :math:`\epsilon_g = c\,\alpha^{p}` in log-log coordinates.

    Parameters
    ----------
    alpha, eg : (P,) positive arrays (e.g. ``traj.alpha``, ``traj.eg``).
    alpha_min : only points with alpha >= alpha_min enter the fit.
    rel_error : relative accuracy of ``eg`` (e.g. the change when the solver tolerances are
        tightened); with ``max_slope_error``, the fit is refused (ValueError) when the spacing
        of the fitted times cannot resolve the slope to that accuracy
        (:func:`power_law_slope_error`).

    Returns
    -------
    (p, c) : exponent and prefactor.
    """
    alpha, eg = np.asarray(alpha, dtype=float), np.asarray(eg, dtype=float)
    if alpha.shape != eg.shape or alpha.ndim != 1:
        raise ValueError(f"alpha and eg must be 1-D arrays of equal length, got {alpha.shape}, "
                         f"{eg.shape}")
    keep = alpha >= (alpha_min if alpha_min is not None else -np.inf)
    if np.count_nonzero(keep) < 2:
        raise ValueError(f"need at least 2 points with alpha >= alpha_min={alpha_min} to fit")
    if np.any(alpha[keep] <= 0) or np.any(eg[keep] <= 0):
        raise ValueError("alpha and eg must be > 0 where fitted (log-log fit)")
    rel_error = check_number(rel_error, "rel_error")
    if max_slope_error is not None:
        bound = power_law_slope_error(alpha[keep], rel_error)
        if bound > check_number(max_slope_error, "max_slope_error", strict=True):
            raise ValueError(
                f"eg with relative error rel_error={rel_error:g} at these times resolves the "
                f"slope only to {bound:.2g} > max_slope_error={max_slope_error:g}: spread the "
                "times over more decades or tighten the solver tolerances"
            )
    p, logc = np.polyfit(np.log(alpha[keep]), np.log(eg[keep]), 1)
    return float(p), float(np.exp(logc))
