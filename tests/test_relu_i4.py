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


# ----------------------------------------------------------------------------- 5. indexed kernel
# relu_I4_indexed(C, idx) evaluates I4 on index tuples into a field covariance, with closed
# forms for repeated indices; the reference is relu_I4 on the gathered sub-covariances.
from itertools import product  # noqa: E402

from tsode._relu_i4 import relu_I4_indexed  # noqa: E402

N_FIELDS = 5
ALL_TUPLES = np.array(list(product(range(N_FIELDS), repeat=4)), dtype=np.int64)


def _pattern(t):
    """Index pattern of a tuple: first-occurrence labels, e.g. (3, 1, 3, 0) -> (0, 1, 0, 2)."""
    seen = {}
    return tuple(seen.setdefault(x, len(seen)) for x in t)


def _gathered(C, idx):
    return relu_I4(C[..., idx[:, :, None], idx[:, None, :]])


def _field_covariances():
    """Named n=5 field covariances: Wishart, rank-deficient, exactly and nearly (anti-)parallel
    pairs, dead and tiny-variance fields."""
    rng = np.random.default_rng(11)
    n = N_FIELDS
    out = []
    for k in range(4):
        W = rng.standard_normal((n, n + k))
        out.append((f"wishart{k}", W @ W.T / (n + k)))
    W = rng.standard_normal((n, 2))
    out.append(("rank2", W @ W.T))
    W = rng.standard_normal((n, 3))
    out.append(("rank3", W @ W.T))

    def copy_field(C, src, dst, scale):
        """u_dst = scale · u_src exactly, in the covariance."""
        C = C.copy()
        C[dst, :] = scale * C[src, :]
        C[:, dst] = scale * C[:, src]
        C[dst, dst] = scale**2 * C[src, src]
        return C

    W = rng.standard_normal((n, n + 1))
    base = W @ W.T / (n + 1)
    out.append(("parallel03", copy_field(base, 0, 3, 1.7)))
    out.append(("parallel12+34", copy_field(copy_field(base, 1, 2, 0.6), 3, 4, 1.0)))
    out.append(("anti14", copy_field(base, 1, 4, -0.8)))
    out.append(("anti02+parallel13", copy_field(copy_field(base, 0, 2, -1.2), 1, 3, 2.0)))
    for name, (i, j, delta, sign) in {"near01": (0, 1, 1e-6, 1), "near24": (2, 4, 1e-8, 1),
                                      "near13": (1, 3, 1e-4, 1), "nearanti03": (0, 3, 1e-7, -1),
                                      "nearanti12": (1, 2, 1e-9, -1)}.items():
        V = np.array([unit(v) for v in rng.standard_normal((n, n + 1))])
        V[j] = sign * tilted(V[i], np.arccos(1 - delta), rng)
        out.append((name, gram(V, rng.uniform(0.3, 2.0, n))))
    V = np.array([unit(v) for v in rng.standard_normal((n, n + 1))])
    V[1] = tilted(V[0], 1e-3, rng)
    V[2] = tilted(V[0], 2e-3, rng)                 # three nearly equal fields
    out.append(("near012", gram(V)))
    C = base.copy()
    C[2, :] = C[:, 2] = 0.0
    out.append(("dead2", C))
    out.append(("tiny-all", 1e-12 * base))
    out.append(("tiny3", base * np.outer(*2 * [np.array([1, 1, 1, 1e-7, 1])])))
    out.append(("huge+tiny", base * np.outer(*2 * [np.array([1e3, 1, 1e-5, 1, 1])])))
    return out


FIELD_COVARIANCES = _field_covariances()


