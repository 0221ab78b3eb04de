r"""Chapter 1's reproduction of the paper's Fig. 1(b) (Goldt et al. 2019).

The paper's caption gives only N = 784, M = 4, η = 0.2 and the sigmoidal (erf) activation; the
soft committee machine (first layer trained, v = v* = 1) is the natural reading. Everything else
is this book's choice and is stated in :class:`Fig1Settings`: σ = 0 (not given), K = 4, 6, 8,
α up to 2000, an orthonormal teacher (T = I), the "large" start (student entries N(0, 1)) and
the seeds (:data:`tsode.book.chapter.SEEDS` "fig1.*").

Every K is run from ``starts`` independent macroscopic starts (each with its own ODE), so the
band of the reduced runs spans starts as well as SGD noise; the largest student's ODE–SGD
difference at α_max is tested over starts and at a second, larger N (:func:`_gap`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..classification import classify
from ..ode import integrate
from ..order_parameters import Setup
from ..statistics import two_level
from .accuracy import ode_variants, spread
from .chapter import Result, Settings, register, run_sgd, seed_for, settings_of, start, timed
from .odes import _plateau, align_units

__all__ = ["Fig1Settings", "Fig1", "Gap", "fig1", "records", "shared_norm", "SHARED",
           "mechanism", "gap_verdict", "end_summary"]


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
    band : (low, high) percentiles of the band of the reduced runs (over all starts and runs).
    starts : independent macroscopic starts per K (fast: 2); start 0 is the figure's (its ODE
        is drawn, the single run and the insets start there).
    runs : reduced-engine runs per start (fast: 8).
    single_engine : engine of the single SGD run, "full" at N = 784 (fast: "reduced").
    gap_N : further input dimensions at which the largest student's ODE–SGD difference at
        alpha_max is measured over ``starts`` new starts sampled at that N (fast: none).
    """

    MODE_VALUES = {"fast": dict(K=(4, 6), starts=2, runs=8, single_engine="reduced", gap_N=()),
                   "full": {}}

    N: int = 784
    M: int = 4
    K: tuple = (4, 6, 8)
    eta: float = 0.2
    sigma: float = 0.0
    alpha_max: float = 2000.0
    n_points: int = 36
    band: tuple = (10, 90)
    starts: int = 8
    runs: int = 4
    single_engine: str = "full"
    gap_N: tuple = (3136,)


