"""Figures of the cached SGD ensembles (:mod:`tsode.book.ensembles`), chapters 2 and 3."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from .plotting import (ACT_COLORS, _sci, label, legend_below, ode_line, panels, proxy,
                       reference_line, sgd_points)

__all__ = ["fig_sgd_at_read_time", "fig_long_times", "fig_initialisation", "fig_start_spread"]

#: legend labels of the reference values (first word of ensembles' reference_source)
_SHORT = {"closed": r"closed form ($N\to\infty$)", "symmetric-ansatz": "symmetric fixed point",
          "denoising": "denoising fixed point"}


def fig_sgd_at_read_time(res):
    """ε_g at α = res.alpha against the size, one panel per activation: SGD mean ± s.e. over
    starts (squares), median (crosses), the ODE from the same initial states (mean over the
    starts, line), reference (dashed)."""
    acts = list(res.data)
    fig, axes, _ = panels(len(acts), 3.5)
    for i, (ax, act) in enumerate(zip(axes, acts)):
        d = res.data[act]
        title = f"({'abc'[i]}) {act}"
        if d["missing"]:
            ax.text(0.5, 0.5, "cache missing", ha="center", transform=ax.transAxes)
            label(ax, title=title)
            continue
        x = np.asarray(d["size"])
        sgd_points(ax, x, d["mean"], d["stderr"],
                   f"SGD mean ($N={d['N']}$, {_ensemble(d)})", "k", "s")
        ax.plot(x, d["median"], "x", color="0.4", label="SGD median")
        ode_line(ax, x, d["ode"], "ODE, same starts (mean)", ACT_COLORS[act], marker="o", ms=3)
        if not np.all(np.isnan(d["reference"])):
            reference_line(ax, x, d["reference"], _SHORT.get(d["reference_source"].split(" ")[0],
                                                             "reference"), "k")
        label(ax, d["dim"], f"$\\epsilon_g(\\alpha={_sci(d['alpha'])})$", title=title)
        # a log axis when some starts sit on a plateau far above the others (erf at 1e4)
        _size_axes(ax, x, log=np.nanmax(d["mean"]) > 5 * np.nanmin(d["median"]))
    return fig


def _ensemble(d) -> str:
    """ "8 starts × 2 runs", or "8 runs" for a cache from one start."""
    return (f"{d['runs']} runs" if d.get("starts", 1) == 1 else
            f"{d['starts']} starts $\\times$ {d['runs']} runs")


def _size_axes(ax, x, log=False):
    """Integer size ticks, a scientific y axis from 0 (or a log axis), the legend below."""
    if log:
        ax.set_yscale("log")
    else:
        ax.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
        ax.set_ylim(bottom=0)
    ax.set_xticks(x)
    legend_below(ax)


def fig_long_times(res):
    """erf, first layer, long times: ε_g(α) of the SGD ensembles (mean, band ± s.e.) for each
    (L, N) against the ODE from the same start and the symmetric fixed point (dotted)."""
    Ls = sorted(res.eg_sym)
    fig, axes, _ = panels(len(Ls), 3.3)
    for i, (ax, L) in enumerate(zip(axes, Ls)):
        for (LL, N), c in sorted(res.curves.items()):
            if LL != L:
                continue
            col = "C0" if N == min(n for _, n in res.curves) else "C3"
            a = c["alpha"][1:]
            ax.plot(a, c["mean"][1:], color=col, lw=1.0, label=f"SGD mean, $N={N}$")
            ax.fill_between(a, (c["mean"] - c["stderr"])[1:], (c["mean"] + c["stderr"])[1:],
                            color=col, alpha=0.25, lw=0)
            ode_line(ax, c["ode_alpha"][1:], c["ode_eg"][1:], f"ODE, start of $N={N}$", col,
                     ls="--", lw=1.2)
        ax.axhline(res.eg_sym[L], color="k", ls=":", lw=1.0, label="symmetric fixed point")
        label(ax, "alpha", "eg", logx=True, logy=True, title=f"({'abc'[i]}) $L={L}$")
        ax.set_xlim(1e2, res.alpha_ode)
        ax.set_ylim(res.eg_sym[L] / 4, res.eg_sym[L] * 20)
        legend_below(ax)
    return fig


def fig_initialisation(res):
    """Chapter 3: ε_g at α = res.alpha against K for the starts of
    :func:`tsode.book.ensembles.initialisation_contrast`, one panel per activation."""
    from .ensembles import STARTS

    acts = list(res.K)
    fig, axes = plt.subplots(1, len(acts), figsize=(3.5 * len(acts), 3.0), squeeze=False)
    for ax, act in zip(axes[0], acts):
        for start, (name, style) in STARTS.items():
            ax.plot(res.K[act], res.eg[(act, start)], style, label=name)
        label(ax, "K", "eg", title=act)
        legend_below(ax)
    return fig


def fig_start_spread(res):
    """Chapter 3, ReLU both layers over starts (:func:`tsode.book.start_spread.start_spread`):
    (a) ε_g(α) of K = K_lag, one line per start (mean over its runs), the starts still on a
    plateau at alpha_lag in colour; (b) ε_g at alpha_read against Σ_k v_k², every run of every
    K, with the line c Σ v²."""
    fig, (a, b), _ = panels(2, 3.3)
    if res.missing:
        for ax in (a, b):
            ax.text(0.5, 0.5, "cache missing", ha="center", transform=ax.transAxes)
        return fig
    x = res.curve_alpha[1:]
    for eg, lag in zip(res.curves, res.lagging):
        a.plot(x, eg[1:], color="C3" if lag else "0.6", lw=1.4 if lag else 0.9,
               zorder=3 if lag else 2)
    a.axvline(res.alpha_lag, color="k", ls=":", lw=1.0)
    handles = [proxy("starts on a second plateau", "C3", ls="-"),
               proxy("other starts", "0.6", ls="-"), proxy(r"$\alpha$ examined", "k", ls=":")]
    label(a, "alpha", "eg", logx=True, logy=True, title=f"(a) ReLU, $K={res.K_lag}$, per start")
    legend_below(a, handles=handles)
    top = max(float(sc[:, 0].max()) for sc in res.scatter.values())
    for j, (K, sc) in enumerate(res.scatter.items()):
        b.plot(sc[:, 0], sc[:, 1], "o^sDv"[j % 5], mfc="white", ms=4, color=f"C{j}",
               label=f"$K={K}$")
    grid = np.array([0.0, top * 1.05])
    b.plot(grid, res.floor_c * grid, "k--", lw=1.0, label=r"$c\,\sum_k v_k^2$")
    label(b, r"$\sum_k v_k^2$", f"$\\epsilon_g(\\alpha={_sci(res.alpha_read)})$",
          title="(b) every run, all $K$")
    b.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    legend_below(b, ncol=3)
    return fig
