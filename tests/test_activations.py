"""Gaussian integrals of every activation against Monte Carlo and known special cases.

Monte Carlo: for each covariance we draw 4e6 samples of u ~ N(0, C) (4 fields) once and estimate
every integral of every activation on the same samples. The tolerance is 5 standard errors of the
sample mean (plus 1e-12 for integrals that are exactly zero): with ~150 comparisons the chance of a
false alarm from the sampling alone is below 1e-4, while an error of a few standard errors — e.g.
the factor 2 of the "half ReLU I2" bug, or the erf J2 used for ReLU — fails by hundreds of them.
"""

import numpy as np
import pytest

import tsode
from tsode.activations import check_covariance

N_SAMPLES = 4_000_000
CHUNK = 1_000_000


def random_covariances():
    """>= 10 covariances (4x4) incl. near-singular, singular, tiny-variance and anti-correlated."""
    rng = np.random.default_rng(12345)
    covs = []
    for _ in range(6):  # generic Wishart, various scales
        A = rng.standard_normal((4, 6)) * rng.uniform(0.3, 2.0, size=(4, 1))
        covs.append(A @ A.T / 6)
    # near-parallel pair (correlation 0.9999) - copying solutions
    A = rng.standard_normal((4, 4))
    A[1] = A[0] + 0.0141 * rng.standard_normal(4) * np.linalg.norm(A[0]) / 2
    covs.append(A @ A.T / 4)
    # exactly duplicated field (rank 3): u2 = u0
    A = rng.standard_normal((3, 5))
    B = np.stack([A[0], A[1], A[0], A[2]])
    covs.append(B @ B.T / 5)
    # anti-parallel field: u3 = -u1
    B = np.stack([A[0], A[1], A[2], -A[1]])
    covs.append(B @ B.T / 5)
    # a tiny unit (variance ~1e-8) among O(1) units
    A = rng.standard_normal((4, 6))
    A[2] *= 1e-4
    covs.append(A @ A.T / 6)
    # small initialisation: all variances ~1e-6 with teacher-like O(1) fields
    A = rng.standard_normal((4, 6))
    A[:2] *= 1e-3
    covs.append(A @ A.T / 6)
    # strongly anti-correlated pair (correlation about -0.99)
    A = rng.standard_normal((4, 6))
    A[3] = -A[0] + 0.1 * rng.standard_normal(6)
    covs.append(A @ A.T / 6)
    return covs


COVS = random_covariances()