@dataclass(frozen=True, kw_only=True)
class Fig1(Result):
    """Result of :func:`fig1`.

    K : list of the student widths.
    K0 : the width of the insets and of the plateau numbers (M if it is among K, else min K).
    Kmax : the largest width.
    cases : {K: dict} with ``state0``, ``setup``, ``ode`` (Trajectory, 401 times), ``runs``
        (Trajectory, ε_g of shape (runs, n_points + 1)) of start 0; ``single`` (Trajectory, one
        run from start 0); ``starts``: per start a dict with ``state0``, ``ode`` and ``runs``;
        ``eg`` ((starts, runs, n_points + 1) ε_g of every reduced run) and ``median``, ``lo``,
        ``hi`` ((n_points + 1,) median and band over all starts and runs).
    alpha_R : the two times of the insets, (plateau_alpha, alpha_max).
    R_single : [(K0, M)] * 2, R of the single K0 run at alpha_R (units relabelled to the ODE's
        final specialisation).
    R_ode : [(K0, M)] * 2, R of the K0 ODE at alpha_R.
    plateau_alpha, plateau : (α, ε_g) of the K0 ODE on its plateau (:func:`odes._plateau`).
    escape : {K: first α where the ODE's ε_g falls below plateau / 10} (NaN if never).
    escape_K0 : escape[K0].
    escape_max : the latest escape over K.
    eg_end_ode : {K: ODE ε_g at alpha_max}.
    eg_end_sgd, eg_end_sgd_err : {K: mean over all reduced runs of ε_g at alpha_max, and its
        standard error from the spread between the starts' means
        (:func:`tsode.statistics.two_level`)}.
    gap : {N: :class:`Gap`} for the largest student at alpha_max (N = settings.N: the ensemble
        of the figure; then every N of settings.gap_N).
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
    gap: dict


@dataclass(frozen=True, eq=False)
class Gap:
    """The largest student's ODE–SGD difference at alpha_max over independent starts at one N.

    Per start s (S starts) the ODE and R reduced runs start from the same sampled state.

    N, K : input dimension and student width.
    ode : (S,) ODE ε_g at alpha_max per start.
    sgd : (S, R) ε_g of every run at alpha_max.
    diff : (S,) mean over the start's runs minus its ODE.
    diff_mean, diff_se : mean of ``diff`` over starts and its standard error (between starts).
    diff_within_se : the standard error ``diff_mean`` would have from SGD noise alone
        (within-start variances, :func:`two_level`).
    sgd_mean, sgd_se, ode_mean, ode_se : mean and between-start s.e. of the SGD and ODE values.
    n_beyond : starts whose ``diff`` exceeds 3 of its own standard errors (within-start).
    ode_shared, sgd_shared : (S,) and (S, R) :func:`shared_norm` at alpha_max (> 0.2: two large
        units still share one teacher unit).
    ode_kind : (S,) :func:`tsode.classification.classify` kind of the ODE's state at alpha_max.
    ode_exponent : (S,) d ln ε_g / d ln α of the ODE at alpha_max.
    """

    N: int
    K: int
    ode: np.ndarray
    sgd: np.ndarray
    diff: np.ndarray
    diff_mean: float
    diff_se: float
    diff_within_se: float
    sgd_mean: float
    sgd_se: float
    ode_mean: float
    ode_se: float
    n_beyond: int
    ode_shared: np.ndarray
    sgd_shared: np.ndarray
    ode_kind: tuple
    ode_exponent: np.ndarray

    @property
    def starts(self) -> int:
        return len(self.ode)

    @property
    def n_ode_shared(self) -> int:
        """Starts whose ODE still has two units sharing one teacher unit at alpha_max."""
        return int(np.sum(self.ode_shared > SHARED))


#: :func:`shared_norm` above this: two units of norm² > 0.2 on one teacher unit (a teacher
#: direction split between units; at a specialised state the second one is < 0.2).
SHARED = 0.2


def shared_norm(Q, R) -> np.ndarray:
    r"""Largest second norm² among the students that share a teacher unit.

    Each student k is assigned the teacher unit n of largest cosine
    :math:`R_{kn}/\sqrt{Q_{kk}T_{nn}}` (T = I here); for every teacher unit the second-largest
    :math:`Q_{kk}` of its students is taken, and the largest over teacher units returned.
    ``Q`` (..., K, K), ``R`` (..., K, M); returns (...). 0 at a specialised state whose extra
    units have decayed, ≈ 0.4 when two units still share one teacher direction (Fig. 1, K = 8).
    """
    Q, R = np.asarray(Q, dtype=float), np.asarray(R, dtype=float)
    q = np.diagonal(Q, axis1=-2, axis2=-1)
    nearest = np.argmax(R / np.sqrt(np.maximum(q, 1e-300))[..., None], axis=-1)
    out = np.zeros(q.shape[:-1])
    for n in range(R.shape[-1]):
        on = np.where(nearest == n, q, -np.inf)
        second = np.sort(on, axis=-1)[..., -2]
        out = np.maximum(out, np.where(np.isfinite(second), second, 0.0))
    return out


def mechanism(gaps) -> dict:
    """Does a start's ODE–SGD difference follow which of the two still has a shared teacher unit?

    Pooled over the :class:`Gap` s of ``gaps`` ({N: Gap}): the Pearson correlation (and its
    two-sided p-value) between ``diff`` and ``ode_shared`` − the runs' mean ``sgd_shared``, one
    point per (N, start). A strongly negative r: SGD is below the ODE where the ODE still splits
    a teacher unit between two units and SGD has resolved it, above where it is the other way.
    Returns dict(r, p, n).
    """
    from scipy.stats import pearsonr

    d = np.concatenate([g.diff for g in gaps.values()])
    x = np.concatenate([g.ode_shared - g.sgd_shared.mean(axis=1) for g in gaps.values()])
    r, p = pearsonr(x, d)
    return dict(r=float(r), p=float(p), n=int(d.size))


def gap_verdict(g: Gap) -> str:
    """The Gap in words: mean SGD − ODE over starts ± its between-start s.e. and whether it is
    significant (|t| >= 2), with the number of starts whose own difference is beyond 3 s.e."""
    t = g.diff_mean / g.diff_se
    sig = ("a gap on average" if abs(t) >= 2 else "no significant gap on average")
    return (f"N = {g.N}: SGD − ODE = {g.diff_mean:+.1e} ± {g.diff_se:.1e} over {g.starts} starts "
            f"(t = {t:+.1f}, {sig}); {g.n_beyond} of {g.starts} starts differ by more than 3 "
            "standard errors of their own runs")


def end_summary(res) -> dict:
    """The numbers chapter 1 glues about the largest student at alpha_max over starts:
    ``total`` starts (all N), ``n_drifting`` whose ODE is still drifting there
    (:func:`tsode.classification.classify`), ``exp_lo``, ``exp_hi`` the range of the ODE's
    d ln ε_g / d ln α, ``sgd0`` the mean of the runs from start 0 (the figure's start),
    ``shared_sgd0`` their mean :func:`shared_norm`, ``mech_r``, ``mech_p``, ``mech_n``
    (:func:`mechanism`) and ``conclusion`` (words: agree on average, or where a gap remains,
    by |t| >= 2 of the between-start standard error)."""
    gaps = res.gap
    exps = np.concatenate([g.ode_exponent for g in gaps.values()])
    first = gaps[res.settings.N]
    mech = mechanism(gaps)
    gap_N = [N for N, g in gaps.items() if abs(g.diff_mean) >= 2 * g.diff_se]
    conclusion = ("ODE and SGD agree within the errors stated above" if not gap_N else
                  "a gap remains at N = " + ", ".join(str(N) for N in gap_N))
    return dict(total=sum(g.starts for g in gaps.values()),
                n_drifting=sum(k == "still drifting" for g in gaps.values() for k in g.ode_kind),
                exp_lo=float(exps.min()), exp_hi=float(exps.max()),
                sgd0=float(first.sgd[0].mean()), shared_sgd0=float(first.sgd_shared[0].mean()),
                mech_r=mech["r"], mech_p=mech["p"], mech_n=mech["n"], conclusion=conclusion)


def _read(tr, alpha):
    """Index of the output time of ``tr`` nearest to ``alpha`` (log scale)."""
    return int(np.argmin(np.abs(np.log(np.maximum(tr.alpha, 1e-12)) - np.log(alpha))))


def _start_index(K, i):
    """Seed index of start i of the K student: (K,) for start 0 (the figure's start, as before
    starts were an axis), (K, i) for the others."""
    return (K,) if i == 0 else (K, i)


def _one_start(state0, setup, s, N, runs_seed):
    """ODE and ``s.runs`` reduced runs at dimension N from ``state0``: dict(state0, ode, runs)."""
    alphas = np.concatenate([[0.0], np.geomspace(0.1, s.alpha_max, s.n_points)])
    ode = integrate(state0, setup, s.alpha_max,
                    alphas=np.concatenate([[0.0], np.geomspace(1e-2, s.alpha_max, 400)]))
    runs = run_sgd(state0, setup, N, s.alpha_max, engine="reduced", seed=runs_seed,
                   n_runs=s.runs, alphas=alphas)
    return dict(state0=state0, ode=ode, runs=runs)


def _one_K(K, s, seed):
    """ODE and an ensemble of reduced runs from each of ``s.starts`` starts, and one single SGD
    run from start 0, for a student with K units.

    Returns a dict with ``setup``, ``starts`` (per start: ``state0``, ``ode``, ``runs``), start
    0's ``state0``, ``ode``, ``runs``, the ``single`` run, ``eg`` ((starts, runs, T) ε_g of all
    reduced runs) and ``median``, ``lo``, ``hi`` ((T,) median and percentile band over all
    starts and runs, :func:`_band`)."""
    setup = Setup("erf", eta=s.eta, sigma=s.sigma)
    starts = [_one_start(start(K, s.M, "random", N=s.N,
                               seed=seed_for(seed, "fig1.start", *_start_index(K, i))),
                         setup, s, s.N, seed_for(seed, "fig1.runs", *_start_index(K, i)))
              for i in range(s.starts)]
    first = starts[0]
    single = run_sgd(first["state0"], setup, s.N, s.alpha_max, engine=s.single_engine,
                     seed=seed_for(seed, "fig1.single", K), n_runs=1, alphas=first["runs"].alpha)
    eg = np.stack([np.atleast_2d(st["runs"].eg) for st in starts])
    median, lo, hi = _band(eg.reshape(-1, eg.shape[-1]), s.band)
    return dict(setup=setup, starts=starts, state0=first["state0"], ode=first["ode"],
                runs=first["runs"], single=single, eg=eg, median=median, lo=lo, hi=hi)


def _gap(starts, setup, N, K) -> Gap:
    """:class:`Gap` at the last output time from per-start dicts (``state0``, ``ode``, ``runs``)."""
    ode = np.array([st["ode"].eg[-1] for st in starts])
    sgd = np.stack([np.atleast_2d(st["runs"].eg)[:, -1] for st in starts])
    diff = sgd.mean(axis=1) - ode
    lev = two_level(sgd - ode[:, None])
    S, R = sgd.shape
    own_se = sgd.std(axis=1, ddof=1) / np.sqrt(sgd.shape[1])
    kinds = [classify(st["ode"], setup) for st in starts]
    return Gap(
        N=int(N), K=int(K), ode=ode, sgd=sgd, diff=diff, diff_mean=float(lev.mean),
        diff_se=float(lev.stderr), diff_within_se=float(lev.within_sd / np.sqrt(R * S)),
        sgd_mean=float(sgd.mean()), sgd_se=float(two_level(sgd).stderr),
        ode_mean=float(ode.mean()),
        ode_se=float(ode.std(ddof=1) / np.sqrt(len(ode))),
        n_beyond=int(np.sum(np.abs(diff) > 3 * own_se)),
        ode_shared=np.array([shared_norm(st["ode"].Q[-1], st["ode"].R[-1]) for st in starts]),
        sgd_shared=np.stack([shared_norm(np.asarray(st["runs"].Q)[:, -1],
                                         np.asarray(st["runs"].R)[:, -1]) for st in starts]),
        ode_kind=tuple(c.kind for c in kinds),
        ode_exponent=np.array([c.eg_exponent for c in kinds]))


def _gap_at(N, K, s, seed) -> Gap:
    """:class:`Gap` of the K student at dimension N from ``s.starts`` starts sampled at N."""
    setup = Setup("erf", eta=s.eta, sigma=s.sigma)
    starts = [_one_start(start(K, s.M, "random", N=N, seed=seed_for(seed, "fig1.gap_start",
                                                                    N, K, i)),
                         setup, s, N, seed_for(seed, "fig1.gap_runs", N, K, i))
              for i in range(s.starts)]
    return _gap(starts, setup, N, K)


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
    if s.starts < 2 or s.runs < 2:
        raise ValueError(f"Fig. 1 needs starts >= 2 and runs >= 2 (two-level standard errors), "
                         f"got starts={s.starts}, runs={s.runs}")
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
                escape_max=max(escape.values()), **_end_numbers(cases), accuracy=accuracy,
                gap=_gaps(cases, s, seed))


def _gaps(cases, s, seed) -> dict:
    """{N: Gap} of the largest student: the figure's ensemble at s.N, new starts at s.gap_N."""
    K = max(cases)
    out = {s.N: _gap(cases[K]["starts"], cases[K]["setup"], s.N, K)}
    out.update({int(N): _gap_at(int(N), K, s, seed) for N in s.gap_N if int(N) != s.N})
    return out


