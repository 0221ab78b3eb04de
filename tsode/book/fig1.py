r"""Chapter 1's reproduction of the paper's Fig. 1(b) (Goldt et al. 2019).

The paper's caption gives only N = 784, M = 4, η = 0.2 and the sigmoidal (erf) activation; the
soft committee machine (first layer trained, v = v* = 1) is the natural reading. Everything else
is this book's choice and is stated in :data:`SETTINGS` (registered as ``experiments.SETTINGS
["fig1"]``): σ = 0 (not given), K = 4, 6, 8, α up to 2000, an orthonormal teacher (T = I), the
"large" start (student entries N(0, 1)) and the seeds.
"""

from __future__ import annotations

import numpy as np

from ..ode import integrate
from ..order_parameters import Setup
from . import experiments as ex

#: Settings of :func:`fig1` (both modes); registered in :data:`tsode.book.experiments.SETTINGS`.
SETTINGS = dict(
    common=dict(fig1_N=784, fig1_M=4, fig1_K=[4, 6, 8], fig1_eta=0.2,
                fig1_sigma=0.0, fig1_alpha_max=2000.0, fig1_n_points=36, fig1_band=(10, 90)),
    # fast: a reduced-engine single run and 8 runs per K; full: a full-engine single run at
    # N = 784 and 16 reduced runs per K
    fast=dict(fig1_K=[4, 6], fig1_runs=8, fig1_single_engine="reduced"),
    full=dict(fig1_runs=16, fig1_single_engine="full"),
)
ex.SETTINGS.setdefault("fig1", SETTINGS)


def _read(tr, alpha):
    """Index of the output time of ``tr`` nearest to ``alpha`` (log scale)."""
    return int(np.argmin(np.abs(np.log(np.maximum(tr.alpha, 1e-12)) - np.log(alpha))))


def _one_K(K, s, seed):
    """ODE, one single SGD run and an ensemble of reduced runs for a student with K units.

    Returns a dict with ``state0``, ``ode`` (Trajectory), ``single`` (Trajectory, one run) and
    ``runs`` (Trajectory with a run axis: (runs, T) for ε_g)."""
    M, N, amax = s["fig1_M"], s["fig1_N"], s["fig1_alpha_max"]
    state0 = ex.start(K, M, "random", N=N, seed=ex._seed(seed, 40, K))
    setup = Setup("erf", eta=s["fig1_eta"], sigma=s["fig1_sigma"])
    alphas = np.concatenate([[0.0], np.geomspace(0.1, amax, s["fig1_n_points"])])
    ode = integrate(state0, setup, amax,
                    alphas=np.concatenate([[0.0], np.geomspace(1e-2, amax, 400)]))
    single = ex._sim(state0, setup, N, amax, engine=s["fig1_single_engine"],
                     seed=ex._seed(seed, 41, K), n_runs=1, alphas=alphas)
    runs = ex._sim(state0, setup, N, amax, engine="reduced", seed=ex._seed(seed, 42, K),
                   n_runs=s["fig1_runs"], alphas=alphas)
    return dict(state0=state0, setup=setup, ode=ode, single=single, runs=runs)


def _band(eg, q):
    """Median and the (q[0], q[1]) percentiles over runs (axis 0) of a (runs, T) array."""
    eg = np.atleast_2d(eg)
    return np.median(eg, axis=0), np.percentile(eg, q[0], axis=0), np.percentile(eg, q[1], axis=0)


