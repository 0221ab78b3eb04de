r"""Chapter 3, training both layers: ε_g* against K, the denoising fixed points."""

from __future__ import annotations

import functools

import numpy as np

from ..ode import integrate
from ..order_parameters import Setup, generalisation_error
from .accuracy import (ATOL, PERTURBATION, RTOL, TIGHT, TOL_FACTOR, fixed_point_accuracy,
                       ode_variants, perturbed, ratio_accuracy, spectrum_summary, spread)
from .chapter import decade_exponent, end_exponent, start
from ._legacy import Result, _key, _seed, _sim, _timed, check_overrides, settings


def _denoiser(K, M, eta, sigma):
    """(ε_g*, accuracy) of the erf denoising fixed point (:func:`fixed_point_accuracy`)."""
    from ..asymptotics import denoising_fixed_point

    fp = denoising_fixed_point(K, M, eta, eta, sigma)
    return float(fp.eg), fixed_point_accuracy(fp)


@_timed
def both_layers(mode: str = "full", seed: int = 0, overrides=None,
                activations=("erf", "relu", "linear")) -> Result:
    """Both layers trained (η_v = η), teacher v* = 1, student v from ``v_init`` (default
    "scaled": the authors' start, v at the first layer's scale; "ones": v = 1).

    For each activation and K: the ODE from the chapter's initialisation up to ``alpha_read``
    (erf: large, ReLU and linear: small), reduced SGD (mean over runs) for K in ``sgd_K`` up to
    ``alpha_sgd``, and for erf the denoising fixed points (:func:`tsode.asymptotics.
    denoising_fixed_point`). Returns ``trajectories[act][K]``, ``sgd[act][K]``, ``K[act]``,
    ``ode[act]`` (ε_g at alpha_read), ``ode_at_sgd[act]`` (ε_g of the ODE at alpha_sgd),
    ``sgd_mean[act]``/``sgd_err[act]`` (at alpha_sgd, mean ± s.e. over runs, K in sgd_K),
    ``fixed_points`` {"erf": ε_g* of the denoisers}, ``alpha_read``, ``alpha_sgd``.
    """
    res = Result(trajectories={}, sgd={}, K={}, ode={}, ode_at_sgd={}, sgd_mean={}, sgd_err={},
                 fixed_points={}, alpha_read={}, final_v={}, final_exponent={}, settings={},
                 accuracy=dict(ode={}, fixed_points={}, fp_ratio={}, final_exponent={}),
                 fp_ratio={}, state0={}, setup={},
                 # significant digits the chapter prints of ode[act]: linear networks at
                 # alpha = 1e7 drift like alpha^-1/2 and their error is known to ~3e-5 relative
                 # at the default tolerances (it moves that much between CPUs), hence 2
                 print_digits=dict(erf=4, relu=4, linear=2))
    for act in activations:
        s = settings("both_layers", mode, act, check_overrides(overrides))
        if act == "relu":
            s["alpha_read"] = s["relu_alpha_read"]
        M, a_sgd = s["M"], s["alpha_sgd"]
        setup = Setup(act, eta=s["eta"], eta_v=s["eta"], sigma=s["sigma"])
        res.settings[act] = s
        res.K[act] = list(s["K"])
        res.alpha_read[act] = s["alpha_read"]
        res.trajectories[act], res.sgd[act], res.state0[act] = {}, {}, {}
        res.setup[act] = setup
        alphas = np.unique(np.concatenate([[0.0], np.geomspace(1e-2, s["alpha_read"], 300), [a_sgd]]))
        alphas_sgd = np.concatenate([[0.0], np.geomspace(1.0, a_sgd, s["n_points"])])
        alts = {}
        for K in s["K"]:
            state0 = start(K, M, s["kind"], N=10_000, seed=_seed(seed, 30, K), v=s["v_init"])
            tr = integrate(state0, setup, s["alpha_read"], alphas=alphas)
            res.trajectories[act][K], res.state0[act][K] = tr, state0
            alts[K] = ode_variants(state0, setup, tr)
            if K in s["sgd_K"]:
                res.sgd[act][K] = _sim(state0, setup, s["N"], a_sgd, engine="reduced",
                                       seed=_seed(seed, 31, K), n_runs=s["runs"],
                                       alphas=alphas_sgd)
        trs = res.trajectories[act]
        res.ode[act] = np.array([trs[K].eg[-1] for K in s["K"]])
        res.accuracy["ode"][act] = np.array([spread(lambda t: t.eg[-1], trs[K], alts[K])
                                             for K in s["K"]])
        i_sgd = int(np.argmin(np.abs(alphas - a_sgd)))
        res.ode_at_sgd[act] = np.array([trs[K].eg[i_sgd] for K in s["K"]])
        res.final_v[act] = {K: trs[K].v[-1].copy() for K in s["K"]}
        # local exponent d ln eps_g / d ln alpha over the last decade, per K
        res.final_exponent[act] = np.array([decade_exponent(trs[K]) for K in s["K"]])
        res.accuracy["final_exponent"][act] = np.array(
            [spread(decade_exponent, trs[K], alts[K]) for K in s["K"]])
        end = {K: np.atleast_2d(t.eg)[:, -1] for K, t in res.sgd[act].items()}
        res.sgd_mean[act] = np.array([end[K].mean() for K in s["sgd_K"]])
        res.sgd_err[act] = np.array([end[K].std(ddof=1) / np.sqrt(end[K].size) for K in s["sgd_K"]])
        if act == "erf":
            fps = np.array([_denoiser(K, M, s["eta"], s["sigma"]) for K in s["K"]])
            res.fixed_points[act], res.accuracy["fixed_points"][act] = fps.T
            # K eps_g* / (M eps_g*(K = M)): ~1 for denoisers
            res.fp_ratio[act] = np.array(s["K"]) * fps[:, 0] / (M * fps[0, 0])
            res.accuracy["fp_ratio"][act] = ratio_accuracy(
                np.array(s["K"]) * fps[:, 0], np.array(s["K"]) * fps[:, 1], M * fps[0, 0],
                M * fps[0, 1])
    any_s = next(iter(res.settings.values()))
    res.sgd_K, res.N, res.runs, res.alpha_sgd = any_s["sgd_K"], any_s["N"], any_s["runs"], any_s["alpha_sgd"]
    return res