def test_indexed_tests_cover_every_pattern_the_ode_uses():
    """The I4 index tuples the ODE's drift actually requests (K = 3 students, M = 2 teachers:
    5 fields) realise 14 of the 15 partitions of the 4 slots (all but (i, k, k, i) with the
    relu pair reversed) and every one of them is among the tuples tested below. Fails if the
    drift's index grid changes (e.g. drops the i <= k, a <= b symmetry or a pattern)."""
    import tsode
    from tsode.ode import Drift

    state = tsode.initial_state(3, 2, "random", N=100, seed=0)
    f = Drift.from_state(state, tsode.Setup("relu", eta=0.1))
    used = {_pattern(t) for t in f.idx4}
    assert len(used) == 14 and (0, 1, 1, 0) not in used
    assert used <= {_pattern(t) for t in ALL_TUPLES}


# Near-parallel pairs (1 − |ρ| ≲ 1e-6; a relu field within 1 − ρ ~ 1e-8 … 5e-7 of a θ-field):
# the quadrature used to err by up to 7e-9 here (a feature of width ~γ at a wedge edge that the
# adaptive rule missed); the closed forms are checked against 40-digit arithmetic on these
# covariances in test_indexed_closed_forms_in_high_precision, so they are an independent
# reference for the quadrature of the gathered repeated-index tuples.
HARD = {"near24", "nearanti12", "near012"}


@pytest.mark.parametrize("name, C", FIELD_COVARIANCES, ids=[c[0] for c in FIELD_COVARIANCES])
def test_indexed_matches_gathered_quadrature(name, C):
    out = relu_I4_indexed(C, ALL_TUPLES)
    ref = _gathered(C, ALL_TUPLES)
    scale = np.sqrt(np.diag(C)[ALL_TUPLES[:, 2]] * np.diag(C)[ALL_TUPLES[:, 3]])
    err = np.abs(out - ref)
    worst = {}
    for t, e in zip(ALL_TUPLES, err):
        p = _pattern(t)
        worst[p] = max(worst.get(p, 0.0), float(e))
    assert np.all(np.isfinite(out))
    assert np.all(err <= 1e-10 * np.maximum(scale, 1.0)), worst
    assert np.all(out >= -1e-12 * scale)            # ≥ 0 up to rounding (and quadrature error)
    # all-distinct tuples run the same quadrature (scalar port): agreement to rounding
    distinct = np.array([len(set(t)) == 4 for t in ALL_TUPLES])
    assert np.all(err[distinct] <= 1e-13 * np.maximum(scale[distinct], 1e-300))


def test_indexed_symmetries_and_exact_values():
    rng = np.random.default_rng(12)
    W = rng.standard_normal((N_FIELDS, 7))
    C = W @ W.T / 7
    out = relu_I4_indexed(C, ALL_TUPLES).reshape((N_FIELDS,) * 4)
    np.testing.assert_allclose(out, out.transpose(1, 0, 2, 3), rtol=1e-13, atol=0)
    np.testing.assert_allclose(out, out.transpose(0, 1, 3, 2), rtol=1e-13, atol=0)
    for a in range(N_FIELDS):
        assert out[a, a, a, a] == C[a, a] / 2
        for b in range(N_FIELDS):
            if a != b:
                ref = relu_I2(C, a, b)
                for t in [(a, b, a, b), (a, a, a, b), (b, b, a, b), (a, b, b, a)]:
                    assert abs(out[t] - ref) <= 1e-15 * np.sqrt(C[a, a] * C[b, b])


