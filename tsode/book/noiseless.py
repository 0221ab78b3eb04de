r"""σ = 0: over-parameterisation without label noise (chapter 2; issue 12 point 8).

erf, first layer only, the chapter's start and (M, η) with σ = 0: the ODE ε_g(α) for
L = 0 … 4 and its decay rate. Without noise nothing sustains the norm of the superfluous units,
so ε_g → 0 for every L; the rate is read by a power-law fit (:func:`tsode.asymptotics.
fit_power_law`) on the window where ε_g lies between ``EG_FLOOR`` (above the round-off of the
closed forms, ~1e-16) and ``EG_CEIL`` (after the plateau), with the standard error of the slope
from the least-squares residuals.
"""

from __future__ import annotations

import numpy as np

from ..ode import integrate
from ..order_parameters import Setup

__all__ = ["noiseless", "EG_FLOOR", "EG_CEIL", "ALPHA_MAX"]

EG_FLOOR, EG_CEIL = 1e-12, 1e-5
ALPHA_MAX = {"full": 1e6, "fast": 1e5}


def _slope(alpha, eg) -> tuple[float, float, int]:
    """(exponent p, its standard error, number of points) of ε_g ∝ α^p on the fit window."""
    from scipy.stats import linregress

    from ..asymptotics import fit_power_law

    m = (alpha > 0) & (eg > EG_FLOOR) & (eg < EG_CEIL)
    if m.sum() < 3:
        return np.nan, np.nan, int(m.sum())
    p = fit_power_law(alpha[m], eg[m])[0]
    return float(p), float(linregress(np.log(alpha[m]), np.log(eg[m])).stderr), int(m.sum())


def noiseless(mode: str = "full", seed: int = 0):
    """ε_g(α) at σ = 0 and at the chapter's σ for L = 0 … 4 (erf, first layer, chapter 2's
    start and η). Returns a Result with ``traj0[L]``, ``traj[L]`` (σ = 0 / chapter σ),
    ``eg_1e4[L]`` (σ = 0) and ``eg_1e4_noisy[L]``, and ``exponent[L]``, ``exponent_err[L]``,
    ``n_fit[L]`` (:func:`_slope`; NaN when ε_g leaves the window too fast for a power law, i.e.
    an exponential decay)."""
    from .experiments import Result, _seed, settings, start

    s = settings("first_layer", mode, "erf")
    a_max = ALPHA_MAX[mode]
    alphas = np.concatenate([[0.0], np.geomspace(1e-2, a_max, 300)])
    i4 = int(np.argmin(np.abs(alphas - 1e4)))
    res = Result(traj0={}, traj={}, eg_1e4={}, eg_1e4_noisy={}, exponent={}, exponent_err={},
                 n_fit={}, L=list(s["L"]), M=s["M"], eta=s["eta"], sigma=s["sigma"],
                 alpha_max=a_max)
    for L in s["L"]:
        K = s["M"] + L
        state0 = start(K, s["M"], s["kind"], N=10_000, seed=_seed(seed, 20, K))
        tr0 = integrate(state0, Setup("erf", eta=s["eta"], sigma=0.0), a_max, alphas=alphas)
        tr = integrate(state0, Setup("erf", eta=s["eta"], sigma=s["sigma"]), 1e4,
                       alphas=alphas[: i4 + 1])
        res.traj0[L], res.traj[L] = tr0, tr
        res.eg_1e4[L], res.eg_1e4_noisy[L] = float(tr0.eg[i4]), float(tr.eg[-1])
        res.exponent[L], res.exponent_err[L], res.n_fit[L] = _slope(tr0.alpha, tr0.eg)
    return res


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