def sample_moments(C, fns, seed):
    """Means and standard errors of fns(u) over N_SAMPLES draws of u ~ N(0, C)."""
    rng = np.random.default_rng(seed)
    w, V = np.linalg.eigh(C)
    L = V * np.sqrt(np.clip(w, 0, None))  # works for singular C
    s1 = np.zeros(len(fns))
    s2 = np.zeros(len(fns))
    for _ in range(N_SAMPLES // CHUNK):
        u = rng.standard_normal((CHUNK, 4)) @ L.T
        for j, f in enumerate(fns):
            x = f(u)
            s1[j] += x.sum()
            s2[j] += (x * x).sum()
    mean = s1 / N_SAMPLES
    var = s2 / N_SAMPLES - mean**2
    return mean, np.sqrt(np.maximum(var, 0) / N_SAMPLES)


def integrands(act):
    g, dg = act.g, act.dg
    return {
        "I2": lambda u: g(u[:, 0]) * g(u[:, 1]),
        "I3": lambda u: dg(u[:, 0]) * u[:, 1] * g(u[:, 2]),
        "I4": lambda u: dg(u[:, 0]) * dg(u[:, 1]) * g(u[:, 2]) * g(u[:, 3]),
        "J2": lambda u: dg(u[:, 0]) * dg(u[:, 1]),
    }


@pytest.fixture(scope="module")
def monte_carlo():
    """{(cov index, activation, integral): (mean, standard error)}."""
    out = {}
    for c, C in enumerate(COVS):
        keys, fns = [], []
        for name in ("erf", "relu", "linear"):
            for integral, f in integrands(tsode.activation(name)).items():
                keys.append((c, name, integral))
                fns.append(f)
        mean, se = sample_moments(C, fns, seed=1000 + c)
        out.update({k: (m, s) for k, m, s in zip(keys, mean, se)})
    return out


def exact(act, integral, C):
    n = {"I2": 2, "I3": 3, "I4": 4, "J2": 2}[integral]
    return float(getattr(act, integral)(C[:n, :n]))


@pytest.mark.parametrize("name", ["erf", "relu", "linear"])
@pytest.mark.parametrize("integral", ["I2", "I3", "I4", "J2"])
def test_integrals_match_monte_carlo(monte_carlo, name, integral):
    act = tsode.activation(name)
    for c, C in enumerate(COVS):
        mean, se = monte_carlo[(c, name, integral)]
        value = exact(act, integral, C)
        assert abs(value - mean) <= 5 * se + 1e-12, (name, integral, c, value, mean, se)


def test_integrals_are_vectorised_over_leading_axes():
    stack = np.stack(COVS).reshape(3, 4, 4, 4)
    for name in ("erf", "relu", "linear"):
        act = tsode.activation(name)
        for integral, n in (("I2", 2), ("I3", 3), ("I4", 4), ("J2", 2)):
            batched = getattr(act, integral)(stack[..., :n, :n])
            assert batched.shape == (3, 4)
            one_by_one = [exact(act, integral, C) for C in COVS]
            np.testing.assert_allclose(batched.ravel(), one_by_one, rtol=1e-13, atol=1e-15)


def test_relu_I2_is_the_full_expectation_not_half():
    # E[relu(u)^2] = C/2 for u ~ N(0, C); the copied snippet returns C/4.
    act = tsode.activation("relu")
    for c in (1e-8, 0.3, 1.0, 7.0):
        assert act.I2(np.full((2, 2), c)) == pytest.approx(c / 2, rel=1e-14)
    # independent fields: E[relu]^2 = C_aa C_bb / (2 pi)
    assert act.I2(np.diag([2.0, 3.0])) == pytest.approx(np.sqrt(6.0) / (2 * np.pi), rel=1e-14)


def test_relu_J2_is_the_orthant_probability():
    act = tsode.activation("relu")
    assert act.J2(np.eye(2)) == pytest.approx(0.25)
    assert act.J2(np.ones((2, 2))) == pytest.approx(0.5)
    assert act.J2(np.array([[1.0, -1.0], [-1.0, 1.0]])) == pytest.approx(0.0, abs=1e-15)


def test_erf_special_values():
    act = tsode.activation("erf")
    # E[erf(u/sqrt2)^2] = (2/pi) asin(C/(1+C)); at C = 1: 1/3
    assert act.I2(np.ones((2, 2))) == pytest.approx(1 / 3, rel=1e-14)
    # J2 at C = 0: g'(0)^2 = 2/pi
    assert act.J2(np.zeros((2, 2))) == pytest.approx(2 / np.pi, rel=1e-14)


@pytest.mark.parametrize("name", ["erf", "relu", "linear"])
def test_degenerate_covariances_give_finite_values(name):
    act = tsode.activation(name)
    cases = [
        np.ones((4, 4)),  # all fields equal (correlation 1)
        np.outer([1, -1, 1, -1], [1, -1, 1, -1]) * 2.0,  # correlations +-1
        np.diag([1e-8, 1.0, 1e-8, 1.0]),  # tiny units
        np.diag([0.0, 1.0, 0.0, 1.0]),  # dead units (zero weights)
        np.zeros((4, 4)),
    ]
    for C in cases:
        for integral, n in (("I2", 2), ("I3", 3), ("I4", 4), ("J2", 2)):
            assert np.isfinite(getattr(act, integral)(C[:n, :n])), (integral, C)


def test_correlations_rounded_past_one_are_clipped():
    # |C_ab| slightly above sqrt(C_aa C_bb) by rounding: asin arguments must be clipped, no NaN.
    C = np.array([[1.0, 1.0 + 1e-15], [1.0 + 1e-15, 1.0]])
    for name in ("erf", "relu"):
        assert np.isfinite(tsode.activation(name).I2(C))
        assert np.isfinite(tsode.activation(name).J2(C))


def test_non_psd_covariance_raises():
    C = np.array([[1.0, 2.0], [2.0, 1.0]])
    with pytest.raises(ValueError, match="not positive semi-definite"):
        tsode.activation("erf").I2(C)


def test_wrong_covariance_shape_raises():
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 3, 3\)"):
        tsode.activation("relu").I3(np.eye(2))


def test_non_symmetric_covariance_raises():
    with pytest.raises(ValueError, match="symmetric"):
        check_covariance(np.array([[1.0, 0.1], [0.2, 1.0]]), 2)


def test_unknown_activation_raises():
    with pytest.raises(ValueError, match="unknown activation 'tanh'.*erf, linear, relu"):
        tsode.activation("tanh")


