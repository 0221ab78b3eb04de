r"""Plotting style and the figures of the book.

One consistent style for every chapter: ODE solutions are lines, SGD simulations are markers with
error bars (mean ± one standard deviation over runs unless stated otherwise), closed forms and
fixed points are dashed or dotted lines, axes carry the paper's symbols (:math:`\alpha`,
:math:`\epsilon_g`, :math:`Q`, :math:`R`, ...), and log scales are used where the physics is
multiplicative (time, errors).

The style is applied explicitly: notebooks call :func:`use_style` once (importing this module
changes no global state). Figures are designed for the book's column (:data:`COLUMN_IN` inches at
:data:`DPI`, at most two panels per row, no text below :data:`MIN_FONT_PT`), with legends outside
the data.

Every ``fig_*`` function takes the result of the matching :mod:`tsode.book.experiments` function and
returns a :class:`matplotlib.figure.Figure`; the notebooks then call :func:`show`, which displays a
byte-reproducible PNG (no ``Software`` chunk; a ``tsode:min-font-px`` chunk with the smallest text
height in image pixels, read by the browser test) and a link to download the plotted data as CSV.
"""

from __future__ import annotations

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import TwoSlopeNorm

from ..fixed_points import soft_mask
from .export import figure_csv, min_font_px, show

__all__ = [
    "COLORS",
    "ACT_COLORS",
    "use_style",
    "show",
    "figure_csv",
    "min_font_px",
    "label",
    "ode_line",
    "sgd_points",
    "reference_line",
    "heatmap",
    "fig_ode_vs_sgd",
    "fig_convergence",
    "fig_first_layer_curves",
    "fig_first_layer_final",
    "fig_collapse",
    "fig_slow_mode",
    "fig_both_layers_curves",
    "fig_both_layers_final",
    "fig_fixed_point_maps",
    "fig_spectra",
]

#: Okabe-Ito palette (colour-blind safe), in the order used for K = M, M+1, ...
COLORS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"]
#: One colour per activation, used whenever several activations share a figure.
ACT_COLORS = {"erf": "#0072B2", "relu": "#D55E00", "linear": "#009E73"}

#: Axis labels with the paper's symbols.
SYMBOLS = {
    "alpha": r"time $\alpha$ = steps / $N$",
    "eg": r"generalisation error $\epsilon_g$",
    "eg_star": r"final error $\epsilon_g^*$",
    "K": r"student hidden units $K$",
    "L": r"superfluous units $L = K - M$",
    "N": r"input dimension $N$",
}

#: Width of the book's main column in inches at DPI (≈ 690 CSS px at a 1280 px window).
COLUMN_IN = 6.6
#: Resolution of the PNGs (1 image px = 1 CSS px when shown at natural size).
DPI = 100
#: The smallest font size used in a figure, in points (8 pt = 11 px at DPI 100).
MIN_FONT_PT = 8.5

_STYLE = {
    "figure.dpi": DPI,
    "savefig.dpi": DPI,
    "figure.figsize": (COLUMN_IN, 4.0),
    "figure.constrained_layout.use": True,
    "font.size": 10.5,
    "axes.titlesize": 11,
    "axes.labelsize": 10.5,
    "xtick.labelsize": 9.5,
    "ytick.labelsize": 9.5,
    "legend.fontsize": 9.5,
    "legend.frameon": False,
    "axes.grid": True,
    "grid.alpha": 0.25,
    "grid.linewidth": 0.6,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": mpl.cycler(color=COLORS),
    "lines.linewidth": 1.8,
    "lines.markersize": 5,
    "errorbar.capsize": 2.5,
    "image.cmap": "RdBu_r",
    "mathtext.fontset": "cm",
    "savefig.bbox": "tight",
    # no "Software: Matplotlib vX.Y" chunk: figure files do not depend on the matplotlib version
    "svg.hashsalt": "tsode",
}


