r"""Chapter 4: the ReLU first-layer fixed points with split units, reduced by merging.

By positive homogeneity, n identical ReLU units with v = 1 compute what one unit with n times
their weight computes, and SGD moves their sum like one unit with learning rate n η
(:mod:`tsode.split_units`). A student with K = n M whose units split evenly over the M teacher
units therefore has the fixed point of the K = M student at learning rate n η: for L = K − M =
0, M, 2M, ... the reduced (merged) system is polished by Newton without the neutral split
direction. :func:`split_units` computes these, the state Newton finds for the unmerged K = 4
student (chapter 4's table), and reads the SGD values of chapter 2's cached long run
(``book/data/first_layer_relu.nc``, read only). Registered as ``experiments.SETTINGS["split_units"]``.
"""

from __future__ import annotations

import json

import numpy as np

from ..asymptotics import fixed_point
from ..order_parameters import OrderParameters, Setup, generalisation_error
from ..split_units import merge_units, merged_setup, parallel_groups
from . import experiments as ex

#: L with an even split of the K = M + L units over the M = 2 teacher units (L multiple of M);
#: ``split_tol``: cosine tolerance for calling two units of the unmerged K = 4 state parallel.
SETTINGS = dict(
    common=dict(split_L=[0, 2, 4], split_M=2, split_eta=0.2, split_sigma=0.1, split_tol=0.02),
    fast=dict(),
    full=dict(),
)
ex.SETTINGS.setdefault("split_units", SETTINGS)


def _teacher_state(M: int) -> OrderParameters:
    """The K = M student equal to the teacher (Q = R = T = I, v = v* = 1): Newton's start."""
    eye = np.eye(M)
    return OrderParameters(Q=eye, R=eye, T=eye, v=np.ones(M), v_star=np.ones(M))


def _sgd_long_run(s) -> dict:
    """Chapter 2's cached ReLU SGD: {L: (mean, standard error) of eps_g at the last alpha}."""
    from .long_runs import load

    ds = load("first_layer_relu", eta=s["split_eta"], sigma=s["split_sigma"], M=s["split_M"])
    out = {"alpha": float(ds.alpha.values[-1]), "N": int(json.loads(ds.attrs["spec"])["N"])}
    for L in ds.L.values:
        eg = ds.eg.sel(L=L).values[:, -1]
        out[int(L)] = (float(eg.mean()), float(eg.std(ddof=1) / np.sqrt(eg.size)), eg.size)
    return out


@ex._timed
def split_units(mode: str = "full", seed: int = 0, overrides=None) -> ex.Result:
    r"""ε_g* of the ReLU first layer (M = 2, η = 0.2, σ = 0.1) with evenly split units, from the
    merged fixed points, against chapter 2's SGD; and the unmerged K = 4 state of chapter 4.

    Returns ``L`` (list), ``eg_merged`` / ``max_re_merged`` ({L: ε_g*, largest Re λ of the
    merged fixed point}), ``sgd`` ({L: (mean, s.e., runs)}, ``alpha``), the K = 4 Newton state
    ``state4`` with ``cos4`` (cosine of its paired units), ``groups4`` (at ``split_tol``),
    ``eg4``, and ``eg4_merged`` (Newton on the merge of that state at 2η: the same fixed point as
    from the teacher state). ``accuracy``: of the merged ε_g* (difference of two Newton starts).
    """
    s = ex.settings("split_units", mode, None, ex.check_overrides(overrides))
    M = s["split_M"]
    setup = Setup("relu", eta=s["split_eta"], sigma=s["split_sigma"])
    eg, top, acc = {}, {}, {}
    for L in s["split_L"]:
        n = (L + M) // M
        fp = fixed_point(_teacher_state(M), Setup("relu", eta=n * setup.eta, sigma=setup.sigma))
        eg[L], top[L] = generalisation_error(fp.state, "relu"), float(np.real(fp.eigenvalues).max())
    fps = ex.settings("fixed_points", mode, None, ex.check_overrides(overrides))
    case = ex._fixed_point_case(("relu", "first", "small", s["split_eta"], 1e3, True), fps, seed)
    state4 = case["state"]
    Q = np.asarray(state4.Q)
    cos = Q / np.sqrt(np.outer(np.diag(Q), np.diag(Q)))
    groups = parallel_groups(state4, s["split_tol"])
    res = ex.Result(L=list(s["split_L"]), eg_merged=eg, max_re_merged=top, settings=s,
                    sgd=_sgd_long_run(s), state4=state4, groups4=groups, eg4=float(
                        generalisation_error(state4, "relu")),
                    cos4=float(max(cos[g[0], g[1]] for g in groups if len(g) > 1)))
    fp4 = fixed_point(merge_units(state4, groups, s["split_tol"]), merged_setup(setup, groups))
    res.eg4_merged = float(generalisation_error(fp4.state, "relu"))
    for L in res.L:
        acc[L] = abs(res.eg4_merged - eg[L]) if (L + M) // M == 2 else 1e-12 * eg[L]
    res.accuracy = dict(eg_merged=acc)
    return res