@pytest.mark.parametrize("name", ["erf", "relu", "linear"])
def test_one_source_of_g_dg_and_codes(name):
    """Activation holds g, g' and the integer code the simulators use (issue 10): the kernels
    import the same table, and g, g' equal independent references (scipy, numpy)."""
    from scipy.special import erf

    from tsode import _sim_kernels as kern

    act = tsode.activation(name)
    assert kern.ACT_CODES is tsode.activations.ACT_CODES
    assert kern.ACT_CODES[name] == act.code
    assert tsode.Setup(name).act is act
    x = np.concatenate([np.linspace(-6, 6, 1001), [0.0, -0.0, 1e-300, -1e-300, 30.0, -30.0]])
    g, dg = {
        "erf": (erf(x / np.sqrt(2)), np.sqrt(2 / np.pi) * np.exp(-x**2 / 2)),
        "relu": (np.maximum(x, 0.0), (x > 0).astype(float)),
        "linear": (x, np.ones_like(x)),
    }[name]
    np.testing.assert_allclose(act.g(x), g, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(act.dg(x), dg, rtol=1e-14, atol=1e-15)
    assert act.g(x[:1000].reshape(2, 500, 1)).shape == (2, 500, 1) and act.dg(0.5).shape == ()


# ---------------------------------------------------------------------------------------------
# deterministic high-precision references (adaptive quadrature of 1-D Gaussian expectations)
# ---------------------------------------------------------------------------------------------
# Each integral is reduced by conditioning on one field (two for I4) to a 1-D (2-D) integral of
# elementary conditional expectations E[f(mu + s z)], z ~ N(0, 1), which are standard results
# independent of the closed forms under test:
#   erf(x/sqrt2):  E[g] = erf(mu / sqrt(2 (1 + s^2))),
#                  E[g'] = sqrt(2/pi) (1 + s^2)^-1/2 exp(-mu^2 / (2 (1 + s^2))),
#                  E[g'(v) v] = mu / (1 + s^2) E[g'];
#   relu:          E[g] = mu Phi(mu/s) + s phi(mu/s), E[g'] = Phi(mu/s), E[g'(v) v] = E[g];
#   linear:        E[g] = mu, E[g'] = 1, E[g'(v) v] = mu.
# The outer integral is scipy.integrate.quad (adaptive, split at the kink x = 0) against the
# Gaussian density; ReLU I4 has its own quadrature and mpmath references in test_relu_i4.py.
from scipy import integrate as _integrate
from scipy import special as _special


def _Phi(x):
    return 0.5 * _special.erfc(-x / np.sqrt(2.0))


def _cond_moments(name, mu, s):
    """(E[g], E[g'], E[g'(v) v]) for v ~ N(mu, s^2)."""
    if name == "linear":
        return mu, 1.0, mu
    if name == "erf":
        q = 1.0 + s * s
        dg = np.sqrt(2 / np.pi) / np.sqrt(q) * np.exp(-mu * mu / (2 * q))
        return _special.erf(mu / np.sqrt(2 * q)), dg, mu / q * dg
    if s < 1e-300:
        return max(mu, 0.0), float(mu > 0), max(mu, 0.0)
    g = mu * _Phi(mu / s) + s * np.exp(-0.5 * (mu / s) ** 2) / np.sqrt(2 * np.pi)
    return g, _Phi(mu / s), g


def _outer(f, var):
    """E[f(x)], x ~ N(0, var), by adaptive quadrature on (-inf, 0) and (0, inf)."""
    if var <= 0:
        return f(0.0)
    sd = np.sqrt(var)  # x = sd t, t ~ N(0, 1): the quadrature does not depend on the scale
    dens = lambda t: f(sd * t) * np.exp(-0.5 * t * t) / np.sqrt(2 * np.pi)
    opts = dict(epsabs=1e-15, epsrel=1e-12, limit=200)
    return _integrate.quad(dens, -np.inf, 0, **opts)[0] + _integrate.quad(dens, 0, np.inf, **opts)[0]


def _conditional(C, i, j):
    """u_i | u_j = x ~ N(m x, s^2): (m, s)."""
    if C[j, j] <= 0:
        return 0.0, np.sqrt(C[i, i])
    m = C[i, j] / C[j, j]
    return m, np.sqrt(max(C[i, i] - m * C[i, j], 0.0))


def reference_integral(name, integral, C):
    """Deterministic high-precision value of I2, I3, J2 (all activations) and I4 (erf, linear)."""
    act = tsode.activation(name)
    g, dg = act.g, act.dg
    if integral in ("I2", "J2"):
        m, s = _conditional(C, 0, 1)
        k = 0 if integral == "I2" else 1
        outer = g if integral == "I2" else dg
        return _outer(lambda x: float(outer(np.array(x))) * _cond_moments(name, m * x, s)[k],
                      C[1, 1])
    if integral == "I3":
        # E[g'(u0) u1 g(u2)]: E[u1 | u0, u2] = a u0 + b u2 (least squares, also if singular)
        a, b = C[1, [0, 2]] @ np.linalg.pinv(C[np.ix_([0, 2], [0, 2])])
        m, s = _conditional(C, 0, 2)

        def f(x):
            _, e_dg, e_vdg = _cond_moments(name, m * x, s)
            return (a * e_vdg + b * x * e_dg) * float(g(np.array(x)))

        return _outer(f, C[2, 2])
    return _reference_I4(name, C)


def _reference_I4(name, C, n=120):
    """E[g'(u0) g'(u1) g(u2) g(u3)] for erf and linear: the inner expectation over (u0, u1)
    given (u2, u3) is Gaussian in closed form; the outer one is an n x n Gauss-Hermite product
    rule in whitened (u2, u3) coordinates (smooth integrand: converges geometrically)."""
    if name == "linear":
        return C[2, 3]  # Isserlis: E[u2 u3]
    S23, S = C[2:, 2:], C[:2, 2:]
    w, V = np.linalg.eigh(S23)
    L = V * np.sqrt(np.clip(w, 0, None))
    B = S @ np.linalg.pinv(S23)
    Sc = C[:2, :2] - B @ S.T
    A = np.linalg.inv(np.eye(2) + Sc)
    x, wx = np.polynomial.hermite_e.hermegauss(n)
    wx = wx / wx.sum()
    Z = np.stack(np.meshgrid(x, x, indexing="ij"), -1).reshape(-1, 2)
    W = np.outer(wx, wx).ravel()
    U = Z @ L.T                                  # (n^2, 2) samples of (u2, u3)
    mu = U @ B.T                                 # conditional mean of (u0, u1)
    inner = (2 / np.pi) * np.sqrt(np.linalg.det(A)) * np.exp(-0.5 * np.einsum("pi,ij,pj->p", mu, A, mu))
    return float(np.sum(W * inner * _special.erf(U[:, 0] / np.sqrt(2)) * _special.erf(U[:, 1] / np.sqrt(2))))


DETERMINISTIC = [(n, i) for n in ("erf", "relu", "linear") for i in ("I2", "I3", "I4", "J2")
                 if (n, i) != ("relu", "I4")]


@pytest.mark.parametrize("name, integral", DETERMINISTIC)
def test_integrals_match_a_deterministic_reference(name, integral):
    act = tsode.activation(name)
    for c, C in enumerate(COVS):
        n = {"I2": 2, "I3": 3, "I4": 4, "J2": 2}[integral]
        scale = np.sqrt(np.prod(np.diag(C)[:n])) + 1e-300
        ref = reference_integral(name, integral, C)
        # quadrature accuracy ~1e-12 of the scale; 1e-9 leaves room for the conditioning
        assert abs(exact(act, integral, C) - ref) <= 1e-9 * max(scale, 1.0), (c, ref)


def test_erf_I4_reference_is_converged():
    """The Gauss-Hermite rule of the erf I4 reference has converged (n = 120 vs 240)."""
    for C in COVS:
        assert _reference_I4("erf", C, 240) == pytest.approx(_reference_I4("erf", C), abs=1e-14)


@pytest.mark.parametrize("name, integral", DETERMINISTIC)
def test_deterministic_reference_rejects_a_wrong_implementation(name, integral):
    """Power: the reference rejects the value with fields 0 and 1 of C swapped for I3 and the
    implementation off by 1e-6 relative for the others (symmetric in their fields)."""
    act = tsode.activation(name)
    rejected = 0
    for C in COVS:
        n = {"I2": 2, "I3": 3, "I4": 4, "J2": 2}[integral]
        scale = np.sqrt(np.prod(np.diag(C)[:n])) + 1e-300
        right = exact(act, integral, C)
        wrong = exact(act, integral, C[np.ix_([1, 0, 2, 3], [1, 0, 2, 3])]) \
            if integral == "I3" and name != "linear" else right * (1 + 1e-6)
        ref = reference_integral(name, integral, C)
        rejected += abs(wrong - ref) > 1e-9 * max(scale, 1.0)
    assert rejected >= len(COVS) // 2


@pytest.mark.parametrize("name", ["erf", "relu", "linear"])
@pytest.mark.parametrize("integral", ["I2", "I3", "I4", "J2"])
def test_monte_carlo_check_rejects_a_wrong_implementation(monte_carlo, name, integral):
    """Power of the 5-standard-error Monte Carlo check: an implementation 10 % off (the size of
    a wrong convention, e.g. sigma vs sigma^2 at sigma ~ 0.9, or a missing factor) is rejected
    on at least one covariance for every activation and integral."""
    act = tsode.activation(name)
    rejected = [abs(1.1 * exact(act, integral, C) - monte_carlo[(c, name, integral)][0])
                > 5 * monte_carlo[(c, name, integral)][1] + 1e-12 for c, C in enumerate(COVS)]
    assert any(rejected)