def use_style() -> None:
    """Apply the book's matplotlib style (and reproducible inline PNGs inside IPython)."""
    mpl.rcParams.update(_STYLE)
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except ImportError:  # pragma: no cover - IPython is a dependency of the book only
        shell = None
    if shell is not None and "inline" in mpl.get_backend():
        from matplotlib_inline.backend_inline import set_matplotlib_formats

        set_matplotlib_formats("png", bbox_inches="tight", metadata={"Software": None})



# ------------------------------------------------------------------------------------------
# building blocks
# ------------------------------------------------------------------------------------------
def label(ax, x: str | None = None, y: str | None = None, *, logx=False, logy=False, title=None):
    """Label axes with the paper's symbols (keys of ``SYMBOLS`` or raw strings); set log scales."""
    if x is not None:
        ax.set_xlabel(SYMBOLS.get(x, x))
    if y is not None:
        ax.set_ylabel(SYMBOLS.get(y, y))
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    return ax


def ode_line(ax, x, y, label=None, color=None, **kw):
    """An ODE solution: a solid line."""
    kw.setdefault("lw", 1.8)
    kw.setdefault("ls", "-")
    return ax.plot(x, y, label=label, color=color, **kw)[0]


def sgd_points(ax, x, y, err=None, label=None, color=None, marker="o", **kw):
    """SGD simulations: open markers with error bars (mean ± err)."""
    kw.setdefault("ms", 5)
    kw.setdefault("mew", 1.2)
    kw.setdefault("elinewidth", 1.0)
    kw.setdefault("zorder", 3)
    return ax.errorbar(
        x, y, yerr=err, fmt=marker, mfc="white", color=color, label=label, ls="none", **kw
    )


def reference_line(ax, x, y, label=None, color="0.35", ls="--", **kw):
    """A closed form or fixed point: dashed line."""
    kw.setdefault("lw", 1.3)
    return ax.plot(x, y, ls=ls, color=color, label=label, **kw)[0]


def _short(a: float) -> str:
    """A matrix entry in at most four characters: 0.37 -> '.37', -0.37 -> '-.37', 1.01 -> '1.01'."""
    text = f"{a:.2f}"
    return text.replace("0.", ".", 1) if abs(a) < 0.995 else text


def heatmap(ax, A, *, vmax=None, title=None, xlabel=None, ylabel=None, annotate=True, fmt=_short):
    """A signed matrix as a heat map centred on zero (blue negative, red positive); rows and
    columns are labelled from 1."""
    A = np.atleast_2d(np.asarray(A, dtype=float))
    vmax = float(np.abs(A).max()) if vmax is None else float(vmax)
    vmax = vmax if vmax > 0 else 1.0
    im = ax.imshow(A, cmap="RdBu_r", norm=TwoSlopeNorm(0.0, -vmax, vmax), aspect="equal")
    ax.set_xticks(range(A.shape[1]), [str(j + 1) for j in range(A.shape[1])])
    ax.set_yticks(range(A.shape[0]), [str(i + 1) for i in range(A.shape[0])])
    ax.tick_params(length=0, labelsize=MIN_FONT_PT)
    ax.grid(False)
    for s in ax.spines.values():
        s.set_visible(False)
    if annotate and A.size <= 64:
        for (i, j), a in np.ndenumerate(A):
            ax.text(j, i, fmt(a), ha="center", va="center", fontsize=MIN_FONT_PT,
                    color="white" if abs(a) > 0.6 * vmax else "black")
    if title:
        ax.set_title(title, fontsize=10)
    if xlabel:
        ax.set_xlabel(xlabel, fontsize=9)
    if ylabel:
        ax.set_ylabel(ylabel, fontsize=9)
    return im


def _sci(x) -> str:
    """A number for mathtext: 1000 -> '10^{3}', 300 -> '300', 2e5 -> '2\\times10^{5}'."""
    x = float(x)
    if x <= 0 or 1e-2 <= x < 1e3:
        return f"{x:g}"
    e = int(np.floor(np.log10(x) + 1e-12))
    m = x / 10**e
    return f"10^{{{e}}}" if abs(m - 1) < 1e-9 else f"{m:g}\\times10^{{{e}}}"


