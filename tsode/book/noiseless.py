r"""σ = 0: over-parameterisation without label noise (chapter 2; issue 12 point 8).

erf, first layer only, the chapter's start and (M, η) with σ = 0: the ODE ε_g(α) for
L = 0 … 4 and its decay rate. Without noise nothing sustains the norm of the superfluous units,
so ε_g → 0 for every L; the rate is read by a power-law fit (:func:`tsode.asymptotics.
fit_power_law`) on the window where ε_g lies between ``EG_FLOOR`` (above the round-off of the
closed forms, ~1e-16) and ``EG_CEIL`` (after the plateau), with the standard error of the slope
from the least-squares residuals.

Which law holds is tested (issue 18, statement 6) by fitting both forms on the same window,
:math:`\ln\epsilon_g = a + b\,\alpha` (exponential) and :math:`\ln\epsilon_g = a + p\ln\alpha`
(power law), to the ODE of every L and to reduced SGD runs (``sgd_L``, ``sgd_starts`` independent
starts with ``sgd_runs`` runs each, N = ``sgd_N``): both have two parameters, so with Gaussian residuals
in :math:`\ln\epsilon_g` the log-likelihood ratio is :math:`\tfrac n2\ln(\mathrm{RSS}_{\rm pow}/
\mathrm{RSS}_{\rm exp})` (:func:`compare_laws`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ode import integrate
from ..order_parameters import Setup
from .chapter import (Result, Settings, register, run_sgd, seed_for, settings_of, shared_start,
                      start, timed)
from .first_layer import FirstLayerSettings

__all__ = ["noiseless", "NoiselessSettings", "Noiseless", "EG_FLOOR", "EG_CEIL", "EG_ROUNDOFF",
           "POWER_MAX", "compare_laws", "LawComparison"]

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
    sgd_L : the L of the σ = 0 SGD runs (exact reduced engine).
    sgd_N : input dimension of the SGD runs; each start is sampled at this N.
    sgd_starts, sgd_runs : independent starts per L and runs per start (fast: 2 and 2).
    sgd_alpha_max : end of the SGD runs (fast: 6000; SGD output at 80 log-spaced times from 100).
    """

    M: int = _FL.M
    L: tuple = _FL.L
    eta: float = _FL.eta
    sigma: float = _FL.sigma
    kind: str = _FL.kind
    alpha_max: float = 1e6
    sgd_L: tuple = (0, 1)
    sgd_N: int = 500
    sgd_starts: int = 3
    sgd_runs: int = 2
    sgd_alpha_max: float = 8000.0

    MODE_VALUES = {"fast": dict(alpha_max=1e5, sgd_starts=2, sgd_alpha_max=6000.0)}


@dataclass(frozen=True)
class LawComparison:
    r"""Exponential against power-law decay of ε_g on the fit window (:func:`compare_laws`).

    n : points in the window [EG_FLOOR, EG_CEIL]; alpha_lo, alpha_hi : its first and last time.
    rate : b of ln ε_g = a − b α (exponential decay rate per unit α).
    exponent : p of ln ε_g = a + p ln α.
    rms_exp, rms_pow : rms residuals of ln ε_g of the two fits.
    log_lr : (n/2) ln(RSS_pow / RSS_exp), the log-likelihood ratio of the exponential over the
        power law (Gaussian residuals in ln ε_g; both fits have two parameters).
    """

    n: int
    alpha_lo: float
    alpha_hi: float
    rate: float
    exponent: float
    rms_exp: float
    rms_pow: float
    log_lr: float

    @property
    def law(self) -> str:
        """"exponential" or "power law": the form with the smaller residuals."""
        return "exponential" if self.log_lr > 0 else "power law"