def _mp_closed_form(mp, C, t):
    """The closed form of a repeated-index tuple in 40-digit arithmetic, from correlations
    rounded to double exactly as the kernel computes them (so only the formulas' own numerical
    stability is tested, not the conditioning of ρ → ±1)."""
    i, k, a, b = (int(x) for x in t)
    thetas = [x for x in dict.fromkeys((i, k)) if x not in (a, b)]
    sd = [mp.sqrt(mp.mpf(C[j, j])) for j in range(len(C))]

    def rho(x, y):
        r = C[x, y] / (np.sqrt(C[x, x]) * np.sqrt(C[y, y]))
        r = 1.0 if r >= 1 - 1e-15 else -1.0 if r <= -1 + 1e-15 else r
        return mp.mpf(r)

    def s(x):
        return mp.sqrt(1 - x * x)

    def P3(A, B, c):
        return mp.mpf(1) / 8 + (mp.asin(A) + mp.asin(B) + mp.asin(c)) / (4 * mp.pi)

    if a == b and not thetas:
        return mp.mpf(C[a, a]) / 2
    if a == b and len(thetas) == 1:
        A = rho(thetas[0], a)
        return sd[a] ** 2 * (mp.mpf(1) / 4 + (mp.asin(A) + A * s(A)) / (2 * mp.pi))
    if a == b:
        x, y = thetas
        r, B, Cc = rho(x, y), rho(x, a), rho(y, a)
        p2 = (B + Cc) ** 2 / (2 * (1 + r)) if r > -1 else 0
        q2 = (B - Cc) ** 2 / (2 * (1 - r)) if r < 1 else 0
        if p2 + q2 > 1:
            p2, q2 = p2 / (p2 + q2), q2 / (p2 + q2)
        return sd[a] ** 2 * ((B * s(B) + Cc * s(Cc) + s(r) * (p2 - q2)) / (4 * mp.pi)
                             + P3(r, B, Cc))
    c = rho(a, b)
    if not thetas:
        return sd[a] * sd[b] * (s(c) + c * (mp.pi / 2 + mp.asin(c))) / (2 * mp.pi)
    A, B = rho(thetas[0], a), rho(thetas[0], b)
    return sd[a] * sd[b] * ((A * s(B) + B * s(A) + s(c)) / (4 * mp.pi) + c * P3(A, B, c))


def test_indexed_closed_forms_in_high_precision():
    """Every repeated-index tuple (i ≤ k, a ≤ b) of the near-singular covariances, and pairs
    within 1e-10 … 1e-15 of (anti-)parallel: the kernel equals its closed forms evaluated in
    40-digit arithmetic to ~1e-15 (no cancellation or division by vanishing quantities)."""
    import mpmath as mp
    mp.mp.dps = 40
    covs = [C for name, C in FIELD_COVARIANCES if name in HARD or name.startswith("near")]
    rng = np.random.default_rng(13)
    for delta in (1e-10, 1e-13, 1e-15):
        for sign in (1, -1):
            V = np.array([unit(v) for v in rng.standard_normal((N_FIELDS, 6))])
            V[1] = sign * tilted(V[0], np.arccos(1 - delta), rng)
            V[3] = -sign * tilted(V[2], np.arccos(1 - delta), rng)
            covs.append(gram(V, rng.uniform(0.5, 2.0, N_FIELDS)))
    tuples = [t for t in ALL_TUPLES if t[0] <= t[1] and t[2] <= t[3] and len(set(t)) < 4]
    for C in covs:
        got = relu_I4_indexed(C, np.array(tuples))
        for t, g in zip(tuples, got):
            exact = float(_mp_closed_form(mp, C, t))
            assert abs(g - exact) <= 1e-15 * max(1.0, C[t[2], t[2]], C[t[3], t[3]]), t


def test_indexed_batch_shapes_and_input_checks():
    rng = np.random.default_rng(14)
    A = rng.standard_normal((2, 3, N_FIELDS, 8))
    C = A @ np.swapaxes(A, -1, -2) / 8
    idx = ALL_TUPLES[::7]
    out = relu_I4_indexed(C, idx)
    assert out.shape == (2, 3, len(idx))
    np.testing.assert_array_equal(out[1, 2], relu_I4_indexed(C[1, 2], idx))
    assert relu_I4_indexed(C, idx[:0]).shape == (2, 3, 0)
    with pytest.raises(ValueError):
        relu_I4_indexed(C, np.array([[0, 1, 2, N_FIELDS]]))
    with pytest.raises(ValueError):
        relu_I4_indexed(C, np.array([[0, 1, 2]]))


