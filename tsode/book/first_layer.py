r"""Chapter 2, training the first layer only: ε_g(α) and ε_g* against L, the collapse of
ε_g*/(ησ²), the slow mode of the symmetric fixed point."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ..asymptotics import erf_eg_star_leading, linear_eg_star
from ..ode import integrate
from ..order_parameters import Setup
from .accuracy import fixed_point_accuracy, ode_variants, perturbed, ratio_accuracy, spread
from .chapter import (Result, Settings, end_exponent, register, run_sgd, seed_for, settings_of,
                      shared_start, timed)

ACTIVATIONS = ("erf", "linear", "relu")


@register("first_layer")
@dataclass(frozen=True)
class FirstLayerSettings(Settings):
    """Settings of :func:`first_layer_curves` and :func:`first_layer_final`; parts: the
    activations ``"erf"``, ``"linear"``, ``"relu"``.

    M : teacher units.
    L : superfluous student units, K = M + L.
    eta : learning rate η (ReLU: 0.2).
    sigma : standard deviation σ of the label noise.
    kind : initial student weights, "random" (erf) or "small" (linear, ReLU); :func:`start`.
    alpha_read : α at which ε_g* is read from the ODE (ReLU: 10³).
    ode_L : the L whose ODE is integrated (None: all of ``L``; ReLU fast: L ≤ 2, since the
        exact I4 costs ~K⁴ per step).
    N : input dimension of the SGD runs (ReLU only; None: no SGD).
    runs : reduced-SGD runs per L (ReLU only).
    sgd_alpha : α at the end of the SGD runs, time-averaged over its last 20 % (ReLU only).
    """

    M: int = 2
    L: tuple = (0, 1, 2, 3, 4)
    eta: float = 0.1
    sigma: float = 0.1
    kind: str = "random"
    alpha_read: float = 1e4
    ode_L: tuple | None = None
    N: int | None = None
    runs: int | None = None
    sgd_alpha: float | None = None

    PARTS = {
        "erf": {},
        "linear": dict(kind="small"),
        # ReLU from the small initialisation is slow at eta = 0.1 (long plateaus); at eta = 0.2
        # both ODE and SGD have converged by alpha = 1e3
        "relu": dict(kind="small", eta=0.2, alpha_read=1e3, sgd_alpha=1000.0),
    }
    PART_MODE_VALUES = {
        ("relu", "fast"): dict(ode_L=(0, 1, 2), N=500, runs=4),
        ("relu", "full"): dict(N=1000, runs=8),
    }

    @property
    def Ls_ode(self) -> tuple:
        """The L whose ODE is integrated (``ode_L``, or all of ``L``)."""
        return self.L if self.ode_L is None else self.ode_L


@functools.lru_cache(maxsize=None)
def _ansatz(M, L, eta, sigma):
    """(ε_g*, accuracy) at the exact erf first-layer fixed point on the set where the extra
    units coincide (:func:`tsode.asymptotics.erf_symmetric_fixed_point`); the accuracy is the
    change of ε_g* when Newton re-polishes from the state perturbed at PERTURBATION."""
    from ..asymptotics import erf_symmetric_fixed_point

    fp = erf_symmetric_fixed_point(M, L, eta, sigma)
    return float(fp.eg), fixed_point_accuracy(fp)


def _state0(s, L: int, seed: int):
    """The chapter's initial state of the student with K = M + L units (:func:`shared_start`,
    stream "first_layer.start"; chapter 4 starts from the same states)."""
    return shared_start("first_layer.start", s.M + L, s.M, s.kind, seed)


@functools.lru_cache(maxsize=None)
def _first_layer_odes(s: FirstLayerSettings, act: str, seed: int, variant: bool = False):
    """{L: Trajectory} of the first-layer ODEs of activation ``act`` for L in ``s.Ls_ode``
    (250 log-spaced times up to ``s.alpha_read``); ``variant``: the same redone by
    :func:`ode_variants` (a list of two per L). Cached per (settings, act, seed, variant)."""
    setup = Setup(act, eta=s.eta, sigma=s.sigma)
    out = {}
    for L in s.Ls_ode:
        state0 = _state0(s, L, seed)
        if variant:
            out[L] = ode_variants(state0, setup, _first_layer_odes(s, act, seed)[L])
            continue
        out[L] = integrate(state0, setup, s.alpha_read,
                           alphas=np.concatenate([[0.0], np.geomspace(1e-2, s.alpha_read, 250)]))
    return out


def _end_accuracy(s, act, seed) -> dict:
    """{L: accuracy (:func:`spread`) of ε_g at the end of the first-layer ODE}."""
    base, alts = (_first_layer_odes(s, act, seed, v) for v in (False, True))
    return {L: float(spread(lambda t: t.eg[-1], base[L], alts[L])) for L in base}


@dataclass(frozen=True, kw_only=True)
class FirstLayerCurves(Result):
    """Result of :func:`first_layer_curves` (erf).

    L : list of L.
    M, eta, sigma, alpha_read : from the settings.
    trajectories : {L: Trajectory} of the ODE (250 log-spaced times up to alpha_read).
    eg_read : {L: ε_g at alpha_read}.
    eg_ansatz : {L: ε_g* at the exact symmetric fixed point} (for every L of the settings).
    accuracy : of ``eg_read`` and ``eg_ansatz`` (per L).
    """

    L: list
    M: int
    eta: float
    sigma: float
    alpha_read: float
    trajectories: dict
    eg_read: dict
    eg_ansatz: dict


@timed
def first_layer_curves(settings: FirstLayerSettings | str = "full", seed: int = 0,
                       overrides=None) -> FirstLayerCurves:
    """erf, first layer only (v = v* = 1): ε_g(α) for K = M, ..., M + L from the ODE, and ε_g*
    of the symmetric fixed point.

    ``settings``: the erf :class:`FirstLayerSettings`, or a mode with an ``overrides`` dict.
    """
    s = settings_of("first_layer", settings, "erf", overrides=overrides)
    trajs = _first_layer_odes(s, "erf", seed)
    ans = {L: _ansatz(s.M, L, s.eta, s.sigma) for L in s.L}
    return FirstLayerCurves(
        L=list(s.L), M=s.M, eta=s.eta, sigma=s.sigma, alpha_read=s.alpha_read, settings=s,
        trajectories=trajs, eg_ansatz={L: a[0] for L, a in ans.items()},
        eg_read={L: float(t.eg[-1]) for L, t in trajs.items()},
        accuracy=dict(eg_read=_end_accuracy(s, "erf", seed),
                      eg_ansatz={L: a[1] for L, a in ans.items()}))


def records(res: FirstLayerCurves, Ls=(0, 1)) -> list[dict]:
    """Records of book/data/summary.json for the learning-curve section: the ODE's ε_g at
    alpha_read for the L of ``Ls``, with the symmetric fixed point as the reference."""
    return [dict(
        id=f"ch2-erf-first-L{L}", chapter=2, claim="eps_g* grows with the superfluous units L",
        quantity=f"eps_g(alpha_read), L = {L}", value=res.eg_read[L], stderr=None,
        method="ode", alpha=res.alpha_read, activation="erf", layers="first", K=res.M + L,
        M=res.M, eta=res.eta, sigma=res.sigma, reference=res.eg_ansatz[L],
        reference_source="erf symmetric-ansatz fixed point (authors' Mathematica notebook, "
                         "pyscm; tsode.asymptotics)") for L in Ls]


@dataclass(frozen=True, kw_only=True)
class FirstLayerFinal(Result):
    """Result of :func:`first_layer_final`.

    settings : {activation: FirstLayerSettings}.
    L : list of L; M, eta, sigma : of the erf part.
    erf : dict(ode (S,) ODE ε_g at alpha_read, alpha, ansatz (S,) exact symmetric fixed point,
        leading (S,) the leading order η σ² (L + M/√3)/(2π)).
    linear : dict(ode (S,), alpha, exact (S,) the closed form η σ² K/(2(2 − η K))).
    relu : dict(alpha, N, ode_L, eta, ode (len(ode_L),), sgd_mean (S,), sgd_err (S,) mean and
        standard error over runs of the time-averaged SGD ε_g, sgd_alpha, runs).
    erf_ratio : (S,) erf ODE / symmetric fixed point.
    linear_ratio : (S,) linear ODE / closed form.
    linear_max_dev : max over L of |linear_ratio − 1|.
    relu_ode : (len(ode_L),) ReLU ODE ε_g at its alpha_read.
    linear_increments, relu_increments : ε_g(L + 1) − ε_g(L) of the linear closed form and of
        the ReLU ODE values.
    accuracy : of erf_ratio, linear_ratio, relu_ode.
    """

    L: list
    M: int
    eta: float
    sigma: float
    erf: dict
    linear: dict
    relu: dict
    erf_ratio: np.ndarray
    linear_ratio: np.ndarray
    linear_max_dev: float
    relu_ode: np.ndarray
    linear_increments: np.ndarray
    relu_increments: np.ndarray


def _parts(settings, overrides) -> dict:
    """{activation: FirstLayerSettings} from a mode string (+ overrides) or a mapping with one
    FirstLayerSettings per activation."""
    if isinstance(settings, Mapping):
        missing = sorted(set(ACTIVATIONS) - set(settings))
        if missing:
            raise ValueError(f"settings must give a FirstLayerSettings for each of "
                             f"{ACTIVATIONS}; missing {missing}")
        return {a: settings_of("first_layer", settings[a], a, overrides) for a in ACTIVATIONS}
    if isinstance(settings, Settings):
        raise TypeError("first_layer_final runs three parts: give a mode string or "
                        "{activation: FirstLayerSettings} for erf, linear and relu")
    return {a: settings_of("first_layer", settings, a, overrides) for a in ACTIVATIONS}


@timed
def first_layer_final(settings: Mapping | str = "full", seed: int = 0,
                      overrides=None) -> FirstLayerFinal:
    """ε_g* against L for erf (ODE, exact symmetric fixed point, leading order), linear (ODE,
    exact formula) and ReLU (ODE and SGD), first layer only.

    ``settings``: a mode (``"fast"``/``"full"``) with an ``overrides`` dict, or
    {activation: :class:`FirstLayerSettings`} for erf, linear and relu.
    """
    parts = _parts(settings, overrides)
    s = parts["erf"]
    M, eta, sigma, Ls = s.M, s.eta, s.sigma, s.L
    ode = {a: _first_layer_odes(parts[a], a, seed) for a in ("erf", "linear")}
    acc = {a: _end_accuracy(parts[a], a, seed) for a in ACTIVATIONS}
    ans = [_ansatz(M, L, eta, sigma) for L in Ls]
    erf = dict(ode=np.array([ode["erf"][L].eg[-1] for L in Ls]), alpha=s.alpha_read,
               ansatz=np.array([a[0] for a in ans]),
               leading=np.array([erf_eg_star_leading(M, L, eta, sigma) for L in Ls]))
    lin = parts["linear"]
    linear = dict(ode=np.array([ode["linear"][L].eg[-1] for L in lin.L]), alpha=lin.alpha_read,
                  exact=np.array([linear_eg_star(lin.M + L, lin.eta, lin.sigma) for L in lin.L]))
    relu = _first_layer_relu(parts["relu"], seed)
    linear_ratio = linear["ode"] / linear["exact"]
    return FirstLayerFinal(
        L=list(Ls), M=M, eta=eta, sigma=sigma, erf=erf, linear=linear, relu=relu,
        settings=parts, erf_ratio=erf["ode"] / erf["ansatz"], linear_ratio=linear_ratio,
        linear_max_dev=float(np.max(np.abs(linear_ratio - 1))), relu_ode=relu["ode"],
        linear_increments=np.diff(linear["exact"]), relu_increments=np.diff(relu["ode"]),
        accuracy=dict(
            erf_ratio=ratio_accuracy(erf["ode"], [acc["erf"][L] for L in Ls],
                                     erf["ansatz"], [a[1] for a in ans]),
            linear_ratio=ratio_accuracy(linear["ode"], [acc["linear"][L] for L in lin.L],
                                        linear["exact"], 0.0),
            relu_ode=np.array(list(acc["relu"].values()))))


def _first_layer_relu(s: FirstLayerSettings, seed: int) -> dict:
    """ReLU, first layer only: the ODE at ``s.alpha_read`` (L in ``s.Ls_ode``) and reduced SGD
    (``s.runs`` runs at N = ``s.N`` per L, each time-averaged over its last 20 %)."""
    odes = _first_layer_odes(s, "relu", seed)
    setup = Setup("relu", eta=s.eta, sigma=s.sigma)
    a = s.sgd_alpha
    means, errs = [], []
    for L in s.L:
        tr = run_sgd(_state0(s, L, seed), setup, s.N, a, engine="reduced",
                     seed=seed_for(seed, "first_layer.sgd", s.M + L), n_runs=s.runs,
                     alphas=np.linspace(0.8 * a, a, 11))
        per_run = np.atleast_2d(tr.eg).mean(axis=1)  # time average over the last 20 %
        means.append(per_run.mean())
        errs.append(per_run.std(ddof=1) / np.sqrt(per_run.size))
    return dict(alpha=s.alpha_read, N=s.N, ode_L=list(odes), eta=s.eta,
                ode=np.array([odes[L].eg[-1] for L in odes]), sgd_mean=np.array(means),
                sgd_err=np.array(errs), sgd_alpha=a, runs=s.runs)


@register("collapse")
@dataclass(frozen=True)
class CollapseSettings(Settings):
    """Settings of :func:`collapse` (the same in both modes).

    M : teacher units.
    L : superfluous student units, K = M + L.
    eta_sigma : the (η, σ) pairs.
    """

    M: int = 2
    L: tuple = (0, 1, 2, 3, 4)
    eta_sigma: tuple = ((0.02, 0.1), (0.05, 0.1), (0.1, 0.1), (0.2, 0.1), (0.1, 0.5), (0.2, 0.5))


@dataclass(frozen=True, kw_only=True)
class Collapse(Result):
    """Result of :func:`collapse`.

    L : list of L (x axis).
    M : teacher units.
    ratio : {(η, σ): (len(L),) ε_g*/(ησ²)} at the exact erf symmetric fixed point.
    leading : (len(L),) the leading order (L + M/√3)/(2π) of the ratio
        (:func:`tsode.asymptotics.erf_eg_star_leading`).
    eta_min : the smallest η of the pairs.
    ratio_small_eta : ratio at the smallest η over the leading order, per L.
    ratio_last_range : (min, max) over (η, σ) of the ratio at the largest L.
    """

    L: list
    M: int
    ratio: dict
    leading: np.ndarray
    eta_min: float
    ratio_small_eta: np.ndarray
    ratio_last_range: tuple


@timed
def collapse(settings: CollapseSettings | str = "full", overrides=None) -> Collapse:
    """ε_g*/(ησ²) against L at the exact erf symmetric fixed point for several (η, σ).

    ``settings``: a :class:`CollapseSettings`, or a mode (``"fast"``/``"full"``) with an
    ``overrides`` dict.
    """
    s = settings_of("collapse", settings, overrides=overrides)
    ratio, acc = {}, {}
    for eta, sigma in s.eta_sigma:
        ans = np.array([_ansatz(s.M, L, eta, sigma) for L in s.L])
        ratio[(eta, sigma)], acc[(eta, sigma)] = ans.T / (eta * sigma**2)
    leading = np.array([erf_eg_star_leading(s.M, L, 1.0, 1.0) for L in s.L])
    last = [float(r[-1]) for r in ratio.values()]
    return Collapse(L=list(s.L), M=s.M, ratio=ratio, leading=leading, settings=s,
                    eta_min=min(eta for eta, _ in ratio),
                    ratio_small_eta=ratio[min(ratio)] / leading,
                    ratio_last_range=(min(last), max(last)), accuracy=dict(ratio=acc))


@register("slow_mode")
@dataclass(frozen=True)
class SlowModeSettings(Settings):
    """Settings of :func:`slow_mode` (erf, first layer only).

    M : teacher units.
    K : student units (L = K − M ≥ 2 has the slow mode).
    eta, sigma : learning rate and label-noise standard deviation.
    kind : initial student weights (:func:`start`).
    alpha_max : end of the ODE integration (fast: 10⁵).
    """

    M: int = 2
    K: int = 4
    eta: float = 0.1
    sigma: float = 0.1
    kind: str = "random"
    alpha_max: float = 1e6

    MODE_VALUES = {"fast": dict(alpha_max=1e5)}


@dataclass(frozen=True, kw_only=True)
class SlowMode(Result):
    """Result of :func:`slow_mode`.

    K, M, eta, sigma, alpha_max : from the settings.
    state0, setup : the initial state (the chapter's start for K units) and the Setup.
    trajectory : the ODE Trajectory (401 times: 0 and 400 log-spaced up to alpha_max).
    extra : indices of the units that end up unspecialised (least aligned with any teacher).
    extra_pairs : list of (k, l) pairs of extra units.
    extra_corr : (T, pairs) correlations Q_kl/√(Q_kk Q_ll) of the pairs.
    extra_norm : (T, len(extra)) norms Q_kk of the extra units (None without extra units).
    alpha_anti : first α at which the first pair has correlation < −0.99 (None if never).
    eg_ansatz : ε_g* of the symmetric fixed point (K − M coinciding extra units).
    ansatz_max_real : largest Re(eigenvalue) of its Jacobian; ansatz_timescale its inverse.
    ansatz_n_unstable : its number of unstable eigenvalues (:attr:`FixedPoint.n_unstable`).
    eg_1e4, eg_end : ε_g at α = 10⁴ and at alpha_max.
    eg_1e4_ratio, eg_end_ratio : those over eg_ansatz.
    end_exponent : d ln ε_g / d ln α over the last 20 output times.
    accuracy : of eg_1e4_ratio, ansatz_max_real, end_exponent.
    """

    K: int
    M: int
    eta: float
    sigma: float
    alpha_max: float
    state0: object
    setup: Setup
    trajectory: object
    extra: list
    extra_pairs: list
    extra_corr: np.ndarray
    extra_norm: np.ndarray | None
    alpha_anti: float | None
    eg_ansatz: float
    ansatz_max_real: float
    ansatz_timescale: float
    ansatz_n_unstable: int
    eg_1e4: float
    eg_end: float
    eg_1e4_ratio: float
    eg_end_ratio: float
    end_exponent: float


def _extra_units(tr, K: int) -> dict:
    """The student units least aligned with any teacher at the end of ``tr`` (extra), their
    pairs, the pairs' correlations (T, pairs), their norms (T, extra) and the first α at which
    the first pair is anti-aligned (correlation < −0.99)."""
    Rf, Qf = tr.R[-1], tr.Q[-1]
    cos = np.abs(Rf) / np.sqrt(np.outer(np.diag(Qf), np.diag(tr.T)))
    spec = set(np.argmax(cos, axis=0).tolist())  # best student for each teacher
    extra = [k for k in range(K) if k not in spec]
    pairs = [(k, l) for i, k in enumerate(extra) for l in extra[i + 1:]]
    d = np.sqrt(np.einsum("tkk->tk", tr.Q))
    corr = np.stack([tr.Q[:, k, l] / (d[:, k] * d[:, l]) for k, l in pairs], axis=1) if pairs \
        else np.zeros((tr.alpha.size, 0))
    anti = corr[:, 0] < -0.99 if pairs else np.zeros(0, bool)
    return dict(extra=extra, extra_pairs=pairs, extra_corr=corr,
                extra_norm=np.stack([tr.Q[:, k, k] for k in extra], axis=1) if extra else None,
                alpha_anti=float(tr.alpha[int(np.argmax(anti))]) if anti.any() else None)


@timed
def slow_mode(settings: SlowModeSettings | str = "full", seed: int = 0,
              overrides=None) -> SlowMode:
    """erf, first layer only, L = K − M = 2 from random initialisation: a long ODE integration
    beside the (weakly unstable) symmetric fixed point.

    ``settings``: a :class:`SlowModeSettings`, or a mode with an ``overrides`` dict.
    """
    from ..asymptotics import erf_symmetric_fixed_point, stability

    s = settings_of("slow_mode", settings, overrides=overrides)
    K, M = s.K, s.M
    # the chapter's start: the same state as the K-unit student of the learning curves
    state0 = _state0(s, K - M, seed)
    setup = Setup("erf", eta=s.eta, sigma=s.sigma)
    alphas = np.concatenate([[0.0], np.geomspace(1e-2, s.alpha_max, 400)])
    tr = integrate(state0, setup, s.alpha_max, alphas=alphas)
    i4 = int(np.argmin(np.abs(tr.alpha - 1e4)))
    fp = erf_symmetric_fixed_point(M, K - M, s.eta, s.sigma)
    alts = ode_variants(state0, setup, tr)
    ev_alt, _ = stability(perturbed(fp.state), setup)
    eg_1e4, eg_end = float(tr.eg[i4]), float(tr.eg[-1])
    return SlowMode(
        K=K, M=M, eta=s.eta, sigma=s.sigma, alpha_max=s.alpha_max, settings=s, state0=state0,
        setup=setup, trajectory=tr, **_extra_units(tr, K), eg_ansatz=float(fp.eg),
        ansatz_max_real=fp.max_real, ansatz_timescale=1.0 / fp.max_real,
        ansatz_n_unstable=fp.n_unstable, end_exponent=end_exponent(tr), eg_1e4=eg_1e4,
        eg_end=eg_end, eg_1e4_ratio=eg_1e4 / fp.eg, eg_end_ratio=eg_end / fp.eg,
        accuracy=dict(
            eg_1e4_ratio=float(ratio_accuracy(eg_1e4, spread(lambda t: t.eg[i4], tr, alts),
                                              fp.eg, fixed_point_accuracy(fp))),
            ansatz_max_real=abs(float(ev_alt.real.max()) - fp.max_real),
            end_exponent=float(spread(end_exponent, tr, alts))))


@dataclass(frozen=True, eq=False)
class FinalState:
    """One state that chapter 2 calls final, and what it is
    (:func:`tsode.classification.classify`).

    what : where the state comes from ("erf ODE", "linear ODE", "ReLU ODE", "erf symmetric
        fixed point", ...). L : superfluous units. alpha : its time (None for a fixed point).
    classification : the :class:`tsode.classification.Classification`.
    """

    what: str
    L: int
    alpha: float | None
    classification: object

    def line(self) -> str:
        """One printed line: source, L, α, kind, ε_g, max|drift|/max|y|, largest Re λ and
        d ln ε_g / d ln α (orders of magnitude for the numbers near round-off)."""
        c = self.classification
        at = "" if self.alpha is None else f" at alpha = {self.alpha:.0e}"
        rate = "" if c.eg_exponent is None else f", d ln eg/d ln alpha {_mag(c.eg_exponent)}"
        top = "no spectrum" if not np.isfinite(c.max_real) else f"max Re λ {_mag(c.max_real)}"
        return (f"{self.what:<28s} L = {self.L}{at}: {c.kind} (eg {c.eg:.3e}, "
                f"drift/scale {_mag(c.relative_drift)}, {top}{rate})")


def _mag(x: float) -> str:
    """Sign and order of magnitude (round-off-level numbers are not reproducible digits)."""
    if x == 0 or not np.isfinite(x):
        return f"{x:g}"
    return f"{'+' if x > 0 else '-'}1e{int(np.floor(np.log10(abs(x)))):+03d}"


def final_summary(finals) -> str:
    """'source: n kind; ...' counts of the :class:`FinalState` list ``finals`` (in order)."""
    counts = {}
    for f in finals:
        key = (f.what, f.classification.kind)
        counts[key] = counts.get(key, 0) + 1
    return "; ".join(f"{what}: {n} {kind}" for (what, kind), n in counts.items())


def final_states(settings: Mapping | str = "full", seed: int = 0, overrides=None) -> list:
    """Every state chapter 2 reads a final error from, classified: the ends of the first-layer
    ODEs (erf and linear at their alpha_read, ReLU at its alpha_read) and the erf symmetric
    fixed points. ``settings`` as in :func:`first_layer_final`. Returns a list of
    :class:`FinalState` (erf ODE, erf fixed point, linear, ReLU; by L)."""
    from ..asymptotics import erf_symmetric_fixed_point
    from ..classification import classify

    parts = _parts(settings, overrides)
    out = []
    for act in ACTIVATIONS:
        s = parts[act]
        setup = Setup(act, eta=s.eta, sigma=s.sigma)
        for L, tr in _first_layer_odes(s, act, seed).items():
            out.append(FinalState(f"{act} ODE", L, float(tr.alpha[-1]), classify(tr, setup)))
        if act == "erf":
            for L in s.L:
                fp = erf_symmetric_fixed_point(s.M, L, s.eta, s.sigma)
                out.append(FinalState("erf symmetric fixed point", L, None,
                                      classify(fp.state, fp.setup)))
    return out