def _positive(y, floor=1e-300):
    """Values for a log axis (exact zeros or rounding negatives become the floor)."""
    return np.maximum(np.asarray(y, dtype=float), floor)


def _sgd_stats(x, sem=False):
    """Mean over runs (axis 0) of a (runs, T) array, and its standard deviation (or, with
    ``sem=True``, the standard error of the mean); None for a single run."""
    x = np.atleast_2d(x)
    if x.shape[0] < 2:
        return x.mean(axis=0), None
    sd = x.std(axis=0, ddof=1)
    return x.mean(axis=0), (sd / np.sqrt(x.shape[0]) if sem else sd)


# ------------------------------------------------------------------------------------------
# layout helpers
# ------------------------------------------------------------------------------------------
#: Line styles that keep coinciding curves visible (a dashed curve over a solid one).
LINESTYLES = ["-", (0, (5, 2)), (0, (1, 1.5)), (0, (6, 2, 1, 2))]
#: Legend title of panels where curves may coincide.
COINCIDE = "equal curves coincide: dashed over solid"


def legend_below(ax, ncol=1, handles=None, **kw):
    """A legend under the axes (below its x label): never on the data."""
    from matplotlib.transforms import ScaledTranslation

    shift = ScaledTranslation(0, -0.5, ax.figure.dpi_scale_trans)
    kw.setdefault("loc", "upper center")
    if handles is not None:
        kw["handles"] = handles
    return ax.legend(bbox_to_anchor=(0.5, 0.0), bbox_transform=ax.transAxes + shift, ncol=ncol,
                     **kw)


def panels(n: int, row_height: float = 3.6):
    """A figure of the column's width with ``n`` panels, at most two per row; the unused cell of
    an odd ``n`` is returned as ``spare`` (turned off; use it for a shared legend)."""
    rows = (n + 1) // 2 if n > 1 else 1
    cols = 2 if n > 1 else 1
    fig, axes = plt.subplots(rows, cols, figsize=(COLUMN_IN, row_height * rows), squeeze=False)
    flat = list(axes.ravel())
    spare = flat[n] if len(flat) > n else None
    if spare is not None:
        spare.axis("off")
    return fig, flat[:n], spare


def proxy(label, color="k", ls="none", marker=None, **kw):
    """A legend entry for a style (e.g. "markers: SGD") without data."""
    from matplotlib.lines import Line2D

    kw.setdefault("mfc", "white" if marker else None)
    return Line2D([], [], color=color, ls=ls, marker=marker, label=label, **kw)


def _entries(ax):
    h, labels = ax.get_legend_handles_labels()
    return dict(zip(labels, h))


# ------------------------------------------------------------------------------------------
# chapter 1
# ------------------------------------------------------------------------------------------
def fig_ode_vs_sgd(res):
    """ε_g(α) and the overlaps from the ODE (lines) against full and reduced SGD (markers).

    SGD markers: mean over runs ± standard error of the mean; in panel (b) the student units of
    every run are first relabelled to match the ODE's final specialisation. Curves R_kn of equal
    value are drawn with different dash patterns (a dashed curve over a solid one)."""
    fig, (a, b), _ = panels(2, 4.6)
    ode, sims = res.ode, res.sgd
    ode_line(a, ode.alpha[1:], _positive(ode.eg[1:]), "ODE ($N\\to\\infty$)", "k")
    markers = {"full": "o", "reduced": "s"}
    colors = {"full": COLORS[1], "reduced": COLORS[0]}
    for name, tr in sims.items():
        m, s = _sgd_stats(tr.eg, sem=True)
        runs = np.atleast_2d(tr.eg).shape[0]
        sgd_points(a, tr.alpha[1:], m[1:], None if s is None else s[1:],
                   f"SGD, {name} ($N={res.N}$, {runs} runs)", colors[name], markers[name])
    label(a, "alpha", "eg", logx=True, logy=True, title="(a) generalisation error")
    legend_below(a)
    K, M = ode.R.shape[1:]
    al = res.aligned["reduced"]
    t = sims["reduced"].alpha
    for k in range(K):
        for n in range(M):
            j = k * M + n
            c = COLORS[j % len(COLORS)]
            ode_line(b, ode.alpha, ode.R[:, k, n], f"$R_{{{k + 1}{n + 1}}}$", c,
                     ls=LINESTYLES[j % len(LINESTYLES)])
            m, s = _sgd_stats(al["R"][:, :, k, n], sem=True)
            sgd_points(b, t[1:], m[1:], None if s is None else s[1:], None, c, "s", ms=4)
    for k in range(K):
        ode_line(b, ode.alpha, ode.Q[:, k, k], "$Q_{kk}$" if k == 0 else None, "0.45", ls=":")
    label(b, "alpha", "overlaps", logx=True, title="(b) order parameters")
    legend_below(b, ncol=2, title=COINCIDE, handles=[*_entries(b).values(),
                                                     proxy("reduced SGD", "0.3", marker="s")])
    return fig


