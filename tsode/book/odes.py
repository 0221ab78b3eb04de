r"""Chapter 1, the ODEs and their validity: ODE against SGD from the same initial state."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ode import integrate
from ..order_parameters import OrderParameters, Setup
from ..trajectory import Trajectory
from .accuracy import ode_variants, spread
from .chapter import Result, Settings, register, run_sgd, seed_for, settings_of, start, timed

__all__ = ["OdeVsSgdSettings", "OdeVsSgd", "ode_vs_sgd", "align_units"]


def align_units(traj, R_ref):
    """Student units of every run relabelled to best match the reference overlaps ``R_ref`` (K, M).

    SGD runs from the same initial state may specialise their units on the teachers in different
    orders (the problem is symmetric under permuting student units); averaging R over runs then
    mixes the assignments. For each run this picks the permutation p of the students maximising
    Σ_k R_final[p(k)] · R_ref[k] and applies it to Q, R and v at all times.
    Returns a dict with ``Q`` (runs, T, K, K), ``R`` (runs, T, K, M), ``v`` (runs, T, K).
    """
    from scipy.optimize import linear_sum_assignment

    Q = np.asarray(traj.Q).reshape((-1,) + traj.Q.shape[-3:])
    R = np.asarray(traj.R).reshape((-1,) + traj.R.shape[-3:])
    v = np.asarray(traj.v).reshape((-1,) + traj.v.shape[-2:])
    Qo, Ro, vo = np.empty_like(Q), np.empty_like(R), np.empty_like(v)
    for i in range(Q.shape[0]):
        score = np.asarray(R_ref) @ R[i, -1].T  # score[k, j]: reference unit k vs run unit j
        _, perm = linear_sum_assignment(-score)
        Qo[i] = Q[i][:, perm][:, :, perm]
        Ro[i] = R[i][:, perm]
        vo[i] = v[i][:, perm]
    return dict(Q=Qo, R=Ro, v=vo)


@register("ode_vs_sgd")
@dataclass(frozen=True)
class OdeVsSgdSettings(Settings):
    """Settings of :func:`ode_vs_sgd`; parts ``"erf"`` and ``"relu"`` (the activation).

    activation : "erf" or "relu" (set by the part).
    kind : student initialisation, "random" (erf: entries N(0, 1)) or "small" (relu: entries
        of standard deviation 1e-3); see :func:`tsode.book.chapter.start`.
    K, M : student and teacher units (first layer only, v = v* = 1).
    eta, sigma : learning rate and label-noise standard deviation.
    alpha_max : end of the ODE and the simulations.
    n_points : SGD output times, log-spaced from 0.1 to alpha_max (plus α = 0).
    N : input dimension of the simulations and of the sampled initial state (fast: 500).
    runs_full, runs_reduced : runs of the full and the reduced engine (fast: 2 and 8).
    """

    PARTS = {"erf": dict(activation="erf", kind="random"),
             "relu": dict(activation="relu", kind="small")}
    MODE_VALUES = {"fast": dict(N=500, runs_full=2, runs_reduced=8), "full": {}}

    activation: str = "erf"
    kind: str = "random"
    K: int = 2
    M: int = 2
    eta: float = 0.5
    sigma: float = 0.01
    alpha_max: float = 300.0
    n_points: int = 16
    N: int = 1000
    runs_full: int = 4
    runs_reduced: int = 32


@dataclass(frozen=True, kw_only=True)
class OdeVsSgd(Result):
    """Result of :func:`ode_vs_sgd`.

    ode : Trajectory of the ODE (301 times, log-spaced from 1e-2 to alpha_max, plus α = 0).
    sgd : {"full"|"reduced": Trajectory with a run axis}, ε_g of shape (runs, n_points + 1).
    aligned : {"full"|"reduced": :func:`align_units` of the runs to the ODE's final R}.
    N : input dimension of the simulations.
    setup : the :class:`tsode.Setup` (activation, η, σ).
    state0 : the common initial state.
    alpha_end : the last time (alpha_max).
    eg_ode_end : ODE ε_g at alpha_end.
    eg_sgd_end : {"full"|"reduced": mean over runs of ε_g at alpha_end}.
    plateau_alpha, plateau : (α, ε_g) of the ODE where its logarithmic slope is smallest
        before the escape (:func:`_plateau`); erf only, None for relu.
    accuracy : of eg_ode_end, and (erf) plateau and plateau_alpha.
    """

    ode: Trajectory
    sgd: dict
    aligned: dict
    N: int
    setup: Setup
    state0: OrderParameters
    alpha_end: float
    eg_ode_end: float
    eg_sgd_end: dict
    plateau_alpha: float | None = None
    plateau: float | None = None


@timed
def ode_vs_sgd(settings: OdeVsSgdSettings | str = "full", activation: str | None = None,
               seed: int = 0, overrides=None) -> OdeVsSgd:
    """ε_g(α) and the overlaps: ODE against full and reduced SGD from the same initial state.

    erf: K = M = 2 from the "random" initialisation, with the plateau of unspecialised units and
    the escape to the specialised solution. relu: the same from the "small" initialisation.
    ``settings``: an :class:`OdeVsSgdSettings`, or a mode (``"fast"``/``"full"``) with the part
    ``activation`` (default "erf") and an ``overrides`` dict; ``ode_vs_sgd("fast", "relu")``.
    """
    s = settings_of("ode_vs_sgd", settings, activation, overrides=overrides)
    if activation is not None and s.activation != activation:
        raise ValueError(f"activation={activation!r} contradicts the settings' "
                         f"activation={s.activation!r}")
    state0 = start(s.K, s.M, s.kind, N=s.N, seed=seed_for(seed, "ode_vs_sgd.start"))
    setup = Setup(s.activation, eta=s.eta, sigma=s.sigma)
    amax = s.alpha_max
    alphas_sgd = np.concatenate([[0.0], np.geomspace(0.1, amax, s.n_points)])
    ode = integrate(state0, setup, amax,
                    alphas=np.concatenate([[0.0], np.geomspace(1e-2, amax, 300)]))
    sgd = {engine: run_sgd(state0, setup, s.N, amax, engine=engine, n_runs=runs,
                           seed=seed_for(seed, f"ode_vs_sgd.{engine}"), alphas=alphas_sgd)
           for engine, runs in (("full", s.runs_full), ("reduced", s.runs_reduced))}
    alts = ode_variants(state0, setup, ode)
    accuracy = dict(eg_ode_end=float(spread(lambda t: t.eg[-1], ode, alts)))
    plateau_alpha = plateau = None
    if s.activation == "erf":
        plateau_alpha, plateau = _plateau(ode)
        accuracy.update(plateau=float(spread(lambda t: _plateau(t)[1], ode, alts)),
                        plateau_alpha=float(spread(lambda t: _plateau(t)[0], ode, alts)))
    return OdeVsSgd(
        ode=ode, sgd=sgd, aligned={k: align_units(t, ode.R[-1]) for k, t in sgd.items()},
        N=s.N, setup=setup, state0=state0, settings=s, alpha_end=amax,
        eg_ode_end=float(ode.eg[-1]),
        eg_sgd_end={k: float(np.mean(np.atleast_2d(t.eg)[:, -1])) for k, t in sgd.items()},
        plateau_alpha=plateau_alpha, plateau=plateau, accuracy=accuracy)


def _plateau(ode):
    """(α, ε_g) where the ODE's logarithmic slope is smallest in magnitude, before the escape."""
    a, e = ode.alpha[1:], ode.eg[1:]
    slope = np.gradient(np.log(e), np.log(a))
    mid = (a > 1) & (a < a[np.argmin(slope)])
    i = np.flatnonzero(mid)[np.argmin(np.abs(slope[mid]))]
    return float(a[i]), float(e[i])
