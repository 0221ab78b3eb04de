r"""SGD ensembles from the cached long runs (``book/data/*.nc``), read at the α where the
chapters read ε_g*, beside the ODE integrated from the ensemble's own initial states.

Chapters 2 and 3 (issues 12 and 18). A cached sweep (:func:`tsode.book.long_runs.load`) holds,
per network size (dimension ``L`` or ``K``), S independent macroscopic starts (dimension
``start``) with R reduced-SGD runs each (dimension ``run``; all runs of a start share its
state, stored at α = 0), with ε_g, Q, R, v at ``alpha``. The value read is the mean over all
runs; its standard error comes from the spread between the start means, and the between-start
and within-start standard deviations are estimated separately (:func:`tsode.statistics.
two_level`). The ODE is integrated from each start's stored state, so SGD and ODE start from
the same points; the paired difference (start mean − ODE from that start) is then the finite-N
correction (O(1/N) in ε_g*) plus the ensemble's statistical error, free of the between-start
spread. Caches computed before the start axis (one start, ``run`` only) are read as S = 1.

A missing or stale cache does not crash a chapter: :func:`load_ensemble` returns ``None`` and a
message (the :class:`~tsode.book.long_runs.StaleCache` text, with the command that recomputes
it), which the chapters print in place of the numbers.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import numpy as np

from ..ode import integrate
from ..order_parameters import OrderParameters, Setup
from ..statistics import two_level
from . import long_runs
from .both_layers import BothLayersSettings  # noqa: F401  (registers the chapter's settings)
from .chapter import (MODES, Result, Settings, register, seed_for, settings_of, shared_start,
                      timed)

__all__ = ["load_ensemble", "ensemble_stats", "stored_state", "setup_of", "sgd_at",
           "ode_from_store", "size_dim", "starts_of", "start_runs"]


def size_dim(ds) -> str:
    """The swept size dimension of a cached sweep: ``"L"`` (first layer) or ``"K"``."""
    for d in ("L", "K"):
        if d in ds.dims:
            return d
    raise ValueError(f"the sweep has neither an L nor a K dimension: {dict(ds.sizes)}")


def starts_of(ds) -> list:
    """The starts of a cached sweep: the ``start`` coordinate, or [None] for a sweep from one
    start (no ``start`` dimension)."""
    return [int(s) for s in ds["start"].values] if "start" in ds.dims else [None]


def _with_start(sel: dict, start) -> dict:
    return sel if start is None else dict(sel, start=start)


def start_runs(da):
    """(..., S, R) values of a DataArray with dims ``start`` (optional) and ``run`` last:
    S = 1 without a start dimension."""
    if "start" in da.dims:
        return da.transpose(..., "start", "run").values
    return da.transpose(..., "run").values[..., None, :]


def load_ensemble(name: str, **expected):
    """(Dataset, "") from :func:`long_runs.load`, or (None, message) when the cache is
    missing or stale (message: what is wrong and the command that recomputes it)."""
    try:
        return long_runs.load(name, **expected), ""
    except long_runs.StaleCache as e:
        return None, str(e)


def _spec(ds) -> dict:
    """The sweep spec of a cached dataset (parsed once per spec text; do not modify it)."""
    return _parse_spec(ds.attrs["spec"])


@functools.lru_cache(maxsize=None)
def _parse_spec(text: str) -> dict:
    import json

    return json.loads(text)


def setup_of(ds) -> Setup:
    """The :class:`Setup` (activation, η, η_v, σ) of a cached sweep."""
    s = _spec(ds)
    return Setup(s["activation"], eta=s["eta"], eta_v=s["eta_v"], sigma=s["sigma"])


def _K(ds, sel: dict) -> int:
    s = _spec(ds)
    dim, size = next(iter(sel.items()))
    return int(size) + s["M"] if dim == "L" else int(size)


def stored_state(ds, **sel) -> OrderParameters:
    """The initial state (α = 0) of run 0 of the task ``sel`` (e.g. ``L=2`` or ``K=4``; plus
    ``start=3`` for sweeps over starts, ``N=500`` for sweeps over N), cut to its K units. All
    runs of a task start from it (ValueError otherwise, and when a swept start is not given)."""
    if "start" in ds.dims and "start" not in sel:
        raise ValueError(f"the sweep has {ds.sizes['start']} starts: give start= (one of "
                         f"{starts_of(ds)}) in {sel}")
    K = _K(ds, {k: v for k, v in sel.items() if k in ("L", "K")})
    t = ds.sel(sel).isel(alpha=0)
    Q, R, v = (t[n].values for n in ("Q", "R", "v"))
    Q, R, v = Q[:, :K, :K], R[:, :K], v[:, :K]
    if not (np.allclose(Q, Q[:1]) and np.allclose(R, R[:1]) and np.allclose(v, v[:1])):
        raise ValueError(f"the runs of task {sel} do not share their initial state")
    return OrderParameters(Q=Q[0], R=R[0], T=t["T_teacher"].values, v=v[0],
                           v_star=t["v_star"].values)


def ensemble_stats(eg) -> dict:
    """Statistics of ε_g over an ensemble ``eg`` of shape (..., S, R), S starts × R runs:
    mean over all, stderr from the start means (:func:`tsode.statistics.two_level`; S = 1:
    std/√R over the runs, ddof = 1), between_sd and within_sd (NaN when they cannot be split),
    median over all, starts S and runs R (per start)."""
    eg = np.asarray(eg, dtype=float)
    S, R = eg.shape[-2:]
    median = np.median(eg.reshape(*eg.shape[:-2], S * R), -1)
    if S == 1:
        one = eg[..., 0, :]
        nan = np.full(one.shape[:-1], np.nan)
        return dict(mean=one.mean(-1), stderr=one.std(-1, ddof=1) / np.sqrt(R), median=median,
                    between_sd=nan, within_sd=one.std(-1, ddof=1), starts=1, runs=R)
    t = two_level(eg)
    return dict(mean=t.mean, stderr=t.stderr, median=median, between_sd=t.between_sd,
                within_sd=t.within_sd, starts=S, runs=R)


def sgd_at(ds, alpha: float, **sel) -> dict:
    """Ensemble statistics (:func:`ensemble_stats`, over starts and runs) of ε_g at the stored
    time nearest ``alpha`` for task ``sel``, with that time ("alpha") and N."""
    i = int(np.argmin(np.abs(ds["alpha"].values - alpha)))
    eg = start_runs(ds["eg"].sel(sel).isel(alpha=i))
    N = int(sel.get("N", _spec(ds)["N"]))
    return dict(ensemble_stats(eg), alpha=float(ds["alpha"].values[i]), N=N)


@functools.lru_cache(maxsize=None)
def _ode_cached(name: str, sel: tuple, alphas: tuple):
    ds, msg = load_ensemble(name)
    if ds is None:
        raise long_runs.StaleCache(msg)
    return integrate(stored_state(ds, **dict(sel)), setup_of(ds), max(alphas),
                     alphas=np.asarray(alphas))


def ode_from_store(name: str, alphas, **sel):
    """The ODE trajectory from the stored initial state of task ``sel`` of the cached sweep
    ``name`` at the times ``alphas`` (cached per process)."""
    return _ode_cached(name, tuple(sorted(sel.items())), tuple(float(a) for a in alphas))


# ------------------------------------------------------------------------------------------
# chapters 2 and 3: SGD at the alpha where eps_g* is read
# ------------------------------------------------------------------------------------------
#: cached sweep per (layers, activation); alpha of the reading; relative accuracy claimed for
#: the ODE numbers (rtol = 1e-8 over 1e4 time units; printed to 3 digits, far coarser)
CACHES = {("first", a): f"first_layer_{a}" for a in ("erf", "linear", "relu")}
CACHES.update({("both", a): f"both_layers_{a}" for a in ("erf", "linear", "relu")})
ALPHA_READ = 1e4
ODE_REL_ACCURACY = 1e-5
#: fast mode: ODEs only for the sizes whose integration is cheap (ReLU I4 costs ~ K^4)
FAST_MAX_K = 4


def _reference(layers: str, act: str, K: int, M: int, setup: Setup):
    """(ε_g* reference, its source) for the activation, or (None, "")."""
    if layers == "first" and act == "linear":
        from ..asymptotics import linear_eg_star

        return linear_eg_star(K, setup.eta, setup.sigma), "closed form eta sigma^2 K/(2(2-eta K)), N -> inf"
    if layers == "first" and act == "erf":
        from ..asymptotics import erf_symmetric_fixed_point

        return (float(erf_symmetric_fixed_point(M, K - M, setup.eta, setup.sigma).eg),
                "symmetric-ansatz fixed point (Goldt et al.'s Mathematica notebook, pyscm)")
    if layers == "both" and act == "erf":
        from ..asymptotics import denoising_fixed_point

        return (float(denoising_fixed_point(K, M, setup.eta, setup.eta_v, setup.sigma).eg),
                "denoising fixed point (this project's ODE computation)")
    return None, ""


def _paired_z(start_means, ode_starts, stderr) -> float:
    """(SGD − ODE) in standard errors: with S ≥ 2 starts the paired differences d_s = (start
    mean − ODE from that start), z = mean(d) / (sd(d)/√S), free of the between-start spread;
    with one start (mean − ODE)/stderr."""
    d = np.asarray(start_means) - np.asarray(ode_starts)
    if d.size < 2:
        return float(d.mean() / stderr)
    return float(d.mean() / (d.std(ddof=1) / np.sqrt(d.size)))


def _one_size(name: str, ds, sel: dict, cheap: bool) -> dict:
    """SGD statistics at ALPHA_READ of one size ``sel`` over starts and runs, the ODE from each
    start's stored state (NaN when not ``cheap``) and the paired z."""
    st = sgd_at(ds, ALPHA_READ, **sel)
    i = int(np.argmin(np.abs(ds["alpha"].values - ALPHA_READ)))
    start_means = start_runs(ds["eg"].sel(sel).isel(alpha=i)).mean(-1)
    starts = starts_of(ds)
    ode_starts = np.array([float(ode_from_store(name, [0.0, st["alpha"]],
                                                **_with_start(sel, s)).eg[-1]) if cheap
                           else np.nan for s in starts])
    return dict(st, start_means=start_means, ode_starts=ode_starts, ode=float(ode_starts.mean()),
                z=_paired_z(start_means, ode_starts, st["stderr"]))


