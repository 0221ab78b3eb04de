r"""Chapter 4, activation-dependent fixed points: the states the ODE ends in, their roles and
spectra, for each activation and training mode."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ..classification import classify
from ..fixed_points import count_soft, count_unstable, zero_tol
from ..ode import integrate
from ..order_parameters import Setup, generalisation_error
from .accuracy import ATOL, PERTURBATION, RTOL, TIGHT, TOL_FACTOR, perturbed, spectrum_summary, spread
from .chapter import Result, Settings, register, settings_of, shared_start, timed

__all__ = ["Case", "FixedPointsSettings", "FixedPoints", "fixed_points"]

#: what a case does once the ODE has been integrated (see :class:`Case`)
POLISH = (True, False, "symmetric")


@dataclass(frozen=True)
class Case:
    """One row of chapter 4's table: an activation and training mode, integrated from the
    initialisation of chapter 2 (first layer) or 3 (both layers).

    activation : "erf", "relu" or "linear".
    layers : "first" (v frozen at 1) or "both" (η_v = η).
    init : initialisation of :func:`tsode.book.chapter.start` ("random" or "small").
    eta : learning rate.
    alpha : length of the integration.
    polish : True = Newton (:func:`tsode.asymptotics.fixed_point`) from the end state;
        False = no fixed point, keep the end state; "symmetric" = the slow mode of chapter 2:
        keep the end state, spectrum of the (unstable) symmetric fixed point
        (:func:`tsode.asymptotics.erf_symmetric_fixed_point`).
    v_init : the student's second layer at the start: "ones" (first layer: v frozen at 1) or
        "scaled" (both layers: the authors' start of chapter 3, v at the first layer's scale).
    """

    activation: str
    layers: str
    init: str
    eta: float
    alpha: float
    polish: bool | str = True
    v_init: str = "ones"

    def __post_init__(self):
        if self.layers not in ("first", "both"):
            raise ValueError(f"Case.layers must be 'first' or 'both', got {self.layers!r}")
        if self.init not in ("random", "small"):
            raise ValueError(f"Case.init must be 'random' or 'small', got {self.init!r}")
        if not (self.polish is True or self.polish is False or self.polish == "symmetric"):
            raise ValueError(f"Case.polish must be one of {POLISH}, got {self.polish!r}")
        if self.v_init not in ("ones", "scaled"):
            raise ValueError(f"Case.v_init must be 'ones' or 'scaled', got {self.v_init!r}")

    def __repr__(self):  # short, for the "Re-running" table (still valid Python)
        return (f"Case({self.activation!r}, {self.layers!r}, {self.init!r}, eta={self.eta!r}, "
                f"alpha={self.alpha:g}, polish={self.polish!r}, v_init={self.v_init!r})")

    @property
    def name(self) -> str:
        """The row's name, e.g. "erf, first layer", "relu, both layers" (the results' keys)."""
        return f"{self.activation}, {self.layers} layer" + ("s" if self.layers == "both" else "")

    @property
    def key(self) -> str:
        """The name as an identifier, e.g. "erf_first_layer" (the chapter's glue names)."""
        return self.name.replace(", ", "_").replace(" ", "_")

    @property
    def seed_stream(self) -> str:
        """The initial states are those of chapters 2 and 3 on purpose: the seed streams
        "first_layer.start" / "both_layers.start" (indexed by K) of :data:`chapter.SEEDS`."""
        return "first_layer.start" if self.layers == "first" else "both_layers.start"


@register("fixed_points")
@dataclass(frozen=True)
class FixedPointsSettings(Settings):
    """Settings of :func:`fixed_points` (the same in both modes: the ODEs are cheap).

    K : student units.
    M : teacher units.
    sigma : label noise.
    cases : the rows, a tuple of :class:`Case` (plain tuples in Case's field order are
        converted): erf, ReLU and linear, first layer and both layers, with the initialisation
        and learning rates of chapters 2 and 3 (both layers: the authors' start, v at the first
        layer's scale, as in chapter 3).
    """

    K: int = 4
    M: int = 2
    sigma: float = 0.1
    cases: tuple = (
        Case("erf", "first", "random", 0.1, 1e4, "symmetric"),
        Case("erf", "both", "random", 0.1, 1e7, True, "scaled"),  # the denoiser by 1e7
        Case("relu", "first", "small", 0.2, 1e3, True),
        Case("relu", "both", "small", 0.1, 1e4, True, "scaled"),
        Case("linear", "first", "small", 0.1, 1e4, True),
        Case("linear", "both", "small", 0.1, 1e5, False, "scaled"),  # no finite fixed point
    )

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "cases", tuple(c if isinstance(c, Case) else Case(*c)
                                                for c in self.cases))

    def case(self, activation: str, layers: str) -> Case:
        """The case of ``activation`` and ``layers`` (KeyError if there is none)."""
        for c in self.cases:
            if (c.activation, c.layers) == (activation, layers):
                return c
        raise KeyError(f"no case ({activation!r}, {layers!r}) in {self.cases}")


