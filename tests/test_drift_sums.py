"""The fused, threaded drift (tsode._drift_sums) against independent evaluations of the ODEs."""

import math
import tracemalloc

import numpy as np
import pytest

import tsode
from tsode import _drift_sums as ds
from tsode.activations import activation, gather, index_tuples
from tsode.ode import Drift


# ------------------------------------------------------------------ the drift at small K, exactly
def reference_drift(state, setup):
    """Eqs. 7-9 of Goldt et al. written out with numpy: every integral from the public closed
    forms (Activation.I2/I3/I4/J2) on gathered sub-covariances, all index tuples (no symmetry
    used), summed with einsum. Independent of tsode.ode's index sets and kernels."""
    act = activation(setup.activation)
    Q, R, T = map(np.asarray, (state.Q, state.R, state.T))
    v, vs = np.asarray(state.v, float), np.asarray(state.v_star, float)
    K, M = R.shape
    n = K + M
    C = np.block([[Q, R], [R.T, T]])
    w = np.concatenate([v, -vs])
    I3 = act.I3(gather(C, index_tuples(K, n, n))).reshape(K, n, n)       # (i, b, a)
    I4 = act.I4(gather(C, index_tuples(K, K, n, n))).reshape(K, K, n, n)  # (i, k, a, b)
    I2 = act.I2(gather(C, index_tuples(K, n))).reshape(K, n)
    J2 = act.J2(gather(C, index_tuples(K, K))).reshape(K, K)
    eta, eta_v, sigma, kappa = setup.eta, setup.eta_v, setup.sigma, setup.weight_decay
    A = np.einsum("iba,a->ib", I3, w)
    dR = -eta * v[:, None] * A[:, K:] - kappa * R
    noise = np.einsum("ikab,a,b->ik", I4, w, w) + sigma**2 * J2
    dQ = (-eta * (v[:, None] * A[:, :K] + (v[:, None] * A[:, :K]).T)
          + eta**2 * np.outer(v, v) * noise - 2 * kappa * Q)
    dv = -eta_v * I2 @ w - kappa * v if eta_v > 0 else np.zeros(K)
    return dQ, dR, dv


SETUPS = [
    dict(eta=0.7),                                            # first layer
    dict(eta=0.5, eta_v=0.3, sigma=0.2, weight_decay=0.01),   # both layers, noise, decay
]


@pytest.mark.parametrize("act", ["erf", "relu", "linear"])
@pytest.mark.parametrize("kw", SETUPS, ids=["first-layer", "both-layers"])
@pytest.mark.parametrize("K, M", [(1, 1), (3, 2), (5, 3)])
def test_drift_at_small_K_equals_the_written_out_equations(act, kw, K, M):
    """Within 1e-14 of the largest component (the closed forms are evaluated term by term in
    a different order; ReLU's all-distinct I4 goes through the quadrature, accurate to ~1e-13
    relative, on the gathered path: 1e-12 there)."""
    setup = tsode.Setup(act, **kw)
    state = tsode.initial_state(K, M, "random", N=40, seed=K + M, v="normal", v_star="normal")
    new = tsode.drift(state, setup)
    ref = reference_drift(state, setup)
    tol = 1e-12 if act == "relu" else 1e-14
    scale = max(np.abs(x).max() for x in ref)
    for x, y in zip(new, ref):
        np.testing.assert_allclose(x, y, rtol=0, atol=tol * scale)


