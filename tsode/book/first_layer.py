r"""Chapter 2, training the first layer only: ε_g(α) and ε_g* against L, the collapse of
ε_g*/(ησ²), the slow mode of the symmetric fixed point."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from ..asymptotics import erf_eg_star_leading, linear_eg_star
from ..ode import integrate
from ..order_parameters import Setup, generalisation_error
from .accuracy import (ATOL, PERTURBATION, RTOL, TIGHT, TOL_FACTOR, fixed_point_accuracy,
                       ode_variants, perturbed, ratio_accuracy, spectrum_summary, spread)
from .chapter import (Result, Settings, decade_exponent, end_exponent, register, settings_of,
                      start, timed)
from ._legacy import Result as _LegacyResult, _key, _seed, _sim, _timed, check_overrides, settings


@functools.lru_cache(maxsize=None)
def _ansatz(M, L, eta, sigma):
    """(ε_g*, accuracy) at the exact erf first-layer fixed point on the set where the extra
    units coincide (:func:`tsode.asymptotics.erf_symmetric_fixed_point`); the accuracy is the
    change of ε_g* when Newton re-polishes from the state perturbed at PERTURBATION."""
    from ..asymptotics import erf_symmetric_fixed_point

    fp = erf_symmetric_fixed_point(M, L, eta, sigma)
    return float(fp.eg), fixed_point_accuracy(fp)


@functools.lru_cache(maxsize=None)
def _first_layer_odes(mode: str, act: str, seed: int, ov: tuple = (), variant: bool = False):
    """{L: Trajectory} of the first-layer ODEs; ``variant``: the same redone by
    :func:`ode_variants` (a list of two per L)."""
    s = settings("first_layer", mode, act, ov)
    out = {}
    for L in s.get(f"{act}_ode_L", s["L"]):
        K = s["M"] + L
        state0 = start(K, s["M"], s["kind"], N=10_000, seed=_seed(seed, 20, K))
        setup = Setup(act, eta=s["eta"], sigma=s["sigma"])
        if variant:
            out[L] = ode_variants(state0, setup, _first_layer_odes(mode, act, seed, ov)[L])
            continue
        out[L] = integrate(state0, setup, s["alpha_read"],
                           alphas=np.concatenate([[0.0], np.geomspace(1e-2, s["alpha_read"], 250)]))
    return out


def _end_accuracy(mode, act, seed, ov) -> dict:
    """{L: accuracy (:func:`spread`) of ε_g at the end of the first-layer ODE}."""
    base, alts = (_first_layer_odes(mode, act, seed, ov, v) for v in (False, True))
    return {L: float(spread(lambda t: t.eg[-1], base[L], alts[L])) for L in base}


@_timed
def first_layer_curves(mode: str = "full", seed: int = 0, overrides=None) -> _LegacyResult:
    """erf, first layer only (v = v* = 1): ε_g(α) for K = M, ..., M + L from the ODE.

    Returns ``trajectories`` {L: Trajectory}, ``eg_ansatz`` {L: ε_g* of the symmetric fixed
    point} (when :mod:`tsode.asymptotics` provides it) and the settings.
    """
    ov = _key(overrides)
    s = settings("first_layer", mode, "erf", ov)
    trajs = _first_layer_odes(mode, "erf", seed, ov)
    ans = {L: _ansatz(s["M"], L, s["eta"], s["sigma"]) for L in s["L"]}
    return _LegacyResult(trajectories=trajs, eg_ansatz={L: a[0] for L, a in ans.items()}, M=s["M"],
                  eta=s["eta"], sigma=s["sigma"], alpha_read=s["alpha_read"],
                  eg_read={L: float(t.eg[-1]) for L, t in trajs.items()}, settings=s,
                  accuracy=dict(eg_read=_end_accuracy(mode, "erf", seed, ov),
                                eg_ansatz={L: a[1] for L, a in ans.items()}))


@_timed
def first_layer_final(mode: str = "full", seed: int = 0, overrides=None) -> _LegacyResult:
    """ε_g* against L for erf (ODE, exact symmetric fixed point, leading order), linear (ODE,
    exact formula) and ReLU (ODE and SGD), first layer only.

    The printed numbers ``erf_ratio`` (ODE / symmetric fixed point, L = 0, 1),
    ``linear_ratio`` (ODE / exact) and ``relu_ode`` come with their ``accuracy``.
    """
    ov = _key(overrides)
    s_erf = settings("first_layer", mode, "erf", ov)
    M, eta, sigma, Ls = s_erf["M"], s_erf["eta"], s_erf["sigma"], s_erf["L"]
    erf_odes = _first_layer_odes(mode, "erf", seed, ov)
    ans = [_ansatz(M, L, eta, sigma) for L in Ls]
    erf = dict(ode=np.array([erf_odes[L].eg[-1] for L in Ls]), alpha=s_erf["alpha_read"],
               ansatz=np.array([a[0] for a in ans]),
               leading=np.array([erf_eg_star_leading(M, L, eta, sigma) for L in Ls]))
    s_lin = settings("first_layer", mode, "linear", ov)
    lin_odes = _first_layer_odes(mode, "linear", seed, ov)
    linear = dict(ode=np.array([lin_odes[L].eg[-1] for L in Ls]), alpha=s_lin["alpha_read"],
                  exact=np.array([linear_eg_star(M + L, eta, sigma) for L in Ls]))
    relu = _first_layer_relu(mode, seed, ov)
    acc = {act: _end_accuracy(mode, act, seed, ov) for act in ("erf", "linear", "relu")}
    return _LegacyResult(L=list(Ls), M=M, eta=eta, sigma=sigma, erf=erf, linear=linear, relu=relu,
                  settings=s_erf, erf_ratio=erf["ode"] / erf["ansatz"],
                  linear_ratio=linear["ode"] / linear["exact"], relu_ode=relu["ode"],
                  accuracy=dict(
                      erf_ratio=ratio_accuracy(erf["ode"], [acc["erf"][L] for L in Ls],
                                                erf["ansatz"], [a[1] for a in ans]),
                      linear_ratio=ratio_accuracy(linear["ode"],
                                                   [acc["linear"][L] for L in Ls],
                                                   linear["exact"], 0.0),
                      relu_ode=np.array(list(acc["relu"].values()))))


def _first_layer_relu(mode, seed, ov=()):
    """ReLU, first layer only: ODE and reduced SGD."""
    s = settings("first_layer", mode, "relu", ov)
    odes = _first_layer_odes(mode, "relu", seed, ov)
    out = dict(alpha=s["alpha_read"], N=s["relu_N"], ode_L=list(odes), eta=s["eta"],
               ode=np.array([odes[L].eg[-1] for L in odes]))
    means, errs = [], []
    for L in s["L"]:
        K = s["M"] + L
        state0 = start(K, s["M"], "small", N=10_000, seed=_seed(seed, 20, K))
        setup = Setup("relu", eta=s["eta"], sigma=s["sigma"])
        a = s["relu_sgd_alpha"]
        tr = _sim(state0, setup, s["relu_N"], a, engine="reduced", seed=_seed(seed, 21, K),
                  n_runs=s["relu_runs"], alphas=np.linspace(0.8 * a, a, 11))
        per_run = np.atleast_2d(tr.eg).mean(axis=1)  # time average over the last 20 %
        means.append(per_run.mean())
        errs.append(per_run.std(ddof=1) / np.sqrt(per_run.size))
    out.update(sgd_mean=np.array(means), sgd_err=np.array(errs), sgd_alpha=s["relu_sgd_alpha"],
               runs=s["relu_runs"])
    return out


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
    ratio_small_eta : ratio at the smallest η over the leading order, per L.
    ratio_last_range : (min, max) over (η, σ) of the ratio at the largest L.
    """

    L: list
    M: int
    ratio: dict
    leading: np.ndarray
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
                    ratio_small_eta=ratio[min(ratio)] / leading,
                    ratio_last_range=(min(last), max(last)), accuracy=dict(ratio=acc))


