r"""Chapter 3: what the start changes for ReLU trained in both layers (issue 18, statement 1).

Read from the cached ensemble ``both_layers_relu`` (the authors' start: w and v at std 10⁻³;
S starts × R runs per K, :mod:`tsode.book.ensembles`). Two measured facts explain its K
dependence:

* **A second plateau.** From some starts of the K = M student one unit stays inactive after the
  first plateau: at α ≈ 10³, where the other starts are already near the noise floor, the error
  of these starts still sits on a plateau (ε_g ≳ 10⁻²). Their units end with unequal output
  weights.
* **The noise floor ∝ Σ_k v_k².** At α = 10⁴ the error of every run of every K is, to a few
  per cent, ε_g ≈ c Σ_k v_k² with one constant c: the label noise enters the first layer
  through η² v_i v_k σ² J₂, so a student with a smaller Σ v² sits lower. The lagging starts end
  with a smaller Σ v², hence a lower ε_g, and pull the K = M mean down.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .chapter import Result, Settings, register, settings_of, timed
from .ensembles import ALPHA_READ, load_ensemble, sgd_at, start_runs, starts_of

__all__ = ["StartSpreadSettings", "StartSpread", "start_spread"]


@register("start_spread")
@dataclass(frozen=True)
class StartSpreadSettings(Settings):
    """Settings of :func:`start_spread` (the same in both modes: it reads a cache).

    cache : the cached sweep (ReLU, both layers, authors' start; dims K, start, run, alpha).
    K_lag : the student size whose starts are examined (K = M).
    alpha_lag : the stored time nearest which a second plateau is looked for.
    plateau : ε_g (start mean) above which a start counts as still on a plateau at alpha_lag
        (the plateau sits near 0.09, the noise floor near 2·10⁻⁴: any value between works).
    """

    cache: str = "both_layers_relu"
    K_lag: int = 2
    alpha_lag: float = 1e3
    plateau: float = 1e-2


@dataclass(frozen=True, kw_only=True)
class StartSpread(Result):
    """Result of :func:`start_spread` (every field but ``missing`` None when the cache is
    missing). S starts, R runs per start, nK sizes.

    missing : "" when the cache is loaded, else the message (with the command that recomputes
        it).
    K : (nK,) the student sizes; mean, stderr, between_sd, within_sd : (nK,) ε_g at
        alpha_read over starts and runs (:func:`tsode.book.ensembles.sgd_at`).
    starts, runs : S and R.
    alpha_read : the stored time where ε_g is read (≈ ALPHA_READ).
    spread : max / min − 1 of ``mean`` over K ("flat within" this fraction).
    K_lag, alpha_lag : the size examined and the stored time nearest settings.alpha_lag.
    curve_alpha : (T,) stored times; curves : (S, T) ε_g of K_lag, mean over the runs of each
        start.
    eg_lag : (S,) ε_g of K_lag at alpha_lag (start means); lagging : (S,) bool, eg_lag >
        settings.plateau; n_lagging : their number; lagging_text : e.g. "0, 1, 5" (the starts'
        coordinates) or "none"; lag_range_text : min–max of eg_lag over the lagging starts,
        e.g. "0.068–0.091" ("none" without them).
    v0 : (S, K_lag) the initial output weights; n_negative : how many starts have some v_k < 0
        at α = 0; n_negative_lagging : how many of those lag.
    v_end : (S, K_lag) v at alpha_read (mean over runs); v_end_lag_text : v_end of the lagging
        starts, e.g. "(0.44, 0.96), (0.72, 0.89)"; v_other_text : min–max of v_end over the
        other starts.
    sum_v2 : (S,) Σ_k v_k² of K_lag at alpha_read (start means); eg_end : (S,) ε_g there.
    floor_c : ε_g / Σ_k v_k² averaged over every run of every K at alpha_read.
    floor_cv : max over K of the coefficient of variation (std/mean) of ε_g / Σ v² over the
        runs of that K; eg_cv_lag : the coefficient of variation of ε_g itself at K_lag.
    drop_predicted : mean Σ v² of the lagging starts / mean Σ v² of the others at K_lag;
        drop_observed : the same ratio of their ε_g (NaN without lagging starts).
    scatter : {K: (S·R, 2) columns Σ v², ε_g of every run at alpha_read}.
    """

    missing: str = ""
    K: np.ndarray | None = None
    mean: np.ndarray | None = None
    stderr: np.ndarray | None = None
    between_sd: np.ndarray | None = None
    within_sd: np.ndarray | None = None
    starts: int | None = None
    runs: int | None = None
    alpha_read: float | None = None
    spread: float | None = None
    K_lag: int | None = None
    alpha_lag: float | None = None
    curve_alpha: np.ndarray | None = None
    curves: np.ndarray | None = None
    eg_lag: np.ndarray | None = None
    lagging: np.ndarray | None = None
    n_lagging: int | None = None
    lagging_text: str | None = None
    lag_range_text: str | None = None
    v0: np.ndarray | None = None
    n_negative: int | None = None
    n_negative_lagging: int | None = None
    v_end: np.ndarray | None = None
    v_end_lag_text: str | None = None
    v_other_text: str | None = None
    sum_v2: np.ndarray | None = None
    eg_end: np.ndarray | None = None
    floor_c: float | None = None
    floor_cv: float | None = None
    eg_cv_lag: float | None = None
    drop_predicted: float | None = None
    drop_observed: float | None = None
    scatter: dict | None = None


def _at(ds, var: str, alpha: float, K: int):
    """(S, R, ...) values of ``var`` for size K at the stored time nearest alpha, cut to K
    units (v: (S, R, K))."""
    i = int(np.argmin(np.abs(ds["alpha"].values - alpha)))
    da = ds[var].sel(K=K).isel(alpha=i)
    if var == "v":
        return start_runs(da.transpose("k", ...)).transpose(1, 2, 0)[..., :K]
    return start_runs(da)


def _range(x, fmt=".2f") -> str:
    """ "min–max" of x, or "none" when x is empty."""
    x = np.asarray(x)
    return f"{x.min():{fmt}}–{x.max():{fmt}}" if x.size else "none"


def _ratio(a, b) -> float:
    return float(np.mean(a) / np.mean(b)) if np.size(a) and np.size(b) else float("nan")


def _floor(ds, Ks, alpha) -> tuple[dict, float, float]:
    """({K: (S·R, 2) Σ v², ε_g}, c = mean ε_g/Σ v² over all runs, max over K of its CV)."""
    scatter, ratios = {}, []
    for K in Ks:
        sv2 = (_at(ds, "v", alpha, K) ** 2).sum(-1).ravel()
        eg = _at(ds, "eg", alpha, K).ravel()
        scatter[K] = np.column_stack([sv2, eg])
        ratios.append(eg / sv2)
    cv = max(float(r.std() / r.mean()) for r in ratios)
    return scatter, float(np.concatenate(ratios).mean()), cv


@timed
def start_spread(settings: StartSpreadSettings | str = "full", overrides=None) -> StartSpread:
    """ReLU, both layers, authors' start: ε_g at α = 10⁴ over K from the cached ensemble of
    S starts, the starts of K = K_lag that stay on a second plateau, and the noise-floor law
    ε_g ≈ c Σ_k v_k² (see the module docstring and :class:`StartSpread`)."""
    s = settings_of("start_spread", settings, overrides=overrides)
    ds, msg = load_ensemble(s.cache)
    if ds is None:
        return StartSpread(settings=s, missing=msg)
    Ks = [int(K) for K in ds["K"].values]
    st = [sgd_at(ds, ALPHA_READ, K=K) for K in Ks]
    mean = np.array([x["mean"] for x in st])
    a_read = st[0]["alpha"]
    K = s.K_lag
    i_lag = int(np.argmin(np.abs(ds["alpha"].values - s.alpha_lag)))
    curves = start_runs(ds["eg"].sel(K=K).transpose("alpha", ...)).mean(-1).T  # (S, T)
    eg_lag = curves[:, i_lag]
    lagging = eg_lag > s.plateau
    v0 = _at(ds, "v", 0.0, K)[:, 0]
    v_end = _at(ds, "v", a_read, K).mean(1)
    sum_v2 = (_at(ds, "v", a_read, K) ** 2).sum(-1).mean(1)
    eg_end = _at(ds, "eg", a_read, K).mean(1)
    negative = (v0 < 0).any(-1)
    scatter, c, cv = _floor(ds, Ks, a_read)
    eg_all = _at(ds, "eg", a_read, K).ravel()
    names = np.array(starts_of(ds))
    return StartSpread(
        settings=s, K=np.array(Ks), mean=mean, stderr=np.array([x["stderr"] for x in st]),
        between_sd=np.array([x["between_sd"] for x in st]),
        within_sd=np.array([x["within_sd"] for x in st]), starts=st[0]["starts"],
        runs=st[0]["runs"], alpha_read=a_read, spread=float(mean.max() / mean.min() - 1),
        K_lag=K, alpha_lag=float(ds["alpha"].values[i_lag]),
        curve_alpha=ds["alpha"].values.copy(), curves=curves, eg_lag=eg_lag, lagging=lagging,
        n_lagging=int(lagging.sum()),
        lagging_text=", ".join(str(n) for n in names[lagging]) or "none",
        lag_range_text=_range(eg_lag[lagging], ".2g"), v_other_text=_range(v_end[~lagging]),
        v0=v0, n_negative=int(negative.sum()), n_negative_lagging=int((negative & lagging).sum()),
        v_end=v_end,
        v_end_lag_text=", ".join("(" + ", ".join(f"{x:.2f}" for x in v) + ")"
                                 for v in v_end[lagging]) or "none",
        sum_v2=sum_v2, eg_end=eg_end, floor_c=c, floor_cv=cv,
        eg_cv_lag=float(eg_all.std() / eg_all.mean()),
        drop_predicted=_ratio(sum_v2[lagging], sum_v2[~lagging]),
        drop_observed=_ratio(eg_end[lagging], eg_end[~lagging]), scatter=scatter,
        # every number is read from the cached file: exact
        accuracy={k: 0.0 for k in ("mean", "stderr", "between_sd", "spread", "floor_c",
                                   "floor_cv", "eg_cv_lag", "drop_predicted", "drop_observed",
                                   "eg_lag")})