@pytest.mark.parametrize("act", ["erf", "relu", "linear"])
@pytest.mark.parametrize("kw", SETUPS, ids=["first-layer", "both-layers"])
def test_fused_drift_equals_the_per_integral_path(act, kw):
    """The per-integral path (index tuples materialised, einsum over them: the drift before
    the fused kernels, still used by the Jacobian) gives the same drift to 1e-14, also for a
    batch of states."""
    f = Drift.from_state(tsode.initial_state(4, 3, "random", N=40, seed=2, v="normal"),
                         tsode.Setup(act, **kw))
    states = [tsode.initial_state(4, 3, "random", N=40, seed=s, v="normal") for s in (2, 3)]
    Q = np.stack([s.Q for s in states])
    R = np.stack([s.R for s in states])
    v = np.stack([s.v for s in states])
    new = f.derivatives(Q, R, v)
    old = f.combine(Q, R, v, f.integrals(f.covariance(Q, R)))
    scale = max(np.abs(x).max() for x in old)
    for x, y in zip(new, old):
        np.testing.assert_allclose(x, y, rtol=0, atol=1e-14 * scale)


@pytest.mark.parametrize("act", ["erf", "relu", "linear"])
def test_block_by_block_sums_equal_the_fused_ones(act):
    """The path of activations without a fused kernel (indexed kernels over blocks of
    tuples) against the fused kernel."""
    state = tsode.initial_state(5, 2, "random", N=40, seed=1, v="normal")
    f = Drift.from_state(state, tsode.Setup(act, eta=0.5))
    C, w = np.asarray(state.covariance), f._w(np.asarray(state.v))
    A, S4 = ds.fused_sums(C, w, f.K, f.ik, f.act.code)
    wab = f.ab_weight * w[f.ab[:, 0]] * w[f.ab[:, 1]]
    blocks = ds.chunked_sums(f.k["I4"], C, wab, f.ik, f.ab, rows_per_block=4)
    np.testing.assert_allclose(S4, blocks, rtol=1e-14, atol=1e-15)
    A_blocks = ds.chunked_sums(f.k["I3"], C, w, f.idx2, np.arange(f.K + f.M)[:, None], 3)
    np.testing.assert_allclose(A, A_blocks.reshape(A.shape), rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("act", ["erf", "relu", "linear"])
def test_threaded_and_serial_loops_agree_bitwise(act):
    """Every row is summed by one thread in a fixed order: the result does not depend on the
    number of threads (nor on whether the threaded loop is used at all)."""
    import numba

    state = tsode.initial_state(6, 3, "random", N=40, seed=4, v="normal")
    f = Drift.from_state(state, tsode.Setup(act, eta=0.5))
    C = np.ascontiguousarray(np.asarray(state.covariance)[None])
    w = np.ascontiguousarray(f._w(np.asarray(state.v))[None])
    n, code = f.K + f.M, f.act.code
    outs = []
    before = numba.get_num_threads()
    try:
        for threads in sorted({1, numba.config.NUMBA_NUM_THREADS}):
            numba.set_num_threads(threads)
            A, S4 = np.empty((1, f.K, n)), np.empty((1, f.n_q))
            ds._rows_threaded(C, w, f.ik, code, A, S4)
            outs.append((A, S4))
    finally:
        numba.set_num_threads(before)
    A, S4 = np.empty((1, f.K, n)), np.empty((1, f.n_q))
    ds._rows_serial(C, w, f.ik, code, A, S4)
    for A_t, S4_t in outs:
        np.testing.assert_array_equal(A_t, A)
        np.testing.assert_array_equal(S4_t, S4)


def test_drift_at_large_K_materialises_no_index_tuples():
    """Structural, not a timing: at K = 60, M = 4 the I4 index tuples alone would take
    n_q * n_ab * 32 B = 122 MB; one evaluation of the drift allocates (numpy, traced) less than
    2 % of that. The per-integral Jacobian path still builds them on request."""
    K, M = 60, 4
    state = tsode.initial_state(K, M, "random", N=1000, seed=0)
    f = Drift.from_state(state, tsode.Setup("erf", eta=0.5))
    y = f.pack_state(state)
    f(0.0, y)  # compile
    tuples = f.n_q * len(f.ab) * 4 * 8
    tracemalloc.start()
    out = f(0.0, y)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert np.all(np.isfinite(out))
    assert "idx4" not in f.__dict__
    assert peak < 0.02 * tuples, (peak, tuples)
