r"""σ = 0: over-parameterisation without label noise (chapter 2; issue 12 point 8).

erf, first layer only, the chapter's start and (M, η) with σ = 0: the ODE ε_g(α) for
L = 0 … 4 and its decay rate. Without noise nothing sustains the norm of the superfluous units,
so ε_g → 0 for every L; the rate is read by a power-law fit (:func:`tsode.asymptotics.
fit_power_law`) on the window where ε_g lies between ``EG_FLOOR`` (above the round-off of the
closed forms, ~1e-16) and ``EG_CEIL`` (after the plateau), with the standard error of the slope
from the least-squares residuals.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ode import integrate
from ..order_parameters import Setup
from .chapter import Result, Settings, register, settings_of, shared_start, timed
from .first_layer import FirstLayerSettings

__all__ = ["noiseless", "NoiselessSettings", "Noiseless", "EG_FLOOR", "EG_CEIL", "EG_ROUNDOFF",
           "POWER_MAX"]

EG_FLOOR, EG_CEIL = 1e-12, 1e-5
#: ε_g below EG_ROUNDOFF at α = 10⁴ is at the round-off of the closed forms (shown as such)
EG_ROUNDOFF = 1e-10
#: a fitted |exponent| above POWER_MAX means an exponential decay (the fit depends on the window)
POWER_MAX = 5.0
#: relative accuracy of the fitted exponent across CPUs: 0.2 % (and 2 % of its standard
#: error), since a point may enter or leave the fit window
EXPONENT_REL_ACCURACY, EXPONENT_ERR_REL_ACCURACY = 0.002, 0.02

_FL = FirstLayerSettings


@register("noiseless")
@dataclass(frozen=True)
class NoiselessSettings(Settings):
    """Settings of :func:`noiseless`: the erf students of :class:`FirstLayerSettings` (same
    defaults) integrated without label noise.

    M, L, eta, kind : as in FirstLayerSettings (erf).
    sigma : the chapter's σ, for the noisy comparison at α = 10⁴.
    alpha_max : end of the σ = 0 integration (fast: 10⁵).
    """

    M: int = _FL.M
    L: tuple = _FL.L
    eta: float = _FL.eta
    sigma: float = _FL.sigma
    kind: str = _FL.kind
    alpha_max: float = 1e6

    MODE_VALUES = {"fast": dict(alpha_max=1e5)}


@dataclass(frozen=True, kw_only=True)
class Noiseless(Result):
    """Result of :func:`noiseless` (dicts keyed by L).

    L, M, eta, sigma, alpha_max : from the settings.
    traj0, traj : {L: Trajectory} at σ = 0 (to alpha_max) and at the chapter's σ (to 10⁴).
    eg_1e4, eg_1e4_noisy : {L: ε_g at α = 10⁴} at σ = 0 and at σ.
    eg_1e4_resolved : {L: eg_1e4 > EG_ROUNDOFF} (False: at the round-off of the closed forms).
    exponent, exponent_err, n_fit : {L: fitted p of ε_g ∝ α^p, its standard error, points}
        (:func:`_slope`; NaN when ε_g leaves the window too fast for a power law).
    power_law : {L: |exponent| < POWER_MAX} (False: an exponential decay).
    accuracy : of exponent and exponent_err (EXPONENT_REL_ACCURACY, EXPONENT_ERR_REL_ACCURACY);
        printed with 2 and 1 digits (``digits``).
    """

    L: list
    M: int
    eta: float
    sigma: float
    alpha_max: float
    traj0: dict
    traj: dict
    eg_1e4: dict
    eg_1e4_noisy: dict
    eg_1e4_resolved: dict
    exponent: dict
    exponent_err: dict
    n_fit: dict
    power_law: dict


def _slope(alpha, eg) -> tuple[float, float, int]:
    """(exponent p, its standard error, number of points) of ε_g ∝ α^p on the fit window."""
    from scipy.stats import linregress

    from ..asymptotics import fit_power_law

    m = (alpha > 0) & (eg > EG_FLOOR) & (eg < EG_CEIL)
    if m.sum() < 3:
        return np.nan, np.nan, int(m.sum())
    p = fit_power_law(alpha[m], eg[m])[0]
    return float(p), float(linregress(np.log(alpha[m]), np.log(eg[m])).stderr), int(m.sum())


@timed
def noiseless(settings: NoiselessSettings | str = "full", seed: int = 0,
              overrides=None) -> Noiseless:
    """ε_g(α) at σ = 0 and at the chapter's σ for L = 0 … 4 (erf, first layer, chapter 2's
    start and η).

    ``settings``: a :class:`NoiselessSettings`, or a mode with an ``overrides`` dict.
    """
    s = settings_of("noiseless", settings, overrides=overrides)
    alphas = np.concatenate([[0.0], np.geomspace(1e-2, s.alpha_max, 300)])
    i4 = int(np.argmin(np.abs(alphas - 1e4)))
    traj0, traj, fit = {}, {}, {}
    for L in s.L:
        K = s.M + L
        # the chapter's start on purpose (stream "first_layer.start"): the same students as
        # the learning curves, only without label noise
        state0 = shared_start("first_layer.start", K, s.M, s.kind, seed)
        traj0[L] = integrate(state0, Setup("erf", eta=s.eta, sigma=0.0), s.alpha_max,
                             alphas=alphas)
        traj[L] = integrate(state0, Setup("erf", eta=s.eta, sigma=s.sigma), 1e4,
                            alphas=alphas[: i4 + 1])
        fit[L] = _slope(traj0[L].alpha, traj0[L].eg)
    eg_1e4 = {L: float(t.eg[i4]) for L, t in traj0.items()}
    exponent = {L: f[0] for L, f in fit.items()}
    exponent_err = {L: f[1] for L, f in fit.items()}
    return Noiseless(
        L=list(s.L), M=s.M, eta=s.eta, sigma=s.sigma, alpha_max=s.alpha_max, settings=s,
        traj0=traj0, traj=traj, eg_1e4=eg_1e4,
        eg_1e4_noisy={L: float(t.eg[-1]) for L, t in traj.items()},
        eg_1e4_resolved={L: eg > EG_ROUNDOFF for L, eg in eg_1e4.items()},
        exponent=exponent, exponent_err=exponent_err, n_fit={L: f[2] for L, f in fit.items()},
        power_law={L: bool(abs(p) < POWER_MAX) for L, p in exponent.items()},
        accuracy=dict(exponent={L: EXPONENT_REL_ACCURACY * abs(p) for L, p in exponent.items()},
                      exponent_err={L: EXPONENT_ERR_REL_ACCURACY * e
                                    for L, e in exponent_err.items()}),
        digits=dict(exponent=2, exponent_err=1))


def fig_noiseless(res):
    """(a) ε_g(α) at σ = 0 for each L (log-log); (b) ε_g(α = 10⁴) against L at σ = 0 and at
    the chapter's σ."""
    import matplotlib.pyplot as plt

    from .plotting import COLUMN_IN, label, legend_below

    fig, (a, b) = plt.subplots(1, 2, figsize=(COLUMN_IN, 3.2))
    for L in res.L:
        t = res.traj0[L]
        a.plot(t.alpha[1:], np.maximum(t.eg[1:], 1e-17), label=f"$L={L}$")
    a.axhspan(EG_FLOOR, EG_CEIL, color="0.9", zorder=0, label="fit window")
    label(a, "alpha", "eg", logx=True, logy=True, title=r"(a) $\sigma = 0$")
    a.set_ylim(1e-17, 1)
    L = np.asarray(res.L)
    b.plot(L, [max(res.eg_1e4[x], 1e-17) for x in res.L], "o-", label=r"$\sigma = 0$")
    b.plot(L, [res.eg_1e4_noisy[x] for x in res.L], "s--", label=f"$\\sigma = {res.sigma:g}$")
    label(b, "L", r"$\epsilon_g(\alpha = 10^4)$", logy=True, title="(b) at $\\alpha = 10^4$")
    b.set_xticks(L)
    for ax in (a, b):
        legend_below(ax)
    return fig