@dataclass(frozen=True, kw_only=True)
class FixedPoints(Result):
    """Result of :func:`fixed_points`. Dicts are keyed by the case name (:attr:`Case.name`,
    "erf, first layer", ...) in the order of ``settings.cases``.

    K, M : student and teacher units.
    alpha : {name: length of the integration}.
    states : {name: OrderParameters} the polished fixed point, or the end of the integration.
    eg : {name: ε_g of the state}, accuracy (``accuracy["eg"]``) from the case redone as in
        :func:`tsode.book.accuracy.ode_variants`.
    converged : {name: Newton converged}, None where no polish was attempted.
    messages : {name: the solver's message} (cases with a polish or a symmetric point).
    spectrum_of : {name: which state the spectrum belongs to} ("fixed point", "symmetric fixed
        point", "end of the integration (...)").
    eigenvalues : {name: (size,) complex} spectrum of the drift's Jacobian, decreasing Re λ.
    eigenvalues_alt : {name: two spectra of the redone cases}.
    soft_tol : {name: threshold of soft modes, |Re λ| < soft_tol} (1e-3 · max|Re λ|).
    zero_tol : {name: :func:`tsode.fixed_points.zero_tol`} (1e-8 · max|Re λ|).
    n_unstable : {name: :func:`tsode.fixed_points.count_unstable`} (Re λ > zero_tol).
    n_soft : {name: :func:`tsode.fixed_points.count_soft`} (|Re λ| < soft_tol).
    max_real : {name: largest Re λ}.
    spectrum_text : {name: :func:`tsode.book.accuracy.spectrum_summary`} ("n_soft", "top": the
        printed, CPU-independent forms).
    descriptions : {name: :func:`tsode.asymptotics.describe` of the state}.
    roles : {name: the distinct roles of its units, sorted}.
    anti_aligned : {name: anti-aligned pairs of units, numbered from 1}.
    shared_v_min : {name: min over teacher units of Σ v_k over their aligned students} (NaN
        when no student is aligned; erf both layers: the copies share v* = 1).
    shared_v_norm_min : {name: the same of Σ v_k √(Q_kk/T_nn)} (ReLU split units add up to 1).
    signed_shared_v_min : {name: min over teacher units n of Σ_k sign(cos_kn) v_k over the
        students with |cos_kn| ≥ 0.99 (alive, not silent)}: for an odd activation (erf) a
        copy may be anti-aligned, (w, v) → (−w, −v) being the same unit; NaN if none.
    norm2_mean : {name: mean of Q_kk}.
    kind : {name: what the state is, :func:`tsode.classification.classify` ("fixed point",
        "saddle", "still drifting", "stationary, stability unknown"); ends of integrations are
        classified at their α}.
    weak_units_text : {name: the units with Q_kk < 0.1 mean_n T_nn (being pruned, or dead), as
        "Q_kk = 0.039, 0.009; v_k = 0.11, 0.072" ("none" if there are none)}.
    linthresh : |Re λ| below this is drawn on the linear part of the spectra's symlog axis.
    """

    K: int
    M: int
    alpha: dict
    states: dict
    eg: dict
    converged: dict
    messages: dict
    spectrum_of: dict
    eigenvalues: dict
    eigenvalues_alt: dict
    soft_tol: dict
    zero_tol: dict
    n_unstable: dict
    n_soft: dict
    max_real: dict
    spectrum_text: dict
    descriptions: dict
    roles: dict
    anti_aligned: dict
    shared_v_min: dict
    shared_v_norm_min: dict
    signed_shared_v_min: dict
    norm2_mean: dict
    weak_units_text: dict
    kind: dict
    linthresh: float = 1e-6


