"""Regression tests of each chapter's key numbers (PySDM-style figure smoke tests).

Every test calls the same :mod:`tsode.book.experiments` function as the chapter notebook, in the fast
mode, and compares the plotted numbers with closed forms, the paper's values (PAPER-NOTES.md,
quoted to 3-4 significant digits) or the physics the chapter states. Tolerances are justified
next to each assertion: "rounding" means half a unit of the last quoted digit; ODE values are
converged to ~1e-8 relative (solver rtol) unless the chapter says the value is read at a finite α;
SGD values carry statistical errors estimated from the runs themselves.
"""

from __future__ import annotations

import numpy as np
import pytest

from tsode.book import experiments as ex

FAST = "fast"


def rounding(value: float, digits: int) -> float:
    """Half a unit of the last digit of ``value`` quoted with ``digits`` significant digits."""
    return 0.5 * 10.0 ** (np.floor(np.log10(abs(value))) - digits + 1)


# ==========================================================================================
# chapter 1: the ODEs and their validity
# ==========================================================================================
@pytest.fixture(scope="module", params=["erf", "relu"])
def ode_vs_sgd(request):
    return ex.ode_vs_sgd(FAST, request.param)


def test_ch1_sgd_follows_the_ode(ode_vs_sgd):
    res = ode_vs_sgd
    for engine, tr in res.sgd.items():
        ode = np.interp(tr.alpha, res.ode.alpha, res.ode.eg)
        mean = np.atleast_2d(tr.eg).mean(axis=0)
        early = tr.alpha <= 12.0  # before the end of the plateau (escape times fluctuate at finite N)
        # finite-N deviations: fluctuations ~ N^-1/2 per run (~4.5 % at N = 500) averaged over
        # the runs, plus an O(1/N) bias; 10 % is ~3 standard errors of the worst case measured
        np.testing.assert_allclose(mean[early], ode[early], rtol=0.10, err_msg=engine)
        # after the escape both sit at the noise floor of the ODE; the full engine has only a
        # few runs and the escape time varies, hence the wide band
        np.testing.assert_allclose(mean[-1], ode[-1], rtol=0.3, err_msg=engine)


def test_ch1_engines_start_where_the_ode_starts(ode_vs_sgd):
    res = ode_vs_sgd
    for tr in res.sgd.values():
        assert np.allclose(np.atleast_2d(tr.eg)[:, 0], res.ode.eg[0], rtol=1e-10)


def test_ch1_erf_plateau():
    res = ex.ode_vs_sgd(FAST, "erf")
    # smoke test of the figure: an unspecialised plateau at eps_g ~ 1.5e-2 (measured 0.0152-0.0154
    # for the fast and full initial states), read inside the time window, and an escape after
    # which the error has dropped by more than two decades
    assert 0.01 < res.plateau < 0.03
    assert 10 < res.plateau_alpha < 300
    assert res.eg_ode_end < 1e-2 * res.plateau


def test_ch1_convergence_rate():
    res = ex.convergence(FAST)
    # the theorem's rate is N^-1/2; with 3 values of N and 8-64 runs each the fitted slope has
    # a standard error ~0.05: the window [-0.7, -0.3] of the simulator issue is ~4 s.e. wide
    assert -0.7 <= res.slope <= -0.3
    assert np.all(np.diff(res.dev_mean) < 0)


# ==========================================================================================
# chapter 2: training the first layer only
# ==========================================================================================
PAPER_ERF_FIRST_LAYER = {0: (1.920e-4, 4), 1: (3.694e-4, 4), 2: (5.595e-4, 4), 4: (9.83e-4, 3)}


@pytest.fixture(scope="module")
def first_layer():
    return ex.first_layer_final(FAST)


def test_ch2_exact_symmetric_fixed_point_matches_paper_values(first_layer):
    res = first_layer
    for L, (value, digits) in PAPER_ERF_FIRST_LAYER.items():
        assert abs(res.erf["ansatz"][res.L.index(L)] - value) <= rounding(value, digits), L


def test_ch2_erf_ode_reaches_the_fixed_point_for_L_le_1(first_layer):
    res = first_layer
    # L = 0, 1: the symmetric fixed point is stable and the ODE has converged by alpha = 1e4
    # (its slowest rate is ~3e-3, so the remaining distance is e^-30): relative 1e-6
    np.testing.assert_allclose(res.erf["ode"][:2], res.erf["ansatz"][:2], rtol=1e-6)
    # L >= 2: the slow mode takes the ODE below the symmetric value (chapter 2, last section)
    assert np.all(res.erf["ode"][2:] < res.erf["ansatz"][2:])


