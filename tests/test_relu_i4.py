"""Tests of the ReLU four-point integral I4(C) = E[θ(u0)θ(u1)relu(u2)relu(u3)].

References are independent of the implementation: adaptive 2-D quadrature (conditioning on
(u2, u3), bivariate normal CDF via Owen's T), Monte Carlo, and exact reductions for repeated
or (anti-)parallel fields.
"""

import numpy as np
import pytest
from scipy import integrate, special

from tsode._relu_i4 import relu_I4


# ----------------------------------------------------------------------------- references
def _Phi(x):
    return 0.5 * special.erfc(-x / np.sqrt(2.0))


def _bvn_cdf(h, k, rho):
    """P(X < h, Y < k), standard bivariate normal with correlation rho (Owen 1956)."""
    s = np.sqrt((1 - rho) * (1 + rho))
    if h == 0 and k == 0:
        return 0.25 + np.arcsin(rho) / (2 * np.pi)
    h = h if h != 0 else 1e-300
    k = k if k != 0 else 1e-300
    beta = 0.0 if h * k > 0 else 0.5
    return (0.5 * (_Phi(h) + _Phi(k)) - special.owens_t(h, (k - rho * h) / (h * s))
            - special.owens_t(k, (h - rho * k) / (k * s)) - beta)


def quadrature_I4(C):
    """∫∫_{u2,u3>0} u2 u3 φ(u2,u3) P(u0>0, u1>0 | u2, u3) by scipy dblquad (C23 regular)."""
    S23, S = C[2:, 2:], C[:2, 2:]
    S23inv = np.linalg.inv(S23)
    B = S @ S23inv
    Sc = C[:2, :2] - B @ S.T
    s0, s1 = np.sqrt(Sc[0, 0]), np.sqrt(Sc[1, 1])
    rc = Sc[0, 1] / (s0 * s1)
    norm = 1 / (2 * np.pi * np.sqrt(np.linalg.det(S23)))

    def f(y, x):
        u = np.array([x, y])
        m = B @ u
        return x * y * norm * np.exp(-0.5 * u @ S23inv @ u) * _bvn_cdf(m[0] / s0, m[1] / s1, rc)

    lim2, lim3 = 12 * np.sqrt(C[2, 2]), 12 * np.sqrt(C[3, 3])
    return integrate.dblquad(f, 0, lim2, 0, lim3, epsabs=1e-12, epsrel=1e-11)[0]