@pytest.mark.parametrize("K, M, eta_v", [(3, 2, 0.0), (4, 1, 0.3)])
def test_ode_drift_unchanged_by_indexed_kernel(K, M, eta_v, monkeypatch):
    """tsode.drift (the fused sums over the indexed kernel's per-tuple values) equals the
    drift computed with relu_I4 on the gathered sub-covariances (the previous
    implementation, through the per-integral path with the I4 kernel swapped), at a random and
    a nearly specialised state (students close to teachers)."""
    import tsode
    from tsode import activations
    from tsode.ode import Drift

    setup = tsode.Setup("relu", eta=0.2, eta_v=eta_v, sigma=0.1)
    s0 = tsode.initial_state(K, M, "random", N=200, seed=K, v="normal", v_star="normal")
    traj = tsode.integrate(s0, setup, 1e3, alphas=[0.0, 1e3], rtol=1e-5, atol=1e-8)
    for state in (s0, traj.state(-1)):
        new = tsode.drift(state, setup)
        monkeypatch.setitem(activations.ACTIVATIONS["relu"].kernels, "I4",
                            lambda C, idx: relu_I4(activations.gather(C, idx)))
        f = Drift.from_state(state, setup)
        Q, R, v = (np.asarray(x, dtype=float) for x in (state.Q, state.R, state.v))
        ref = f.combine(Q, R, v, f.integrals(f.covariance(Q, R)))
        monkeypatch.undo()
        for x, y in zip(new, ref):
            np.testing.assert_allclose(x, y, rtol=0, atol=1e-10)


# ----------------------------------------------------------------------------- 6. mpmath reference
def mpmath_I4(C, dps=30):
    """I4 from the 1-D wedge integral of the module docstring, evaluated entirely in dps-digit
    arithmetic (correlations, plane coordinates, integrand) by mpmath.quad (tanh-sinh) with
    breakpoints at the kinks c₂ = 0, c₃ = 0, c₃γ₂ = r c₂γ₃ and at ±1, ±10, ±100 widths from
    them: independent of the double-precision code and its splitting/error estimates."""
    import mpmath as mp
    with mp.workdps(dps):
        C = [[mp.mpf(float(C[i][j])) for j in range(4)] for i in range(4)]
        sd = [mp.sqrt(C[i][i]) for i in range(4)]
        if min(sd) == 0:
            return 0.0
        R = [[C[i][j] / (sd[i] * sd[j]) for j in range(4)] for i in range(4)]
        if any(R[i][j] <= -1 for i in range(4) for j in range(4)):
            return 0.0
        rho = R[0][1]
        par01 = rho >= 1
        s01 = mp.mpf(0) if par01 else mp.sqrt(1 - rho**2)
        th01 = mp.mpf(0) if par01 else mp.acos(rho)
        co = []
        for j in (2, 3):
            a = R[0][j]
            b = mp.mpf(0) if par01 else (R[1][j] - rho * a) / s01
            g2 = 1 - a * a - b * b
            co.append((a, b, mp.sqrt(g2) if g2 > 0 else mp.mpf(0)))
        (a2, b2, g2), (a3, b3, g3) = co
        r = (R[2][3] - a2 * a3 - b2 * b3) / (g2 * g3) if g2 * g3 != 0 else mp.mpf(0)
        r = max(min(r, mp.mpf(1)), mp.mpf(-1))
        p1 = mp.mpf(1) / 4 + mp.asin(r) / (2 * mp.pi)
        omr = 1 - r * r

        def f(psi):
            c, s = mp.cos(psi), mp.sin(psi)
            c2, c3 = a2 * c + b2 * s, a3 * c + b3 * s
            if g2 == 0 and g3 == 0:
                return 2 * max(c2, 0) * max(c3, 0)
            syy, sww = c2 * c2 + g2 * g2, c3 * c3 + g3 * g3
            syw = c2 * c3 + r * g2 * g3
            n2, n3 = c3 * g2 - r * c2 * g3, c2 * g3 - r * c3 * g2
            v = 2 * c2 * c3 * p1
            if syy > 0:
                v += ((c2 * syw + c3 * syy) / mp.sqrt(syy)
                      * (mp.mpf(1) / 4 + mp.atan2(n2, g3 * mp.sqrt(omr * syy)) / (2 * mp.pi)))
            if sww > 0:
                v += ((c3 * syw + c2 * sww) / mp.sqrt(sww)
                      * (mp.mpf(1) / 4 + mp.atan2(n3, g2 * mp.sqrt(omr * sww)) / (2 * mp.pi)))
            return v

        lo, hi = th01 - mp.pi / 2, mp.pi / 2
        pts = {lo, hi}
        tiny = mp.mpf(10) ** -20

        def kink(a, b, w):
            k = mp.atan2(-a, b)
            for kk in (k - mp.pi, k, k + mp.pi):
                for m in (0, 1, -1, 10, -10, 100, -100):
                    if lo < kk + m * w < hi:
                        pts.add(kk + m * w)

        kink(a2, b2, g2 + tiny)
        kink(a3, b3, g3 + tiny)
        kink(a3 * g2 - r * a2 * g3, b3 * g2 - r * b2 * g3, mp.sqrt(omr) + tiny)
        integral = mp.quad(f, sorted(pts))
        const = g2 * g3 * (mp.sqrt(omr) + r * (mp.pi / 2 + mp.asin(r))) / (2 * mp.pi)
        return float(sd[2] * sd[3] * ((mp.pi - th01) * const + integral) / (2 * mp.pi))