def records(res) -> list[dict]:
    """summary.json records: merged fixed points (fixed_point) and the SGD beside them."""
    s = res.settings
    base = dict(chapter=4, activation="relu", layers="first", M=s["split_M"], eta=s["split_eta"],
                sigma=s["split_sigma"])
    out = []
    for L in res.L:
        K = s["split_M"] + L
        claim = f"ReLU first layer, even split (K = {K}): eps_g* = that of K = M at {K // 2} eta"
        out.append(dict(base, id=f"ch4-split-fp-L{L}", claim=claim, quantity="eps_g*",
                        value=res.eg_merged[L], stderr=None, method="fixed_point", alpha=None,
                        N=None, runs=None, K=K, reference=res.sgd[L][0],
                        reference_source="chapter 2 SGD long run (book/data/first_layer_relu.nc)"))
        out.append(dict(base, id=f"ch4-split-sgd-L{L}", claim=claim, quantity="eps_g",
                        value=res.sgd[L][0], stderr=res.sgd[L][1], method="sgd_reduced",
                        alpha=res.sgd["alpha"], N=res.sgd["N"], runs=res.sgd[L][2], K=K,
                        reference=None, reference_source=None))
    return out


def fixed_point_records(res) -> list[dict]:
    """summary.json records of chapter 4's table (:func:`experiments.fixed_points`): ε_g of each
    state, method ``fixed_point`` for Newton-polished states, ``ode`` for ends of integrations
    (including erf with the first layer, whose state is the slow mode's at α = 10⁴)."""
    s = res.settings
    out = []
    for case in s["cases"]:
        act, layers, _, eta = case[:4]
        name = f"{act}, {layers} layer" + ("s" if layers == "both" else "")
        fixed = res.spectrum_of[name] == "fixed point"  # the state is the polished one
        out.append(dict(
            id=f"ch4-{act}-{layers}", chapter=4, claim=f"state reached: {name}",
            quantity="eps_g", value=float(res.eg[name]), stderr=None,
            method="fixed_point" if fixed else "ode", alpha=None if fixed else res.alpha[name],
            N=None, runs=None, activation=act, layers=layers, K=res.K, M=res.M, eta=eta,
            sigma=s["sigma"], reference=None, reference_source=None))
    return out


def fig_split_units(res):
    """ε_g* against L: chapter 2's SGD (mean ± s.e. at the last α of the long run), the merged
    fixed points of even splits, and the state Newton finds for the unmerged K = 4 student."""
    import matplotlib.pyplot as plt

    from . import plotting as pl

    fig, ax = plt.subplots(figsize=(pl.COLUMN_IN * 0.8, 4.2))
    Ls = [L for L in res.sgd if isinstance(L, int)]
    pl.sgd_points(ax, Ls, [res.sgd[L][0] for L in Ls], [res.sgd[L][1] for L in Ls],
                  f"SGD, $N={res.sgd['N']}$, $\\alpha={pl._sci(res.sgd['alpha'])}$ (chapter 2)",
                  pl.COLORS[0], "o")
    pl.reference_line(ax, res.L, [res.eg_merged[L] for L in res.L],
                      "merged fixed point (even split)", "k", ls="none", marker="x", ms=7, mew=1.5)
    L4 = len(res.state4.v) - res.settings["split_M"]
    ax.plot([L4], [res.eg4], "D", color=pl.COLORS[1], mfc="none", ms=8, mew=1.4,
            label=f"unmerged $K={len(res.state4.v)}$ Newton state")
    pl.label(ax, "L", "eg_star", title=f"ReLU, first layer, $\\eta={res.settings['split_eta']}$")
    ax.set_xticks(Ls)
    ax.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    pl.legend_below(ax)
    return fig