def fig_fig1(res):
    """The paper's Fig. 1(b): ε_g(α) for several K, ODE (lines; thin: the other starts) against one
    SGD run (markers) and the median and percentile band of the reduced runs of all starts; below, R of the K = M student (the single
    run, units relabelled to the ODE's final order) at the plateau and at the end."""
    s = res.settings
    fig, axd = plt.subplot_mosaic([["a", "a"], ["b", "c"]], figsize=(COLUMN_IN, 7.4),
                                  height_ratios=[1.25, 1.0])
    a = axd["a"]
    floor = 1e-6
    for i, (K, c) in enumerate(res.cases.items()):
        col = COLORS[i % len(COLORS)]
        t = c["runs"].alpha
        a.fill_between(t[1:], np.maximum(c["lo"][1:], floor), np.maximum(c["hi"][1:], floor),
                       color=col, alpha=0.18, lw=0)
        a.plot(t[1:], np.maximum(c["median"][1:], floor), color=col, lw=1.0, ls="--")
        ode_line(a, c["ode"].alpha[1:], np.maximum(c["ode"].eg[1:], floor), f"$K={K}$", col)
        for st in c.get("starts", [])[1:]:  # the ODEs of the other starts, thin
            a.plot(st["ode"].alpha[1:], np.maximum(st["ode"].eg[1:], floor), color=col, lw=0.5,
                   alpha=0.6)
        single = np.atleast_2d(c["single"].eg)[0]
        a.plot(c["single"].alpha[1:], np.maximum(single[1:], floor), "x", color=col, ms=5, mew=1.2)
    for j, al in enumerate(res.alpha_R):
        a.annotate("(b)" if j == 0 else "(c)", (al, 1.5 * floor), ha="center", fontsize=9,
                   xytext=(al, 12 * floor), arrowprops=dict(arrowstyle="->", lw=1.0))
    a.set_ylim(floor, 2.0)
    label(a, "alpha", "eg", logx=True, logy=True,
          title=f"(a) erf, $N={s.N}$, $M={s.M}$, $\\eta={s.eta}$")
    engine = s.single_engine
    band = s.band
    legend_below(a, ncol=3, handles=[
        *_entries(a).values(), proxy("ODE (thin: other starts)", "k", ls="-"),
        proxy(f"one SGD run ({engine} engine)", "k", marker="x"),
        proxy(f"median of {s.starts} starts x {s.runs} runs", "k", ls="--"),
        proxy(f"{band[0]}-{band[1]} % band", "0.6", ls="-", lw=6, alpha=0.4)])
    for key, R, al in zip("bc", res.R_single, res.alpha_R):
        heatmap(axd[key], R, vmax=1.0, xlabel="teacher $n$", ylabel="student $k$",
                title=f"({key}) $R$ of $K={res.K0}$, $\\alpha\\approx{_sci(round(al))}$")
    return fig


