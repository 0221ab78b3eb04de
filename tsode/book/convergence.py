r"""Chapter 1's convergence test: SGD approaches the ODE like N^-1/2, through the plateau escape.

The theorem of Goldt et al. (2019) bounds :math:`\mathbb E\sup_{\alpha\le\alpha_{\max}}
\|X^{\rm SGD}(\alpha) - X^{\rm ODE}(\alpha)\| \le C(\alpha_{\max})/\sqrt N` for the order
parameters X = (Q, R, v). :func:`convergence` measures, for every run at every N, the sup over
the output times of max_entries |Q − Q_ODE|, |R − R_ODE| and of |ε_g − ε_g^ODE| (single runs; the
student units of each run relabelled to the ODE's final specialisation, a symmetry of the
problem), fits the exponent of their mean against N by least squares in log–log, and estimates its
standard error by a bootstrap over the runs. The mean path (the average over runs) is compared
with the ODE by a Bonferroni t-test at every output time.

All N start from one macroscopic state sampled at N = ``N_start`` (settings): its initial
asymmetry R = O(N_start^-1/2) sets the escape time of the ODE, and the compared N are well above
N_start so that the SGD noise is small against that asymmetry (the asymptotic regime of the
theorem). Registered as ``experiments.SETTINGS["convergence"]``.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from ..ode import integrate
from ..order_parameters import Setup
from . import experiments as ex

#: Settings of :func:`convergence`: K = M = 2, erf, η = 0.5, σ = 0; α up to 300 covers the
#: plateau (α ≈ 5–150) and the escape (ε_g falls by two decades between α ≈ 150 and 300).
SETTINGS = dict(
    common=dict(K=2, M=2, eta=0.5, sigma=0.0, activation="erf", N_start=300, alpha_max=300.0,
                n_points=70, bootstrap=2000),
    fast=dict(N=[1_000, 4_000, 16_000], runs=[32, 16, 8]),
    full=dict(N=[1_000, 4_000, 16_000], runs=[64, 32, 16]),
)
ex.SETTINGS.setdefault("convergence", SETTINGS)
#: Accuracy assumed for printing a fitted exponent: the seeded reduced engine reproduces its runs
#: up to round-off, which shifts a sup-deviation by far less than 1e-4 relative.
REPRODUCIBILITY = 1e-4
#: The measured quantities (keys of ``Result.dev``).
QUANTITIES = ("eg", "Q", "R")


def _alphas(alpha_max, n):
    """Output times: linear up to 20 (the initial decay), then logarithmic to ``alpha_max``."""
    lin = np.linspace(0.0, 20.0, n // 2 + 1)[:-1]
    return np.concatenate([lin, np.geomspace(20.0, alpha_max, n - lin.size)])


def sup_deviations(tr, ode) -> dict:
    """Per run, sup over the output times of the largest entry of |X − X_ODE| for X = ε_g, Q, R.

    ``tr``: multi-run Trajectory (runs, T, ...) at the times of ``ode``; units relabelled to the
    ODE's final R (:func:`experiments.align_units`). Returns {"eg"|"Q"|"R": (runs,) array}."""
    al = ex.align_units(tr, ode.R[-1])
    return dict(eg=np.abs(np.atleast_2d(tr.eg) - ode.eg[None]).max(axis=1),
                Q=np.abs(al["Q"] - ode.Q[None]).max(axis=(1, 2, 3)),
                R=np.abs(al["R"] - ode.R[None]).max(axis=(1, 2, 3)))