def _one_activation(layers: str, act: str, mode: str) -> dict:
    name = CACHES[(layers, act)]
    ds, msg = load_ensemble(name)
    if ds is None:
        return dict(name=name, missing=msg)
    dim, spec, setup = size_dim(ds), _spec(ds), setup_of(ds)
    out = dict(name=name, missing="", dim=dim, size=[], K=[], mean=[], stderr=[], median=[],
               between_sd=[], within_sd=[], start_means=[], ode_starts=[], ode=[], z=[],
               reference=[], reference_source="", runs=None, starts=None, N=spec["N"],
               eta=setup.eta, sigma=setup.sigma, M=spec["M"], v=spec["v"],
               v_scale=spec["v_scale"], init=spec["init"])
    for n in ds[dim].values:
        sel = {dim: int(n)}
        K = _K(ds, sel)
        one = _one_size(name, ds, sel, mode == "full" or K <= FAST_MAX_K)
        ref, src = _reference(layers, act, K, spec["M"], setup)
        out["size"].append(int(n))
        out["K"].append(K)
        out["reference"].append(np.nan if ref is None else ref)
        for key in ("mean", "stderr", "median", "between_sd", "within_sd", "ode", "z"):
            out[key].append(float(one[key]))
        for key in ("start_means", "ode_starts"):
            out[key].append(one[key])
        out.update(runs=one["runs"], starts=one["starts"], alpha=one["alpha"],
                   reference_source=src)
    for key in ("mean", "stderr", "median", "between_sd", "within_sd", "ode", "z", "reference",
                "start_means", "ode_starts"):
        out[key] = np.array(out[key])
    return out


