r"""Chapter 4: the ReLU first-layer fixed points with split units, reduced by merging.

By positive homogeneity, n identical ReLU units with v = 1 compute what one unit with n times
their weight computes, and SGD moves their sum like one unit with learning rate n η
(:mod:`tsode.split_units`). A student with K = n M whose units split evenly over the M teacher
units therefore has the fixed point of the K = M student at learning rate n η: for L = K − M =
0, M, 2M, ... the reduced (merged) system is polished by Newton without the neutral split
direction. :func:`split_units` computes these, the state Newton finds for the unmerged K = 4
student (chapter 4's table), and reads the SGD values of chapter 2's cached long run
(``book/data/first_layer_relu.nc``, read only). Settings: :class:`SplitUnitsSettings`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

import numpy as np

from ..asymptotics import fixed_point
from ..order_parameters import OrderParameters, Setup, generalisation_error
from ..split_units import merge_units, merged_setup, parallel_groups
from .chapter import Result, Settings, register, settings_of, timed
from .fixed_point_maps import FixedPointsSettings, _fixed_point_case

__all__ = ["SplitUnitsSettings", "SplitUnits", "split_units", "records", "fixed_point_records",
           "fig_split_units"]


@register("split_units")
@dataclass(frozen=True)
class SplitUnitsSettings(Settings):
    """Settings of :func:`split_units` (the same in both modes).

    L : superfluous units K − M with an even split over the M teacher units (multiples of M).
    M : teacher units.
    eta : learning rate (that of chapter 2's cached ReLU long run).
    sigma : label noise.
    tol : cosine tolerance for calling two units of the unmerged K = 4 state parallel.
    """

    L: tuple = (0, 2, 4)
    M: int = 2
    eta: float = 0.2
    sigma: float = 0.1
    tol: float = 0.02


@dataclass(frozen=True, kw_only=True)
class SplitUnits(Result):
    """Result of :func:`split_units`.

    L : list of L (x axis).
    eg_merged : {L: ε_g* of the merged fixed point (K = M at (L + M)/M · η)}; accuracy: the
        difference of two Newton starts at L = M, 1e-12 relative elsewhere.
    max_re_merged : {L: largest Re λ of the merged fixed point}.
    max_re_merged_top : the largest of those (< 0: every merged fixed point is stable).
    sgd : {L: (mean, standard error from the start means, starts, runs per start) of ε_g at the
        last α of chapter 2's cached ReLU SGD long run}, and "alpha", "N" of that run; NaN
        values (and N = starts = runs = 0) when the cache
        is missing or was computed for other settings (e.g. an override of σ): see sgd_missing.
    sgd_missing : "" or why the cached SGD is not available (with the command that recomputes it).
    state4 : OrderParameters, the state Newton finds for the unmerged student (chapter 4's row
        "relu, first layer").
    K4 : its number of units.
    groups4 : its parallel groups (:func:`tsode.split_units.parallel_groups` at ``tol``).
    cos4 : the largest cosine between two units of one group.
    eg4 : ε_g of ``state4``.
    eg4_merged : ε_g* of Newton on the merge of ``state4`` (at the merged learning rates): the
        same fixed point as from the teacher state.
    """

    L: list
    eg_merged: dict
    max_re_merged: dict
    max_re_merged_top: float
    sgd: dict
    sgd_missing: str
    state4: OrderParameters
    K4: int
    groups4: list
    cos4: float
    eg4: float
    eg4_merged: float


def _teacher_state(M: int) -> OrderParameters:
    """The K = M student equal to the teacher (Q = R = T = I, v = v* = 1): Newton's start."""
    eye = np.eye(M)
    return OrderParameters(Q=eye, R=eye, T=eye, v=np.ones(M), v_star=np.ones(M))


def _sgd_long_run(s: SplitUnitsSettings) -> tuple[dict, str]:
    """Chapter 2's cached ReLU SGD: ({L: (mean, standard error, starts, runs per start) of
    eps_g at the last alpha, over all starts and runs, the s.e. from the start means
    (:func:`tsode.book.ensembles.sgd_at`)}, "alpha" and "N"),
    "") — or NaN entries and the reason when the cache is missing or stale for these settings
    (the chapter then shows the reason instead of crashing)."""
    from .ensembles import sgd_at
    from .long_runs import StaleCache, load

    try:
        ds = load("first_layer_relu", eta=s.eta, sigma=s.sigma, M=s.M)
    except StaleCache as e:
        nan = float("nan")
        return {"alpha": nan, "N": 0, **{L: (nan, nan, 0, 0) for L in s.L}}, str(e)
    out = {"alpha": float(ds.alpha.values[-1]), "N": int(json.loads(ds.attrs["spec"])["N"])}
    for L in ds.L.values:
        st = sgd_at(ds, out["alpha"], L=int(L))
        out[int(L)] = (float(st["mean"]), float(st["stderr"]), st["starts"], st["runs"])
    return out, ""


def _unmerged_state(s: SplitUnitsSettings, fps: FixedPointsSettings, seed: int):
    """The unmerged student: chapter 4's row "relu, first layer" (its K, initialisation, α and
    polish) at the split's η, M and σ."""
    case = replace(fps.case("relu", "first"), eta=s.eta)
    return _fixed_point_case(case, fps.replace(M=s.M, sigma=s.sigma), seed)["state"]


@timed
def split_units(settings: SplitUnitsSettings | str = "full", seed: int = 0, overrides=None, *,
                fixed_points_settings: FixedPointsSettings | None = None) -> SplitUnits:
    r"""ε_g* of the ReLU first layer (M = 2, η = 0.2, σ = 0.1) with evenly split units, from the
    merged fixed points, against chapter 2's SGD; and the unmerged K = 4 state of chapter 4.

    ``settings``: a :class:`SplitUnitsSettings`, or a mode with an ``overrides`` dict;
    ``fixed_points_settings``: those of the unmerged state's row (default: of the same mode and
    overrides, or the full mode's when ``settings`` is an instance). See :class:`SplitUnits`.
    """
    s = settings_of("split_units", settings, overrides=overrides)
    fps = fixed_points_settings or settings_of(
        "fixed_points", settings if isinstance(settings, str) else "full", overrides=overrides)
    M = s.M
    eg, top, acc = {}, {}, {}
    for L in s.L:
        n = (L + M) // M
        fp = fixed_point(_teacher_state(M), Setup("relu", eta=n * s.eta, sigma=s.sigma))
        eg[L], top[L] = generalisation_error(fp.state, "relu"), fp.max_real
    state4 = _unmerged_state(s, fps, seed)
    sgd, sgd_missing = _sgd_long_run(s)
    Q = np.asarray(state4.Q)
    cos = Q / np.sqrt(np.outer(np.diag(Q), np.diag(Q)))
    groups = parallel_groups(state4, s.tol)
    setup = Setup("relu", eta=s.eta, sigma=s.sigma)
    fp4 = fixed_point(merge_units(state4, groups, s.tol), merged_setup(setup, groups))
    eg4_merged = float(generalisation_error(fp4.state, "relu"))
    for L in s.L:
        acc[L] = abs(eg4_merged - eg[L]) if (L + M) // M == 2 else 1e-12 * eg[L]
    return SplitUnits(L=list(s.L), eg_merged=eg, max_re_merged=top,
                      max_re_merged_top=max(top.values()), settings=s, sgd=sgd,
                      sgd_missing=sgd_missing,
                      state4=state4, K4=state4.K, groups4=groups,
                      eg4=float(generalisation_error(state4, "relu")),
                      cos4=float(max(cos[g[0], g[1]] for g in groups if len(g) > 1)),
                      eg4_merged=eg4_merged, accuracy=dict(eg_merged=acc))


def records(res) -> list[dict]:
    """summary.json records: merged fixed points (fixed_point) and the SGD beside them."""
    s = res.settings
    base = dict(chapter=4, activation="relu", layers="first", M=s.M, eta=s.eta, sigma=s.sigma)
    out = []
    for L in res.L:
        K = s.M + L
        claim = f"ReLU first layer, even split (K = {K}): eps_g* = that of K = M at {K // 2} eta"
        out.append(dict(base, id=f"ch4-split-fp-L{L}", claim=claim, quantity="eps_g*",
                        value=res.eg_merged[L], stderr=None, method="fixed_point", alpha=None,
                        N=None, runs=None, K=K,
                        reference=None if res.sgd_missing else res.sgd[L][0],
                        reference_source=None if res.sgd_missing else
                        "chapter 2 SGD long run (book/data/first_layer_relu.nc)"))
        if res.sgd_missing:
            continue
        out.append(dict(base, id=f"ch4-split-sgd-L{L}", claim=claim, quantity="eps_g",
                        value=res.sgd[L][0], stderr=res.sgd[L][1], method="sgd_reduced",
                        alpha=res.sgd["alpha"], N=res.sgd["N"], starts=res.sgd[L][2],
                        runs=res.sgd[L][3], K=K,
                        reference=None, reference_source=None))
    return out


def fixed_point_records(res) -> list[dict]:
    """summary.json records of chapter 4's table (:func:`experiments.fixed_points`): ε_g of each
    state, method ``fixed_point`` for Newton-polished states, ``ode`` for ends of integrations
    (including erf with the first layer, whose state is the slow mode's at α = 10⁴)."""
    s = res.settings
    out = []
    for case in s.cases:
        name = case.name
        fixed = res.spectrum_of[name] == "fixed point"  # the state is the polished one
        out.append(dict(
            id=f"ch4-{case.activation}-{case.layers}", chapter=4, claim=f"state reached: {name}",
            quantity="eps_g", value=float(res.eg[name]), stderr=None,
            method="fixed_point" if fixed else "ode", alpha=None if fixed else res.alpha[name],
            N=None, runs=None, activation=case.activation, layers=case.layers, K=res.K, M=res.M,
            eta=case.eta, sigma=s.sigma, reference=None, reference_source=None))
    return out


def fig_split_units(res):
    """ε_g* against L: chapter 2's SGD (mean ± s.e. at the last α of the long run), the merged
    fixed points of even splits, and the state Newton finds for the unmerged K = 4 student."""
    import matplotlib.pyplot as plt

    from . import plotting as pl

    fig, ax = plt.subplots(figsize=(pl.COLUMN_IN * 0.8, 4.2))
    Ls = [L for L in res.sgd if isinstance(L, int)]
    if not res.sgd_missing:
        pl.sgd_points(ax, Ls, [res.sgd[L][0] for L in Ls], [res.sgd[L][1] for L in Ls],
                      f"SGD, $N={res.sgd['N']}$, $\\alpha={pl._sci(res.sgd['alpha'])}$ (chapter 2)",
                      pl.COLORS[0], "o")
    pl.reference_line(ax, res.L, [res.eg_merged[L] for L in res.L],
                      "merged fixed point (even split)", "k", ls="none", marker="x", ms=7, mew=1.5)
    ax.plot([res.K4 - res.settings.M], [res.eg4], "D", color=pl.COLORS[1], mfc="none", ms=8,
            mew=1.4, label=f"unmerged $K={res.K4}$ Newton state")
    pl.label(ax, "L", "eg_star", title=f"ReLU, first layer, $\\eta={res.settings.eta}$")
    ax.set_xticks(Ls)
    ax.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    pl.legend_below(ax)
    return fig
