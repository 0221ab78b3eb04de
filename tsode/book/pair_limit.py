r"""Chapter 2: the limit α → ∞ of erf students with an even number L ≥ 2 of superfluous units.

After the plateau, pairs of superfluous units lock into anti-aligned pairs (correlation −1):
their outputs cancel, g(−x) = −g(x), so a pair can carry a growing norm while costing less and
less error. :func:`pair_limit` integrates the ODEs of the chapter's students (erf, first layer,
M = 2, η = σ = 0.1 by default) to α = 10⁹, twice (rtol and a looser ``rtol_check``, whose
difference bounds the solver's error), and fits

* the pair's norm: :math:`Q_{kk} = a\,\alpha^{\gamma}`. Prediction γ = 2/3: once the pair is
  anti-aligned its gradient terms cancel and only the η² terms of :math:`dQ_{kk}/d\alpha`
  remain, whose Gaussian averages contain :math:`g'(\lambda_k)^2`; for erf,
  :math:`\mathbb E\,g'(\lambda)^2 \propto (1 + 2Q_{kk})^{-1/2}`, so
  :math:`dQ_{kk}/d\alpha \propto Q_{kk}^{-1/2}` and :math:`Q_{kk} \propto \alpha^{2/3}`;
* the error: :math:`\epsilon_g = \epsilon_\infty + c\,\alpha^{-p}` (nonlinear least squares),
  compared with the error of the student without superfluous units (the L = 0 fixed point): a
  pair of large anti-aligned units sees its fields mostly in the saturated tails of erf, so its
  residual output, and the error it costs, shrink like :math:`Q_{kk}^{-1/2}`, i.e. p = γ/2 = 1/3.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ode import integrate
from ..order_parameters import Setup
from .chapter import Result, Settings, register, settings_of, shared_start, timed

__all__ = ["PairLimitSettings", "PairLimit", "pair_limit", "fit_offset_power_law", "records",
           "fig_pair_limit"]


@register("pair_limit")
@dataclass(frozen=True)
class PairLimitSettings(Settings):
    """Settings of :func:`pair_limit` (erf, first layer only, the chapter's start).

    M : teacher units. pair_L : even numbers L of superfluous units (fast: 2 only).
    eta, sigma : learning rate and label-noise standard deviation.
    kind : initial student weights (:func:`tsode.book.chapter.start`).
    alpha_end : end of the integrations (fast: 10⁸).
    fit_from : the fits use the output times α >= fit_from.
    rtol : solver tolerance of the integration (atol = 1e-4 rtol); rtol_check : the tolerance
        of the second integration that checks it (10 times looser: its difference from the
        first bounds the error of the looser one, so of the first; a 10 times tighter
        integration needs ~1e6 drift evaluations for L = 4, minutes).
    """

    M: int = 2
    pair_L: tuple = (2, 4)
    eta: float = 0.1
    sigma: float = 0.1
    kind: str = "random"
    alpha_end: float = 1e9
    fit_from: float = 1e6
    rtol: float = 1e-10
    rtol_check: float = 1e-9

    MODE_VALUES = {"fast": dict(pair_L=(2,), alpha_end=1e8)}


@dataclass(frozen=True, kw_only=True)
class PairLimit(Result):
    """Result of :func:`pair_limit` (dicts keyed by L).

    L : settings.pair_L; M, eta, sigma, fit_from : from the settings; alpha_max : alpha_end.
    trajectory : {L: Trajectory} at rtol (0 and 241 log-spaced times from 1e-2 to alpha_max).
    extra : {L: the superfluous units} (least aligned with any teacher unit at the end).
    pair_norm : {L: (T,) mean Q_kk of the superfluous units}.
    eg_end : {L: ε_g at alpha_max}; eg_end_check : the same at rtol_check.
    gamma, gamma_err : {L: exponent of pair_norm ∝ α^γ fitted on α >= fit_from, and its
        least-squares standard error}.
    eg_inf, eg_inf_err, p, p_err, c : {L: the fit ε_g = eg_inf + c α^-p on α >= fit_from
        (:func:`fit_offset_power_law`) and standard errors}.
    p_fixed : {L: exponent p of ε_g − eg_L0 ∝ α^-p, with the limit fixed at eg_L0}.
    eg_L0 : ε_g* of the student without superfluous units (the L = 0 fixed point).
    limit_ratio : {L: eg_inf / eg_L0}.
    end_class : {L: :class:`tsode.classification.Classification` of the state at alpha_max}.
    accuracy : of gamma and limit_ratio (printed with 3 and 4 digits): their change between rtol
        and rtol_check (at least 1e-6 of gamma, the round-off of the log-log fit).
    """

    L: list
    M: int
    eta: float
    sigma: float
    alpha_max: float
    fit_from: float
    trajectory: dict
    extra: dict
    pair_norm: dict
    eg_end: dict
    eg_end_check: dict
    gamma: dict
    gamma_err: dict
    eg_inf: dict
    eg_inf_err: dict
    p: dict
    p_err: dict
    c: dict
    p_fixed: dict
    eg_L0: float
    limit_ratio: dict
    end_class: dict

    @property
    def rtol_change(self) -> float:
        """Largest relative change of ε_g at alpha_max between rtol and rtol_check."""
        return max(abs(self.eg_end[L] - self.eg_end_check[L]) / self.eg_end[L] for L in self.L)

    @property
    def excess_end(self) -> dict:
        """{L: ε_g(alpha_max) / eg_L0 − 1}: how far above the L = 0 error the end still is."""
        return {L: self.eg_end[L] / self.eg_L0 - 1 for L in self.L}

    def alpha_within(self, L: int, frac: float) -> float:
        """The α at which the fitted law puts ε_g within ``frac`` (relative) of its limit:
        (c / (frac · eg_inf))^(1/p)."""
        return float((self.c[L] / (frac * self.eg_inf[L])) ** (1 / self.p[L]))


def fit_offset_power_law(alpha, eg):
    r"""Least-squares fit of :math:`\epsilon_g = \epsilon_\infty + c\,\alpha^{-p}` (relative
    residuals). ``alpha``, ``eg``: (P,) with P >= 4. Returns dict(eg_inf, c, p and their standard
    errors ``*_err`` from the covariance of the fit, rms the rms relative residual)."""
    from scipy.optimize import curve_fit

    alpha, eg = np.asarray(alpha, dtype=float), np.asarray(eg, dtype=float)
    if alpha.shape != eg.shape or alpha.ndim != 1 or alpha.size < 4:
        raise ValueError(f"need 1-D alpha and eg of equal length >= 4, got {alpha.shape}, "
                         f"{eg.shape}")
    x = np.log(alpha / alpha[0])

    def model(x, e, c, p):
        return e + c * np.exp(-p * x)

    p0 = (eg[-1] * 0.9, eg[0] - eg[-1] * 0.9, 0.3)
    par, cov = curve_fit(model, x, eg, p0=p0, sigma=eg, maxfev=20_000)
    err = np.sqrt(np.diag(cov))
    rms = float(np.sqrt(np.mean(((model(x, *par) - eg) / eg) ** 2)))
    return dict(eg_inf=float(par[0]), eg_inf_err=float(err[0]),
                c=float(par[1] * alpha[0] ** par[2]), p=float(par[2]), p_err=float(err[2]),
                rms=rms)


def _extra(tr, M):
    """The units least aligned with any teacher unit at the end of ``tr`` (K − M of them)."""
    Q, R = tr.Q[-1], tr.R[-1]
    cos = np.abs(R) / np.sqrt(np.outer(np.diag(Q), np.diag(tr.T)))
    spec = set(np.argmax(cos, axis=0).tolist())
    return [k for k in range(Q.shape[0]) if k not in spec]


def _fits(tr, extra, fit_from, eg_L0):
    from scipy.stats import linregress

    keep = tr.alpha >= fit_from
    a = tr.alpha[keep]
    norm = np.mean([tr.Q[keep, k, k] for k in extra], axis=0)
    lr = linregress(np.log(a), np.log(norm))
    off = fit_offset_power_law(a, tr.eg[keep])
    excess = tr.eg[keep] - eg_L0
    p_fixed = (float(-linregress(np.log(a), np.log(excess)).slope) if np.all(excess > 0)
               else float("nan"))
    return dict(gamma=float(lr.slope), gamma_err=float(lr.stderr), p_fixed=p_fixed, **off)


@timed
def pair_limit(settings: PairLimitSettings | str = "full", seed: int = 0,
               overrides=None) -> PairLimit:
    """Long ODE integrations of the erf students with even L ≥ 2 and the fitted laws of the
    anti-aligned pairs' norm and of ε_g (module docstring).

    ``settings``: a :class:`PairLimitSettings`, or a mode with an ``overrides`` dict.
    """
    from ..asymptotics import erf_symmetric_fixed_point
    from ..classification import classify

    s = settings_of("pair_limit", settings, overrides=overrides)
    if not s.pair_L or any(int(L) != L or L < 2 or L % 2 for L in s.pair_L):
        raise ValueError(f"pair_L must be even numbers >= 2 (anti-aligned pairs), got {s.pair_L}")
    if not 0 < s.fit_from < s.alpha_end:
        raise ValueError(f"fit_from must lie in (0, alpha_end = {s.alpha_end:g}), got "
                         f"{s.fit_from:g}")
    setup = Setup("erf", eta=s.eta, sigma=s.sigma)
    eg_L0 = float(erf_symmetric_fixed_point(s.M, 0, s.eta, s.sigma).eg)
    alphas = np.concatenate([[0.0], np.geomspace(1e-2, s.alpha_end, 241)])
    # the solver needs ~1e5-1e6 drift evaluations to reach 1e9 at these tolerances
    kw = dict(alphas=alphas, max_nfev=5_000_000)
    out = {k: {} for k in ("trajectory", "extra", "pair_norm", "eg_end", "eg_end_check",
                           "fit", "fit_check", "end_class")}
    for L in s.pair_L:
        state0 = shared_start("first_layer.start", s.M + L, s.M, s.kind, seed)
        tr = integrate(state0, setup, s.alpha_end, rtol=s.rtol, atol=1e-4 * s.rtol, **kw)
        chk = integrate(state0, setup, s.alpha_end, rtol=s.rtol_check,
                        atol=1e-4 * s.rtol_check, **kw)
        extra = _extra(tr, s.M)
        out["trajectory"][L], out["extra"][L] = tr, extra
        out["pair_norm"][L] = np.mean([tr.Q[:, k, k] for k in extra], axis=0)
        out["eg_end"][L], out["eg_end_check"][L] = float(tr.eg[-1]), float(chk.eg[-1])
        out["fit"][L] = _fits(tr, extra, s.fit_from, eg_L0)
        out["fit_check"][L] = _fits(chk, _extra(chk, s.M), s.fit_from, eg_L0)
        out["end_class"][L] = classify(tr, setup)
    fit, chk = out.pop("fit"), out.pop("fit_check")

    def field(name):
        return {L: fit[L][name] for L in s.pair_L}

    def change(name, floor=0.0):
        return {L: max(abs(fit[L][name] - chk[L][name]), floor * abs(fit[L][name]))
                for L in s.pair_L}

    limit_ratio = {L: fit[L]["eg_inf"] / eg_L0 for L in s.pair_L}
    return PairLimit(
        L=list(s.pair_L), M=s.M, eta=s.eta, sigma=s.sigma, alpha_max=s.alpha_end,
        fit_from=s.fit_from, settings=s, eg_L0=eg_L0, limit_ratio=limit_ratio,
        gamma=field("gamma"), gamma_err=field("gamma_err"), eg_inf=field("eg_inf"),
        eg_inf_err=field("eg_inf_err"), p=field("p"), p_err=field("p_err"), c=field("c"),
        p_fixed=field("p_fixed"), **out,
        accuracy=dict(gamma=change("gamma", 1e-6),
                      limit_ratio={L: change("eg_inf")[L] / eg_L0 for L in s.pair_L}),
        digits=dict(gamma=3, limit_ratio=4))


def records(res: PairLimit) -> list[dict]:
    """Records of book/data/summary.json: per L the ODE's ε_g at alpha_max and the fitted limit
    α → ∞. No reference value: neither is expected to equal the L = 0 error to the 0.1 % a
    deterministic record is compared at (the end is still drifting; the free fit's limit carries
    the systematic error of the leading-order law), and the chapter states both differences."""
    base = dict(chapter=2, N=None, runs=None, activation="erf", layers="first", M=res.M,
                eta=res.eta, sigma=res.sigma, stderr=None, method="ode", reference=None,
                reference_source=None)
    claim = "even L: the error tends to the L = 0 value as alpha -> infinity"
    out = []
    for L in res.L:
        out.append(dict(base, id=f"ch2-pair-limit-end-L{L}", claim=claim, K=res.M + L,
                        quantity=f"eps_g(alpha_max), L = {L}", value=res.eg_end[L],
                        alpha=res.alpha_max))
        out.append(dict(base, id=f"ch2-pair-limit-fit-L{L}", claim=claim, K=res.M + L,
                        quantity=f"fitted eps_g(alpha -> infinity), L = {L}",
                        value=res.eg_inf[L], stderr=res.eg_inf_err[L], alpha=None))
    return out


def fig_pair_limit(res):
    """(a) ε_g(α) of each L with its fitted limit and the L = 0 value; (b) the pairs' norm
    Q_kk(α) with the fitted power law and the predicted slope 2/3."""
    import matplotlib.pyplot as plt

    from .plotting import COLORS, COLUMN_IN, label, legend_below

    fig, (a, b) = plt.subplots(1, 2, figsize=(COLUMN_IN, 3.4))
    for i, L in enumerate(res.L):
        tr, col = res.trajectory[L], COLORS[i % len(COLORS)]
        a.plot(tr.alpha[1:], tr.eg[1:], color=col, label=f"$L={L}$")
        a.axhline(res.eg_inf[L], color=col, ls=":", lw=1)
        b.plot(tr.alpha[1:], res.pair_norm[L][1:], color=col, label=f"$L={L}$")
        keep = tr.alpha >= res.fit_from
        fitline = res.pair_norm[L][keep][-1] * (tr.alpha[keep] / tr.alpha[keep][-1]) ** (
            res.gamma[L])
        b.plot(tr.alpha[keep], fitline, color="k", ls="--", lw=1,
               label=r"fit $\propto\alpha^{%.3f}$" % res.gamma[L] if i == 0 else None)
    a.axhline(res.eg_L0, color="k", ls="--", lw=1, label="$L = 0$ fixed point")
    label(a, "alpha", "eg", logx=True, logy=True, title="(a) error, dotted: fitted limit")
    a.set_xlim(1e2, res.alpha_max)
    a.set_ylim(0.5 * res.eg_L0, 40 * res.eg_L0)
    label(b, "alpha", r"$Q_{kk}$ of the pair", logx=True, logy=True, title="(b) pair norm")
    b.set_xlim(1e2, res.alpha_max)
    for ax in (a, b):
        legend_below(ax)
    return fig