@dataclass(frozen=True, kw_only=True)
class SgdAtReadTime(Result):
    """Result of :func:`sgd_at_read_time`; ``act`` an activation, S its number of sizes.

    layers : "first" (chapter 2) or "both" (chapter 3).
    mode : "fast" (ODEs only for K ≤ FAST_MAX_K, NaN beyond) or "full".
    alpha : ALPHA_READ, where the ensembles are read.
    data : {act: dict(name, missing="", dim ("L" or "K"), size (S,), K (S,), mean, stderr (from
        the start means), median, between_sd, within_sd (:func:`ensemble_stats`), start_means
        (S, starts), ode_starts (S, starts) the ODE from each start's stored state, ode (S,)
        their mean, z (S,) the paired (SGD − ODE) in standard errors (:func:`_paired_z`),
        reference (S,), reference_source, starts, runs (per start), N, alpha, eta, sigma, M, v,
        v_scale, init)}, or {act: dict(name, missing=message)} when the cache is missing or
        stale.
    mean, stderr, median, ode, between_sd : {act: (S,)} of the loaded activations (printed
        with ``fmt``).
    N, starts, runs : N, starts and runs per start of the first loaded cache (None if none is
        loaded).
    disagree : the points where SGD and ODE differ by more than 3 standard errors, as text
        (:func:`disagreements`).
    reference_dev : {act: max over sizes of |mean / reference − 1|} (NaN without a reference
        or without the cache).
    mean_text : {act: the SGD means, ", "-separated at 3 significant digits} ("n/a (cache
        missing)" without the cache).
    ode_text, median_text : {act: the ODE values (mean over the starts), the SGD medians, the
        same way}.
    plateau_text : {act: per size with starts still on a plateau at alpha (a start mean above
        PLATEAU_FACTOR times the median of the start means), "K = 2: 2, K = 4: 1" (the number
        of such starts), or "none"}.
    plateau_eg_text : {act: min–max of those start means (3 significant digits), or "none"}.
    """

    layers: str
    mode: str
    alpha: float
    data: dict
    mean: dict
    stderr: dict
    median: dict
    ode: dict
    between_sd: dict
    N: int | None
    starts: int | None
    runs: int | None
    disagree: str
    reference_dev: dict
    mean_text: dict
    ode_text: dict
    median_text: dict
    plateau_text: dict
    plateau_eg_text: dict

    def lines(self) -> list[str]:
        """The chapters' printed table: per activation and size the SGD mean ± s.e. (2
        digits), the between-start sd (2 digits; "not resolved" where the ANOVA estimate is
        truncated at 0), median and ODE (mean over the starts, 3
        digits; "not integrated (fast mode)" where it is NaN), or the message of a missing
        cache."""
        out = []
        for act, d in self.data.items():
            if d["missing"]:
                out.append(f"{act}: {d['missing']}")
                continue
            for i, n in enumerate(d["size"]):
                ode = (self.fmt("ode", act, i, digits=3) if np.isfinite(d["ode"][i])
                       else "not integrated (fast mode)")
                sd = d["between_sd"][i]
                between = ("" if not np.isfinite(sd) else ", between-start sd not resolved"
                           if sd == 0 else
                           f", between-start sd {self.fmt('between_sd', act, i, digits=2)}")
                out.append(f"{act:6s} {d['dim']} = {n}: SGD {self.fmt('mean', act, i)} +- "
                           f"{self.fmt('stderr', act, i, digits=2)}{between} (median "
                           f"{self.fmt('median', act, i)}), ODE {ode}")
        return out