#: the fields of FixedPoints that are not dicts {case name: value}
_NOT_PER_CASE = {f.name for f in dataclasses.fields(Result)} | {"K", "M", "linthresh"}


def _min(values) -> float:
    return float(min(values)) if values else float("nan")


def _weak_units(state) -> str:
    """The units of ``state`` with Q_kk < 0.1 · mean T_nn: "Q_kk = ...; v_k = ..." (2
    significant digits), or "none"."""
    q, v = np.diag(np.asarray(state.Q)), np.asarray(state.v)
    weak = q < 0.1 * np.diag(np.asarray(state.T)).mean()
    if not weak.any():
        return "none"
    return (f"Q_kk = {', '.join(f'{x:.2g}' for x in q[weak])}; "
            f"v_k = {', '.join(f'{x:.2g}' for x in v[weak])}")


def _signed_shared_v(d) -> float:
    """min over teacher units n of Σ_k sign(cos_kn) v_k over the students k with |cos_kn| ≥
    the description's align_tol and role other than dead/silent (NaN if no teacher has one);
    ``d`` a :func:`tsode.asymptotics.describe` result."""
    live = np.array([r not in ("dead", "silent") for r in d.roles])
    near = (np.abs(d.cos) >= d.thresholds["align_tol"]) & live[:, None]
    sums = [float((np.sign(d.cos[near[:, n], n]) * d.v[near[:, n]]).sum())
            for n in range(d.cos.shape[1]) if near[:, n].any()]
    return _min(sums)


def _row(case: Case, c: dict, alts: list) -> dict:
    """The values of one case for the dicts of :class:`FixedPoints`, from its computation ``c``
    and the two redone variants ``alts`` (dicts of :func:`_fixed_point_case`)."""
    from ..asymptotics import describe

    ev, soft_tol = np.asarray(c["ev"]), float(c["soft_tol"])
    ev_alt = [np.asarray(a["ev"]) for a in alts]
    d = describe(c["state"])
    row = dict(
        alpha=case.alpha, states=c["state"], converged=c["converged"],
        eg=generalisation_error(c["state"], case.activation), spectrum_of=c["spectrum_of"],
        eigenvalues=ev, eigenvalues_alt=ev_alt, soft_tol=soft_tol, zero_tol=float(zero_tol(ev)),
        n_unstable=count_unstable(ev), n_soft=count_soft(ev, soft_tol),
        max_real=float(ev.real.max()), spectrum_text=spectrum_summary(ev, ev_alt, soft_tol),
        descriptions=d, roles=tuple(sorted(set(d.roles))),
        anti_aligned=[(int(k) + 1, int(l) + 1) for k, l in d.anti_aligned_pairs],
        shared_v_min=_min(d.shared_v.values()), shared_v_norm_min=_min(d.shared_v_norm.values()),
        signed_shared_v_min=_signed_shared_v(d),
        norm2_mean=float(d.norm2.mean()), weak_units_text=_weak_units(c["state"]),
        kind=c["kind"])
    if "message" in c:
        row["messages"] = c["message"]
    return row