def fig_convergence(res):
    """Mean over runs (± s.e.) of sup_α |X^SGD − X^ODE| against N for X = ε_g, Q, R (single runs,
    largest entry), with the fitted power laws and the N^(-1/2) rate of the theorem."""
    fig, ax = plt.subplots(figsize=(COLUMN_IN * 0.8, 4.4))
    N = np.asarray(res.N, dtype=float)
    Ns = np.geomspace(N.min() / 1.4, N.max() * 1.4, 50)
    names = {"eg": r"$\epsilon_g$", "Q": r"$Q$", "R": r"$R$"}
    for i, (q, name) in enumerate(names.items()):
        c = COLORS[i]
        sgd_points(ax, N, res.dev_mean[q], res.dev_err[q], None, c, "osD"[i])
        ode_line(ax, Ns, np.exp(res.intercept[q]) * Ns ** res.slope[q],
                 f"{name}: slope {res.slope[q]:.2f} ± {res.slope_err[q]:.2f}", c, lw=1.2)
    ref = res.dev_mean["R"][0] * (Ns / N[0]) ** -0.5
    reference_line(ax, Ns, ref, r"$\propto N^{-1/2}$ (theorem)")
    label(ax, "N", r"$\langle\sup_{\alpha\leq%g}|X^{\rm SGD} - X^{\rm ODE}|\rangle$"
          % res.settings.alpha_max, logx=True, logy=True)
    legend_below(ax, handles=[*_entries(ax).values(), proxy("reduced SGD (mean ± s.e.)", "0.3",
                                                           marker="s")])
    return fig


# ------------------------------------------------------------------------------------------
# chapter 2
# ------------------------------------------------------------------------------------------
def fig_first_layer_curves(res):
    """ε_g(α) for K = M ... M+L (ODE lines) with the fixed-point values (dotted)."""
    fig, ax = plt.subplots(figsize=(COLUMN_IN, 4.4))
    for i, (L, tr) in enumerate(res.trajectories.items()):
        c = COLORS[i % len(COLORS)]
        ode_line(ax, tr.alpha[1:], _positive(tr.eg[1:]), f"$L={L}$ ($K={res.M + L}$)", c)
        if L in res.eg_ansatz:
            ax.axhline(res.eg_ansatz[L], color=c, ls=":", lw=1)
    label(ax, "alpha", "eg", logx=True, logy=True,
          title=f"erf, first layer only, $M={res.M}$, $\\eta={res.eta:g}$, $\\sigma={res.sigma:g}$")
    legend_below(ax, ncol=3, handles=[*_entries(ax).values(),
                                      proxy("dotted: symmetric fixed point", "0.3", ls=":")])
    return fig


def fig_first_layer_final(res):
    """ε_g* against L for erf, linear and ReLU (three panels, two per row)."""
    fig, (a, b, c), _ = panels(3, 3.5)
    L = np.asarray(res.L)
    e = res.erf
    ode_line(a, L, e["ode"], f"ODE at $\\alpha={_sci(e['alpha'])}$", ACT_COLORS["erf"], marker="o")
    if e.get("ansatz") is not None:
        reference_line(a, L, e["ansatz"], "symmetric fixed point (exact)", "k", ls="--")
    reference_line(a, L, e["leading"], r"$\frac{\eta\sigma^2}{2\pi}(L + M/\sqrt{3})$", "0.5", ls=":")
    label(a, "L", "eg_star", title=f"(a) erf ($\\eta={res.eta:g}$)")
    li = res.linear
    ode_line(b, L, li["ode"], f"ODE at $\\alpha={_sci(li['alpha'])}$", ACT_COLORS["linear"], marker="o")
    reference_line(b, L, li["exact"], r"$\eta\sigma^2 K / (2(2-\eta K))$", "k")
    label(b, "L", "eg_star", title=f"(b) linear ($\\eta={res.eta:g}$)")
    r = res.relu
    ode_line(c, r["ode_L"], r["ode"], f"ODE at $\\alpha={_sci(r['alpha'])}$", ACT_COLORS["relu"],
             marker="o")
    sgd_points(c, L, r["sgd_mean"], r["sgd_err"],
               f"SGD ($N={r['N']}$, {r['runs']} runs, $\\alpha\\approx{_sci(r['sgd_alpha'])}$)",
               "k", "s")
    label(c, "L", "eg_star", title=f"(c) ReLU ($\\eta={r['eta']:g}$)")
    for ax in (a, b, c):
        ax.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
        ax.set_xticks(L)
        ax.set_ylim(bottom=0)
        legend_below(ax)
    return fig