def monte_carlo_I4(C, n=4_000_000, seed=0, chunk=1_000_000):
    """Sample mean and standard error of θθ relu relu with n samples (fixed seed)."""
    rng = np.random.default_rng(seed)
    w, V = np.linalg.eigh(C)
    L = V * np.sqrt(np.clip(w, 0, None))
    s = s2 = 0.0
    for _ in range(n // chunk):
        u = rng.standard_normal((chunk, 4)) @ L.T
        f = (u[:, 0] > 0) * (u[:, 1] > 0) * np.maximum(u[:, 2], 0) * np.maximum(u[:, 3], 0)
        s += f.sum()
        s2 += (f * f).sum()
    mean = s / n
    return mean, np.sqrt((s2 / n - mean**2) / n)


def relu_I2(C, a, b):
    """E[relu(u_a) relu(u_b)] (closed form)."""
    sa, sb = np.sqrt(C[a, a]), np.sqrt(C[b, b])
    th = np.arccos(np.clip(C[a, b] / (sa * sb), -1, 1))
    return sa * sb / (2 * np.pi) * (np.sin(th) + (np.pi - th) * np.cos(th))


# ----------------------------------------------------------------------------- helpers
def unit(v):
    return v / np.linalg.norm(v)


def gram(V, scales=None):
    C = V @ V.T
    if scales is not None:
        C = C * np.outer(scales, scales)
    return C


def sub(G, idx):
    idx = np.asarray(idx)
    return G[np.ix_(idx, idx)]


def tilted(v, angle, rng):
    """A unit vector at the given angle from unit(v)."""
    v = unit(v)
    p = rng.standard_normal(v.size)
    p = unit(p - (p @ v) * v)
    return np.cos(angle) * v + np.sin(angle) * p


def near_parallel(rng, i, j, delta, sign=1):
    """Correlation matrix with corr(i, j) = sign·(1 − delta) (in exact arithmetic)."""
    V = np.array([unit(v) for v in rng.standard_normal((4, 5))])
    V[j] = sign * tilted(V[i], np.arccos(1 - delta), rng)
    return gram(V, rng.uniform(0.5, 2.0, 4))


@pytest.fixture(scope="module")
def G():
    """A generic 6×6 Gram matrix of 'fields' (like Q, R, T)."""
    rng = np.random.default_rng(42)
    W = rng.standard_normal((6, 9))
    return W @ W.T / 9


# ----------------------------------------------------------------------------- 1. quadrature
def _quadrature_cases():
    rng = np.random.default_rng(7)
    cases = []
    for k in range(6):
        A = rng.standard_normal((4, 4 + k % 3))
        cases.append(A @ A.T / 5)
    cases.append(near_parallel(rng, 0, 1, 1e-4))
    cases.append(near_parallel(rng, 0, 1, 1e-10))
    cases.append(near_parallel(rng, 0, 2, 1e-6))
    cases.append(near_parallel(rng, 1, 3, 1e-3, sign=-1))
    cases.append(near_parallel(rng, 0, 1, 1e-3, sign=-1))
    V = rng.standard_normal((4, 4))
    V[3] = V[0] - 0.7 * V[1] + 0.3 * V[2] + 1e-4 * V[3]      # nearly rank 3
    cases.append(V @ V.T)
    return cases


@pytest.mark.parametrize("C", _quadrature_cases())
def test_against_adaptive_quadrature(C):
    ref = quadrature_I4(C)
    assert abs(relu_I4(C) - ref) <= 1e-8 * np.sqrt(C[2, 2] * C[3, 3])


# ----------------------------------------------------------------------------- 2. Monte Carlo
def _mc_cases():
    rng = np.random.default_rng(3)
    W = rng.standard_normal((6, 8))
    Q = W @ W.T / 8
    cases = [sub(Q, idx) for idx in ([0, 1, 2, 3], [0, 1, 4, 5], [0, 1, 0, 1], [0, 0, 2, 3],
                                     [0, 1, 2, 2], [0, 1, 0, 3], [0, 1, 3, 1], [2, 2, 2, 5])]
    cases.append(near_parallel(rng, 0, 3, 1e-9))
    cases.append(near_parallel(rng, 2, 3, 1e-12, sign=-1))
    cases.append(near_parallel(rng, 0, 1, 1e-12))
    return cases


@pytest.mark.parametrize("C", _mc_cases())
def test_against_monte_carlo(C):
    mean, se = monte_carlo_I4(C)
    assert abs(relu_I4(C) - mean) <= 5 * se + 1e-12


# ----------------------------------------------------------------------------- 3. exact cases
def test_all_fields_equal(G):
    for a in range(6):
        assert relu_I4(sub(G, [a, a, a, a])) == pytest.approx(G[a, a] / 2, rel=1e-12, abs=0)


@pytest.mark.parametrize("pattern", [(0, 0, 0, 1), (0, 1, 0, 1), (0, 1, 1, 0), (1, 0, 0, 1),
                                     (0, 0, 1, 0), (1, 1, 1, 0), (1, 0, 0, 1), (0, 0, 0, 1)])
def test_reduces_to_relu_I2(G, pattern):
    """θ(u)relu(u) = relu(u), θ(u)² = θ(u): these patterns equal E[relu(u_a)relu(u_b)]."""
    for a, b in [(0, 1), (2, 5), (3, 4)]:
        idx = [(a, b)[p] for p in pattern]
        assert abs(relu_I4(sub(G, idx)) - relu_I2(G, a, b)) <= 1e-12 * np.sqrt(G[a, a] * G[b, b])


@pytest.mark.parametrize("pattern", [(0, 1, 0, 0), (1, 0, 0, 0), (0, 0, 1, 1)])
def test_relu_squared_closed_form(G, pattern):
    """(a,b,a,a) etc.: E[θ(u_b) u_a² θ(u_a)] = C_aa(¼ + asin ρ/2π + ρ√(1−ρ²)/2π) (Stein)."""
    for a, b in [(0, 1), (2, 5), (3, 4)]:
        idx = [(a, b)[p] for p in pattern]
        if pattern == (0, 0, 1, 1):
            a, b = b, a
        rho = G[a, b] / np.sqrt(G[a, a] * G[b, b])
        exact = G[a, a] * (0.25 + (np.arcsin(rho) + rho * np.sqrt(1 - rho**2)) / (2 * np.pi))
        assert abs(relu_I4(sub(G, idx)) - exact) <= 1e-12 * G[a, a]


def test_independent_pairs_factorise():
    """(a,b,a,b), a ⟂ b: E[θ_a relu_a] E[θ_b relu_b] = √(C_aa/2π)√(C_bb/2π);
    (a,a,b,b): E[θ_a] E[relu_b²] = ½ · C_bb/2."""
    rng = np.random.default_rng(0)
    for _ in range(5):
        ca, cb = rng.uniform(0.1, 3, 2)
        C = np.array([[ca, 0, ca, 0], [0, cb, 0, cb], [ca, 0, ca, 0], [0, cb, 0, cb]])
        assert relu_I4(C) == pytest.approx(np.sqrt(ca * cb) / (2 * np.pi), rel=1e-12)
        C = np.array([[ca, ca, 0, 0], [ca, ca, 0, 0], [0, 0, cb, cb], [0, 0, cb, cb]])
        assert relu_I4(C) == pytest.approx(cb / 4, rel=1e-12)
    C = np.diag(rng.uniform(0.1, 3, 4))        # all independent: ¼ · E[relu]²
    assert relu_I4(C) == pytest.approx(np.sqrt(C[2, 2] * C[3, 3]) / (8 * np.pi), rel=1e-12)


def test_scaling_and_symmetry():
    rng = np.random.default_rng(1)
    A = rng.standard_normal((50, 4, 6))
    C = A @ A.transpose(0, 2, 1) / 6
    I = relu_I4(C)
    np.testing.assert_allclose(relu_I4(3.7 * C), 3.7 * I, rtol=1e-12, atol=0)
    # θ-fields rescaled individually do not matter; relu fields scale linearly
    D = np.array([0.3, 5.0, 2.0, 0.5])
    np.testing.assert_allclose(relu_I4(C * np.outer(D, D)), I * 2.0 * 0.5, rtol=1e-11, atol=0)
    for perm in ([1, 0, 2, 3], [0, 1, 3, 2], [1, 0, 3, 2]):
        np.testing.assert_allclose(relu_I4(C[:, perm][:, :, perm]), I, rtol=1e-12, atol=1e-15)


def test_batch_shapes():
    rng = np.random.default_rng(2)
    A = rng.standard_normal((3, 5, 4, 6))
    C = A @ np.swapaxes(A, -1, -2) / 6
    out = relu_I4(C)
    assert out.shape == (3, 5)
    assert out[2, 3] == relu_I4(C[2, 3])
    assert np.ndim(relu_I4(C[0, 0])) == 0


# ----------------------------------------------------------------------------- 4. degenerate
def test_anti_parallel_and_zero_variance_give_zero(G):
    for pair in [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]:
        C = sub(G, [0, 1, 2, 3]).copy()
        i, j = pair
        C[j, :] = -C[i, :] * 1.5           # u_j = −1.5 u_i
        C[:, j] = -C[:, i] * 1.5
        C[j, j] = 2.25 * C[i, i]
        assert relu_I4(C) == 0.0
    for k in range(4):
        C = sub(G, [0, 1, 2, 3]).copy()
        C[k, :] = C[:, k] = 0.0
        assert relu_I4(C) == 0.0


def test_tiny_variances_scale(G):
    C = sub(G, [0, 1, 2, 3])
    D = np.array([1e-4, 1e-4, 1e-4, 1e-4])   # variances 1e-8
    assert relu_I4(C * np.outer(D, D)) == pytest.approx(1e-8 * relu_I4(C), rel=1e-12)


@pytest.mark.parametrize("pair", [(0, 1), (0, 2), (1, 3), (2, 3)])
@pytest.mark.parametrize("sign", [1, -1])
def test_near_parallel_is_continuous(pair, sign):
    """corr → ±1 along a fixed direction: values converge to the exactly parallel value,
    with differences O(√δ) (θ-θ pairs) or smaller, and stay finite."""
    rng = np.random.default_rng(5)
    i, j = pair
    V = np.array([unit(v) for v in rng.standard_normal((4, 5))])
    p = rng.standard_normal(5)
    p = unit(p - (p @ V[i]) * V[i])
    vals = []
    deltas = [1e-2, 1e-4, 1e-6, 1e-8, 1e-10, 1e-12, 1e-14, 0.0]
    for d in deltas:
        t = np.arccos(1 - d)
        W = V.copy()
        W[j] = sign * (np.cos(t) * V[i] + np.sin(t) * p)
        vals.append(relu_I4(gram(W)))
    vals = np.array(vals)
    assert np.all(np.isfinite(vals))
    limit = vals[-1]
    for d, v in zip(deltas[:-1], vals[:-1]):
        assert abs(v - limit) <= 0.5 * np.sqrt(d) + 1e-9


def test_near_parallel_matches_quadrature_of_equivalent_problem():
    """u1 = u0 copy at 1 − 1e-12: I4 ≈ E[θ0 relu2 relu3] computed from the 3-field problem."""
    rng = np.random.default_rng(8)
    C = near_parallel(rng, 0, 1, 1e-12)
    exact_copy = C.copy()
    exact_copy[1, :] = exact_copy[0, :] * np.sqrt(C[1, 1] / C[0, 0])
    exact_copy[:, 1] = exact_copy[1, :]
    exact_copy[1, 1] = C[1, 1]
    # the θ-θ pair changes I4 by at most √(2δ)/(2π) · E[relu relu]-scale
    assert abs(relu_I4(C) - relu_I4(exact_copy)) <= 2e-6 * np.sqrt(C[2, 2] * C[3, 3])


def test_ode_like_batches_are_finite_and_consistent(G):
    """All index tuples (i, k, a, b) of a 6-field Gram matrix: finite, and each equals the
    same tuple evaluated alone; duplicate-index tuples agree with the 2-field closed form."""
    import itertools
    idx = np.array(list(itertools.product(range(3), range(3), range(6), range(6))))
    C = G[idx[:, :, None], idx[:, None, :]]
    out = relu_I4(C)
    assert np.all(np.isfinite(out))
    assert np.all(out >= 0)
    for n in (0, 17, 100, 250):
        assert out[n] == relu_I4(C[n])
    for n, (i, k, a, b) in enumerate(idx):
        if i == a and k == b:
            assert abs(out[n] - relu_I2(G, i, k)) <= 1e-12


def test_rejects_bad_input():
    with pytest.raises(ValueError):
        relu_I4(np.eye(3))
    C = np.eye(4)
    C[0, 1] = C[1, 0] = 2.0
    with pytest.raises(ValueError):
        relu_I4(C)