def fit_exponent(N, devs, n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Least-squares slope of log(mean dev) against log N, its intercept, and the bootstrap
    standard error of the slope (runs resampled with replacement within each N).

    ``N``: (n,) input dimensions; ``devs``: list of n arrays (runs_i,) of per-run deviations."""
    x = np.log(np.asarray(N, dtype=float))
    slope, icpt = np.polyfit(x, np.log([d.mean() for d in devs]), 1)
    rng = np.random.default_rng(seed)
    boot = [np.polyfit(x, np.log([rng.choice(d, d.size).mean() for d in devs]), 1)[0]
            for _ in range(n_boot)]
    return float(slope), float(icpt), float(np.std(boot, ddof=1))


def mean_path_tstat(tr, ode) -> tuple[float, float]:
    """Largest |t| of the run mean of R (units aligned) and ε_g against the ODE over all times and
    entries, and the Bonferroni critical value of the two-sided 1 % t-test."""
    al = ex.align_units(tr, ode.R[-1])
    x = np.concatenate([np.atleast_2d(tr.eg)[..., None], al["R"].reshape(al["R"].shape[:2] + (-1,))],
                       axis=2)[:, 1:]  # (runs, T-1, 1 + K M); alpha = 0 is exact
    ref = np.concatenate([ode.eg[:, None], ode.R.reshape(len(ode.eg), -1)], axis=1)[1:]
    se = x.std(axis=0, ddof=1) / np.sqrt(x.shape[0])
    t = np.abs(x.mean(axis=0) - ref) / np.maximum(se, 1e-300)
    return float(t.max()), float(stats.t.ppf(1 - 0.005 / t.size, df=x.shape[0] - 1))


@ex._timed
def convergence(mode: str = "full", seed: int = 0, overrides=None) -> ex.Result:
    r"""SGD (reduced engine) against the ODE at several N through the plateau escape.

    Returns ``N``, ``runs``, ``dev`` ({"eg"|"Q"|"R": list over N of (runs,) arrays}), ``dev_mean``
    and ``dev_err`` (mean and standard error over runs, {quantity: (n,)}), ``slope``,
    ``intercept``, ``slope_err`` ({quantity: float}, :func:`fit_exponent`), ``mean_t`` /
    ``mean_crit`` (list over N, :func:`mean_path_tstat`), the ODE (``ode``) and ``settings``.
    ``accuracy["slope"]``: :data:`REPRODUCIBILITY` (the printed digits; the statistical error is
    ``slope_err``).
    """
    s = ex.settings("convergence", mode, None, ex.check_overrides(overrides))
    state0 = ex.start(s["K"], s["M"], "random", N=s["N_start"], seed=ex._seed(seed, 10))
    setup = Setup(s["activation"], eta=s["eta"], sigma=s["sigma"])
    alphas = _alphas(s["alpha_max"], s["n_points"])
    ode = integrate(state0, setup, s["alpha_max"], alphas=alphas)
    dev = {q: [] for q in QUANTITIES}
    mean_t, mean_crit = [], []
    for i, (N, runs) in enumerate(zip(s["N"], s["runs"])):
        tr = ex._sim(state0, setup, N, s["alpha_max"], engine="reduced", seed=ex._seed(seed, 11, i),
                     n_runs=runs, alphas=alphas)
        for q, d in sup_deviations(tr, ode).items():
            dev[q].append(d)
        t, crit = mean_path_tstat(tr, ode)
        mean_t.append(t)
        mean_crit.append(crit)
    fits = {q: fit_exponent(s["N"], dev[q], s["bootstrap"], ex._seed(seed, 12)) for q in QUANTITIES}
    return ex.Result(
        N=list(s["N"]), runs=list(s["runs"]), dev=dev, ode=ode, setup=setup, state0=state0,
        settings=s,
        dev_mean={q: np.array([d.mean() for d in dev[q]]) for q in QUANTITIES},
        dev_err={q: np.array([d.std(ddof=1) / np.sqrt(d.size) for d in dev[q]]) for q in QUANTITIES},
        slope={q: f[0] for q, f in fits.items()}, intercept={q: f[1] for q, f in fits.items()},
        slope_err={q: f[2] for q, f in fits.items()}, mean_t=mean_t, mean_crit=mean_crit,
        accuracy=dict(slope={q: REPRODUCIBILITY for q in QUANTITIES},
                      slope_err={q: REPRODUCIBILITY for q in QUANTITIES}))


def records(res) -> list[dict]:
    """Records of book/data/summary.json: the fitted exponent of each quantity, with its
    bootstrap standard error, against the theorem's -1/2."""
    s = res.settings
    return [dict(id=f"ch1-convergence-slope-{q}", chapter=1,
                 claim="single SGD runs approach the ODE like N^-1/2 through the plateau escape",
                 quantity=f"exponent of sup|{q}_SGD - {q}_ODE| against N", value=res.slope[q],
                 stderr=res.slope_err[q], method="sgd_reduced", alpha=s["alpha_max"], N=max(res.N),
                 runs=min(res.runs), activation=s["activation"], layers="first", K=s["K"],
                 M=s["M"], eta=s["eta"], sigma=s["sigma"], reference=-0.5,
                 reference_source="convergence theorem of Goldt et al. 2019 (rate N^-1/2)")
            for q in QUANTITIES]
