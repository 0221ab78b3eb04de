"""The reduced chain's rank-2 Cholesky update (tsode._sim_kernels.rank2_lanes) against fresh
factorisations and its rank-deficient fallbacks (its branch-free exp: tests/test_drift_sums.py)."""

import numpy as np
import pytest

import tsode
from tsode import _sim_kernels as k
from tsode.simulate import RANK_RTOL


def lanes_run(state0, N, n_steps, refresh, lanes=6, seed=0, eta=0.8, eta_v=0.3, sigma=0.1,
              decay=0.05, code=0):
    """Advance ``lanes`` runs of the chain by n_steps with the given refresh period, from the
    same random numbers whatever ``refresh``; returns (G, v, L, ok)."""
    G0 = np.array(state0.covariance, dtype=float)
    n, K = G0.shape[0], state0.K
    m = min(n, N)
    G = np.ascontiguousarray(np.repeat(G0[:, :, None], lanes, axis=2))
    v = np.ascontiguousarray(np.repeat(np.array(state0.v, float)[:, None], lanes, axis=1))
    vs = np.array(state0.v_star, float)
    Z = np.empty((n_steps, m, lanes))
    X2, ZE = np.empty((n_steps, lanes)), np.empty((n_steps, lanes))
    for j in range(lanes):
        rng = np.random.default_rng([seed, j])
        k.draw_block(rng, m, N, sigma, True, Z[:, :, j], X2[:, j], ZE[:, j])
    L, ok, failed = np.zeros((n, n, lanes)), np.zeros(lanes), np.zeros(1, dtype=np.int64)
    done = k.reduced_advance_lanes(G, v, vs, Z, X2, ZE, n_steps, K, N, code, eta, eta_v, sigma,
                                   decay, 1e8, RANK_RTOL, failed, refresh, L, ok, 0)
    assert done == n_steps
    return G, v, L, ok


NEVER = 10**9  # one factorisation at the first step, rank-2 updates ever after


def test_rank2_update_tracks_a_fresh_factorisation_over_many_steps():
    """3000 steps of rank-2 updates (weight decay, both layers, noise) without any refresh:
    the carried factor L still satisfies L L^T = G to 1e-12 relative and equals the Cholesky
    factor of G to 1e-10 (rounding grows like sqrt(steps) x cond(G) x eps ~ 1e-13 here; the
    tolerances leave a margin, far below any O(eta/N) = 1e-3 change of a step), and the
    trajectory of G equals the one with a fresh factorisation every step to 1e-12."""
    state0 = tsode.initial_state(20, 4, "random", N=1000, seed=3, v="normal")
    G, v, L, ok = lanes_run(state0, 1000, 3000, NEVER)
    G1, v1, _, _ = lanes_run(state0, 1000, 3000, 1)
    assert ok.all()
    for l in range(G.shape[2]):
        Gl, Ll = G[:, :, l], np.tril(L[:, :, l])
        scale = np.abs(Gl).max()
        assert np.abs(Ll @ Ll.T - Gl).max() <= 1e-12 * scale
        ref = np.linalg.cholesky(Gl)
        assert np.abs(Ll - ref).max() <= 1e-10 * np.abs(ref).max()
    np.testing.assert_allclose(G, G1, rtol=0, atol=1e-12 * np.abs(G1).max())
    np.testing.assert_allclose(v, v1, rtol=0, atol=1e-12 * np.abs(v1).max())
    # and the state moved: the comparison is not between two unchanged matrices
    assert np.abs(G - np.array(state0.covariance)[:, :, None]).max() > 1e-2


def test_rank2_update_from_zero_weights_falls_back_like_a_fresh_factorisation():
    """Zero initial weights: G is rank-deficient (here it stays so for thousands of steps), so
    every lane uses the pivoted fallback (ok = 0), step after step, exactly as with a fresh
    factorisation per step."""
    state0 = tsode.initial_state(20, 4, "small", N=1000, seed=1, init_std=0.0, v="normal")
    assert np.linalg.matrix_rank(np.array(state0.covariance)) == 4
    G, v, _, ok = lanes_run(state0, 1000, 300, NEVER)
    G1, v1, _, _ = lanes_run(state0, 1000, 300, 1)
    assert not ok.any()
    np.testing.assert_array_equal(G, G1)
    np.testing.assert_array_equal(v, v1)


def test_rank2_update_takes_over_once_g_reaches_full_rank():
    """One student with zero weights: G has rank K + M - 1 at the start (fallback), full rank
    after the first step (w_0 = c_0 x / sqrt N); from then on the lanes carry their factor by
    the update. The trajectory equals the fresh-factorisation one to 1e-12 and every lane ends
    with a valid factor (L L^T = G)."""
    s = tsode.initial_state(20, 4, "random", N=1000, seed=5, v="normal")
    Q, R = np.array(s.Q), np.array(s.R)
    Q[0, :], Q[:, 0], R[0, :] = 0.0, 0.0, 0.0
    state0 = tsode.OrderParameters(Q=Q, R=R, T=np.array(s.T), v=np.array(s.v),
                                   v_star=np.array(s.v_star))
    assert np.linalg.matrix_rank(np.array(state0.covariance)) == 23
    G, _, L, ok = lanes_run(state0, 1000, 500, NEVER)
    G1, _, _, _ = lanes_run(state0, 1000, 500, 1)
    np.testing.assert_allclose(G, G1, rtol=0, atol=1e-12 * np.abs(G1).max())
    assert ok.all()
    for l in range(G.shape[2]):
        Ll = np.tril(L[:, :, l])
        assert np.abs(Ll @ Ll.T - G[:, :, l]).max() <= 1e-12 * np.abs(G[:, :, l]).max()


def test_rank2_update_is_off_when_k_plus_m_exceeds_n():
    """K + M > N: G is rank-deficient for good; every step uses the pivoted factorisation,
    exactly as with refresh = 1."""
    state0 = tsode.initial_state(20, 4, "random", N=18, seed=2)
    G, v, _, _ = lanes_run(state0, 18, 300, NEVER, decay=0.0)
    G1, v1, _, _ = lanes_run(state0, 18, 300, 1, decay=0.0)
    np.testing.assert_array_equal(G, G1)
    np.testing.assert_array_equal(v, v1)


def test_simulate_with_rank2_runs_does_not_depend_on_grouping():
    """From K + M = 24 fields simulate() uses the update; single runs then go through the
    lane kernel too, so a run is the same alone or in a group."""
    from tsode.simulate import _RANK2_MIN_FIELDS

    state0 = tsode.initial_state(20, 4, "random", N=300, seed=1)
    assert state0.K + state0.M >= _RANK2_MIN_FIELDS
    setup = tsode.Setup("erf", eta=0.8, eta_v=0.2, sigma=0.1)
    kw = dict(N=300, alpha_max=1.0, engine="reduced", seed=7)
    group = tsode.simulate(state0, setup, n_runs=5, workers=1, **kw)
    one = tsode.simulate(state0, setup, n_runs=1, **kw)
    np.testing.assert_array_equal(group.Q[0], one.Q)
    np.testing.assert_array_equal(group.v[0], one.v)