def _escape(ode, level) -> float:
    """First time α at which the ODE's ε_g falls below ``level`` (NaN if never)."""
    below = np.flatnonzero(ode.eg < level)
    return float(ode.alpha[below[0]]) if below.size else float("nan")


def _end_numbers(cases) -> dict:
    """ε_g at α_max per K: ``eg_end_ode`` (ODE of start 0), ``eg_end_sgd`` and ``eg_end_sgd_err``
    (mean over all starts and runs, between-start standard error), each {K: float}."""
    out = dict(eg_end_ode={}, eg_end_sgd={}, eg_end_sgd_err={})
    for K, c in cases.items():
        lev = two_level(c["eg"][:, :, -1])
        out["eg_end_ode"][K] = float(c["ode"].eg[-1])
        out["eg_end_sgd"][K] = float(lev.mean)
        out["eg_end_sgd_err"][K] = float(lev.stderr)
    return out


def _at(res, K, alpha):
    """(α, ODE ε_g of start 0, mean and between-start s.e. of all reduced runs) of student K at
    the SGD output time nearest α."""
    c = res.cases[K]
    i = _read(c["runs"], alpha)
    lev = two_level(c["eg"][:, :, i])
    a = float(c["runs"].alpha[i])
    return a, float(np.interp(a, c["ode"].alpha, c["ode"].eg)), float(lev.mean), float(lev.stderr)


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
                        stderr=se, method="sgd_reduced", alpha=a, runs=s.runs * s.starts, K=K,
                        reference=ode, reference_source="ODE (this chapter)"))
    for N, g in res.gap.items():
        claim = (f"Fig. 1(b), K = {g.K}: ODE and SGD at alpha_max averaged over {g.starts} "
                 "starts (no gap on average unless |t| >= 2)")
        out.append(dict(base, id=f"ch1-fig1-end-ode-K{g.K}-N{N}", claim=claim, N=N,
                        quantity="eps_g(alpha_max), mean over starts", value=g.ode_mean,
                        stderr=g.ode_se, method="ode", alpha=s.alpha_max, runs=None, K=g.K))
        out.append(dict(base, id=f"ch1-fig1-end-sgd-K{g.K}-N{N}", claim=claim, N=N,
                        quantity="eps_g(alpha_max), mean over starts and runs",
                        value=g.sgd_mean, stderr=g.sgd_se, method="sgd_reduced",
                        alpha=s.alpha_max, runs=g.sgd.size, K=g.K, reference=g.ode_mean,
                        reference_source="ODE from the same starts (this chapter)"))
    return out
