r"""Chapter 1, the ODEs and their validity: ODE against SGD from the same initial state."""

from __future__ import annotations

import functools

import numpy as np

from ..ode import integrate
from ..order_parameters import Setup, generalisation_error
from .accuracy import (ATOL, PERTURBATION, RTOL, TIGHT, TOL_FACTOR, fixed_point_accuracy,
                       ode_variants, perturbed, ratio_accuracy, spectrum_summary, spread)
from .chapter import decade_exponent, end_exponent, start
from ._legacy import Result, _key, _seed, _sim, _timed, check_overrides, settings


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




@_timed
def ode_vs_sgd(mode: str = "full", activation: str = "erf", seed: int = 0, overrides=None) -> Result:
    """ε_g(α) and the overlaps: ODE against full and reduced SGD from the same initial state.

    erf: K = M = 2 from the "large" initialisation, with the plateau of unspecialised units and
    the escape to the specialised solution. relu: the same from the "small" initialisation.
    Returns ``ode`` (Trajectory), ``sgd`` ({"full": Trajectory, "reduced": Trajectory}, multi-run),
    ``N`` and the key numbers ``eg_ode_end``, ``eg_sgd_end`` (mean of the reduced runs at the
    last time) and ``plateau`` (ODE ε_g at the middle of the plateau, erf only).
    """
    s = settings("ode_vs_sgd", mode, activation, check_overrides(overrides))
    K, M, N = s["K"], s["M"], s["N"]
    state0 = start(K, M, s["kind"], N=N, seed=_seed(seed, 1))
    setup = Setup(activation, eta=s["eta"], sigma=s["sigma"])
    amax = s["alpha_max"]
    alphas_sgd = np.concatenate([[0.0], np.geomspace(0.1, amax, s["n_points"])])
    ode = integrate(state0, setup, amax, alphas=np.concatenate([[0.0], np.geomspace(1e-2, amax, 300)]))
    sgd = {
        "full": _sim(state0, setup, N, amax, engine="full", seed=_seed(seed, 2),
                     n_runs=s["runs_full"], alphas=alphas_sgd),
        "reduced": _sim(state0, setup, N, amax, engine="reduced", seed=_seed(seed, 3),
                        n_runs=s["runs_reduced"], alphas=alphas_sgd),
    }
    aligned = {k: align_units(t, ode.R[-1]) for k, t in sgd.items()}
    alts = ode_variants(state0, setup, ode)
    res = Result(ode=ode, sgd=sgd, aligned=aligned, N=N, setup=setup, state0=state0, settings=s,
                 alpha_end=amax, eg_ode_end=float(ode.eg[-1]),
                 eg_sgd_end={k: float(np.mean(np.atleast_2d(t.eg)[:, -1])) for k, t in sgd.items()},
                 accuracy=dict(eg_ode_end=float(spread(lambda t: t.eg[-1], ode, alts))))
    if activation == "erf":
        res.plateau_alpha, res.plateau = _plateau(ode)
        res.accuracy.update(plateau=float(spread(lambda t: _plateau(t)[1], ode, alts)),
                            plateau_alpha=float(spread(lambda t: _plateau(t)[0], ode, alts)))
    return res


def _plateau(ode):
    """(α, ε_g) where the ODE's logarithmic slope is smallest in magnitude, before the escape."""
    a, e = ode.alpha[1:], ode.eg[1:]
    slope = np.gradient(np.log(e), np.log(a))
    mid = (a > 1) & (a < a[np.argmin(slope)])
    i = np.flatnonzero(mid)[np.argmin(np.abs(slope[mid]))]
    return float(a[i]), float(e[i])