def fig_collapse(res):
    """ε_g*/(ησ²) against L for several (η, σ): the curves collapse."""
    fig, ax = plt.subplots(figsize=(COLUMN_IN, 4.4))
    markers = "osD^v<>"
    for i, ((eta, sigma), y) in enumerate(res.ratio.items()):
        ax.plot(res.L, y, marker=markers[i % len(markers)], ls=LINESTYLES[i % len(LINESTYLES)],
                lw=1, mfc="white", color=COLORS[i % len(COLORS)],
                label=f"$\\eta={eta:g}$, $\\sigma={sigma:g}$")
    reference_line(ax, res.L, res.leading, r"$(L + M/\sqrt{3})/2\pi$ (leading order)", "k")
    label(ax, "L", r"$\epsilon_g^* / (\eta\sigma^2)$")
    ax.set_xticks(res.L)
    legend_below(ax, ncol=3)
    return fig


def fig_slow_mode(res):
    """Long integration for L >= 2: ε_g, the correlation and the norms of the extra units
    (three panels, two per row; equal curves get different dash patterns)."""
    fig, (a, b, c), _ = panels(3, 3.5)
    tr = res.trajectory
    ode_line(a, tr.alpha[1:], _positive(tr.eg[1:]), "ODE, random initialisation", COLORS[0])
    a.axhline(res.eg_ansatz, color="k", ls="--", lw=1.2, label="symmetric fixed point")
    label(a, "alpha", "eg", logx=True, logy=True, title=f"(a) erf, $K={res.K}$, $M={res.M}$")
    for j, (k, l) in enumerate(res.extra_pairs):
        ode_line(b, tr.alpha, res.extra_corr[:, j], f"units {k + 1}, {l + 1}", COLORS[(j + 1) % 8],
                 ls=LINESTYLES[j % len(LINESTYLES)])
    label(b, "alpha", r"$Q_{kl}/\sqrt{Q_{kk}Q_{ll}}$", logx=True, title="(b) extra units' correlation")
    b.set_ylim(-1.05, 1.05)
    for j, k in enumerate(res.extra):
        ode_line(c, tr.alpha[1:], res.extra_norm[1:, j], f"$Q_{{{k + 1}{k + 1}}}$", COLORS[(j + 1) % 8],
                 ls=LINESTYLES[j % len(LINESTYLES)])
    label(c, "alpha", r"$Q_{kk}$ (extra units)", logx=True, logy=True,
          title="(c) the anti-aligned pair grows")
    legend_below(a)
    legend_below(b, title=COINCIDE if len(res.extra_pairs) > 1 else None)
    legend_below(c, title=COINCIDE)
    return fig


