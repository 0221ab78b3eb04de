"""Finite N (chapter 5): the symmetric plateau and λ_max, the exit-time estimator and fit, the
random starts, and the acceptance points measured on the cached data."""

import numpy as np
import pytest
from scipy import stats

from tsode._common import fd_jacobian
from tsode.ode import Drift
from tsode.plateau import exit_law, exit_times, fit_exit_law, symmetric_plateau
from tsode.sde import wishart_state


@pytest.mark.parametrize("K, eta, sigma", [(2, 1.0, 0.1), (3, 0.5, 0.0), (4, 0.2, 0.0)])
def test_plateau_is_a_symmetric_fixed_point_and_lambda_max_matches_fd(K, eta, sigma):
    p = symmetric_plateau(K, eta, sigma)
    Q, R = np.asarray(p.state.Q), np.asarray(p.state.R)
    assert np.allclose(R, p.r) and np.allclose(np.diag(Q), p.q)
    assert np.allclose(Q[~np.eye(K, dtype=bool)], p.c)
    assert p.residual < 1e-11 and 0 < p.c < p.q
    # an independent Jacobian: central differences of the packed drift, step 1e-5
    f = Drift.from_state(p.state, p.setup)
    y = f.pack_state(p.state)
    J = fd_jacobian(lambda Y: f(0.0, Y), y, rel_step=1e-5)
    lam = np.linalg.eigvals(J)
    assert abs(lam.real.max() - p.lambda_max) <= 1e-6 * np.abs(lam).max()
    assert p.lambda_max > 0 and np.isclose(p.slope, 1 / (2 * p.lambda_max))
    # the unstable direction breaks the symmetry: it moves R off its constant value
    w, V = np.linalg.eig(J)
    vec = np.real(V[:, np.argmax(w.real)])
    dR = vec[f.n_q:].reshape(K, K)
    assert np.ptp(dR) > 1e-3 * np.abs(vec).max()


def test_plateau_bad_input():
    with pytest.raises(ValueError, match="K"):
        symmetric_plateau(1, 0.5)
    with pytest.raises(ValueError, match="eta"):
        symmetric_plateau(2, 0.0)
    with pytest.raises(ValueError, match="lambda_max"):
        exit_law(100, 1.0, -1.0)


def test_exit_times_on_synthetic_paths():
    """Paths ε_g = 0.8 e^{-α} + ε_p (1 − tanh(κ(α − α0)))/... with an exactly log-linear fall
    after α0: the estimator must return α0 + ln 2 / κ to interpolation accuracy."""
    alpha = np.linspace(0, 100, 401)
    eps_p = 0.02
    a0 = np.array([[30.0, 41.3], [55.55, 70.1]])
    kappa = 0.3
    fall = np.where(alpha > a0[..., None], np.exp(-kappa * (alpha - a0[..., None])), 1.0)
    eg = 0.8 * np.exp(-alpha) + eps_p * fall
    got = exit_times(alpha, eg, eps_p)
    want = a0 + np.log(2) / kappa  # 0.8 e^{-α} is < 1e-12 there
    assert np.allclose(got, want, atol=1e-6)
    # a run that never leaves is censored (NaN); a noisy run counts its first crossing
    flat = 0.8 * np.exp(-alpha) + eps_p
    noisy = eg[0, 0].copy()
    noisy[200] = 0.1 * eps_p  # α = 50 ... but the fall crossed at 32.3 already
    out = exit_times(alpha, np.stack([flat, noisy]), eps_p)
    assert np.isnan(out[0]) and np.isclose(out[1], want[0, 0], atol=1e-6)
    spike = flat.copy()
    spike[100:] = eps_p * 0.25  # a jump at α = 25 from ~eps_p to eps_p / 4
    t = exit_times(alpha, spike, eps_p)
    assert alpha[99] < t <= alpha[100]
    with pytest.raises(ValueError, match="above the plateau"):
        exit_times(alpha, np.full(alpha.size, eps_p), eps_p)
    with pytest.raises(ValueError, match="fraction"):
        exit_times(alpha, eg, eps_p, fraction=1.5)
    with pytest.raises(ValueError, match="shape"):
        exit_times(alpha, eg[..., :-1], eps_p)


