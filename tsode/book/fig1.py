r"""Chapter 1's reproduction of the paper's Fig. 1(b) (Goldt et al. 2019).

The paper's caption gives only N = 784, M = 4, η = 0.2 and the sigmoidal (erf) activation; the
soft committee machine (first layer trained, v = v* = 1) is the natural reading. Everything else
is this book's choice and is stated in :class:`Fig1Settings`: σ = 0 (not given), K = 4, 6, 8,
α up to 2000, an orthonormal teacher (T = I), the "large" start (student entries N(0, 1)) and
the seeds (:data:`tsode.book.chapter.SEEDS` "fig1.*").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ode import integrate
from ..order_parameters import Setup
from .accuracy import ode_variants, spread
from .chapter import Result, Settings, register, run_sgd, seed_for, settings_of, start, timed
from .odes import _plateau, align_units

__all__ = ["Fig1Settings", "Fig1", "fig1", "records"]


@register("fig1")
@dataclass(frozen=True)
class Fig1Settings(Settings):
    """Settings of :func:`fig1` (the paper's caption: N, M, η and erf; the rest chosen here).

    N : input dimension (784, the paper's).
    M : teacher units (4, the paper's).
    K : student widths (fast: 4, 6).
    eta : learning rate (0.2, the paper's).
    sigma : label-noise standard deviation (not given by the paper; 0 here).
    alpha_max : end of the ODE and the simulations.
    n_points : SGD output times, log-spaced from 0.1 to alpha_max (plus α = 0).
    band : (low, high) percentiles of the band of the reduced runs.
    runs : reduced-engine runs per K (fast: 8).
    single_engine : engine of the single SGD run, "full" at N = 784 (fast: "reduced").
    """

    MODE_VALUES = {"fast": dict(K=(4, 6), runs=8, single_engine="reduced"), "full": {}}

    N: int = 784
    M: int = 4
    K: tuple = (4, 6, 8)
    eta: float = 0.2
    sigma: float = 0.0
    alpha_max: float = 2000.0
    n_points: int = 36
    band: tuple = (10, 90)
    runs: int = 16
    single_engine: str = "full"


@dataclass(frozen=True, kw_only=True)
class Fig1(Result):
    """Result of :func:`fig1`.

    K : list of the student widths.
    K0 : the width of the insets and of the plateau numbers (M if it is among K, else min K).
    Kmax : the largest width.
    cases : {K: dict} with ``state0``, ``setup``, ``ode`` (Trajectory, 401 times), ``single``
        (Trajectory, one run), ``runs`` (Trajectory, ε_g of shape (runs, n_points + 1)) and
        ``median``, ``lo``, ``hi`` ((n_points + 1,) median and band of the runs' ε_g).
    alpha_R : the two times of the insets, (plateau_alpha, alpha_max).
    R_single : [(K0, M)] * 2, R of the single K0 run at alpha_R (units relabelled to the ODE's
        final specialisation).
    R_ode : [(K0, M)] * 2, R of the K0 ODE at alpha_R.
    plateau_alpha, plateau : (α, ε_g) of the K0 ODE on its plateau (:func:`odes._plateau`).
    escape : {K: first α where the ODE's ε_g falls below plateau / 10} (NaN if never).
    escape_K0 : escape[K0].
    escape_max : the latest escape over K.
    eg_end_ode : {K: ODE ε_g at alpha_max}.
    eg_end_sgd, eg_end_sgd_err : {K: mean and standard error over the reduced runs of ε_g at
        alpha_max}.
    accuracy : of plateau, plateau_alpha and escape_K0 (spread over ODE variants).
    """

    K: list
    K0: int
    Kmax: int
    cases: dict
    alpha_R: tuple
    R_single: list
    R_ode: list
    plateau_alpha: float
    plateau: float
    escape: dict
    escape_K0: float
    escape_max: float
    eg_end_ode: dict
    eg_end_sgd: dict
    eg_end_sgd_err: dict


def _read(tr, alpha):
    """Index of the output time of ``tr`` nearest to ``alpha`` (log scale)."""
    return int(np.argmin(np.abs(np.log(np.maximum(tr.alpha, 1e-12)) - np.log(alpha))))


def _one_K(K, s, seed):
    """ODE, one single SGD run and an ensemble of reduced runs for a student with K units.

    Returns a dict with ``state0``, ``setup``, ``ode`` (Trajectory), ``single`` (Trajectory, one
    run), ``runs`` (Trajectory with a run axis: (runs, T) for ε_g) and ``median``, ``lo``, ``hi``
    ((T,) median and percentile band of the runs' ε_g, :func:`_band`)."""
    state0 = start(K, s.M, "random", N=s.N, seed=seed_for(seed, "fig1.start", K))
    setup = Setup("erf", eta=s.eta, sigma=s.sigma)
    alphas = np.concatenate([[0.0], np.geomspace(0.1, s.alpha_max, s.n_points)])
    ode = integrate(state0, setup, s.alpha_max,
                    alphas=np.concatenate([[0.0], np.geomspace(1e-2, s.alpha_max, 400)]))
    single = run_sgd(state0, setup, s.N, s.alpha_max, engine=s.single_engine,
                     seed=seed_for(seed, "fig1.single", K), n_runs=1, alphas=alphas)
    runs = run_sgd(state0, setup, s.N, s.alpha_max, engine="reduced",
                   seed=seed_for(seed, "fig1.runs", K), n_runs=s.runs, alphas=alphas)
    median, lo, hi = _band(runs.eg, s.band)
    return dict(state0=state0, setup=setup, ode=ode, single=single, runs=runs, median=median,
                lo=lo, hi=hi)


def _band(eg, q):
    """Median and the (q[0], q[1]) percentiles over runs (axis 0) of a (runs, T) array."""
    eg = np.atleast_2d(eg)
    return np.median(eg, axis=0), np.percentile(eg, q[0], axis=0), np.percentile(eg, q[1], axis=0)


@timed
def fig1(settings: Fig1Settings | str = "full", seed: int = 0, overrides=None) -> Fig1:
    r"""The paper's Fig. 1(b): ε_g(α) of erf students with K = M and K > M, ODE against SGD.

    ``settings``: a :class:`Fig1Settings`, or a mode (``"fast"``/``"full"``) with an
    ``overrides`` dict. The insets show R of the single K = M run at the plateau of its ODE and
    at the end; the escape of every K is read against a tenth of the K = M plateau (fields:
    :class:`Fig1`).
    """
    s = settings_of("fig1", settings, overrides=overrides)
    cases = {K: _one_K(K, s, seed) for K in s.K}
    K0 = s.M if s.M in cases else min(cases)
    ode0 = cases[K0]["ode"]
    a_plat, plateau = _plateau(ode0)
    alpha_R = (a_plat, s.alpha_max)
    single = align_units(cases[K0]["single"], ode0.R[-1])["R"][0]
    tr = cases[K0]["single"]
    escape = {K: _escape(c["ode"], plateau / 10) for K, c in cases.items()}
    alts = ode_variants(cases[K0]["state0"], cases[K0]["setup"], ode0)
    accuracy = dict(plateau=float(spread(lambda t: _plateau(t)[1], ode0, alts)),
                    plateau_alpha=float(spread(lambda t: _plateau(t)[0], ode0, alts)),
                    escape_K0=float(spread(lambda t: _escape(t, plateau / 10), ode0, alts)))
    return Fig1(K=list(cases), K0=K0, Kmax=max(cases), cases=cases, settings=s, alpha_R=alpha_R,
                R_single=[single[_read(tr, a)] for a in alpha_R],
                R_ode=[ode0.R[_read(ode0, a)] for a in alpha_R], plateau=plateau,
                plateau_alpha=a_plat, escape=escape, escape_K0=escape[K0],
                escape_max=max(escape.values()), **_end_numbers(cases), accuracy=accuracy)


def _escape(ode, level) -> float:
    """First time α at which the ODE's ε_g falls below ``level`` (NaN if never)."""
    below = np.flatnonzero(ode.eg < level)
    return float(ode.alpha[below[0]]) if below.size else float("nan")


def _end_numbers(cases) -> dict:
    """ε_g at α_max per K: ``eg_end_ode`` (ODE), ``eg_end_sgd`` and ``eg_end_sgd_err`` (mean
    and standard error of the reduced runs), each {K: float}."""
    out = dict(eg_end_ode={}, eg_end_sgd={}, eg_end_sgd_err={})
    for K, c in cases.items():
        eg = np.atleast_2d(c["runs"].eg)[:, -1]
        out["eg_end_ode"][K] = float(c["ode"].eg[-1])
        out["eg_end_sgd"][K] = float(eg.mean())
        out["eg_end_sgd_err"][K] = float(eg.std(ddof=1) / np.sqrt(eg.size))
    return out


def _at(res, K, alpha):
    """(ODE ε_g, mean, s.e. of the reduced runs) of student K at the SGD output time nearest α."""
    c = res.cases[K]
    i = _read(c["runs"], alpha)
    eg = np.atleast_2d(c["runs"].eg)[:, i]
    a = float(c["runs"].alpha[i])
    return a, float(np.interp(a, c["ode"].alpha, c["ode"].eg)), float(eg.mean()), \
        float(eg.std(ddof=1) / np.sqrt(eg.size))


def records(res) -> list[dict]:
    """Records of book/data/summary.json (issue 12, point 11) for the Fig. 1 section: the ODE's
    plateau of the K = M student, and per K the ODE and reduced-SGD ε_g on the plateau (at the
    K = M plateau time; after the escape ε_g → 0 without noise, so the plateau is where the
    figure's numbers are meaningful)."""
    s = res.settings
    base = dict(chapter=1, N=s.N, activation="erf", layers="first", M=s.M, eta=s.eta,
                sigma=s.sigma, reference=None, reference_source=None)
    out = [dict(base, id="ch1-fig1-plateau", claim="Fig. 1(b): the K = M student has a plateau",
                quantity="ODE eps_g on the plateau", value=res.plateau, stderr=None,
                method="ode", alpha=res.plateau_alpha, runs=None, K=res.K0)]
    for K in res.K:
        a, ode, mean, se = _at(res, K, res.plateau_alpha)
        claim = f"Fig. 1(b): ODE and SGD agree on the plateau, K = {K}"
        out.append(dict(base, id=f"ch1-fig1-ode-K{K}", claim=claim, quantity="eps_g", value=ode,
                        stderr=None, method="ode", alpha=a, runs=None, K=K))
        out.append(dict(base, id=f"ch1-fig1-sgd-K{K}", claim=claim, quantity="eps_g", value=mean,
                        stderr=se, method="sgd_reduced", alpha=a, runs=s.runs, K=K,
                        reference=ode, reference_source="ODE (this chapter)"))
    return out
