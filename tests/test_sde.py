"""The diffusion engine (tsode.sde, simulate(engine="sde")): its one-step moments against the
closed-form drift and against the exact chain's increments, its API, seeds and validation."""

import numpy as np
import pytest

import tsode
from tsode.ode import Drift
from tsode.plateau import exit_times, symmetric_plateau
from tsode.sde import increment_moments, simulate_states, wishart_state

SETUP = tsode.Setup("erf", eta=1.0, sigma=0.1)


@pytest.fixture(scope="module")
def plateau():
    return symmetric_plateau(2, 1.0, 0.1)


def _start():
    return wishart_state(2, 2, 1000, 7)


def test_quadrature_mean_is_the_closed_form_drift(plateau):
    """E[X] by quadrature is the ODE drift of the closed forms (an independent computation):
    measured error 2e-3 of max|F| at 16 nodes from a random start, ~1e-15 at the plateau."""
    for state in (_start(), plateau.state):
        f = Drift.from_state(state, SETUP)
        F = f.pack(*tsode.drift(state, SETUP))
        mean, D = increment_moments(state, SETUP, nodes=16)
        assert np.abs(mean - F).max() <= 5e-3 * max(np.abs(F).max(), 1e-3)
        assert np.allclose(D, D.T) and np.linalg.eigvalsh(D).min() > -1e-12


def test_default_quadrature_at_the_plateau(plateau):
    """The default 8 nodes agree with 16 to 1 % at the plateau (measured 0.3 %), where the
    exit time is decided."""
    _, D8 = increment_moments(plateau.state, SETUP)
    _, D16 = increment_moments(plateau.state, SETUP, nodes=16)
    assert np.abs(D8 - D16).max() <= 0.01 * np.abs(D16).max()


def _chain_increments(state, n, N=10**8, seed=3):
    """N x the one-step increments (n, d) of the packed (Q, R) along one exact-chain run at
    very large N (the state moves by O(n/N) = 1e-3 of its drift over the sample)."""
    traj = tsode.simulate(state, SETUP, N=N, alpha_max=n / N, alphas=np.arange(n + 1) / N,
                          engine="reduced", seed=seed)
    f = Drift.from_state(state, SETUP)
    y = f.pack(traj.Q, traj.R, traj.v)
    return N * np.diff(y, axis=0)


@pytest.mark.parametrize("which", ["start", "plateau"])
def test_diffusion_matches_the_exact_chains_increments(plateau, which):
    """D (quadrature, 16 nodes) against the empirical covariance of 60000 increments of the
    exact chain. Tolerance per entry: 4 standard errors of the empirical covariance (from the
    sample's fourth moments) plus the quadrature's error (0.5 % of max|D|, 16 vs 24 nodes).
    Power: the same criterion rejects D scaled by 1.1 and D without the c_k c_l term's
    fluctuation (that is, the covariance of a wrong increment)."""
    state = _start() if which == "start" else plateau.state
    X = _chain_increments(state, 60_000)
    n = X.shape[0]
    Xc = X - X.mean(0)
    emp = Xc.T @ Xc / (n - 1)
    prods = Xc[:, :, None] * Xc[:, None, :]
    se = prods.std(0) / np.sqrt(n)
    _, D = increment_moments(state, SETUP, nodes=16)
    tol = 4 * se + 5e-3 * np.abs(D).max()

    def ok(cand):
        return bool(np.all(np.abs(cand - emp) <= tol))

    assert ok(D), np.abs(D - emp) / se
    assert not ok(1.1 * D)
    assert not ok(D * np.where(np.arange(D.shape[0]) < 3, 0.9, 1.0)[:, None])


def test_simulate_sde_api_seeds_and_runs():
    s0 = _start()
    a = tsode.simulate(s0, SETUP, N=1e6, alpha_max=5, engine="sde", n_runs=3, seed=4,
                       workers=1, alphas=np.linspace(0, 5, 11))
    assert a.eg.shape == (3, 11) and a.Q.shape == (3, 11, 2, 2) and a.R.shape == (3, 11, 2, 2)
    assert a.info["engine"] == "sde" and a.info["N"] == 10**6
    assert np.allclose(a.Q[:, 0], s0.Q) and np.allclose(a.alpha[-1], 5)
    b = tsode.simulate(s0, SETUP, N=1e6, alpha_max=5, engine="sde", n_runs=2, seed=4,
                       workers=2, alphas=np.linspace(0, 5, 11))
    # run i does not depend on n_runs or workers (up to round-off: the drift is evaluated
    # for all runs of a group at once, and numpy's batched kernels may reorder sums)
    np.testing.assert_allclose(a.Q[:2], b.Q, rtol=1e-10, atol=1e-13)
    again = tsode.simulate(s0, SETUP, N=1e6, alpha_max=5, engine="sde", n_runs=3, seed=4,
                           workers=1, alphas=np.linspace(0, 5, 11))
    assert np.array_equal(a.Q, again.Q)  # same call, same numbers
    c = tsode.simulate(s0, SETUP, N=1e6, alpha_max=5, engine="sde", n_runs=1, seed=5,
                       alphas=np.linspace(0, 5, 11))
    assert c.eg.shape == (11,) and not np.array_equal(c.Q, a.Q[0])
    with pytest.raises(ValueError, match="engine"):
        tsode.simulate(s0, SETUP, N=1000, alpha_max=1, engine="diffusion")
    with pytest.raises(ValueError, match="test_set"):
        tsode.simulate(s0, SETUP, N=1000, alpha_max=1, engine="sde", test_set=10)
    with pytest.raises(ValueError, match="nodes"):
        increment_moments(s0, SETUP, nodes=1)


@pytest.mark.parametrize("kw, culprit", [(dict(eta=1e300), "learning rate eta = 1e\\+300"),
                                         (dict(eta=0.5, sigma=1e200), "label noise sigma")])
def test_sde_divergence_names_the_parameter(kw, culprit):
    with pytest.raises(tsode.DivergenceError, match=f"run 0 diverged .*{culprit}"):
        tsode.simulate(_start(), tsode.Setup("erf", **kw), N=100, alpha_max=1.0, engine="sde")


def test_sde_follows_the_ode_at_huge_N():
    """At N = 1e12 the noise is negligible: the SDE is the ODE integrated by Euler with
    dα = 0.05 (global error O(dα)); compared at α = 20 with the adaptive ODE."""
    s0 = _start()
    alphas = np.linspace(0, 20, 5)
    eg, Q, R, _, _ = simulate_states([s0], SETUP, 1e12, alphas, 0)
    ode = tsode.integrate(s0, SETUP, 20, alphas=alphas)
    assert np.allclose(Q[0], ode.Q, atol=5e-3) and np.allclose(R[0], ode.R, atol=5e-3)


def test_euler_step_does_not_change_exit_times(plateau):
    """Exit times at N = 1000 with dα = 0.05 (default) and 0.025 (same starts, independent
    noise), 64 runs each: means within 3 standard errors of their difference."""
    starts = [wishart_state(2, 2, 1000, np.random.SeedSequence(11, spawn_key=(i,)))
              for i in range(64)]
    alphas = np.linspace(0, 200, 401)
    out = []
    for dalpha, d_every in ((0.05, 20), (0.025, 40)):
        eg, *_ = simulate_states(starts, SETUP, 1000, alphas, 9, dalpha=dalpha, d_every=d_every)
        out.append(exit_times(alphas, eg, plateau.eg))
    a, b = out
    assert not np.isnan(a).any() and not np.isnan(b).any()
    se = np.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size)
    assert abs(a.mean() - b.mean()) <= 3 * se, (a.mean(), b.mean(), se)
