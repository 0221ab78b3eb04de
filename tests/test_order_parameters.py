"""Order parameters, set-ups, initial states and the generalisation error."""

import numpy as np
import pytest

import tsode


@pytest.mark.parametrize("name", ["erf", "relu", "linear"])
def test_generalisation_error_matches_sampled_networks(name):
    # Explicit networks in N = 40 dimensions; eps_g = 1/2 E[(phi - phi*)^2] estimated on 2e6
    # fresh inputs, compared within 5 standard errors of that mean.
    rng = np.random.default_rng(11)
    N, K, M = 40, 3, 2
    W = rng.standard_normal((K, N))
    W_star = rng.standard_normal((M, N))
    v, v_star = rng.standard_normal(K), rng.standard_normal(M)
    state = tsode.OrderParameters(
        Q=W @ W.T / N, R=W @ W_star.T / N, T=W_star @ W_star.T / N, v=v, v_star=v_star
    )
    g = tsode.activation(name).g
    s1 = s2 = 0.0
    n = 0
    for _ in range(8):
        x = rng.standard_normal((250_000, N))
        half_sq = 0.5 * (g(x @ W.T / np.sqrt(N)) @ v - g(x @ W_star.T / np.sqrt(N)) @ v_star) ** 2
        s1, s2, n = s1 + half_sq.sum(), s2 + (half_sq**2).sum(), n + len(x)
    mean = s1 / n
    se = np.sqrt((s2 / n - mean**2) / n)
    assert abs(tsode.generalisation_error(state, name) - mean) < 5 * se


def test_generalisation_error_is_zero_for_a_perfect_student():
    for name in ("erf", "relu", "linear"):
        state = tsode.initial_state(2, 2, "informed", v_star=[0.5, -1.5], v=[0.5, -1.5])
        assert tsode.generalisation_error(state, name) == pytest.approx(0.0, abs=1e-15)


def test_initial_states():
    s = tsode.initial_state(5, 2, "random", N=20_000, seed=0)
    assert s.K == 5 and s.M == 2
    np.testing.assert_allclose(np.diag(s.Q), 1.0, atol=0.05)  # Q(0) ~ I
    assert np.abs(s.R).max() < 5 / np.sqrt(20_000)  # R(0) = O(N^-1/2)
    small = tsode.initial_state(3, 2, "small", N=1000, seed=0)
    np.testing.assert_allclose(np.diag(small.Q), 1e-6, rtol=0.2)
    d = tsode.initial_state(5, 2, "denoise", v_star=[1.0, 2.0])
    np.testing.assert_allclose(d.v, [1 / 3, 1.0, 1 / 3, 1.0, 1 / 3])
    np.testing.assert_allclose(d.R, [[1, 0], [0, 1], [1, 0], [0, 1], [1, 0]])
    inf = tsode.initial_state(3, 2, "informed", extra_std=0.1)
    np.testing.assert_allclose(np.diag(inf.Q), [1, 1, 0.01])
    # same seed, same state; different seed, different state
    a, b = (tsode.initial_state(3, 2, "random", N=50, seed=s) for s in (1, 1))
    np.testing.assert_array_equal(a.Q, b.Q)
    assert not np.allclose(a.Q, tsode.initial_state(3, 2, "random", N=50, seed=2).Q)


def test_order_parameters_are_immutable():
    s = tsode.initial_state(2, 2, "informed")
    with pytest.raises(ValueError):
        s.Q[0, 0] = 3.0
    with pytest.raises(AttributeError):
        s.Q = np.eye(2)


# ---- bad input -----------------------------------------------------------------------------


def test_negative_learning_rate_raises():
    with pytest.raises(ValueError, match=r"eta must be finite and > 0, got -0.1"):
        tsode.Setup(eta=-0.1)


def test_negative_second_layer_rate_raises():
    with pytest.raises(ValueError, match=r"eta_v must be finite and >= 0"):
        tsode.Setup(eta_v=-1.0)


