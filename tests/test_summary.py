"""Chapters 2 and 3 against the cached SGD ensembles (issue 12, points 3, 5 and 11).

The SGD numbers the chapters print and record in summary.json are recomputed here directly from
the netCDF caches with xarray/numpy (mean over starts and runs, standard error from the start
means, between-start sd by the ANOVA formula, median), independently of tsode.book.ensembles
and tsode.statistics; corrected statements of chapter 2 are checked where a number is
involved.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from scipy import stats

from tsode.book import ensembles as E
from tsode.book import experiments as ex
from tsode.book import long_runs, pages

FAST = "fast"


_READ = {}


def _read(layers):
    if layers not in _READ:
        _READ[layers] = E.sgd_at_read_time(layers, FAST)
    return _READ[layers]


@pytest.fixture(scope="module", params=["first", "both"])
def read_time(request):
    return _read(request.param)


def _direct(name, dim, size, alpha):
    """mean, s.e. (from the start means), median, between-start sd, starts, runs per start of
    eg at the stored alpha nearest ``alpha``, straight from the netCDF file."""
    eg = xr.open_dataset(long_runs.DATA / f"{name}.nc")["eg"].sel({dim: size}).sel(
        alpha=alpha, method="nearest").transpose("start", "run").values
    S, R = eg.shape
    m = eg.mean(axis=1)
    msw = sum(((eg[s] - m[s]) ** 2).sum() for s in range(S)) / (S * (R - 1))
    msb = R * ((m - m.mean()) ** 2).sum() / (S - 1)
    between = np.sqrt(max(0.0, (msb - msw) / R))
    return m.mean(), m.std(ddof=1) / np.sqrt(S), np.median(eg), between, S, R


def test_ensemble_numbers_are_those_of_the_cache(read_time):
    for act, d in read_time.data.items():
        assert not d["missing"], d["missing"]
        for i, n in enumerate(d["size"]):
            mean, se, med, between, S, R = _direct(d["name"], d["dim"], n, 1e4)
            assert d["mean"][i] == pytest.approx(mean, rel=1e-12)
            assert d["stderr"][i] == pytest.approx(se, rel=1e-12)
            assert d["median"][i] == pytest.approx(med, rel=1e-12)
            assert d["between_sd"][i] == pytest.approx(between, rel=1e-9, abs=1e-15)
            assert d["starts"] == S >= 8 and d["runs"] == R >= 2 and d["N"] >= 1000


def test_sgd_agrees_with_the_ode_within_a_bonferroni_band(read_time):
    """Every (activation, size) with an ODE: the paired difference (start mean − ODE from
    that start's stored state), in standard errors over the 8 starts, below the two-sided 1 %
    Bonferroni t critical value (7 degrees of freedom); O(1/N) finite-size corrections are
    below this resolution at N = 1000 with 8 starts × 2 runs."""
    z = np.concatenate([d["z"][~np.isnan(d["z"])] for d in read_time.data.values()])
    crit = stats.t.ppf(1 - 0.005 / z.size, df=7)
    assert np.all(np.abs(z) < crit), (np.abs(z).max(), crit)


def test_summary_records_cover_every_activation_at_1e4(read_time, tmp_path):
    chapter = 2 if read_time.layers == "first" else 3
    path = tmp_path / "summary.json"
    for rec in E.summary_records(read_time, chapter):
        pages.record(rec, path=path)
    recs = pages.read_summary(path)
    sgd = [r for r in recs if r["method"] == "sgd_reduced"]
    assert {r["activation"] for r in sgd} == {"erf", "linear", "relu"}
    assert all(r["alpha"] >= 1e4 and r["starts"] >= 8 and r["runs"] >= 2
               and r["layers"] == read_time.layers for r in sgd)
    for r in sgd:  # value rounded to 4 digits by pages.record: half a unit of the 4th digit
        d = read_time.data[r["activation"]]
        size = r["K"] - d["M"] if d["dim"] == "L" else r["K"]
        mean = _direct(d["name"], d["dim"], size, 1e4)[0]
        assert abs(r["value"] - mean) <= 0.5e-3 * mean


def test_relu_first_layer_L1_is_not_converged_at_1e3_from_the_chapters_start():
    """Correction of chapter 2: from the chapter's start the L = 1 ReLU ODE still falls after
    α = 10³ (measured 9.87e-4 -> 9.48e-4, -4 %) and the extra unit dies (Q_kk -> 0 while the
    others stay near the teacher norm 1); from the ensemble's first start it splits a teacher
    direction instead (two units with partial norms, settled by 10³ to < 0.1 %). Over the 8
    starts x 2 runs of the cache (issue 18) the smallest unit norm at 10⁴ is start-dependent
    (measured 0.0023 ... 0.25): most runs split, a few come close to a dead unit (measured 1 of
    16 below 0.01), so "no SGD run has a dead unit" holds only for most starts."""
    r = E.relu_late_drift(L=1)
    assert r.ode_chapter[1] < 0.98 * r.ode_chapter[0]
    norms = np.sort(r.ode_chapter_norms)
    assert norms[0] < 0.01 and norms[1] > 0.9
    assert r.ode_store[1] == pytest.approx(r.ode_store[0], rel=1e-3)
    split = np.sort(r.ode_store_norms)[:2]
    assert np.all(split > 0.1) and np.sqrt(split).sum() == pytest.approx(1.0, abs=0.02)
    assert r.min_norm.size >= 16 and np.mean(r.min_norm > 0.01) >= 0.75


def test_first_layer_growth_is_convex_for_relu_and_linear():
    """Correction of chapter 2 ("linear for all three alike"): the second difference
    ε(4) − 2ε(2) + ε(0) of the SGD ensemble is positive beyond 3 standard errors for ReLU
    (measured 6.6 s.e.) and for linear networks (closed form K/(2 − ηK) is convex)."""
    read_time = _read("first")
    for act in ("relu", "linear"):
        d = read_time.data[act]
        m, s = d["mean"], d["stderr"]
        second = m[4] - 2 * m[2] + m[0]
        assert second > 3 * np.sqrt(s[4] ** 2 + 4 * s[2] ** 2 + s[0] ** 2), act
    ref = read_time.data["linear"]["reference"]
    assert np.all(np.diff(ref, 2) > 0)


def test_collapse_is_not_eta_independent_at_L4():
    """Correction of chapter 2 ("weak η-dependence"): at L = 4, ε_g*/(ησ²) at the exact
    symmetric fixed point spans 0.85 ... 1.22 over the chapter's (η, σ) (issue 12): more than
    30 % apart, far beyond its accuracy."""
    res = ex.collapse(FAST)
    r4 = np.array([r[-1] for r in res.ratio.values()])
    assert r4.max() / r4.min() > 1.3
    assert r4.min() == pytest.approx(0.85, abs=0.01) and r4.max() == pytest.approx(1.22, abs=0.01)


def test_v_ones_contrast_grows_with_K_and_the_authors_start_is_flat():
    """Correction of chapter 3: ReLU, both layers, ODE at α = 10⁴ (fast: K = 2..4): with v = 1
    the error grows with K (issue 12: SGD 2.89, 4.15 e-4 for K = 2, 4), with the authors' start
    it is flat within 5 % (issue 12: SGD 1.99, 1.98 e-4)."""
    r = E.initialisation_contrast(FAST)
    ones, authors = r.eg[("relu", "v_ones")], r.eg[("relu", "authors")]
    assert np.all(np.diff(ones) > 0) and ones[-1] > 1.3 * ones[0]
    assert authors.max() / authors.min() < 1.05


def test_long_times_missing_cache_is_reported_not_raised():
    """erf_long absent or stale: long_times returns a Result with the StaleCache message."""
    res = E.long_times(FAST, name="erf_long")
    if (long_runs.DATA / "erf_long.nc").exists() and not long_runs.check("erf_long"):
        assert not res.missing and res.table
        # 8 starts, one run each (book/specs/erf_long.toml)
        assert all(r["starts"] >= 8 for r in res.table)
        assert {r["K"] - r["M"] for r in E.long_records(res)} >= {2}
    else:
        assert "erf_long" in res.missing and "python -m tsode.book long" in res.missing


def test_noiseless_over_parameterisation_costs_nothing_asymptotically():
    """σ = 0 (chapter 2): at α = 10⁴ the error of every L is below 5 % of the noisy one and it
    keeps decaying: the L = 4 student's power-law fit has a negative exponent resolved to
    better than ±0.3 (one s.e.). A wrong noiseless run (σ left at 0.1) fails the first check."""
    from tsode.book import noiseless

    r = noiseless.noiseless(FAST)
    for L in r.L:
        assert r.eg_1e4[L] < 0.05 * r.eg_1e4_noisy[L], L
    assert r.exponent[4] < -1 and r.exponent_err[4] < 0.3


# ------------------------------------------------------------------------------------------
# chapter 3, ReLU both layers over starts (issue 18, statement 1)
# ------------------------------------------------------------------------------------------
def _relu_both():
    return xr.open_dataset(long_runs.DATA / "both_layers_relu.nc")


def test_relu_both_layers_is_flat_in_K_over_starts():
    """Authors' start, 8 starts x 2 runs, alpha = 1e4: the means over starts and runs of
    K = 2..6 lie within 15 % of each other (the acceptance bound of issue 18; measured 7.4 %),
    computed from the file; start_spread reports the same spread."""
    from tsode.book.start_spread import start_spread

    ds = _relu_both()
    assert ds.sizes["start"] >= 8
    means = ds.eg.sel(alpha=1e4, method="nearest").mean(("start", "run")).values
    assert means.max() / means.min() - 1 < 0.15
    res = start_spread()
    assert res.spread == pytest.approx(means.max() / means.min() - 1, rel=1e-12)
    assert list(res.K) == list(ds.K.values)


def test_relu_noise_floor_is_proportional_to_sum_v_squared():
    """Every run of every K at alpha = 1e4: eps_g / sum_k v_k^2 varies by less than 5 %
    (coefficient of variation; measured <= 3.6 %), while eps_g itself varies 2.5 times more at
    K = 2 (measured 9.9 %): the spread of K = 2 is that of sum v^2. start_spread's constant c
    and CV are those of the file."""
    from tsode.book.start_spread import start_spread

    ds = _relu_both().sel(alpha=1e4, method="nearest")
    ratios, cvs = [], []
    for K in ds.K.values:
        t = ds.sel(K=K)
        v = t.v.values[..., :K]  # (start, run, K)
        r = (t.eg.values / (v ** 2).sum(-1)).ravel()
        ratios.append(r)
        cvs.append(r.std() / r.mean())
    assert max(cvs) < 0.05
    eg2 = ds.eg.sel(K=2).values.ravel()
    assert eg2.std() / eg2.mean() > 2.5 * cvs[0]
    res = start_spread()
    assert res.floor_c == pytest.approx(np.concatenate(ratios).mean(), rel=1e-12)
    assert res.floor_cv == pytest.approx(max(cvs), rel=1e-12)


def test_relu_K2_lagging_starts_sit_on_a_second_plateau_and_end_lower():
    """K = 2: the starts whose mean eps_g at alpha ~ 10^3 is still above 10^-2 (on a plateau,
    while the others are below 10^-3) end with a smaller sum v^2 and a lower eps_g, by the same
    factor within 5 % (noise floor proportional to sum v^2)."""
    from tsode.book.start_spread import start_spread

    ds = _relu_both().sel(K=2)
    lag = ds.eg.sel(alpha=1e3, method="nearest").mean("run").values
    late = lag > 1e-2
    assert 0 < late.sum() < late.size and np.all(lag[~late] < 1e-3)
    end = ds.isel(alpha=-1)
    sv2 = (end.v.values[..., :2] ** 2).sum(-1).mean(-1)
    eg = end.eg.values.mean(-1)
    predicted = sv2[late].mean() / sv2[~late].mean()
    observed = eg[late].mean() / eg[~late].mean()
    assert predicted < 0.95 and observed == pytest.approx(predicted, rel=0.05)
    res = start_spread()
    assert list(res.lagging) == list(late)
    assert res.drop_observed == pytest.approx(observed, rel=1e-12)


def test_committed_sgd_records_of_chapters_3_and_4_span_8_starts():
    """Issue 18: every SGD record at alpha >= 1e4 that chapters 3 and 4 wrote to the committed
    book/data/summary.json has starts >= 8, runs per start and a stderr from the start means.
    (Chapter 2's records are rewritten when chapter 2 is re-executed on the new caches; extend
    the chapter set then.)"""
    recs = [r for r in pages.read_summary(long_runs.DATA / "summary.json")
            if r["chapter"] in (3, 4) and (r.get("method") or "").startswith("sgd")
            and (r.get("alpha") or 0) >= 1e4]
    assert len(recs) >= 15 + 3  # chapter 3: 3 activations x 5 sizes; chapter 4: 3 splits
    for r in recs:
        assert r["starts"] >= 8 and r["runs"] >= 2 and r["stderr"] > 0, r["id"]