#: a start whose mean ε_g exceeds this factor times the median of the start means is counted as
#: still on a plateau (plateaus sit orders of magnitude above the noise floor)
PLATEAU_FACTOR = 10.0


def _plateaued(d: dict) -> list:
    """Per size, the boolean (starts,) mask of the starts still on a plateau at d["alpha"]."""
    return [m > PLATEAU_FACTOR * np.median(m) for m in d["start_means"]]


def _plateau_text(d: dict) -> str:
    if d["missing"]:
        return "n/a (cache missing)"
    parts = [f"{d['dim']} = {n}: {int(mask.sum())}" for n, mask in zip(d["size"], _plateaued(d))
             if mask.any()]
    return ", ".join(parts) or "none"


def _plateau_eg_text(d: dict) -> str:
    if d["missing"]:
        return "n/a (cache missing)"
    high = np.concatenate([m[mask] for m, mask in zip(d["start_means"], _plateaued(d))])
    return f"{high.min():.3g}–{high.max():.3g}" if high.size else "none"


def _text(d: dict, key: str) -> str:
    """d[key] ", "-separated at 3 significant digits ("n/a" for NaN), or "n/a (cache
    missing)"."""
    if d["missing"]:
        return "n/a (cache missing)"
    return ", ".join(f"{m:.2e}" if np.isfinite(m) else "n/a" for m in d[key])


def _reference_dev(d: dict) -> float:
    ok = ~np.isnan(d["reference"]) if not d["missing"] else np.zeros(0, bool)
    return float(np.max(np.abs(d["mean"][ok] / d["reference"][ok] - 1))) if ok.any() else np.nan