def test_negative_noise_raises():
    with pytest.raises(ValueError, match=r"sigma must be finite and >= 0"):
        tsode.Setup(sigma=-0.1)


def test_negative_weight_decay_raises():
    with pytest.raises(ValueError, match=r"weight_decay must be finite and >= 0"):
        tsode.Setup(weight_decay=-1e-3)


def test_unknown_activation_in_setup_raises():
    with pytest.raises(ValueError, match="unknown activation 'sigmoid'"):
        tsode.Setup("sigmoid")


def test_K_below_one_raises():
    with pytest.raises(ValueError, match=r"K must be an integer >= 1, got 0"):
        tsode.initial_state(0, 2)


def test_unknown_initial_kind_raises():
    with pytest.raises(ValueError, match="unknown initial kind 'zeros'"):
        tsode.initial_state(2, 2, "zeros")


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match=r"R must have shape \(2, 1\)"):
        tsode.OrderParameters(Q=np.eye(2), R=np.zeros((2, 2)), T=np.eye(1), v=[1, 1], v_star=[1])
    with pytest.raises(ValueError, match=r"v must have shape \(2,\)"):
        tsode.OrderParameters(Q=np.eye(2), R=np.zeros((2, 1)), T=np.eye(1), v=[1], v_star=[1])


def test_non_psd_overlaps_raise():
    # |R| larger than allowed by Cauchy-Schwarz: not a Gram matrix
    with pytest.raises(ValueError, match="not positive semi-definite"):
        tsode.OrderParameters(Q=np.eye(1), R=[[2.0]], T=np.eye(1), v=[1], v_star=[1])


def test_non_symmetric_Q_raises():
    with pytest.raises(ValueError, match="Q must be symmetric"):
        tsode.OrderParameters(
            Q=[[1, 0.1], [0.0, 1]], R=np.zeros((2, 1)), T=np.eye(1), v=[1, 1], v_star=[1]
        )


def test_nan_overlaps_raise():
    with pytest.raises(ValueError, match="Q contains non-finite"):
        tsode.OrderParameters(Q=[[np.nan]], R=[[0.0]], T=[[1.0]], v=[1], v_star=[1])


def test_import_tsode_loads_no_book_dependencies():
    """The engines stand apart from the paper: ``import tsode`` loads no plotting or book stack."""
    import subprocess
    import sys

    code = (
        "import sys, tsode; "
        "bad = [m for m in ('matplotlib', 'papermill', 'jupyter_book', 'nbformat', 'tsode.book')"
        " if m in sys.modules]; print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"import tsode loaded {out.stdout.strip()}"


def test_initial_state_v_scaled_is_the_authors_start():
    """v="scaled": second layer N(0, init_std²) — the same draw as v="normal" times init_std;
    statistically std 1e-3 for "small" (K = 4000 draws: relative s.e. 1/sqrt(2K) ≈ 1.1 %);
    rejected for the N -> inf kinds, which have no first-layer scale."""
    import numpy as np
    import pytest

    from tsode import initial_state

    a = initial_state(3, 2, "small", N=200, seed=5, v="scaled")
    b = initial_state(3, 2, "small", N=200, seed=5, v="normal")
    np.testing.assert_array_equal(a.v, 1e-3 * b.v)
    np.testing.assert_array_equal(a.Q, b.Q)
    big = initial_state(4000, 1, "small", N=2, seed=0, v="scaled")
    assert abs(big.v.std() / 1e-3 - 1) < 5 * (1 / np.sqrt(2 * 4000))
    r = initial_state(3, 2, "random", N=200, seed=5, v="scaled")
    np.testing.assert_array_equal(r.v, initial_state(3, 2, "random", N=200, seed=5, v="normal").v)
    with pytest.raises(ValueError, match="v must be"):
        initial_state(3, 2, "informed", v="scaled")