def test_ch2_leading_order_formula_is_the_small_eta_limit():
    res = ex.collapse(FAST)
    etas = sorted({eta for eta, sigma in res.ratio if sigma == 0.1})
    for i, L in enumerate(res.L[:2]):
        dev = [abs(res.ratio[(eta, 0.1)][i] / res.leading[i] - 1) for eta in etas]
        assert np.all(np.diff(dev) > 0), "the exact value approaches the formula as eta -> 0"
        # at eta = 0.02 the O(eta) correction is ~1-2 %
        assert dev[0] < 0.02


def test_ch2_collapse_in_sigma():
    res = ex.collapse(FAST)
    # at fixed eta, eps_g*/(eta sigma^2) depends on sigma only through O(sigma^2) corrections:
    # sigma = 0.1 vs 0.5 differ by < 1.5 % (measured 0.6 % at L = 1, 0.4 % at L = 4)
    np.testing.assert_allclose(res.ratio[(0.1, 0.1)], res.ratio[(0.1, 0.5)], rtol=0.015)
    # and it grows linearly with L: second differences small compared with the slope
    r = res.ratio[(0.1, 0.1)]
    assert np.all(np.diff(r) > 0.15) and np.all(np.abs(np.diff(r, 2)) < 0.05)


def test_ch2_linear_exact_formula(first_layer):
    res = first_layer
    exact = res.linear["exact"]
    # linear first layer relaxes exponentially (rate ~ eta (2 - eta K)); at alpha = 1e4 the ODE
    # is at the fixed point to solver accuracy
    np.testing.assert_allclose(res.linear["ode"], exact, rtol=1e-6)
    from tsode.asymptotics import linear_eg_star

    assert linear_eg_star(3, 0.1, 0.1) == pytest.approx(0.1 * 0.01 * 3 / (2 * (2 - 0.3)), rel=1e-14)


def test_ch2_relu_grows_with_L_and_sgd_agrees_with_the_ode(first_layer):
    r = first_layer.relu
    assert np.all(np.diff(r["sgd_mean"]) > 0) and np.all(np.diff(r["ode"]) > 0)
    sgd = r["sgd_mean"][: len(r["ode"])]
    err = r["sgd_err"][: len(r["ode"])]
    # finite N = 500: 5 standard errors (time-averaged runs) plus a 3 % O(1/N) allowance
    assert np.all(np.abs(sgd - r["ode"]) <= 5 * err + 0.03 * r["ode"])


def test_ch2_slow_mode():
    res = ex.slow_mode(FAST)
    assert res.ansatz_max_real > 0, "the symmetric fixed point is (weakly) unstable for L = 2"
    assert res.eg_1e4 < res.eg_ansatz and res.eg_end < res.eg_1e4
    assert res.extra_corr[-1].min() < -0.99, "the extra units are anti-aligned"
    assert res.end_exponent < 0, "still drifting at the end of the integration"


# ==========================================================================================
# chapter 3: training both layers
# ==========================================================================================
PAPER_DENOISER = {2: (1.886e-4, 4), 4: (9.31e-5, 3), 6: (6.18e-5, 3)}


@pytest.fixture(scope="module")
def both_layers():
    return ex.both_layers(FAST)


def test_ch3_denoising_fixed_points_match_paper_values(both_layers):
    res = both_layers
    K, fp = res.K["erf"], res.fixed_points["erf"]
    for k, (value, digits) in PAPER_DENOISER.items():
        assert abs(fp[K.index(k)] - value) <= rounding(value, digits), k
    # (M/K) scaling: K eps*(K) / (M eps*(M)) = 1 within 2 % when K is a multiple of M
    for k in (4, 6):
        assert k * fp[K.index(k)] / (2 * fp[0]) == pytest.approx(1.0, abs=0.02)