# ------------------------------------------------------------------------------------------
# chapter 3
# ------------------------------------------------------------------------------------------
def fig_both_layers_curves(res):
    """ε_g(α) with both layers trained, one panel per activation: ODE lines, reduced-SGD markers
    (mean ± s.e. over runs) for some K, dotted: erf denoising fixed points; one shared legend."""
    acts = list(res.trajectories)
    fig, axes, spare = panels(len(acts), 3.3)
    entries = {}
    for ax, act in zip(axes, acts):
        for i, (K, tr) in enumerate(res.trajectories[act].items()):
            c = COLORS[i % len(COLORS)]
            ode_line(ax, tr.alpha[1:], _positive(tr.eg[1:]), f"ODE, $K={K}$", c)
            sim = res.sgd.get(act, {}).get(K)
            if sim is not None:
                m, s = _sgd_stats(sim.eg, sem=True)
                sgd_points(ax, sim.alpha[1:], m[1:], None if s is None else s[1:], None, c, ms=4)
            if act in res.fixed_points:
                ax.axhline(res.fixed_points[act][i], color=c, ls=":", lw=1)
        eta = res.settings[act].eta
        label(ax, "alpha", "eg", logx=True, logy=True,
              title=f"{act} ($\\eta=\\eta_v={eta:g}$)")
        entries.update(_entries(ax))
    handles = [*entries.values(), proxy("reduced SGD (mean ± s.e.)", "0.3", marker="o"),
               proxy("dotted: erf denoising fixed point", "0.3", ls=":")]
    if spare is not None:
        spare.legend(handles=handles, loc="center", ncol=1)
    else:
        legend_below(axes[-1], ncol=2, handles=handles)
    return fig


def fig_both_layers_final(res):
    """ε_g against K with both layers trained: the ODE at alpha_read (erf: with the denoising
    fixed points and the (M/K) scaling). SGD is compared with the ODE in fig_both_layers_curves."""
    acts = list(res.ode)
    fig, axes, _ = panels(len(acts), 3.5)
    for ax, act in zip(axes, acts):
        K = np.asarray(res.K[act])
        c = ACT_COLORS[act]
        ode_line(ax, K, res.ode[act], f"ODE at $\\alpha={_sci(res.alpha_read[act])}$", c, marker="o")
        if act in res.fixed_points:
            fp = res.fixed_points[act]
            reference_line(ax, K, fp, "denoising fixed point", "k", marker="x", ms=6)
            Kf = np.linspace(K.min(), K.max(), 50)
            reference_line(ax, Kf, res.M * res.fp_at_M[act] / Kf, r"$(M/K)\,\epsilon_g^*(K=M)$",
                           "0.5", ls=":")
        label(ax, "K", "eg", title=act)
        ax.set_xticks(K)
        ax.set_ylim(0, 1.15 * max(np.max(res.ode[act]), np.max(res.fixed_points.get(act, 0))))
        ax.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
        legend_below(ax)
    return fig


# ------------------------------------------------------------------------------------------
# chapter 4
# ------------------------------------------------------------------------------------------
def fig_fixed_point_maps(res):
    """Q, R and v at the end states / fixed points: one row per activation, first layer only on
    the left and both layers on the right; one colour scale and one labelled colorbar per
    quantity (common to all rows); units numbered from 1."""
    states = res.states
    acts = list(dict.fromkeys(name.split(",")[0] for name in states))
    modes = list(dict.fromkeys(name.split(", ")[1] for name in states))
    K, M = np.asarray(next(iter(states.values())).R).shape
    widths = ([K, M, 1, 0.5] * len(modes))[:-1]
    fig, axes = plt.subplots(len(acts), len(widths), figsize=(COLUMN_IN, 1.7 * len(acts) + 1.7),
                             gridspec_kw={"width_ratios": widths}, squeeze=False)
    fig.get_layout_engine().set(w_pad=0.01, wspace=0.0)
    vmax = {q: max(float(np.abs(np.asarray(getattr(st, q))).max()) for st in states.values())
            for q in ("Q", "R", "v")}
    ims = {}
    for r, act in enumerate(acts):
        for m, mode in enumerate(modes):
            aq, ar, av = axes[r, 4 * m: 4 * m + 3]
            st = states.get(f"{act}, {mode}")
            if st is None:
                continue
            ims["Q"] = heatmap(aq, st.Q, vmax=vmax["Q"])
            ims["R"] = heatmap(ar, st.R, vmax=vmax["R"])
            ims["v"] = heatmap(av, np.asarray(st.v)[:, None], vmax=vmax["v"])
            av.set_xticks([])
            ar.tick_params(labelleft=False)
            av.tick_params(labelleft=False)
            if r == 0:
                for ax, q in zip((aq, ar, av), ("Q", "R", "v")):
                    ax.set_title(f"${q}$" + (f"\n{mode}" if q == "R" else ""), fontsize=10)
            if m == 0:
                aq.set_ylabel(f"{act}\nstudent $k$", fontsize=9.5)
            if r == len(acts) - 1:
                aq.set_xlabel("student $l$", fontsize=9.5)
                ar.set_xlabel("teacher $n$", fontsize=9.5)
    for ax in axes[:, 3::4].ravel():
        ax.axis("off")
    for q, im in ims.items():
        cb = fig.colorbar(im, ax=axes, orientation="horizontal", location="bottom",
                          fraction=0.04, aspect=40, pad=0.02)
        cb.set_label(f"${q}$ (common scale for all panels)", fontsize=9.5)
    return fig


