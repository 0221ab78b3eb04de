r"""Plotting style and the figures of the book.

One consistent style for every chapter: ODE solutions are lines, SGD simulations are markers with
error bars (mean ± one standard deviation over runs unless stated otherwise), closed forms and
fixed points are dashed or dotted lines, axes carry the paper's symbols (:math:`\alpha`,
:math:`\epsilon_g`, :math:`Q`, :math:`R`, ...), and log scales are used where the physics is
multiplicative (time, errors).

Importing this module applies the style (:func:`use_style`). Inside IPython/Jupyter it also makes
inline PNG figures byte-reproducible: no ``Software: Matplotlib version ...`` text chunk is written,
so re-executing a notebook with another matplotlib patch release does not change its bytes.

Every ``fig_*`` function takes the result of the matching :mod:`tsode.book.experiments` function and
returns a :class:`matplotlib.figure.Figure`; the notebooks then call ``plt.show()``.
"""

from __future__ import annotations

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import TwoSlopeNorm

__all__ = [
    "COLORS",
    "ACT_COLORS",
    "use_style",
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

_STYLE = {
    "figure.dpi": 100,
    "savefig.dpi": 100,
    "figure.figsize": (6.4, 4.0),
    "figure.constrained_layout.use": True,
    "font.size": 10.5,
    "axes.titlesize": 11,
    "axes.labelsize": 10.5,
    "legend.fontsize": 9,
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


use_style()


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


def heatmap(ax, A, *, vmax=None, title=None, xlabel=None, ylabel=None, annotate=True, fmt="{:.2f}"):
    """A signed matrix as a heat map centred on zero (blue negative, red positive)."""
    A = np.atleast_2d(np.asarray(A, dtype=float))
    vmax = float(np.abs(A).max()) if vmax is None else float(vmax)
    vmax = vmax if vmax > 0 else 1.0
    im = ax.imshow(A, cmap="RdBu_r", norm=TwoSlopeNorm(0.0, -vmax, vmax), aspect="equal")
    ax.set_xticks(range(A.shape[1]))
    ax.set_yticks(range(A.shape[0]))
    ax.tick_params(length=0, labelsize=8)
    ax.grid(False)
    for s in ax.spines.values():
        s.set_visible(False)
    if annotate and A.size <= 64:
        for (i, j), a in np.ndenumerate(A):
            ax.text(j, i, fmt.format(a), ha="center", va="center", fontsize=7,
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
# chapter 1
# ------------------------------------------------------------------------------------------
def fig_ode_vs_sgd(res):
    """ε_g(α) and the overlaps from the ODE (lines) against full and reduced SGD (markers).

    SGD markers: mean over runs ± standard error of the mean; in panel (b) the student units of
    every run are first relabelled to match the ODE's final specialisation.
    """
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    ode, sims = res.ode, res.sgd
    ode_line(a, ode.alpha[1:], _positive(ode.eg[1:]), "ODE ($N\\to\\infty$)", "k")
    markers = {"full": "o", "reduced": "s"}
    colors = {"full": COLORS[1], "reduced": COLORS[0]}
    for name, tr in sims.items():
        m, s = _sgd_stats(tr.eg, sem=True)
        runs = np.atleast_2d(tr.eg).shape[0]
        sgd_points(a, tr.alpha[1:], m[1:], None if s is None else s[1:],
                   f"SGD, {name} engine ($N={res.N}$, {runs} runs)", colors[name], markers[name])
    label(a, "alpha", "eg", logx=True, logy=True, title="(a) generalisation error")
    a.legend(loc="lower left")
    K, M = ode.R.shape[1:]
    al = res.aligned["reduced"]
    t = sims["reduced"].alpha
    for k in range(K):
        for n in range(M):
            c = COLORS[(k * M + n) % len(COLORS)]
            ode_line(b, ode.alpha, ode.R[:, k, n], f"$R_{{{k + 1}{n + 1}}}$", c)
            m, s = _sgd_stats(al["R"][:, :, k, n], sem=True)
            sgd_points(b, t[1:], m[1:], None if s is None else s[1:], None, c, "s", ms=4)
    for k in range(K):
        ode_line(b, ode.alpha, ode.Q[:, k, k], "$Q_{kk}$" if k == 0 else None, "0.45", ls=":")
    label(b, "alpha", "overlaps", logx=True, title="(b) order parameters (reduced SGD markers)")
    b.legend(loc="upper left", ncol=2)
    return fig


def fig_convergence(res):
    """sup_α |ε_g^SGD − ε_g^ODE| against N with the fitted power law and the N^(-1/2) rate."""
    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    N = np.asarray(res.N, dtype=float)
    sgd_points(ax, N, res.dev_mean, res.dev_err, "reduced SGD (mean ± s.e.)", COLORS[0], "s")
    Ns = np.geomspace(N.min() / 1.5, N.max() * 1.5, 50)
    ode_line(ax, Ns, np.exp(res.fit_intercept) * Ns**res.slope,
             f"fit: slope {res.slope:.2f}", COLORS[0], lw=1.2)
    ref = res.dev_mean[0] * (Ns / N[0]) ** -0.5
    reference_line(ax, Ns, ref, r"$\propto N^{-1/2}$ (theorem)")
    label(ax, "N", r"$\langle \sup_\alpha |\epsilon_g^{\rm SGD} - \epsilon_g^{\rm ODE}| \rangle$",
          logx=True, logy=True)
    ax.legend()
    return fig


# ------------------------------------------------------------------------------------------
# chapter 2
# ------------------------------------------------------------------------------------------
def fig_first_layer_curves(res):
    """ε_g(α) for K = M ... M+L (ODE lines) with the fixed-point values (dotted)."""
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for i, (L, tr) in enumerate(res.trajectories.items()):
        c = COLORS[i % len(COLORS)]
        ode_line(ax, tr.alpha[1:], _positive(tr.eg[1:]), f"$L={L}$ ($K={res.M + L}$)", c)
        if L in res.eg_ansatz:
            ax.axhline(res.eg_ansatz[L], color=c, ls=":", lw=1)
    label(ax, "alpha", "eg", logx=True, logy=True,
          title=f"erf, first layer only, $M={res.M}$, $\\eta={res.eta:g}$, $\\sigma={res.sigma:g}$")
    ax.legend(ncol=2)
    return fig


def fig_first_layer_final(res):
    """ε_g* against L for erf, linear and ReLU (three panels)."""
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
    a, b, c = axes
    L = np.asarray(res.L)
    # erf
    e = res.erf
    ode_line(a, L, e["ode"], f"ODE at $\\alpha={_sci(e['alpha'])}$", ACT_COLORS["erf"], marker="o")
    if e.get("ansatz") is not None:
        reference_line(a, L, e["ansatz"], "symmetric fixed point (exact)", "k", ls="--")
    reference_line(a, L, e["leading"], r"$\frac{\eta\sigma^2}{2\pi}(L + M/\sqrt{3})$", "0.5", ls=":")
    for ax in axes:
        ax.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    label(a, "L", "eg_star", title=f"(a) erf ($\\eta={res.eta:g}$)")
    a.legend()
    # linear
    li = res.linear
    ode_line(b, L, li["ode"], f"ODE at $\\alpha={_sci(li['alpha'])}$", ACT_COLORS["linear"], marker="o")
    reference_line(b, L, li["exact"], r"$\eta\sigma^2 K / (2(2-\eta K))$", "k")
    label(b, "L", "eg_star", title=f"(b) linear ($\\eta={res.eta:g}$)")
    b.legend()
    # relu
    r = res.relu
    ode_line(c, r["ode_L"], r["ode"], f"ODE at $\\alpha={_sci(r['alpha'])}$", ACT_COLORS["relu"],
             marker="o")
    sgd_points(c, L, r["sgd_mean"], r["sgd_err"],
               f"SGD ($N={r['N']}$, {r['runs']} runs, $\\alpha\\approx{_sci(r['sgd_alpha'])}$)",
               "k", "s")
    c.legend()
    label(c, "L", "eg_star", title=f"(c) ReLU ($\\eta={r['eta']:g}$)")
    for ax in axes:
        ax.set_xticks(L)
        ax.set_ylim(bottom=0)
    return fig


def fig_collapse(res):
    """ε_g*/(ησ²) against L for several (η, σ): the curves collapse."""
    fig, ax = plt.subplots(figsize=(5.6, 3.8))
    markers = "osD^v<>"
    for i, ((eta, sigma), y) in enumerate(res.ratio.items()):
        ax.plot(res.L, y, marker=markers[i % len(markers)], ls="-", lw=1, mfc="white",
                color=COLORS[i % len(COLORS)], label=f"$\\eta={eta:g}$, $\\sigma={sigma:g}$")
    reference_line(ax, res.L, res.leading, r"$(L + M/\sqrt{3})/2\pi$ (leading order)", "k")
    label(ax, "L", r"$\epsilon_g^* / (\eta\sigma^2)$")
    ax.set_xticks(res.L)
    ax.legend()
    return fig


def fig_slow_mode(res):
    """Long integration for L >= 2: ε_g, the correlation and the norms of the extra units."""
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(12, 3.6))
    tr = res.trajectory
    ode_line(a, tr.alpha[1:], _positive(tr.eg[1:]), "ODE from random initialisation", COLORS[0])
    a.axhline(res.eg_ansatz, color="k", ls="--", lw=1.2, label="symmetric fixed point")
    label(a, "alpha", "eg", logx=True, logy=True, title=f"(a) erf, $K={res.K}$, $M={res.M}$")
    a.legend(loc="upper right")
    for j, (k, l) in enumerate(res.extra_pairs):
        ode_line(b, tr.alpha, res.extra_corr[:, j], f"units {k + 1}, {l + 1}", COLORS[(j + 1) % 8])
    label(b, "alpha", r"$Q_{kl}/\sqrt{Q_{kk}Q_{ll}}$", logx=True,
          title="(b) correlation of the extra units")
    b.set_ylim(-1.05, 1.05)
    b.legend()
    for j, k in enumerate(res.extra):
        ode_line(c, tr.alpha[1:], res.extra_norm[1:, j], f"$Q_{{{k + 1}{k + 1}}}$", COLORS[(j + 1) % 8])
    label(c, "alpha", r"norm$^2$ $Q_{kk}$ of the extra units", logx=True, logy=True,
          title="(c) the anti-aligned pair grows")
    c.legend()
    return fig


# ------------------------------------------------------------------------------------------
# chapter 3
# ------------------------------------------------------------------------------------------
def fig_both_layers_curves(res):
    """ε_g(α) with both layers trained, one panel per activation: ODE lines, reduced-SGD markers
    (mean ± s.e. over runs) for some K, dotted: erf denoising fixed points."""
    acts = list(res.trajectories)
    fig, axes = plt.subplots(1, len(acts), figsize=(4.2 * len(acts), 3.8), squeeze=False)
    for ax, act in zip(axes[0], acts):
        for i, (K, tr) in enumerate(res.trajectories[act].items()):
            c = COLORS[i % len(COLORS)]
            ode_line(ax, tr.alpha[1:], _positive(tr.eg[1:]), f"$K={K}$", c)
            sim = res.sgd.get(act, {}).get(K)
            if sim is not None:
                m, s = _sgd_stats(sim.eg, sem=True)
                sgd_points(ax, sim.alpha[1:], m[1:], None if s is None else s[1:], None, c, ms=4)
            if act in res.fixed_points:
                ax.axhline(res.fixed_points[act][i], color=c, ls=":", lw=1)
        eta = res.settings[act]["eta"]
        label(ax, "alpha", "eg", logx=True, logy=True,
              title=f"{act} ($\\eta=\\eta_v={eta:g}$)")
        ax.legend(ncol=2, loc="lower left")
    return fig


def fig_both_layers_final(res):
    """ε_g against K with both layers trained: the ODE at alpha_read (erf: with the denoising
    fixed points and the (M/K) scaling). SGD is compared with the ODE in fig_both_layers_curves."""
    acts = list(res.ode)
    fig, axes = plt.subplots(1, len(acts), figsize=(4.2 * len(acts), 3.6), squeeze=False)
    for ax, act in zip(axes[0], acts):
        K = np.asarray(res.K[act])
        c = ACT_COLORS[act]
        ode_line(ax, K, res.ode[act], f"ODE at $\\alpha={_sci(res.alpha_read[act])}$", c, marker="o")
        if act in res.fixed_points:
            fp = res.fixed_points[act]
            reference_line(ax, K, fp, "denoising fixed point", "k", marker="x", ms=6)
            Kf = np.linspace(K.min(), K.max(), 50)
            reference_line(ax, Kf, fp[0] * K[0] / Kf, r"$(M/K)\,\epsilon_g^*(K=M)$", "0.5", ls=":")
        label(ax, "K", "eg", title=act)
        ax.set_xticks(K)
        ax.set_ylim(0, 1.15 * max(np.max(res.ode[act]), np.max(res.fixed_points.get(act, 0))))
        ax.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
        ax.legend(fontsize=8, loc="lower left")
    return fig


# ------------------------------------------------------------------------------------------
# chapter 4
# ------------------------------------------------------------------------------------------
def fig_fixed_point_maps(res):
    """Q, R and v at the end states / fixed points, one row per (activation, training mode)."""
    rows = list(res.states.items())
    fig, axes = plt.subplots(len(rows), 3, figsize=(4.6, 1.9 * len(rows)),
                             gridspec_kw={"width_ratios": [4, 2, 1]}, layout="constrained")
    axes = np.atleast_2d(axes)
    for (name, st), (aq, ar, av) in zip(rows, axes):
        vmax = max(np.abs(st.Q).max(), np.abs(st.R).max())
        heatmap(aq, st.Q, vmax=vmax, title="$Q$" if aq is axes[0, 0] else None)
        heatmap(ar, st.R, vmax=vmax, title="$R$" if ar is axes[0, 1] else None)
        heatmap(av, np.asarray(st.v)[:, None], vmax=max(1.0, np.abs(st.v).max()),
                title="$v$" if av is axes[0, 2] else None)
        av.set_xticks([])
        aq.set_ylabel(name.replace(", ", "\n"), fontsize=9)
    axes[-1, 0].set_xlabel("student $l$", fontsize=9)
    axes[-1, 1].set_xlabel("teacher $n$", fontsize=9)
    return fig


def fig_spectra(res):
    """Real parts of the eigenvalues of the drift's Jacobian (symlog axis): coloured ticks for
    stable/unstable directions, grey for soft modes (|Re λ| below the soft-mode threshold)."""
    names = list(res.eigenvalues)
    fig, ax = plt.subplots(figsize=(9, 0.5 * len(names) + 1.4))
    for i, name in enumerate(names):
        ev = np.real(np.asarray(res.eigenvalues[name]))
        soft = np.abs(ev) < res.soft_tol[name]
        act = name.split(",")[0]
        ax.plot(ev[~soft], np.full((~soft).sum(), i), "|", ms=13, mew=1.6, color=ACT_COLORS[act])
        ax.plot(ev[soft], np.full(soft.sum(), i), "|", ms=13, mew=1.6, color="0.6")
        ax.text(1.02, i, f"{res.n_soft[name]} soft; max Re $\\lambda$ = {ev.max():.1e}",
                transform=ax.get_yaxis_transform(), va="center", fontsize=8)
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels([f"{n}\n({res.spectrum_of[n]})" for n in names], fontsize=8)
    ax.set_xscale("symlog", linthresh=res.linthresh)
    lo = -10.0 ** np.ceil(np.log10(max(-min(np.real(e).min() for e in res.eigenvalues.values()), 1e-3)))
    ax.set_xlim(1.5 * lo, 1e-2)
    ticks = [t for t in (-1.0, -1e-2, -1e-4, -1e-6, 0.0, 1e-6, 1e-4, 1e-2) if t >= 1.5 * lo]
    ax.set_xticks(ticks)
    ax.axvline(0, color="k", lw=0.8)
    ax.grid(True, axis="x")
    ax.set_ylim(len(names) - 0.5, -0.5)
    label(ax, r"Re $\lambda$, eigenvalues of the Jacobian of the drift")
    return fig