def sgd_at_read_time(layers: str, mode: str = "full",
                     activations=("erf", "linear", "relu")) -> SgdAtReadTime:
    """Cached SGD ensembles (N = 1000, 8 starts × 2 runs, reduced engine) at α = ALPHA_READ
    beside the ODE from the same stored initial states and the reference value (fixed point or closed form),
    for each activation of chapter 2 (``layers="first"``) or 3 (``"both"``); see
    :class:`SgdAtReadTime`. The cached SGD numbers are read from a file (accuracy 0), the ODE
    values carry ODE_REL_ACCURACY.
    """
    if layers not in ("first", "both"):
        raise ValueError(f"layers must be 'first' or 'both', got {layers!r}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    data = {a: _one_activation(layers, a, mode) for a in activations}
    ok = {a: d for a, d in data.items() if not d["missing"]}
    first = next(iter(ok.values()), {})
    res = SgdAtReadTime(
        layers=layers, data=data, alpha=ALPHA_READ, mode=mode,
        mean={a: d["mean"] for a, d in ok.items()},
        stderr={a: d["stderr"] for a, d in ok.items()},
        median={a: d["median"] for a, d in ok.items()},
        ode={a: d["ode"] for a, d in ok.items()},
        between_sd={a: d["between_sd"] for a, d in ok.items()}, N=first.get("N"),
        starts=first.get("starts"), runs=first.get("runs"),
        disagree="", reference_dev={a: _reference_dev(d) for a, d in data.items()},
        mean_text={a: _text(d, "mean") for a, d in data.items()},
        ode_text={a: _text(d, "ode") for a, d in data.items()},
        median_text={a: _text(d, "median") for a, d in data.items()},
        plateau_text={a: _plateau_text(d) for a, d in data.items()},
        plateau_eg_text={a: _plateau_eg_text(d) for a, d in data.items()},
        accuracy=dict(mean=0.0, stderr=0.0, median=0.0, between_sd=0.0,
                      ode={a: ODE_REL_ACCURACY * np.abs(d["ode"]) for a, d in ok.items()}))
    return dataclasses.replace(res, disagree=disagreements(res))


def summary_records(res, chapter: int) -> list[dict]:
    """summary.json records (tsode.book.pages.record) of :func:`sgd_at_read_time`: per
    activation and size, the SGD ensemble (method sgd_reduced: mean over starts and runs,
    stderr from the start means, between_sd, starts, runs per start) and the ODE (method ode,
    the mean over the starts of the ODE from each stored start)."""
    out = []
    for act, d in res.data.items():
        if d["missing"]:
            continue
        for i, (n, K) in enumerate(zip(d["size"], d["K"])):
            base = dict(chapter=chapter, activation=act, layers=res.layers, K=K, M=d["M"],
                        eta=d["eta"], sigma=d["sigma"], alpha=d["alpha"],
                        reference=None if np.isnan(d["reference"][i]) else d["reference"][i],
                        reference_source=d["reference_source"] or None,
                        claim=f"eps_g at alpha = {d['alpha']:g} against the network size")
            tag = f"ch{chapter}-{act}-{res.layers}-{d['dim']}{n}-a{d['alpha']:.0e}"
            out.append(dict(base, id=f"{tag}-sgd", quantity=f"eps_g, {d['dim']} = {n}",
                            value=d["mean"][i], stderr=d["stderr"][i], method="sgd_reduced",
                            N=d["N"], runs=d["runs"], starts=d["starts"],
                            between_sd=_finite_or_none(d["between_sd"][i])))
            if not np.isnan(d["ode"][i]):
                out.append(dict(base, id=f"{tag}-ode", quantity=f"eps_g, {d['dim']} = {n}",
                                value=d["ode"][i], stderr=None, method="ode"))
    return out


def _finite_or_none(x):
    return float(x) if np.isfinite(x) else None


# ------------------------------------------------------------------------------------------
# chapter 2: long times, erf first layer (cached sweep erf_long, dims L, N, run, alpha)
# ------------------------------------------------------------------------------------------
LONG = "erf_long"


@register("long_times")
@dataclass(frozen=True)
class LongTimesSettings(Settings):
    """Settings of :func:`long_times`.

    cache : the cached sweep (erf, first layer; dims L, N, run, alpha).
    alpha_ode : end of the ODE integrated from each task's stored start (fast: 10⁵).
    """

    cache: str = LONG
    alpha_ode: float = 1e6

    MODE_VALUES = {"fast": dict(alpha_ode=1e5)}


@dataclass(frozen=True, kw_only=True)
class LongTimes(Result):
    """Result of :func:`long_times`.

    missing : "" when the cache is loaded, else the message (what is wrong, the command that
        recomputes it); the other fields are then empty or None.
    name : the cache.
    curves : {(L, N): dict(alpha (T,), mean (T,), stderr (T,), median (T,), between_sd (T,),
        within_sd (T,), starts, runs (per start), ode_alpha, ode_eg (the mean of the ODEs from
        the starts' stored states), ode_end)}.
    eg_sym : {L: ε_g* of the symmetric fixed point}.
    table : rows dict(L, N, alpha, mean, stderr, median, ode, starts, runs, z (paired over
        starts, :func:`_paired_z`)) at α = 10⁴ and at the last stored α.
    alpha_max, alpha_ode : last stored α of the SGD runs, end of the ODE.
    M, eta, sigma : of the cached sweep.
    verdict : :func:`long_verdict` of the table (z_max = 2).
    accuracy : table[i][key] for key mean, stderr (read from the file: 0) and ode (relative
        ODE_REL_ACCURACY).
    """

    missing: str = ""
    name: str = LONG
    curves: dict = None
    eg_sym: dict = None
    table: list = None
    alpha_max: float | None = None
    alpha_ode: float | None = None
    M: int | None = None
    eta: float | None = None
    sigma: float | None = None
    verdict: str = ""


def _long_sizes(ds) -> list:
    return [int(x) for x in ds["N"].values] if "N" in ds.dims else [_spec(ds)["N"]]


def _long_task(name, ds, sel, grid) -> tuple[dict, list]:
    """(curve, table rows) of one task ``sel`` of the cached sweep: the ensemble statistics
    over starts and runs at the stored times, the ODE from each start's stored state on
    ``grid`` (the curve: their mean), and the rows at α = 10⁴ and at the last stored α (ode:
    the mean over starts; z: paired, :func:`_paired_z`)."""
    alpha = ds["alpha"].values
    eg = start_runs(ds["eg"].sel(sel).transpose("alpha", ...))  # (T, S, R)
    ok = ~np.isnan(eg).any((-2, -1))
    st = ensemble_stats(eg[ok])
    trs = [ode_from_store(name, grid, **_with_start(sel, s)) for s in starts_of(ds)]
    ode_eg = np.mean([tr.eg for tr in trs], axis=0)
    rows = []
    for a_read in sorted({1e4, float(alpha[ok].max())}):
        i = int(np.argmin(np.abs(alpha[ok] - a_read)))
        odes = np.array([np.interp(np.log(alpha[ok][i]), np.log(tr.alpha[1:]), tr.eg[1:])
                         for tr in trs])
        rows.append(dict(L=sel["L"], N=sel.get("N", _spec(ds)["N"]), alpha=float(alpha[ok][i]),
                         mean=float(st["mean"][i]), stderr=float(st["stderr"][i]),
                         median=float(st["median"][i]), ode=float(odes.mean()),
                         starts=st["starts"], runs=st["runs"],
                         z=_paired_z(eg[ok][i].mean(-1), odes, st["stderr"][i])))
    curve = dict(alpha=alpha[ok], ode_alpha=trs[0].alpha, ode_eg=ode_eg,
                 ode_end=float(ode_eg[-1]), **st)
    return curve, rows


@timed
def long_times(settings: LongTimesSettings | str = "full", name: str | None = None,
               overrides=None) -> LongTimes:
    """SGD ensembles of the cache (erf, first layer; L = 1, 2, 4 at N = 500 and 1000) against
    the ODE integrated from each task's stored initial state up to ``alpha_ode``, and the
    symmetric fixed point.

    ``settings``: a :class:`LongTimesSettings`, or a mode with an ``overrides`` dict; ``name``
    replaces the cache.
    """
    s = settings_of("long_times", settings, overrides=overrides)
    if name is not None:
        s = s.replace(cache=name)
    ds, msg = load_ensemble(s.cache)
    if ds is None:
        return LongTimes(missing=msg, name=s.cache, settings=s, alpha_ode=s.alpha_ode,
                         verdict=_verdict(msg, s.cache, [], {}))
    spec, setup = _spec(ds), setup_of(ds)
    grid = np.concatenate([[0.0], np.geomspace(1e-2, s.alpha_ode, 300)])
    curves, eg_sym, table = {}, {}, []
    for L in (int(x) for x in ds["L"].values):
        eg_sym[L] = _reference("first", "erf", spec["M"] + L, spec["M"], setup)[0]
        for N in _long_sizes(ds):
            sel = dict(L=L, N=N) if "N" in ds.dims else dict(L=L)
            curves[(L, N)], rows = _long_task(s.cache, ds, sel, grid)
            table += rows
    return LongTimes(
        missing="", name=s.cache, settings=s, curves=curves, eg_sym=eg_sym, table=table,
        alpha_max=float(ds["alpha"].values.max()), alpha_ode=s.alpha_ode, M=spec["M"],
        eta=setup.eta, sigma=setup.sigma, verdict=_verdict("", s.cache, table, eg_sym),
        # SGD numbers are read from a file: exact; the ODE: ODE_REL_ACCURACY relative
        accuracy=dict(table=[dict(mean=0.0, stderr=0.0, ode=ODE_REL_ACCURACY * r["ode"])
                             for r in table]))


def long_records(res) -> list[dict]:
    """summary.json records of :func:`long_times`: SGD (sgd_reduced) at the last stored α, per
    (L, N), with the ODE at that α as the reference."""
    out = []
    for row in res.table:
        if row["alpha"] < 1e5 * 0.99:
            continue
        L, N = row["L"], row["N"]
        out.append(dict(
            id=f"ch2-erf-first-long-L{L}-N{N}-sgd", chapter=2, activation="erf", layers="first",
            claim="finite-N SGD at long times beside the ODE escape from the symmetric saddle",
            quantity=f"eps_g, L = {L}", value=row["mean"], stderr=row["stderr"],
            method="sgd_reduced", alpha=row["alpha"], N=N, runs=row["runs"],
            starts=row["starts"], K=res.M + L,
            M=res.M, eta=res.eta, sigma=res.sigma, reference=row["ode"],
            reference_source="ODE from the same initial states, mean over the starts"))
    return out


def disagreements(res, z_max: float = 3.0) -> str:
    """The (activation, size) points of :func:`sgd_at_read_time` where SGD and ODE differ by
    more than ``z_max`` standard errors, as text ("none" if there are none)."""
    bad = [f"{a} {d['dim']} = {n} ({(m - o) / o:+.1%}, {z:+.1f} s.e.)"
           for a, d in res.data.items() if not d["missing"]
           for n, m, o, z in zip(d["size"], d["mean"], d["ode"], d["z"]) if abs(z) > z_max]
    return "; ".join(bad) if bad else "none"


def unit_norms(name: str, alpha: float, **sel) -> np.ndarray:
    """(S·R, K) norms Q_kk of the student units of every run (all starts) in the cached sweep
    ``name`` at the stored time nearest ``alpha`` (task ``sel``)."""
    ds, msg = load_ensemble(name)
    if ds is None:
        raise long_runs.StaleCache(msg)
    K = _K(ds, {k: v for k, v in sel.items() if k in ("L", "K")})
    i = int(np.argmin(np.abs(ds["alpha"].values - alpha)))
    Q = ds["Q"].sel(sel).isel(alpha=i).transpose(..., "k", "k2").values
    Q = Q.reshape(-1, *Q.shape[-2:])[:, :K, :K]
    return np.einsum("rkk->rk", Q)


@dataclass(frozen=True, kw_only=True)
class ReluLateDrift(Result):
    """Result of :func:`relu_late_drift` (every field None when the cache is ``missing``).

    missing : "" when the cache is loaded, else the message.
    L : superfluous units.
    ode_chapter : (2,) ODE ε_g at α = 10³, 10⁴ from the chapter's start.
    ode_chapter_norms : (K,) its unit norms Q_kk at 10⁴; ode_chapter_dead / ode_chapter_alive
        their min (a dead unit) / max.
    ode_store, ode_store_norms : the same from the stored state of the ensemble's first start.
    eg_1e3, eg_1e4 : :func:`sgd_at` dicts of the SGD ensemble at 10³ and 10⁴.
    min_norm, max_norm : (S·R,) smallest / largest Q_kk per SGD run at 10⁴;
        min_norm_range : (min, max) of min_norm over the runs.
    n_dead, n_runs : runs (of all starts) with a unit of norm below :data:`DEAD_NORM` at 10⁴,
        and all runs.
    """

    missing: str = ""
    L: int | None = None
    ode_chapter: np.ndarray | None = None
    ode_chapter_norms: np.ndarray | None = None
    ode_chapter_dead: float | None = None
    ode_chapter_alive: float | None = None
    ode_store: np.ndarray | None = None
    ode_store_norms: np.ndarray | None = None
    eg_1e3: dict | None = None
    eg_1e4: dict | None = None
    min_norm: np.ndarray | None = None
    max_norm: np.ndarray | None = None
    min_norm_range: tuple | None = None
    n_dead: int | None = None
    n_runs: int | None = None


#: A unit whose norm Q_kk is below this at α = 10⁴ counts as dead (live units have Q_kk ≳ 0.1).
DEAD_NORM = 0.01


@timed
def relu_late_drift(L: int = 1, name: str = "first_layer_relu", seed: int = 0) -> ReluLateDrift:
    """ReLU, first layer: the SGD ensemble at α = 10³ (where chapter 2 reads it) and 10⁴, and
    the smallest unit norm min_k Q_kk per run at 10⁴ (a dead unit has Q_kk → 0), and the ODE at
    10³ and 10⁴ from the chapter's start (``ode_chapter``, unit norms ``ode_chapter_norms`` at
    10⁴) and from the ensemble's stored start (``ode_store``, ``ode_store_norms``)."""
    from .first_layer import FirstLayerSettings

    ds, msg = load_ensemble(name)
    if ds is None:
        return ReluLateDrift(missing=msg)
    spec = _spec(ds)
    M, K = spec["M"], spec["M"] + L
    # the chapter's start on purpose (stream "first_layer.start", ReLU's "small" kind): the
    # state from which chapter 2 reads the ReLU ODE
    state0 = shared_start("first_layer.start", K, M, FirstLayerSettings.full("relu").kind, seed)
    times = [0.0, 1e3, 1e4]
    tr = integrate(state0, Setup("relu", eta=spec["eta"], sigma=spec["sigma"]), 1e4,
                   alphas=times)
    store = ode_from_store(name, times, **_with_start(dict(L=L), starts_of(ds)[0]))
    norms = np.diag(tr.Q[-1]).copy()
    units = unit_norms(name, 1e4, L=L)
    return ReluLateDrift(
        missing="", L=L, ode_chapter=tr.eg[1:].copy(), ode_chapter_norms=norms,
        ode_chapter_dead=float(norms.min()), ode_chapter_alive=float(norms.max()),
        ode_store=store.eg[1:].copy(), ode_store_norms=np.diag(store.Q[-1]).copy(),
        eg_1e3=sgd_at(ds, 1e3, L=L), eg_1e4=sgd_at(ds, 1e4, L=L), min_norm=units.min(axis=1),
        max_norm=units.max(axis=1),
        min_norm_range=(float(units.min(axis=1).min()), float(units.min(axis=1).max())),
        n_dead=int(np.sum(units.min(axis=1) < DEAD_NORM)), n_runs=int(units.shape[0]))


def long_verdict(res: LongTimes, z_max: float = 2.0) -> str:
    """One sentence per (L, N) of :func:`long_times` at the last stored α: SGD below, within
    or above the ODE (|z| <= z_max counts as within); "cache missing" without data."""
    return _verdict(res.missing, res.name, res.table, res.eg_sym, z_max)


def _verdict(missing: str, name: str, table: list, eg_sym: dict, z_max: float = 2.0) -> str:
    if missing:
        return f"the cache {name} is missing, so this comparison is not shown"
    last = max(r["alpha"] for r in table)
    out = []
    for r in (r for r in table if r["alpha"] == last):
        where = ("below" if r["z"] < -z_max else "above" if r["z"] > z_max else "within error of")
        out.append(f"L = {r['L']}, N = {r['N']}: SGD {r['mean']:.3e} ± {r['stderr']:.1e}, "
                   f"{where} the ODE ({r['ode']:.2e}; symmetric fixed point "
                   f"{eg_sym[r['L']]:.3e})")
    return f"α = {last:.0e}: " + "; ".join(out)


# ------------------------------------------------------------------------------------------
# chapter 3: the initialisation
# ------------------------------------------------------------------------------------------
#: the starts of :func:`initialisation_contrast`: name -> (legend label, line style)
STARTS = {"authors": ("authors", "o-"), "vstar_normal": ("vstar normal", "s--"),
          "v_ones": ("v ones", "^:")}


@dataclass(frozen=True, kw_only=True)
class Initialisation(Result):
    """Result of :func:`initialisation_contrast`; ``start`` one of :data:`STARTS`.

    settings : {act: the chapter's :class:`~tsode.book.both_layers.BothLayersSettings`}.
    alpha : where ε_g is read.
    K : {act: list of K} (fast mode: K ≤ FAST_MAX_K).
    eg : {(act, start): (len(K[act]),) ε_g of the ODE at alpha}.
    v_star : (M,) the one teacher second layer v* ~ N(0, 1) of the "vstar_normal" start.
    v_star_text : v_star, ", "-separated with 2 decimals.
    eg_text : {(act, start): eg, ", "-separated at 3 significant digits}.
    """

    alpha: float
    K: dict
    eg: dict
    v_star: np.ndarray
    v_star_text: str
    eg_text: dict


def initialisation_contrast(mode: str = "full", seed: int = 0, alpha: float = ALPHA_READ,
                            overrides=None) -> Initialisation:
    """Both layers, ODE ε_g at ``alpha`` against K for three starts, per activation (erf,
    ReLU): the authors' start (v at the first layer's scale, v* = 1), the same with
    v* ~ N(0, 1) (ODE only), and the contrast v = 1, v* = 1 (the start this book used before).

    Settings (M, K, η, σ, initialisation kind) are those of the chapter's
    :func:`~tsode.book.both_layers.both_layers` in ``mode`` (with ``overrides``); fast mode:
    K ≤ FAST_MAX_K. The first layers are *on purpose* the chapter's initial states (seed
    stream "both_layers.start"), so that the three starts differ only in v and v*; v* is one
    draw of the stream "initialisation.v_star", the same for every K so that the K are
    comparable.
    """
    per = {act: settings_of("both_layers", mode, act, overrides) for act in ("erf", "relu")}
    M = per["erf"].M
    v_star = np.random.default_rng(seed_for(seed, "initialisation.v_star")).standard_normal(M)
    starts = {"authors": dict(v="scaled"), "vstar_normal": dict(v="scaled", v_star=v_star),
              "v_ones": dict(v="ones")}
    eg, Ks = {}, {}
    for act, s in per.items():
        Ks[act] = [K for K in s.K if mode == "full" or K <= FAST_MAX_K]
        setup = Setup(act, eta=s.eta, eta_v=s.eta, sigma=s.sigma)
        for name, kw in starts.items():
            eg[(act, name)] = np.array([float(integrate(
                shared_start("both_layers.start", K, s.M, s.kind, seed, **kw),
                setup, alpha, alphas=[0.0, alpha]).eg[-1]) for K in Ks[act]])
    return Initialisation(
        settings=per, K=Ks, eg=eg, alpha=alpha, v_star=v_star,
        v_star_text=", ".join(f"{x:.2f}" for x in v_star),
        eg_text={k: ", ".join(f"{x:.2e}" for x in v) for k, v in eg.items()},
        accuracy=dict(eg={k: ODE_REL_ACCURACY * np.abs(v) for k, v in eg.items()}))
