r"""Chapter 5 (beyond the paper): finite N — plateau exit times ∝ ln N, fluctuations, the SDE.

Everything here reads the cached ensembles of :mod:`tsode.book.exit_runs`
(``book/data/finite_n/*.nc``) and the theory of :mod:`tsode.plateau`; nothing is simulated at
execution time except the library cell of the notebook.

* :func:`finite_n` — the experiment (:class:`FiniteNSettings` → :class:`FiniteN`);
* :func:`fig_exit_times`, :func:`fig_fluctuations`, :func:`fig_sde` — its figures;
* :func:`records` — the summary records ("plateau exit slope": theory, sgd_reduced, sde).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..plateau import ExitFit, fit_exit_law, symmetric_plateau
from .chapter import Result, Settings, register, settings_of, timed

__all__ = ["FiniteNSettings", "FiniteN", "finite_n", "records", "fig_exit_times",
           "fig_fluctuations", "fig_sde"]


@register("finite_n")
@dataclass(frozen=True)
class FiniteNSettings(Settings):
    """Settings of :func:`finite_n` (the data sets' own settings are in their specs,
    ``book/specs/finite_n/NAME.toml``; K, eta, sigma are checked against them).

    K : student = teacher units (2). eta : learning rate (1). sigma : label noise (0.1).
    chain : exact-chain data set over N (``k2``).
    check : (reduced, sde) data sets from the same starts at N = 1e3, 5e3.
    sde : SDE data set up to N = 1e9.
    runs : runs read per N (fast: 100; full: all).
    N_upper : the second fit uses N >= N_upper only (finite-size corrections at small N).
    fig1 : (K, eta, sigma, N) of the paper's Fig. 1 (K = M = 4, eta = 0.2, sigma = 0, N = 784):
        its plateau and the ln N term of its exit time.
    fig1_chain : exact-chain data set of exit times in the Fig. 1 setting (N <= 3162).
    """

    MODE_VALUES = {"fast": dict(runs=100), "full": {}}

    K: int = 2
    eta: float = 1.0
    sigma: float = 0.1
    chain: str = "k2"
    check: tuple = ("k2_check_reduced", "k2_check_sde")
    sde: str = "k2_sde"
    runs: int | None = None
    N_upper: float = 1000.0
    fig1: tuple = (4, 0.2, 0.0, 784)
    fig1_chain: str = "fig1"


@dataclass(frozen=True, kw_only=True)
class FiniteN(Result):
    """Result of :func:`finite_n`.

    plateau : the :class:`tsode.plateau.Plateau` (q, c, r, eg, eigenvalues, lambda_max, slope).
    N : (n,) input dimensions of the exact chain; exits (n, runs) exit times; mean, stderr,
        ci95 (n,) mean exit time, its standard error and the 95 % half-width relative to it;
        ci95_max its largest value; exit_sd_median the median over N of the exit times' spread.
    fit : :class:`tsode.plateau.ExitFit` of mean = a + b ln N; slope_ratio : b / (1/(2λ_max));
        fit_upper : the same fit over N >= ``N_upper`` (None if fewer than 3 such N).
    eg_sd, Q_sd, R_sd : (n, 2) run-to-run standard deviations of ε_g, Q_11 and R_1 = max_n R_1n
        at the probes (on the plateau, after convergence; see :func:`_spreads`); counted (n, 2)
        the runs used; probe_alpha (2,); fluct_slope (3, 2): log-log slopes of those spreads
        against N; exit_sd (n,) the spread of the exit times.
    N_check (2,), check_reduced, check_sde (2, runs): exit times from the same starts;
        ks_p (2,), mean_ratio (2,) sde/reduced.
    N_sde (m,), sde_exits (m, runs), sde_seconds (m,) seconds per run, sde_fit : ExitFit;
        rise : mean exit at 1e8 minus at 1e4; rise_theory = ln(1e4)/(2λ_max);
        cost_ratio : CPU seconds per run at 1e8 over 1e4 (wall seconds if CPU time is missing).
    eg_path_alpha (P,), eg_path_median (n, P): median ε_g over runs every 5 α.
    fig1_plateau : the Plateau of the paper's Fig. 1 setting; fig1_log_term = ln N/(2λ_max) there.
    fig1_N (k,), fig1_mean, fig1_stderr (k,), fig1_censored (k,) runs that never left the
        plateau within the record; fig1_fit : ExitFit; fig1_slope_ratio : b / (1/(2λ_max));
        fig1_runs : runs per N.
    """

    plateau: object
    N: np.ndarray
    exits: np.ndarray
    mean: np.ndarray
    stderr: np.ndarray
    ci95: np.ndarray
    ci95_max: float
    exit_sd_median: float
    fit: ExitFit
    slope_ratio: float
    fit_upper: ExitFit | None
    probe_alpha: np.ndarray
    eg_sd: np.ndarray
    Q_sd: np.ndarray
    R_sd: np.ndarray
    counted: np.ndarray
    fluct_slope: np.ndarray
    exit_sd: np.ndarray
    N_check: np.ndarray
    check_reduced: np.ndarray
    check_sde: np.ndarray
    ks_p: np.ndarray
    mean_ratio: np.ndarray
    N_sde: np.ndarray
    sde_exits: np.ndarray
    sde_seconds: np.ndarray
    sde_fit: ExitFit
    rise: float
    rise_theory: float
    cost_ratio: float
    eg_path_alpha: np.ndarray
    eg_path_median: np.ndarray
    fig1_plateau: object
    fig1_log_term: float
    fig1_N: np.ndarray
    fig1_mean: np.ndarray
    fig1_stderr: np.ndarray
    fig1_censored: np.ndarray
    fig1_fit: ExitFit
    fig1_slope_ratio: float
    fig1_runs: int


def _load(name, s, keys=("K", "eta", "sigma"), values=None):
    """The cached data set ``name`` (its first ``s.runs`` runs), after checking that its spec
    has ``keys`` equal to ``values`` (default: the settings' own)."""
    import json

    from .exit_runs import load

    ds = load(name)
    spec = json.loads(ds.attrs["spec"])
    values = [getattr(s, k) for k in keys] if values is None else values
    for key, want in zip(keys, values):
        if spec[key] != want:
            raise ValueError(f"data set {name!r} has {key} = {spec[key]}, the chapter {want}")
    return ds.isel(run=slice(0, s.runs)) if s.runs else ds


#: Runs count "on the plateau" at the first probe if they exit at least this much later, and
#: "after convergence" at the last probe if they exited at least ``CONVERGED_AFTER`` before it.
ON_PLATEAU_BEFORE, CONVERGED_AFTER = 10.0, 80.0


def _spreads(ds, exits):
    """Run-to-run standard deviations (n, 2) of ε_g, Q_11 and R_1 = max_n R_1n (the overlap of
    unit 1 with the teacher unit it specialises on: invariant under relabelling the teacher
    units, which runs do at random) at the two probes, over the runs still on the plateau at
    the first probe and converged at the last one; and the numbers of runs used (n, 2)."""
    t0, t1 = ds.probe_alpha.values[0]
    use = np.stack([exits > t0 + ON_PLATEAU_BEFORE, exits < t1 - CONVERGED_AFTER], -1)
    eg = ds.eg_probe.values
    Q = ds.Q_probe.values[..., 0, 0]
    R = ds.R_probe.values[..., 0, :].max(-1)

    def sd(a):
        return np.array([[np.std(a[i, use[i, :, j], j], ddof=1) for j in range(2)]
                         for i in range(a.shape[0])])

    return sd(eg), sd(Q), sd(R), use.sum(1)


def _loglog_slope(N, y):
    return float(np.polyfit(np.log(N), np.log(y), 1)[0])


@timed
def finite_n(settings="full", seed: int = 0, overrides=None) -> FiniteN:
    """Exit times against N (exact chain and SDE), fluctuations, theory (see :class:`FiniteN`).
    ``seed`` is unused (the data sets carry their seeds); kept for the chapter contract."""
    s = settings_of("finite_n", settings, overrides=overrides)
    from scipy import stats

    plateau = symmetric_plateau(s.K, s.eta, s.sigma)
    fig1 = symmetric_plateau(*s.fig1[:3])
    f1 = _load(s.fig1_chain, s, ("K", "eta", "sigma"), s.fig1[:3])
    f1N, f1e = f1.N.values.astype(float), f1.exit.values
    f1c = np.isnan(f1e).sum(1)
    f1m = np.nanmean(f1e, 1)
    f1se = np.nanstd(f1e, 1, ddof=1) / np.sqrt(np.sum(~np.isnan(f1e), 1))
    f1fit = fit_exit_law(f1N, f1m, f1se)
    ds = _load(s.chain, s)
    N = ds.N.values.astype(float)
    exits = ds.exit.values
    n = exits.shape[1]
    mean, sd = np.nanmean(exits, 1), np.nanstd(exits, 1, ddof=1)
    se = sd / np.sqrt(n)
    fit = fit_exit_law(N, mean, se)
    upper = N >= s.N_upper
    fit_upper = fit_exit_law(N[upper], mean[upper], se[upper]) if upper.sum() >= 3 else None
    eg_sd, Q_sd, R_sd, counted = _spreads(ds, exits)
    fl = np.array([[_loglog_slope(N, a[:, j]) for j in range(2)] for a in (eg_sd, Q_sd, R_sd)])
    red, sde = (_load(name, s) for name in s.check)
    ks = np.array([stats.ks_2samp(red.exit.values[i], sde.exit.values[i]).pvalue
                   for i in range(red.sizes["N"])])
    ratio = np.nanmean(sde.exit.values, 1) / np.nanmean(red.exit.values, 1)
    big = _load(s.sde, s)
    Ns = big.N.values.astype(float)
    se_s = np.nanstd(big.exit.values, 1, ddof=1) / np.sqrt(big.sizes["run"])
    sde_fit = fit_exit_law(Ns, np.nanmean(big.exit.values, 1), se_s)
    i, j = list(Ns).index(1e4), list(Ns).index(1e8)
    cpu = big.cpu_seconds.values if "cpu_seconds" in big else np.full(big.sizes["N"], np.nan)
    per_run = np.where(np.isfinite(cpu), cpu, big.seconds.values) / big.sizes["run"]
    rise = float(np.nanmean(big.exit.values[j]) - np.nanmean(big.exit.values[i]))
    acc = dict(mean=se, stderr=se / np.sqrt(2 * (n - 1)), slope=fit.stderr_b,
               slope_ratio=fit.stderr_b * 2 * plateau.lambda_max, lambda_max=1e-8,
               slope_theory=1e-6, eg_plateau=1e-10, rise=float(np.hypot(se_s[i], se_s[j])),
               sde_slope=sde_fit.stderr_b, ks_p=0.01, mean_ratio=0.005, cost_ratio=0.05,
               ci95=0.002)
    return FiniteN(
        settings=s, accuracy=acc, plateau=plateau, N=N, exits=exits, mean=mean, stderr=se,
        ci95=1.96 * se / mean, ci95_max=float(np.max(1.96 * se / mean)),
        exit_sd_median=float(np.median(sd)), fit=fit, slope_ratio=fit.b / plateau.slope, fit_upper=fit_upper,
        probe_alpha=ds.probe_alpha.values[0], eg_sd=eg_sd, Q_sd=Q_sd, R_sd=R_sd, counted=counted,
        fluct_slope=fl,
        exit_sd=sd, N_check=red.N.values, check_reduced=red.exit.values,
        check_sde=sde.exit.values, ks_p=ks, mean_ratio=ratio, N_sde=Ns,
        sde_exits=big.exit.values, sde_seconds=per_run, sde_fit=sde_fit, rise=rise,
        rise_theory=float(np.log(1e4) * plateau.slope), cost_ratio=float(per_run[j] / per_run[i]),
        eg_path_alpha=ds.path_alpha.values[0], eg_path_median=np.median(ds.eg_path.values, 1),
        fig1_plateau=fig1, fig1_log_term=float(np.log(s.fig1[3]) * fig1.slope),
        fig1_N=f1N, fig1_mean=f1m, fig1_stderr=f1se, fig1_censored=f1c, fig1_fit=f1fit,
        fig1_slope_ratio=f1fit.b / fig1.slope, fig1_runs=int(f1e.shape[1]),
    )


def records(res: FiniteN) -> list[dict]:
    """Summary records: quantity "plateau exit slope", methods theory / sgd_reduced / sde."""
    s, p = res.settings, res.plateau
    base = dict(chapter=5, quantity="plateau exit slope", activation="erf", layers="first",
                K=s.K, M=s.K, eta=s.eta, sigma=s.sigma, alpha=None)
    claim = ("beyond the paper: the plateau exit time grows like ln N / (2 lambda_max), "
             f"K = M = {s.K}")
    theory = dict(base, id="ch5-exit-slope-theory", claim=claim, value=p.slope, stderr=None,
                  method="theory", N=None, runs=None, reference=None, reference_source=None)
    sgd = dict(base, id="ch5-exit-slope-sgd", claim=claim, value=res.fit.b,
               stderr=res.fit.stderr_b, method="sgd_reduced",
               N=f"{res.N.min():.0f}..{res.N.max():.0f}", runs=int(res.exits.shape[1]),
               reference=p.slope, reference_source="1/(2 lambda_max), tsode.plateau")
    sde = dict(base, id="ch5-exit-slope-sde", claim=claim, value=res.sde_fit.b,
               stderr=res.sde_fit.stderr_b, method="sde",
               N=f"{res.N_sde.min():.0f}..{res.N_sde.max():.0f}",
               runs=int(res.sde_exits.shape[1]), reference=p.slope,
               reference_source="1/(2 lambda_max), tsode.plateau")
    p4, f = res.fig1_plateau, res.fig1_fit
    base4 = dict(base, K=s.fig1[0], M=s.fig1[0], eta=s.fig1[1], sigma=s.fig1[2])
    claim4 = ("beyond the paper: the plateau exit time of the paper's Fig. 1 setting grows like "
              "ln N / (2 lambda_max)")
    theory4 = dict(base4, id="ch5-exit-slope-fig1-theory", claim=claim4, value=p4.slope,
                   stderr=None, method="theory", N=None, runs=None, reference=None,
                   reference_source=None)
    sgd4 = dict(base4, id="ch5-exit-slope-fig1-sgd", claim=claim4, value=f.b, stderr=f.stderr_b,
                method="sgd_reduced", N=f"{res.fig1_N.min():.0f}..{res.fig1_N.max():.0f}",
                runs=int(res.fig1_runs), reference=p4.slope,
                reference_source="1/(2 lambda_max), tsode.plateau")
    return [theory, sgd, sde, theory4, sgd4]


# ---------------------------------------------------------------------------- figures
def fig_exit_times(res: FiniteN):
    """(a) ECDF of the exit time per N; (b) mean ± 95 % CI against ln N, the fit, the law's
    slope through the means' weighted centroid, and the SDE's means."""
    import matplotlib.pyplot as plt

    from .plotting import COLUMN_IN

    fig, (a, b) = plt.subplots(1, 2, figsize=(COLUMN_IN, 3.8))
    cmap = plt.get_cmap("viridis")
    for i, N in enumerate(res.N):
        e = np.sort(res.exits[i])
        a.step(e, np.arange(1, e.size + 1) / e.size, where="post",
               color=cmap(i / max(1, len(res.N) - 1)), label=f"N = {N:.0f}")
    a.set(xlabel=r"exit time $\alpha_{\rm exit}$", ylabel="fraction of runs exited")
    a.legend(loc="lower right")
    b.errorbar(res.N, res.mean, yerr=1.96 * res.stderr, fmt="o", ms=4, label="exact chain")
    Ns = np.geomspace(res.N.min(), res.N_sde.max(), 50)
    b.plot(Ns, res.fit.a + res.fit.b * np.log(Ns), "-", lw=1,
           label=rf"fit, slope {res.fit.b:.2f} ± {res.fit.stderr_b:.2f}")
    w = 1 / res.stderr**2  # the theory's slope through the weighted centroid of the means
    a0 = np.sum(w * (res.mean - res.plateau.slope * np.log(res.N))) / np.sum(w)
    b.plot(Ns, a0 + res.plateau.slope * np.log(Ns), "--", lw=1,
           label=rf"$1/(2\lambda_{{\max}})$ = {res.plateau.slope:.2f}")
    b.errorbar(res.N_sde, np.nanmean(res.sde_exits, 1),
               yerr=1.96 * np.nanstd(res.sde_exits, 1) / np.sqrt(res.sde_exits.shape[1]),
               fmt="s", ms=4, mfc="none", label="SDE")
    b.set(xscale="log", xlabel="N", ylabel=r"mean exit time")
    b.legend(loc="upper left")
    return fig


def fig_fluctuations(res: FiniteN):
    """Run-to-run standard deviations against N, on the plateau and at the end (log-log)."""
    import matplotlib.pyplot as plt

    from .plotting import COLUMN_IN

    fig, axes = plt.subplots(1, 2, figsize=(COLUMN_IN, 3.8), sharey=True)
    names = (r"$\epsilon_g$", r"$Q_{11}$", r"$\max_n R_{1n}$")
    for j, (ax, where) in enumerate(zip(axes, ("on the plateau", "after convergence"))):
        for k, arr in enumerate((res.eg_sd, res.Q_sd, res.R_sd)):
            ax.loglog(res.N, arr[:, j], "o-", ms=4,
                      label=f"{names[k]}: slope {res.fluct_slope[k, j]:.2f}")
        ax.loglog(res.N, arr[0, j] * np.sqrt(res.N[0] / res.N), "k:", lw=1, label=r"$N^{-1/2}$")
        ax.set(xlabel="N", title=rf"{where} ($\alpha$ = {res.probe_alpha[j]:.0f})")
        ax.legend()
    axes[0].set_ylabel("standard deviation over runs")
    return fig


def fig_sde(res: FiniteN):
    """(a) ECDFs of the exit times of the chain and the SDE from the same starts; (b) SDE cost
    per run against N."""
    import matplotlib.pyplot as plt

    from .plotting import COLUMN_IN

    fig, (a, b) = plt.subplots(1, 2, figsize=(COLUMN_IN, 3.8))
    for i, N in enumerate(res.N_check):
        for arr, ls, name in ((res.check_reduced, "-", "chain"), (res.check_sde, "--", "SDE")):
            e = np.sort(arr[i])
            a.step(e, np.arange(1, e.size + 1) / e.size, ls, where="post", color=f"C{i}",
                   label=f"{name}, N = {N:.0f}")
    a.set(xlabel=r"exit time $\alpha_{\rm exit}$", ylabel="fraction of runs exited")
    a.legend(loc="lower right")
    b.loglog(res.N_sde, res.sde_seconds, "s-", ms=4)
    b.set(xlabel="N", ylabel="SDE CPU seconds per run", ylim=(res.sde_seconds.min() / 3,
                                                          res.sde_seconds.max() * 3))
    return fig