def compare_laws(alpha, eg, floor: float = EG_FLOOR, ceil: float = EG_CEIL) -> LawComparison:
    """Fit ln ε_g linearly in α and in ln α on the window floor < ε_g < ceil of one trajectory
    (``alpha``, ``eg``: (T,)); ValueError with fewer than 4 points in the window."""
    alpha, eg = np.asarray(alpha, dtype=float), np.asarray(eg, dtype=float)
    if alpha.shape != eg.shape or alpha.ndim != 1:
        raise ValueError(f"alpha and eg must be 1-D of equal length, got {alpha.shape}, "
                         f"{eg.shape}")
    m = (alpha > 0) & (eg > floor) & (eg < ceil)
    if m.sum() < 4:
        raise ValueError(f"only {int(m.sum())} points with {floor:g} < eg < {ceil:g}: need 4 "
                         "to compare two 2-parameter laws")
    a, y = alpha[m], np.log(eg[m])
    pe, pp = np.polyfit(a, y, 1), np.polyfit(np.log(a), y, 1)
    rss_e = float(np.sum((np.polyval(pe, a) - y) ** 2))
    rss_p = float(np.sum((np.polyval(pp, np.log(a)) - y) ** 2))
    n = int(m.sum())
    tiny = 1e-300
    return LawComparison(n=n, alpha_lo=float(a[0]), alpha_hi=float(a[-1]), rate=float(-pe[0]),
                         exponent=float(pp[0]), rms_exp=float(np.sqrt(rss_e / n)),
                         rms_pow=float(np.sqrt(rss_p / n)),
                         log_lr=0.5 * n * float(np.log((rss_p + tiny) / (rss_e + tiny))))


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
    laws : {L: :class:`LawComparison` of the σ = 0 ODE}.
    sgd : {L: Trajectory of the SGD runs, ε_g (starts · runs, T)} for L in sgd_L.
    sgd_laws : {L: [LawComparison per run]}.
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
    laws: dict
    sgd: dict
    sgd_laws: dict

    def sgd_law_summary(self, L) -> dict:
        """For the SGD runs of L: number of runs, number favouring each law, the smallest
        log-likelihood ratio, and the range of the fitted rates (exponential)."""
        laws = self.sgd_laws[L]
        lr = [c.log_lr for c in laws]
        return dict(runs=len(laws), exponential=sum(c.law == "exponential" for c in laws),
                    min_log_lr=float(min(lr)), rate_lo=float(min(c.rate for c in laws)),
                    rate_hi=float(max(c.rate for c in laws)))


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
    sgd = _sgd(s, seed)
    exponent = {L: f[0] for L, f in fit.items()}
    exponent_err = {L: f[1] for L, f in fit.items()}
    return Noiseless(
        L=list(s.L), M=s.M, eta=s.eta, sigma=s.sigma, alpha_max=s.alpha_max, settings=s,
        traj0=traj0, traj=traj, eg_1e4=eg_1e4,
        eg_1e4_noisy={L: float(t.eg[-1]) for L, t in traj.items()},
        eg_1e4_resolved={L: eg > EG_ROUNDOFF for L, eg in eg_1e4.items()},
        exponent=exponent, exponent_err=exponent_err, n_fit={L: f[2] for L, f in fit.items()},
        power_law={L: bool(abs(p) < POWER_MAX) for L, p in exponent.items()},
        laws={L: compare_laws(t.alpha, t.eg) for L, t in traj0.items()}, sgd=sgd,
        sgd_laws={L: [compare_laws(t.alpha, eg) for eg in np.atleast_2d(t.eg)]
                  for L, t in sgd.items()},
        accuracy=dict(exponent={L: EXPONENT_REL_ACCURACY * abs(p) for L, p in exponent.items()},
                      exponent_err={L: EXPONENT_ERR_REL_ACCURACY * e
                                    for L, e in exponent_err.items()}),
        digits=dict(exponent=2, exponent_err=1))


def _sgd(s, seed) -> dict:
    """{L: reduced SGD at σ = 0 from ``s.sgd_starts`` starts sampled at sgd_N (``s.sgd_runs``
    runs each), concatenated into one Trajectory with (starts · runs) runs}."""
    from ..trajectory import Trajectory

    setup = Setup("erf", eta=s.eta, sigma=0.0)
    alphas = np.geomspace(100.0, s.sgd_alpha_max, 80)
    out = {}
    for L in s.sgd_L:
        K = s.M + L
        parts = [run_sgd(start(K, s.M, s.kind, N=s.sgd_N,
                               seed=seed_for(seed, "noiseless.start", K, i)),
                         setup, s.sgd_N, s.sgd_alpha_max, engine="reduced", n_runs=s.sgd_runs,
                         seed=seed_for(seed, "noiseless.sgd", K, i), alphas=alphas)
                 for i in range(s.sgd_starts)]
        cat = {k: np.concatenate([np.asarray(getattr(p, k)) for p in parts])
               for k in ("eg", "Q", "R", "v")}
        out[L] = Trajectory(alpha=parts[0].alpha, T_teacher=parts[0].T_teacher,
                            v_star=parts[0].v_star, setup=setup, info=dict(N=s.sgd_N), **cat)
    return out


def fig_noiseless(res):
    """(a) ε_g(α) at σ = 0 for each L (log-log; ODE lines, reduced SGD runs dots); (b) ε_g(α = 10⁴) against L at σ = 0 and at
    the chapter's σ."""
    import matplotlib.pyplot as plt

    from .plotting import COLUMN_IN, label, legend_below

    fig, (a, b) = plt.subplots(1, 2, figsize=(COLUMN_IN, 3.2))
    for L in res.L:
        t = res.traj0[L]
        line, = a.plot(t.alpha[1:], np.maximum(t.eg[1:], 1e-17), label=f"$L={L}$")
        if L in res.sgd:
            tr = res.sgd[L]
            a.plot(tr.alpha, np.maximum(np.atleast_2d(tr.eg), 1e-17).T, ".", ms=2,
                   color=line.get_color(), label=[f"SGD, $L={L}$"] + [None] * (
                       np.atleast_2d(tr.eg).shape[0] - 1))
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