@_timed
def slow_mode(mode: str = "full", seed: int = 0, overrides=None) -> _LegacyResult:
    """erf, first layer only, L = K − M = 2 from random initialisation: a long ODE integration.

    Returns the ``trajectory``, the symmetric fixed-point error ``eg_ansatz``, and the
    correlations ``extra_corr`` (T, pairs) between student units that end up unspecialised.
    """
    s = settings("slow_mode", mode, None, check_overrides(overrides))
    K, M = s["K"], s["M"]
    # extra_norm: (T, n_extra) norms Q_kk of the extra units; alpha_anti: first time at which the
    # first pair of extra units has correlation < -0.99
    state0 = start(K, M, s["kind"], N=10_000, seed=_seed(seed, 20, K))
    setup = Setup("erf", eta=s["eta"], sigma=s["sigma"])
    alphas = np.concatenate([[0.0], np.geomspace(1e-2, s["alpha_max"], 400)])
    tr = integrate(state0, setup, s["alpha_max"], alphas=alphas)
    # extra units: those least aligned with any teacher at the end
    Rf, Qf = tr.R[-1], tr.Q[-1]
    cos = np.abs(Rf) / np.sqrt(np.outer(np.diag(Qf), np.diag(tr.T)))
    spec = np.argmax(cos, axis=0)  # best student for each teacher
    extra = [k for k in range(K) if k not in set(spec.tolist())]
    pairs = [(k, l) for i, k in enumerate(extra) for l in extra[i + 1:]]
    d = np.sqrt(np.einsum("tkk->tk", tr.Q))
    corr = np.stack([tr.Q[:, k, l] / (d[:, k] * d[:, l]) for k, l in pairs], axis=1) if pairs \
        else np.zeros((tr.alpha.size, 0))
    i4 = int(np.argmin(np.abs(tr.alpha - 1e4)))
    from ..asymptotics import erf_symmetric_fixed_point, stability

    fp = erf_symmetric_fixed_point(M, K - M, s["eta"], s["sigma"])
    alts = ode_variants(state0, setup, tr)
    ev_alt, _ = stability(perturbed(fp.state), setup)
    i_pair = int(np.argmax(corr[:, 0] < -0.99)) if pairs and (corr[:, 0] < -0.99).any() else None
    return _LegacyResult(trajectory=tr, K=K, M=M, eta=s["eta"], sigma=s["sigma"], extra=extra,
                  state0=state0, setup=setup,
                  extra_norm=np.stack([tr.Q[:, k, k] for k in extra], axis=1) if extra else None,
                  alpha_anti=None if i_pair is None else float(tr.alpha[i_pair]),
                  eg_ansatz=float(fp.eg), ansatz_max_real=fp.max_real,
                  ansatz_n_unstable=fp.n_unstable, end_exponent=end_exponent(tr),
                  extra_pairs=pairs, extra_corr=corr, alpha_max=s["alpha_max"],
                  eg_1e4=float(tr.eg[i4]), eg_end=float(tr.eg[-1]), settings=s,
                  eg_1e4_ratio=float(tr.eg[i4]) / fp.eg,
                  accuracy=dict(
                      eg_1e4_ratio=float(ratio_accuracy(tr.eg[i4],
                                                         spread(lambda t: t.eg[i4], tr, alts),
                                                         fp.eg, fixed_point_accuracy(fp))),
                      ansatz_max_real=abs(float(ev_alt.real.max()) - fp.max_real),
                      end_exponent=float(spread(end_exponent, tr, alts))))