@timed
def fixed_points(settings: FixedPointsSettings | str = "full", seed: int = 0,
                 overrides=None) -> FixedPoints:
    """The states SGD's ODE ends in, for each activation and training mode (K = 4, M = 2).

    Each case integrates the ODE from the initialisation of chapters 2 and 3 (same seeds) and,
    where a fixed point exists, polishes the end state with :func:`tsode.asymptotics.fixed_point`
    (damped Newton, reported honestly when it does not converge); see :class:`FixedPoints`.
    ``settings``: a :class:`FixedPointsSettings`, or a mode with an ``overrides`` dict.
    """
    s = settings_of("fixed_points", settings, overrides=overrides)
    out = {f.name: {} for f in dataclasses.fields(FixedPoints) if f.name not in _NOT_PER_CASE}
    acc = {}
    for case in s.cases:
        c = _fixed_point_case(case, s, seed)
        alts = [_fixed_point_case(case, s, seed, TOL_FACTOR, PERTURBATION),
                _fixed_point_case(case, s, seed, TIGHT, 0.0)]
        for f, value in _row(case, c, alts).items():
            out[f][case.name] = value
        acc[case.name] = float(spread(
            lambda x, act=case.activation: generalisation_error(x["state"], act), c, alts))
    # 3 digits: at 4, linear both layers (8.9954e-05 +- 4e-11) sits 24 accuracies from a
    # rounding edge, too close for tests/test_chapters.py's boundary check
    return FixedPoints(K=s.K, M=s.M, settings=s, accuracy=dict(eg=acc), digits=dict(eg=3), **out)


def _fixed_point_case(case: Case, s: FixedPointsSettings, seed: int, tol_factor: float = 1.0,
                      rel: float = 0.0) -> dict:
    """One case of :func:`fixed_points`: integrate (from the start perturbed at ``rel`` relative,
    at ``tol_factor`` times the tolerances), polish, and the spectrum. Returns a dict with
    ``state``, ``converged`` (None without a polish), ``ev``, ``soft_tol``, ``spectrum_of`` and,
    for a polish or a symmetric point, ``message``."""
    from ..asymptotics import erf_symmetric_fixed_point, fixed_point, stability

    case = case if isinstance(case, Case) else Case(*case)
    K, M = s.K, s.M
    setup = Setup(case.activation, eta=case.eta, eta_v=case.eta if case.layers == "both" else 0.0,
                  sigma=s.sigma)
    # on purpose the initial states of chapters 2 (first layer) and 3 (both layers)
    state0 = shared_start(case.seed_stream, K, M, case.init, seed, v=case.v_init)
    variant = rel > 0
    tr = integrate(perturbed(state0, rel) if variant else state0, setup, case.alpha,
                   alphas=np.array([0.0, case.alpha]), rtol=tol_factor * RTOL,
                   atol=tol_factor * ATOL)
    out = dict(state=tr.final, converged=None,
               kind=classify(tr.final, setup, alpha=case.alpha).kind)
    if case.polish is True:
        fp = fixed_point(tr.final, setup, raise_on_failure=False)
        out.update(converged=bool(fp.converged), message=fp.message)
        if fp.converged:
            out.update(state=fp.state, ev=fp.eigenvalues, soft_tol=fp.soft_tol,
                       spectrum_of="fixed point", kind=classify(fp.state, setup).kind)
            return out
        spectrum_of = "end of the integration (Newton did not converge)"
    elif case.polish == "symmetric":
        fp = erf_symmetric_fixed_point(M, K - M, case.eta, s.sigma)
        ev, soft_tol = (fp.eigenvalues, fp.soft_tol) if not variant else \
            stability(perturbed(fp.state, rel), setup)
        return dict(out, ev=ev, soft_tol=soft_tol, spectrum_of="symmetric fixed point",
                    message=f"slow mode: state at alpha = {case.alpha:g}; spectrum of {fp}")
    else:
        spectrum_of = "end of the integration (no fixed point)"
    ev, soft_tol = stability(tr.final, setup)
    return dict(out, ev=ev, soft_tol=soft_tol, spectrum_of=spectrum_of)