def fig_spectra(res):
    """Real parts of the eigenvalues of the drift's Jacobian (symlog axis): ticks coloured by
    activation for stable/unstable directions, grey for soft modes (|Re λ| below the soft-mode
    threshold). Fixed points (symmetric or Newton-polished) on top; below a dashed line, states
    that are not fixed points (ends of integrations), whose spectra are only indicative."""
    fixed = [n for n in res.eigenvalues if res.spectrum_of[n].endswith("fixed point")]
    names = fixed + [n for n in res.eigenvalues if n not in fixed]  # fixed points first
    fig, ax = plt.subplots(figsize=(COLUMN_IN, 0.8 * len(names) + 1.9))
    if 0 < len(fixed) < len(names):  # separate the spectra of states that are not fixed points
        ax.axhline(len(fixed) - 0.5, color="k", lw=1.0, ls="--")
        ax.text(0.99, len(fixed) - 0.55, "above: fixed points; below: end states (not fixed points)",
                transform=ax.get_yaxis_transform(), fontsize=MIN_FONT_PT, ha="right", va="bottom")
    for i, name in enumerate(names):
        ev = np.real(np.asarray(res.eigenvalues[name]))
        soft = soft_mask(ev, res.soft_tol[name])
        act = name.split(",")[0]
        ax.plot(ev[~soft], np.full((~soft).sum(), i), "|", ms=13, mew=1.6, color=ACT_COLORS[act])
        ax.plot(ev[soft], np.full(soft.sum(), i), "|", ms=13, mew=1.6, color="0.6")
    ax.set_yticks(range(len(names)), [""] * len(names))
    for i, n in enumerate(names):
        ax.text(0.01, i - 0.32, f"{n} ({res.spectrum_of[n]}): {res.n_soft[n]} soft, "
                f"max Re $\\lambda$ = {res.max_real[n]:.1e}",
                transform=ax.get_yaxis_transform(), fontsize=MIN_FONT_PT, va="bottom")
    ax.set_xscale("symlog", linthresh=res.linthresh)
    lo = -10.0 ** np.ceil(np.log10(max(-min(np.real(e).min() for e in res.eigenvalues.values()), 1e-3)))
    ax.set_xlim(1.5 * lo, 1e-2)
    ticks = [t for t in (-1.0, -1e-2, -1e-4, -1e-6, 0.0, 1e-6, 1e-4, 1e-2) if t >= 1.5 * lo]
    ax.set_xticks(ticks)
    ax.axvline(0, color="k", lw=0.8)
    ax.grid(True, axis="x")
    ax.set_ylim(len(names) - 0.5, -0.75)
    label(ax, r"Re $\lambda$ (eigenvalues of the drift's Jacobian)")
    handles = [proxy(a, c, marker="|", mew=1.6, ms=10) for a, c in ACT_COLORS.items()]
    legend_below(ax, ncol=4, handles=[*handles, proxy("soft mode", "0.6", marker="|", mew=1.6, ms=10)])
    return fig