def test_ch3_erf_decreases_with_K(both_layers):
    res = both_layers
    ode = res.ode["erf"]
    assert np.all(np.diff(ode) < 0)
    # erf, both layers: settled (local exponent ~ 0) by alpha = 1e6
    assert np.all(np.abs(res.final_exponent["erf"]) < 0.05)
    # K = 2 and 4 reach their denoising fixed point by alpha = 1e6 (relative 1e-3: the slowest
    # stable rate there is ~2e-6, so the approach is not fully exponential yet at 1e6)
    for k in (2, 4):
        i = res.K["erf"].index(k)
        assert ode[i] == pytest.approx(res.fixed_points["erf"][i], rel=1e-3)


def test_ch3_relu_and_linear_do_not_denoise(both_layers):
    res = both_layers
    # ReLU: no denoising (denoising would give eps(K)/eps(M) ~ M/K = 0.5 at K = 4): at the same
    # alpha the error does not drop with K; and no fixed point: still decreasing at alpha_read
    assert res.ode["relu"][-1] >= 0.9 * res.ode["relu"][0]
    assert np.all(res.final_exponent["relu"] < -0.05)
    lin = res.ode["linear"]
    # linear: the same decay alpha^-1/2 for every K; at alpha = 1e7 the memory of the
    # K-dependent plateau is gone to < 1 % (measured 0.02 %), and the local exponent over the
    # last decade is -1/2 up to the O(alpha^-1/2) corrections still visible there (measured
    # -0.503 ... -0.504)
    assert lin.max() / lin.min() - 1 < 0.01
    np.testing.assert_allclose(res.final_exponent["linear"], -0.5, atol=0.02)


def test_ch3_sgd_matches_the_ode_early(both_layers):
    res = both_layers
    for act, sims in res.sgd.items():
        for K, tr in sims.items():
            ode = res.trajectories[act][K]
            ref = np.interp(tr.alpha, ode.alpha, ode.eg)
            early = tr.alpha <= 10.0
            mean = np.atleast_2d(tr.eg).mean(axis=0)
            np.testing.assert_allclose(mean[early], ref[early], rtol=0.1, err_msg=f"{act} K={K}")


# ==========================================================================================
# chapter 4: activation-dependent fixed points
# ==========================================================================================
@pytest.fixture(scope="module")
def fixed_points():
    return ex.fixed_points(FAST)


def test_ch4_vocabulary(fixed_points):
    res = fixed_points
    d = res.descriptions
    assert set(d["erf, both layers"].roles) == {"copy"}
    assert all(v == pytest.approx(1.0, abs=0.01) for v in d["erf, both layers"].shared_v.values())
    assert set(d["relu, first layer"].roles) == {"split"}
    # positive homogeneity: the split units add up to the teacher unit
    assert all(v == pytest.approx(1.0, abs=0.01) for v in d["relu, first layer"].shared_v_norm.values())
    assert d["erf, first layer"].anti_aligned_pairs, "the slow mode's anti-aligned pair"
    assert set(d["linear, first layer"].roles) == {"unspecialised"}


def test_ch4_fixed_points_and_spectra(fixed_points, first_layer):
    res = fixed_points
    assert res.converged["erf, both layers"] and res.converged["linear, first layer"]
    assert res.converged["relu, first layer"]
    assert res.eg["erf, both layers"] == pytest.approx(9.31e-5, abs=rounding(9.31e-5, 3))
    assert res.eg["linear, first layer"] == pytest.approx(ex.linear_eg_star(4, 0.1, 0.1), rel=1e-9)
    # the polished ReLU fixed point vs the chapter-2 ODE read at alpha = 1e3 (same initial
    # state): the integration has not quite finished its slow approach (measured 8e-5)
    assert res.eg["relu, first layer"] == pytest.approx(first_layer.relu["ode"][2], rel=1e-3)
    assert res.eigenvalues["erf, both layers"].real.max() < 0, "the denoiser is stable"
    assert res.eigenvalues["erf, first layer"].real.max() > 0, "the symmetric point is not"
    assert res.n_soft["linear, first layer"] > 0


def test_overrides_change_the_settings():
    res = ex.collapse(FAST, overrides={"L": [0, 1], "eta_sigma": [(0.1, 0.1)]})
    assert res.L == [0, 1] and list(res.ratio) == [(0.1, 0.1)]
    assert res.ratio[(0.1, 0.1)][1] == pytest.approx(3.694e-4 / 1e-3, abs=rounding(0.3694, 4))
    with pytest.raises(ValueError, match="unknown settings"):
        ex.slow_mode(FAST, overrides={"etta": 0.2})
