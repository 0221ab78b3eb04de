r"""Chapter 3, training both layers: ε_g* against K, the denoising fixed points."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from ..classification import classify
from ..ode import integrate
from ..order_parameters import Setup
from .accuracy import fixed_point_accuracy, ode_variants, ratio_accuracy, spread
from .chapter import (Result, Settings, decade_exponent, register, run_sgd, seed_for,
                      settings_of, shared_start, timed)

ACTIVATIONS = ("erf", "relu", "linear")


@functools.lru_cache(maxsize=None)
def _denoiser(K, M, eta, sigma):
    """(ε_g*, accuracy) of the erf denoising fixed point with η_v = η
    (:func:`tsode.asymptotics.denoising_fixed_point`, accuracy: :func:`fixed_point_accuracy`);
    cached per process."""
    from ..asymptotics import denoising_fixed_point

    fp = denoising_fixed_point(K, M, eta, eta, sigma)
    return float(fp.eg), fixed_point_accuracy(fp)


@register("both_layers")
@dataclass(frozen=True)
class BothLayersSettings(Settings):
    """Settings of :func:`both_layers`, one part per activation (``"erf"``, ``"relu"``,
    ``"linear"``); fast mode: smaller N, fewer runs, shorter SGD.

    M : teacher units (orthonormal teacher, v* = 1).
    K : student sizes of the ODEs (and of the erf denoising fixed points).
    eta : learning rate of both layers (η_v = η).
    sigma : standard deviation of the label noise.
    kind : first-layer initialisation of :func:`tsode.initial_state` ("random" for erf,
        "small" for ReLU and linear).
    v_init : student second layer: "scaled" (the authors' start, v at the first layer's scale)
        or "ones".
    alpha_read : α up to which the ODEs run and where ε_g is read (erf, linear: 1e7, where the
        erf denoisers are reached; ReLU: 1e4, it has no finite fixed point either).
    sgd_K : the K simulated by reduced SGD.
    N : input dimension of the SGD runs.
    runs : SGD runs per K.
    alpha_sgd : α up to which SGD runs.
    n_points : SGD read-out times (geometric from α = 1 to alpha_sgd).
    """

    M: int = 2
    K: tuple = (2, 3, 4, 5, 6)
    eta: float = 0.1
    sigma: float = 0.1
    kind: str = "random"
    v_init: str = "scaled"
    alpha_read: float = 1e7
    sgd_K: tuple = (2, 4)
    N: int = 1000
    runs: int = 8
    alpha_sgd: float = 1000.0
    n_points: int = 12

    PARTS = {"erf": {}, "relu": dict(kind="small", alpha_read=1e4),
             "linear": dict(kind="small")}
    MODE_VALUES = {"fast": dict(N=500, runs=4, alpha_sgd=300.0), "full": {}}


@dataclass(frozen=True, kw_only=True)
class BothLayers(Result):
    """Result of :func:`both_layers`; ``act`` is an activation, S = len(K[act]).

    settings : {act: :class:`BothLayersSettings`}.
    M : teacher units.
    K : {act: list of K}.
    alpha_read : {act: α where ε_g is read (end of the ODEs)}.
    trajectories : {act: {K: Trajectory of the ODE}} (α from 0 to alpha_read).
    state0 : {act: {K: OrderParameters}} the initial states (ODE and SGD).
    setup : {act: Setup}.
    ode : {act: (S,) ε_g of the ODE at alpha_read}; printed with ``digits["ode"][act]``.
    ode_at_sgd : {act: (S,) ε_g of the ODE at alpha_sgd}.
    final_v : {act: {K: (K,) v at alpha_read}}.
    final_exponent : {act: (S,) d ln ε_g / d ln α over the last decade before alpha_read}.
    sgd : {act: {K: Trajectory of the reduced SGD runs}} for K in sgd_K.
    sgd_mean, sgd_err : {act: (len(sgd_K),) ε_g at alpha_sgd, mean and standard error over runs}.
    sgd_K, N, runs, alpha_sgd : the SGD settings (common to the activations).
    fixed_points : {"erf": (S,) ε_g* of the denoising fixed points}.
    fp_at_M : {"erf": ε_g* of the denoiser at K = M}.
    fp_reference : {"erf": (S,) (M/K) ε_g*(K = M), the denoising prediction}.
    fp_ratio : {"erf": (S,) K ε_g*(K) / (M ε_g*(K = M)), ~1 for denoisers}.
    fp_halving : {"erf": ε_g*(K = 2M) / ε_g*(K = M)} (~1/2).
    fp_deviation : {"erf": max over K ≤ 2M of |ode / fixed point − 1|}.
    fp_excess : {"erf": (S,) ode / fixed point − 1 at alpha_read, per K}.
    roles_text : {"erf": {K: :func:`tsode.asymptotics.describe` summary of the ODE's state at
        alpha_read}}, e.g. "2 specialised, 1 silent, 2 anti-aligned, 2 anti-aligned pair(s)".
    below_K : {"erf": {K: the K' < K whose denoising fixed point is nearest the ODE value of K
        at alpha_read}} (K itself when its own denoiser is nearer).
    ratio_last : {act: ε_g(largest K) / ε_g(K = M) of the ODE at alpha_read} (NaN without K = M).
    ode_spread : {act: max/min − 1 of ode[act] over K}.
    mean_exponent : {act: mean of final_exponent[act] over K}.
    v_mean_at_M : {act: mean of final_v[act][M]} (NaN without K = M).
    kinds : {act: (S,) what the ODE's state at alpha_read is, per K: "fixed point", "saddle",
        "still drifting" (:func:`tsode.classification.classify` with α = alpha_read)}.
    kinds_text : {act: "K = 2: fixed point; K = 3: still drifting; ..."}.
    """

    M: int
    K: dict
    alpha_read: dict
    trajectories: dict
    state0: dict
    setup: dict
    ode: dict
    ode_at_sgd: dict
    final_v: dict
    final_exponent: dict
    sgd: dict
    sgd_mean: dict
    sgd_err: dict
    sgd_K: tuple
    N: int
    runs: int
    alpha_sgd: float
    fixed_points: dict
    fp_at_M: dict
    fp_reference: dict
    fp_ratio: dict
    fp_halving: dict
    fp_deviation: dict
    fp_excess: dict
    roles_text: dict
    below_K: dict
    ratio_last: dict
    ode_spread: dict
    mean_exponent: dict
    v_mean_at_M: dict
    kinds: dict
    kinds_text: dict


#: the fields of BothLayers that are dicts {act: value}
PER_ACTIVATION = ("K", "alpha_read", "trajectories", "state0", "setup", "ode", "ode_at_sgd",
                  "final_v", "final_exponent", "sgd", "sgd_mean", "sgd_err", "fixed_points",
                  "fp_at_M", "fp_reference", "fp_ratio", "fp_halving", "fp_deviation",
                  "fp_excess", "roles_text", "below_K",
                  "ratio_last", "ode_spread", "mean_exponent", "v_mean_at_M", "kinds",
                  "kinds_text")
#: significant digits the chapter prints of ode[act]: linear networks at alpha = 1e7 drift like
#: alpha^-1/2 and their error is known to ~3e-5 relative at the default tolerances (it moves that
#: much between CPUs), hence 2
ODE_DIGITS = dict(erf=4, relu=4, linear=2)


def _at(values, Ks, K):
    """``values[Ks.index(K)]``, NaN if K is not among Ks."""
    return values[list(Ks).index(K)] if K in Ks else np.nan


def _one_activation(s: BothLayersSettings, act: str, seed: int) -> dict:
    """ODEs (with their accuracy) and SGD of one activation: the per-activation fields of
    :class:`BothLayers` (key -> value for this act) and their accuracies ("acc_" + name)."""
    setup = Setup(act, eta=s.eta, eta_v=s.eta, sigma=s.sigma)
    alphas = np.unique(np.concatenate([[0.0], np.geomspace(1e-2, s.alpha_read, 300),
                                       [s.alpha_sgd]]))
    alphas_sgd = np.concatenate([[0.0], np.geomspace(1.0, s.alpha_sgd, s.n_points)])
    trs, sgd, state0, alts = {}, {}, {}, {}
    for K in s.K:
        state0[K] = shared_start("both_layers.start", K, s.M, s.kind, seed, v=s.v_init)
        trs[K] = integrate(state0[K], setup, s.alpha_read, alphas=alphas)
        alts[K] = ode_variants(state0[K], setup, trs[K])
        if K in s.sgd_K:
            sgd[K] = run_sgd(state0[K], setup, s.N, s.alpha_sgd, engine="reduced",
                             seed=seed_for(seed, "both_layers.sgd", K), n_runs=s.runs,
                             alphas=alphas_sgd)
    i_sgd = int(np.argmin(np.abs(alphas - s.alpha_sgd)))
    end = {K: np.atleast_2d(t.eg)[:, -1] for K, t in sgd.items()}
    ode = np.array([trs[K].eg[-1] for K in s.K])
    exponent = np.array([decade_exponent(trs[K]) for K in s.K])
    final_v = {K: trs[K].v[-1].copy() for K in s.K}
    kinds = [classify(trs[K].final, setup, alpha=s.alpha_read).kind for K in s.K]
    return dict(
        K=list(s.K), alpha_read=s.alpha_read, trajectories=trs, state0=state0, setup=setup,
        ode=ode, ode_at_sgd=np.array([trs[K].eg[i_sgd] for K in s.K]), final_v=final_v,
        final_exponent=exponent, sgd=sgd,
        sgd_mean=np.array([end[K].mean() for K in s.sgd_K]),
        sgd_err=np.array([end[K].std(ddof=1) / np.sqrt(end[K].size) for K in s.sgd_K]),
        ratio_last=float(ode[-1] / _at(ode, s.K, s.M)),
        ode_spread=float(ode.max() / ode.min() - 1),
        mean_exponent=float(exponent.mean()),
        v_mean_at_M=float(final_v[s.M].mean()) if s.M in final_v else np.nan,
        kinds=kinds, kinds_text="; ".join(f"K = {K}: {k}" for K, k in zip(s.K, kinds)),
        acc_ode=np.array([spread(lambda t: t.eg[-1], trs[K], alts[K]) for K in s.K]),
        acc_final_exponent=np.array([spread(decade_exponent, trs[K], alts[K]) for K in s.K]))


def _denoisers(s: BothLayersSettings, ode, acc_ode, trajectories) -> dict:
    """erf: the denoising fixed points for every K and the numbers derived from them (the
    erf-only fields of :class:`BothLayers`, accuracies under "acc_" + name)."""
    from ..asymptotics import describe

    Ks, M = np.array(s.K), s.M
    fps = np.array([_denoiser(K, M, s.eta, s.sigma) for K in s.K])
    at_M, acc_M = _denoiser(M, M, s.eta, s.sigma)
    small = Ks <= 2 * M
    nearest = {K: int(Ks[:i + 1][np.argmin(np.abs(fps[:i + 1, 0] - ode[i]))])
               for i, K in enumerate(s.K)}
    return dict(
        fp_excess=ode / fps[:, 0] - 1,
        acc_fp_excess=ratio_accuracy(ode, acc_ode, fps[:, 0], fps[:, 1]),
        roles_text={K: describe(trajectories[K].final).summary() for K in s.K},
        below_K=nearest,
        fixed_points=fps[:, 0], acc_fixed_points=fps[:, 1], fp_at_M=at_M,
        fp_reference=M * at_M / Ks,
        fp_ratio=Ks * fps[:, 0] / (M * at_M),
        acc_fp_ratio=ratio_accuracy(Ks * fps[:, 0], Ks * fps[:, 1], M * at_M, M * acc_M),
        fp_halving=_denoiser(2 * M, M, s.eta, s.sigma)[0] / at_M,
        fp_deviation=float(np.max(np.abs(ode[small] / fps[small, 0] - 1))) if small.any()
        else np.nan)


def _per_activation(settings, activations, overrides) -> dict:
    """{act: BothLayersSettings}: from a mode string (with ``overrides``), a dict {act:
    settings or mode}, or one BothLayersSettings used for every activation."""
    if isinstance(settings, dict):
        return {a: settings_of("both_layers", settings[a], a, overrides) for a in settings}
    return {a: settings_of("both_layers", settings, a, overrides) for a in activations}


@timed
def both_layers(settings: BothLayersSettings | dict | str = "full", seed: int = 0,
                overrides=None, activations=ACTIVATIONS) -> BothLayers:
    """Both layers trained (η_v = η), orthonormal teacher with v* = 1, student second layer
    from ``v_init`` ("scaled": the authors' start; "ones": v = 1).

    For each activation and K: the ODE from the chapter's initialisation up to ``alpha_read``,
    reduced SGD (``runs`` runs) for K in ``sgd_K`` up to ``alpha_sgd``, and for erf the denoising
    fixed points (:func:`tsode.asymptotics.denoising_fixed_point`) and the (M/K) prediction
    from the one at K = M. ``settings``: a mode ("fast"/"full", with an ``overrides`` dict;
    one part per activation of ``activations``), a dict {act: BothLayersSettings}, or one
    BothLayersSettings used for every activation. Seeds: initial states from the stream
    "both_layers.start" (chapter 4 starts from the same states), SGD "both_layers.sgd" (index K).
    """
    per = _per_activation(settings, activations, overrides)
    out = {act: _one_activation(s, act, seed) for act, s in per.items()}
    for act, s in per.items():
        if act == "erf":
            d = out[act]
            d.update(_denoisers(s, d["ode"], d["acc_ode"], d["trajectories"]))
    fields = {f: {a: d[f] for a, d in out.items() if f in d} for f in PER_ACTIVATION}
    accuracy = {f: {a: d["acc_" + f] for a, d in out.items() if "acc_" + f in d} for f in
                ("ode", "final_exponent", "fixed_points", "fp_ratio", "fp_excess")}
    any_s = next(iter(per.values()))
    return BothLayers(settings=per, M=any_s.M, sgd_K=any_s.sgd_K, N=any_s.N, runs=any_s.runs,
                      alpha_sgd=any_s.alpha_sgd, accuracy=accuracy,
                      digits=dict(ode={a: ODE_DIGITS[a] for a in per}), **fields)


def records(res: BothLayers) -> list[dict]:
    """summary.json records (:func:`tsode.book.pages.record`) of the erf denoising fixed
    points, with the (M/K) ε_g*(K = M) prediction as the reference."""
    if "erf" not in res.fixed_points:
        return []
    s = res.settings["erf"]
    return [dict(id=f"ch3-erf-both-K{K}", chapter=3, claim="denoising: eps_g* decreases like M/K",
                 quantity=f"eps_g* at the denoising fixed point, K = {K}", value=float(e),
                 stderr=None, method="fixed_point", activation="erf", layers="both", K=K,
                 M=s.M, eta=s.eta, sigma=s.sigma, reference=float(ref),
                 reference_source="(M/K) eps_g*(K = M)")
            for K, e, ref in zip(res.K["erf"], res.fixed_points["erf"],
                                 res.fp_reference["erf"])]
