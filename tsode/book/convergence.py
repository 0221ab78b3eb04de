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
theorem). Settings: :class:`ConvergenceSettings`; result: :class:`Convergence`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from ..ode import integrate
from ..order_parameters import OrderParameters, Setup
from ..trajectory import Trajectory
from .chapter import Result, Settings, register, run_sgd, seed_for, settings_of, start, timed
from .odes import align_units

__all__ = ["ConvergenceSettings", "Convergence", "convergence", "sup_deviations", "fit_exponent",
           "mean_path_tstat", "records"]


@register("convergence")
@dataclass(frozen=True)
class ConvergenceSettings(Settings):
    """Settings of :func:`convergence`: erf, K = M = 2, η = 0.5, σ = 0; α up to 300 covers the
    plateau (α ≈ 5–150) and the escape (ε_g falls by two decades between α ≈ 150 and 300).

    K, M : student and teacher units (first layer only, v = v* = 1).
    eta, sigma : learning rate and label-noise standard deviation.
    activation : the activation ("erf": the theorem needs a bounded g with bounded derivatives).
    N_start : dimension at which the common initial state is sampled (its asymmetry
        R = O(N_start^-1/2) sets the ODE's escape time).
    alpha_max : end of the compared window.
    n_points : output times (:func:`_alphas`).
    bootstrap : bootstrap resamples of the exponent's standard error.
    N : the compared input dimensions.
    runs : reduced-engine runs per N, same length as N (fast: 32, 16, 8).
    """

    MODE_VALUES = {"fast": dict(runs=(32, 16, 8)), "full": {}}

    K: int = 2
    M: int = 2
    eta: float = 0.5
    sigma: float = 0.0
    activation: str = "erf"
    N_start: int = 300
    alpha_max: float = 300.0
    n_points: int = 70
    bootstrap: int = 2000
    N: tuple = (1_000, 4_000, 16_000)
    runs: tuple = (64, 32, 16)

    def __post_init__(self):
        super().__post_init__()
        if np.ndim(self.N) != 1 or np.ndim(self.runs) != 1 or len(self.N) != len(self.runs) \
                or len(self.N) < 2:
            raise ValueError(f"N and runs must be sequences of the same length >= 2 (one run "
                             f"count per N), got N={self.N!r}, runs={self.runs!r}")


@dataclass(frozen=True, kw_only=True)
class Convergence(Result):
    """Result of :func:`convergence` (n = len(N), quantities q of :data:`QUANTITIES`).

    N : list of the n compared input dimensions; N_max : the largest.
    runs : list of the n run counts.
    dev : {q: list over N of (runs_i,) sup-deviations of single runs} (:func:`sup_deviations`).
    dev_mean, dev_err : {q: (n,) mean and standard error over the runs of dev}.
    slope, intercept, slope_err : {q: float}, the least-squares fit of log dev_mean against
        log N and the bootstrap standard error of its slope (:func:`fit_exponent`).
    mean_t, mean_crit : list over N of the largest |t| of the mean path against the ODE and its
        Bonferroni 1 % critical value (:func:`mean_path_tstat`).
    mean_test_passed : True if mean_t < mean_crit at every N.
    ode : Trajectory of the ODE at the output times; setup, state0 : its Setup and start.
    accuracy : of slope and slope_err, :data:`REPRODUCIBILITY` (the printed digits; the
        statistical error is slope_err).
    """

    N: list
    N_max: int
    runs: list
    dev: dict
    dev_mean: dict
    dev_err: dict
    slope: dict
    intercept: dict
    slope_err: dict
    mean_t: list
    mean_crit: list
    mean_test_passed: bool
    ode: Trajectory
    setup: Setup
    state0: OrderParameters


#: Accuracy assumed for printing a fitted exponent: the seeded reduced engine reproduces its runs
#: up to round-off, which shifts a sup-deviation by far less than 1e-4 relative.
REPRODUCIBILITY = 1e-4
#: The measured quantities (keys of ``Convergence.dev``).
QUANTITIES = ("eg", "Q", "R")