def test_fit_exit_law_recovers_a_line_and_its_errors():
    N = np.logspace(2, 5, 7)
    se = np.full(7, 0.5)
    exact = fit_exit_law(N, 3.0 + 8.0 * np.log(N), se)
    assert np.isclose(exact.a, 3.0) and np.isclose(exact.b, 8.0) and exact.chi2 < 1e-20
    # the standard error of b against its closed form for equal weights: se / sqrt(S_xx)
    x = np.log(N)
    assert np.isclose(exact.stderr_b, 0.5 / np.sqrt(np.sum((x - x.mean()) ** 2)))
    rng = np.random.default_rng(0)
    bs = [fit_exit_law(N, 3 + 8 * x + rng.normal(0, 0.5, 7), se).b for _ in range(4000)]
    assert abs(np.std(bs) / exact.stderr_b - 1) < 0.05  # 4000 fits: s.e. of a std ~1.1 %


def test_wishart_state_has_the_law_of_random_gaussian_weights():
    """Q = W Wᵀ/N, R = W W*ᵀ/N for W ~ N(0, 1) entries and an orthonormal teacher: E Q = I,
    Var Q_kk = 2/N, Var Q_kl = 1/N, E R = 0, Var R = 1/N (closed forms), 4000 draws; tolerance
    4 standard errors."""
    N, n = 20, 4000
    draws = [wishart_state(3, 2, N, s) for s in range(n)]
    Q = np.array([d.Q for d in draws])
    R = np.array([d.R for d in draws])
    for x, mean, var in ((Q[:, 0, 0], 1, 2 / N), (Q[:, 1, 2], 0, 1 / N), (R[:, 2, 1], 0, 1 / N)):
        assert abs(x.mean() - mean) <= 4 * np.sqrt(var / n)
        assert abs(x.var() / var - 1) <= 4 * np.sqrt(2 / n) * 1.5  # kurtosis allowance
    assert np.array_equal(draws[0].T, np.eye(2))
    with pytest.raises(ValueError, match="N"):
        wishart_state(2, 2, 3, 0)


# --- acceptance points on the cached data (book/data/finite_n) ------------------------------

def _cache(name):
    from tsode.book import exit_runs

    return exit_runs.load(name)


def test_acceptance_exit_slope_k2():
    """The fitted slope of the mean exit time against ln N agrees with 1/(2 λ_max) within 8 %
    and within 3 standard errors; ≥ 200 runs per N, N over ≥ 3 decades up to ≥ 1e5."""
    ds = _cache("k2")
    N = ds.N.values
    assert N.min() <= 100 and N.max() >= 1e5 and ds.sizes["run"] >= 200
    e = ds.exit.values
    assert not np.isnan(e).any()
    fit = fit_exit_law(N, e.mean(1), e.std(1, ddof=1) / np.sqrt(e.shape[1]))
    theory = symmetric_plateau(2, 1.0, 0.1).slope
    assert abs(fit.b / theory - 1) <= 0.08, (fit.b, theory)
    assert abs(fit.b - theory) <= 3 * fit.stderr_b, (fit.b, fit.stderr_b, theory)


def test_acceptance_sde_against_the_chain():
    """Same 400 starts at N = 1e3 and 5e3: two-sample KS p >= 0.01 and means within 3 %."""
    red, sde = _cache("k2_check_reduced"), _cache("k2_check_sde")
    assert list(red.N.values) == list(sde.N.values) == [1000, 5000]
    assert np.array_equal(red.init_seed.values, sde.init_seed.values)
    for i in range(2):
        a, b = red.exit.values[i], sde.exit.values[i]
        assert a.size >= 400 and not np.isnan(a).any() and not np.isnan(b).any()
        assert stats.ks_2samp(a, b).pvalue >= 0.01
        assert abs(b.mean() / a.mean() - 1) <= 0.03


def test_acceptance_sde_cost_flat_and_exit_rise():
    """SDE: cost per run at N = 1e8 <= 1.5 x that at 1e4 (process CPU time of the task, the
    cost on an idle core: wall-clock time on the shared machine measures its load); the mean
    exit time rises between them by ln(1e4)/(2 λ_max) within 10 % (100 runs each: the
    standard error of the rise is ~3.5 % of it)."""
    ds = _cache("k2_sde")
    N = list(ds.N.values)
    i, j = N.index(10_000), N.index(100_000_000)
    sec = ds.cpu_seconds.values
    assert sec[j] <= 1.5 * sec[i]
    rise = ds.exit.values[j].mean() - ds.exit.values[i].mean()
    want = np.log(1e4) * symmetric_plateau(2, 1.0, 0.1).slope
    assert abs(rise / want - 1) <= 0.10, (rise, want)
