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