@ex._timed
def fig1(mode: str = "full", seed: int = 0, overrides=None) -> ex.Result:
    r"""The paper's Fig. 1(b): ε_g(α) of erf students with K = M and K > M, ODE against SGD.

    Returns ``K`` (list), ``cases`` (K -> dict of :func:`_one_K`, plus ``median``, ``lo``, ``hi``
    of the reduced runs' ε_g), the two times of the R insets ``alpha_R`` = (plateau of the
    K = M ODE, end) with ``R_single`` (the single run's R (K, M) there, units relabelled to the
    ODE's final specialisation) and ``R_ode``; key numbers ``plateau`` (ODE ε_g at the plateau of
    K = M), ``eg_end_ode`` / ``eg_end_sgd`` / ``eg_end_sgd_err`` per K (mean ± s.e. of the
    reduced runs at α_max) and ``escape`` per K (first α where the ODE's ε_g falls below a tenth
    of the K = M plateau; ``escape_K0`` that of K = M). ``accuracy``: of ``plateau``,
    ``plateau_alpha`` and ``escape_K0`` (:func:`tsode.book.accuracy.spread` over ODE variants).
    """
    s = ex.settings("fig1", mode, None, ex.check_overrides(overrides))
    cases = {K: _one_K(K, s, seed) for K in s["fig1_K"]}
    for c in cases.values():
        c["median"], c["lo"], c["hi"] = _band(c["runs"].eg, s["fig1_band"])
    K0 = s["fig1_M"] if s["fig1_M"] in cases else min(cases)
    ode0 = cases[K0]["ode"]
    a_plat, plateau = ex._plateau(ode0)
    alpha_R = (a_plat, s["fig1_alpha_max"])
    single = ex.align_units(cases[K0]["single"], ode0.R[-1])["R"][0]
    tr = cases[K0]["single"]
    R_single = [single[_read(tr, a)] for a in alpha_R]
    R_ode = [ode0.R[_read(ode0, a)] for a in alpha_R]
    res = ex.Result(K=list(cases), K0=K0, cases=cases, settings=s, alpha_R=alpha_R,
                    R_single=R_single, R_ode=R_ode, plateau=plateau, plateau_alpha=a_plat,
                    escape={K: _escape(c["ode"], plateau / 10) for K, c in cases.items()})
    res.escape_K0 = res.escape[K0]
    _end_numbers(res)
    alts = ex.ode_variants(cases[K0]["state0"], cases[K0]["setup"], ode0)
    res.accuracy = dict(plateau=float(ex.spread(lambda t: ex._plateau(t)[1], ode0, alts)),
                        plateau_alpha=float(ex.spread(lambda t: ex._plateau(t)[0], ode0, alts)),
                        escape_K0=float(ex.spread(lambda t: _escape(t, plateau / 10), ode0, alts)))
    return res


def _escape(ode, level) -> float:
    """First time α at which the ODE's ε_g falls below ``level`` (NaN if never)."""
    below = np.flatnonzero(ode.eg < level)
    return float(ode.alpha[below[0]]) if below.size else float("nan")


def _end_numbers(res) -> None:
    """ε_g at α_max: ODE, and mean ± standard error of the reduced runs, per K (in place)."""
    res.eg_end_ode, res.eg_end_sgd, res.eg_end_sgd_err = {}, {}, {}
    for K, c in res.cases.items():
        eg = np.atleast_2d(c["runs"].eg)[:, -1]
        res.eg_end_ode[K] = float(c["ode"].eg[-1])
        res.eg_end_sgd[K] = float(eg.mean())
        res.eg_end_sgd_err[K] = float(eg.std(ddof=1) / np.sqrt(eg.size))


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
    base = dict(chapter=1, N=s["fig1_N"], activation="erf", layers="first", M=s["fig1_M"],
                eta=s["fig1_eta"], sigma=s["fig1_sigma"], reference=None, reference_source=None)
    out = [dict(base, id="ch1-fig1-plateau", claim="Fig. 1(b): the K = M student has a plateau",
                quantity="ODE eps_g on the plateau", value=res.plateau, stderr=None,
                method="ode", alpha=res.plateau_alpha, runs=None, K=res.K0)]
    for K in res.K:
        a, ode, mean, se = _at(res, K, res.plateau_alpha)
        claim = f"Fig. 1(b): ODE and SGD agree on the plateau, K = {K}"
        out.append(dict(base, id=f"ch1-fig1-ode-K{K}", claim=claim, quantity="eps_g", value=ode,
                        stderr=None, method="ode", alpha=a, runs=None, K=K))
        out.append(dict(base, id=f"ch1-fig1-sgd-K{K}", claim=claim, quantity="eps_g", value=mean,
                        stderr=se, method="sgd_reduced", alpha=a, runs=s["fig1_runs"], K=K,
                        reference=ode, reference_source="ODE (this chapter)"))
    return out