def test_mpmath_reference_matches_closed_forms():
    """The mpmath reference itself agrees with the (40-digit-checked) closed forms on
    repeated-index tuples of the near-parallel covariances."""
    covs = dict(FIELD_COVARIANCES)
    for name in sorted(HARD):
        C = covs[name]
        tuples = np.array([(0, 1, 2, 3), (1, 1, 0, 4), (2, 2, 3, 1), (3, 3, 2, 4), (4, 0, 4, 2),
                           (1, 3, 3, 2)])
        got = relu_I4_indexed(C, tuples)
        for t, g in zip(tuples, got):
            if len(set(t)) < 4:
                assert abs(mpmath_I4(sub(C, t)) - g) <= 1e-14, (name, t)


def _near_parallel_mp_cases():
    rng = np.random.default_rng(21)
    cases = []
    for delta in (1e-9, 1e-8, 1e-7, 5e-7):
        for i, j, sign in [(0, 2, 1), (1, 3, -1), (0, 3, 1), (1, 2, 1), (0, 1, 1), (2, 3, -1)]:
            cases.append(pytest.param(near_parallel(rng, i, j, delta, sign),
                                      id=f"{i}{j}{'+-'[sign < 0]}-{delta:g}"))
    return cases


@pytest.mark.parametrize("C", _near_parallel_mp_cases())
def test_near_parallel_against_mpmath(C):
    """All-distinct fields with one pair at 1 − |ρ| = 1e-9 … 5e-7 (θ-θ, θ-relu, relu-relu):
    ≤ 1e-10 absolute against the 30-digit reference (was up to ~7e-9 for θ-relu pairs)."""
    assert abs(relu_I4(C) - mpmath_I4(C)) <= 1e-10 * np.sqrt(C[2, 2] * C[3, 3])


def test_near_parallel_indexed_all_distinct_against_mpmath():
    """The all-distinct tuples of the near-parallel field covariances (scalar port) against
    the 30-digit reference."""
    covs = dict(FIELD_COVARIANCES)
    distinct = [t for t in ALL_TUPLES if len(set(t)) == 4 and t[0] < t[1] and t[2] < t[3]]
    for name in sorted(HARD):
        C = covs[name]
        got = relu_I4_indexed(C, np.array(distinct))
        for t, g in zip(distinct, got):
            scale = np.sqrt(C[t[2], t[2]] * C[t[3], t[3]])
            assert abs(mpmath_I4(sub(C, t)) - g) <= 1e-10 * max(scale, 1.0), (name, t)