def _alphas(alpha_max, n):
    """Output times: linear up to 20 (the initial decay), then logarithmic to ``alpha_max``."""
    lin = np.linspace(0.0, 20.0, n // 2 + 1)[:-1]
    return np.concatenate([lin, np.geomspace(20.0, alpha_max, n - lin.size)])


def sup_deviations(tr, ode) -> dict:
    """Per run, sup over the output times of the largest entry of |X − X_ODE| for X = ε_g, Q, R.

    ``tr``: multi-run Trajectory (runs, T, ...) at the times of ``ode``; units relabelled to the
    ODE's final R (:func:`tsode.book.odes.align_units`). Returns {"eg"|"Q"|"R": (runs,) array}."""
    al = align_units(tr, ode.R[-1])
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
    al = align_units(tr, ode.R[-1])
    x = np.concatenate([np.atleast_2d(tr.eg)[..., None], al["R"].reshape(al["R"].shape[:2] + (-1,))],
                       axis=2)[:, 1:]  # (runs, T-1, 1 + K M); alpha = 0 is exact
    ref = np.concatenate([ode.eg[:, None], ode.R.reshape(len(ode.eg), -1)], axis=1)[1:]
    se = x.std(axis=0, ddof=1) / np.sqrt(x.shape[0])
    t = np.abs(x.mean(axis=0) - ref) / np.maximum(se, 1e-300)
    return float(t.max()), float(stats.t.ppf(1 - 0.005 / t.size, df=x.shape[0] - 1))


@timed
def convergence(settings: ConvergenceSettings | str = "full", seed: int = 0,
                overrides=None) -> Convergence:
    r"""SGD (reduced engine) against the ODE at several N through the plateau escape.

    ``settings``: a :class:`ConvergenceSettings`, or a mode (``"fast"``/``"full"``) with an
    ``overrides`` dict. Fields of the result: :class:`Convergence`.
    """
    s = settings_of("convergence", settings, overrides=overrides)
    state0 = start(s.K, s.M, "random", N=s.N_start, seed=seed_for(seed, "convergence.start"))
    setup = Setup(s.activation, eta=s.eta, sigma=s.sigma)
    alphas = _alphas(s.alpha_max, s.n_points)
    ode = integrate(state0, setup, s.alpha_max, alphas=alphas)
    dev = {q: [] for q in QUANTITIES}
    mean_t, mean_crit = [], []
    for i, (N, runs) in enumerate(zip(s.N, s.runs)):
        tr = run_sgd(state0, setup, N, s.alpha_max, engine="reduced", n_runs=runs,
                     seed=seed_for(seed, "convergence.runs", i), alphas=alphas)
        for q, d in sup_deviations(tr, ode).items():
            dev[q].append(d)
        t, crit = mean_path_tstat(tr, ode)
        mean_t.append(t)
        mean_crit.append(crit)
    fits = {q: fit_exponent(s.N, dev[q], s.bootstrap, seed_for(seed, "convergence.bootstrap"))
            for q in QUANTITIES}
    return Convergence(
        N=list(s.N), N_max=max(s.N), runs=list(s.runs), dev=dev, ode=ode, setup=setup,
        state0=state0, settings=s,
        dev_mean={q: np.array([d.mean() for d in dev[q]]) for q in QUANTITIES},
        dev_err={q: np.array([d.std(ddof=1) / np.sqrt(d.size) for d in dev[q]])
                 for q in QUANTITIES},
        slope={q: f[0] for q, f in fits.items()}, intercept={q: f[1] for q, f in fits.items()},
        slope_err={q: f[2] for q, f in fits.items()}, mean_t=mean_t, mean_crit=mean_crit,
        mean_test_passed=bool(all(t < c for t, c in zip(mean_t, mean_crit))),
        accuracy=dict(slope={q: REPRODUCIBILITY for q in QUANTITIES},
                      slope_err={q: REPRODUCIBILITY for q in QUANTITIES}))


def records(res) -> list[dict]:
    """Records of book/data/summary.json: the fitted exponent of each quantity, with its
    bootstrap standard error, against the theorem's -1/2."""
    s = res.settings
    return [dict(id=f"ch1-convergence-slope-{q}", chapter=1,
                 claim="single SGD runs approach the ODE like N^-1/2 through the plateau escape",
                 quantity=f"exponent of sup|{q}_SGD - {q}_ODE| against N", value=res.slope[q],
                 stderr=res.slope_err[q], method="sgd_reduced", alpha=s.alpha_max, N=res.N_max,
                 runs=min(res.runs), activation=s.activation, layers="first", K=s.K,
                 M=s.M, eta=s.eta, sigma=s.sigma, reference=-0.5,
                 reference_source="convergence theorem of Goldt et al. 2019 (rate N^-1/2)")
            for q in QUANTITIES]
