"""Hostile-but-fair input, gathered in one place (issue 9): what a user can throw at the engines
and the error (or the correct result) they get back.

Covered, by section:

1. files: a malicious pickled .npz is refused without running its code; old/pickled, truncated
   or inconsistent files are refused; numbers, nan/inf and info arrays round-trip exactly;
   ``to_npz("x")`` / ``from_npz("x")`` agree;
2. large K: the Jacobian never holds one copy of the integral set per state component, and it
   equals a plain finite-difference Jacobian;
3. hangs: huge eta / eta_v, tiny alpha_max, a budget of evaluations; memory estimates before
   ``initial_state`` and ``simulate(engine="full")`` allocate;
4. silent wrong results: NaN output times, tiny non-PSD overlaps, erf integrals at huge
   variances, slightly negative eps_g;
5. raw exceptions: OverflowError from eta = 1e300 / sigma = 1e200, an output time a rounding
   error above alpha_max;
6. misleading messages: the divergence names the dominant parameter; no "converged" spectrum
   of finite-difference artefacts at a ReLU zero state;
7. inconsistencies: one validator for every scalar (bool, str, complex, nan, inf refused),
   integral floats (N = 100.0) accepted alike by simulate and initial_state, seed and
   max_norm checked.
"""

from __future__ import annotations

import math
import pickle
import tracemalloc
import zipfile

import numpy as np
import pytest

import tsode
from tsode.asymptotics import FixedPointError, fixed_point
from tsode.ode import Drift, StallError
from tsode._common import fd_jacobian
from tsode.order_parameters import eg_from_covariance


@pytest.fixture(scope="module")
def state():
    return tsode.initial_state(2, 2, "random", N=100, seed=0)


@pytest.fixture(scope="module")
def traj(state):
    return tsode.integrate(state, tsode.Setup("erf", eta=0.5), 5.0)


# ---------------------------------------------------------------------------------------------
# 1. files
# ---------------------------------------------------------------------------------------------

class _Payload:
    """Unpickling this object writes a marker file: proof that loading ran code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('pwned')",))


def test_malicious_npz_is_refused_and_its_code_does_not_run(tmp_path, traj):
    traj.to_npz(tmp_path / "good.npz")
    marker = tmp_path / "marker"
    bad = np.empty(1, dtype=object)
    bad[0] = _Payload(marker)
    with np.load(tmp_path / "good.npz") as f:
        arrays = {k: f[k] for k in f.files}
    arrays["meta"] = bad  # the metadata now unpickles to code execution
    np.savez(tmp_path / "evil.npz", **arrays)
    # the file really is a pickle bomb: a pickle-enabled loader would run it
    with zipfile.ZipFile(tmp_path / "evil.npz") as z:
        assert b"exec" in z.read("meta.npy")
    with pytest.raises(ValueError, match="refusing to load .*pickled Python objects"):
        tsode.Trajectory.from_npz(tmp_path / "evil.npz")
    assert not marker.exists()


def test_old_pickled_format_is_refused(tmp_path, traj):
    np.savez(tmp_path / "old.npz", alpha=traj.alpha,
             setup=np.array(["erf", 0.5, 0.0, 0.0, 0.0], dtype=object))
    with pytest.raises(ValueError, match="pickled Python objects"):
        tsode.Trajectory.from_npz(tmp_path / "old.npz")


def test_npz_round_trip_is_exact_with_nan_inf_and_arrays(tmp_path, traj):
    info = dict(traj.info, a=np.array([1.0, np.nan, -np.inf, 1e-310]), b=float("nan"),
                c=float("inf"), d=np.float64(0.1), e=np.int64(7), f=[1, "x", None, True],
                g={"h": 2.5})
    t = tsode.Trajectory(**{k: getattr(traj, k) for k in
                            ("alpha", "eg", "Q", "R", "v", "T_teacher", "v_star", "setup")},
                         info=info)
    t.to_npz(tmp_path / "x")  # no suffix: .npz appended, and from_npz does the same
    assert (tmp_path / "x.npz").exists()
    u = tsode.Trajectory.from_npz(tmp_path / "x")
    for name in ("alpha", "eg", "Q", "R", "v", "T_teacher", "v_star"):
        np.testing.assert_array_equal(getattr(u, name), getattr(t, name))
    assert u.setup == t.setup
    assert isinstance(u.info["a"], np.ndarray)
    np.testing.assert_array_equal(u.info["a"], info["a"])
    assert math.isnan(u.info["b"]) and u.info["c"] == math.inf
    assert u.info["d"] == 0.1 and u.info["e"] == 7 and u.info["f"] == [1, "x", None, True]
    assert u.info["g"] == {"h": 2.5} and u.info["nfev"] == traj.info["nfev"]


def test_unsavable_info_is_a_type_error(tmp_path, traj):
    t = tsode.Trajectory(**{k: getattr(traj, k) for k in
                            ("alpha", "eg", "Q", "R", "v", "T_teacher", "v_star", "setup")},
                         info={"f": object()})
    with pytest.raises(TypeError, match=r"info\['f'\]"):
        t.to_npz(tmp_path / "y.npz")


@pytest.mark.parametrize("damage, match", [
    (lambda a: a.pop("Q"), "arrays \\['Q'\\] are missing"),
    (lambda a: a.update(Q=a["Q"][:, :1]), "inconsistent arrays: Q"),
    (lambda a: a.update(eg=a["eg"][:-1]), "inconsistent arrays: eg"),
    (lambda a: a.update(meta=np.array("{not json")), "invalid metadata"),
    (lambda a: a.update(meta=np.array('{"format": "other/1"}')), "invalid metadata"),
])
def test_inconsistent_npz_is_refused(tmp_path, traj, damage, match):
    traj.to_npz(tmp_path / "good.npz")
    with np.load(tmp_path / "good.npz") as f:
        arrays = {k: f[k] for k in f.files}
    damage(arrays)
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match=match):
        tsode.Trajectory.from_npz(tmp_path / "bad.npz")


def test_no_pickle_in_tsode_sources():
    import pathlib

    root = pathlib.Path(tsode.__file__).parent
    for path in root.rglob("*.py"):
        text = path.read_text()
        assert "allow_pickle=True" not in text and "import pickle" not in text, path


# ---------------------------------------------------------------------------------------------
# 2. large K: the Jacobian
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("act, kw", [("erf", {}), ("relu", dict(eta_v=0.3)),
                                     ("linear", dict(sigma=0.2, weight_decay=0.1, eta_v=0.2)),
                                     ("erf", dict(sigma=0.3, weight_decay=0.05, eta_v=0.4))])
def test_blocked_jacobian_equals_dense_finite_differences(act, kw):
    """Expected values: a plain central-difference Jacobian of the whole drift (every
    integral recomputed per column); agreement to the FD error, 1e-6 relative."""
    s = tsode.initial_state(3, 2, "random", N=50, seed=1, v="normal")
    f = Drift.from_state(s, tsode.Setup(act, eta=0.5, **kw))
    y = f.pack_state(s)
    dense = fd_jacobian(lambda Y: f(0.0, Y), y)
    scale = np.abs(dense).max()
    for central in (True, False):
        J = f.jacobian(0.0, y, central=central)
        assert np.abs(J - dense).max() <= 1e-6 * scale


def test_jacobian_memory_does_not_scale_with_copies_of_the_integrals():
    """Structural, not a timing: before the fix the Jacobian held 2 x size copies of the
    integral set (size = 102 state components here, 8.6 MB each way); now its working memory
    is a few times one integral set (~85 kB) plus the (size, size) result."""
    s = tsode.initial_state(12, 2, "random", N=100, seed=0)
    f = Drift.from_state(s, tsode.Setup("erf", eta=0.5))
    y = f.pack_state(s)
    f.jacobian(0.0, y)  # fill the caches (index sets), compile
    n_int = sum(idx.shape[0] for _, idx in f._index_sets())
    copies = f.size * n_int * 8
    tracemalloc.start()
    f.jacobian(0.0, y)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 0.1 * copies, (peak, copies)


# ---------------------------------------------------------------------------------------------
# 3. hangs and memory
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("act, kw, culprit", [
    ("erf", dict(eta=1e150), "learning rate eta = 1e\\+150"),
    ("relu", dict(eta=1e150), "learning rate eta = 1e\\+150"),
    ("linear", dict(eta=1e150), "learning rate eta = 1e\\+150"),
    ("linear", dict(eta=0.5, eta_v=1e300), "second-layer learning rate eta_v = 1e\\+300"),
])
def test_huge_learning_rates_stop_with_a_named_cause(state, act, kw, culprit):
    with pytest.raises((StallError, tsode.DivergenceError), match=culprit):
        tsode.integrate(state, tsode.Setup(act, **kw), 10.0)


def test_tiny_alpha_max_stops(state):
    with pytest.raises(StallError, match="alpha_max = 1e-200 is too small"):
        tsode.integrate(state, tsode.Setup("erf", eta=0.5), 1e-200)


def test_evaluation_budget(state):
    with pytest.raises(StallError, match="max_nfev = 300 .*eta = 10000"):
        tsode.integrate(state, tsode.Setup("erf", eta=1e4), 100.0, max_nfev=300)


def test_initial_state_refuses_what_would_not_fit():
    with pytest.raises(MemoryError, match="initial_state .*N=1000000000000.*GiB"):
        tsode.initial_state(2, 2, "random", N=10**12)


def test_ode_refuses_a_K_whose_integrals_would_not_fit():
    """K = 600: the default solver (LSODA) would hold a dense Jacobian of the 180 900 unknowns
    (~ 260 GB); refused before any allocation."""
    s = tsode.OrderParameters(Q=np.eye(600), R=np.zeros((600, 1)), T=np.eye(1),
                              v=np.ones(600), v_star=np.ones(1))
    with pytest.raises(MemoryError, match="the ODEs at K=600, M=1 needs about .* GiB"):
        tsode.integrate(s, tsode.Setup("erf", eta=0.5), 1.0)


def test_full_simulation_refuses_what_would_not_fit(state):
    with pytest.raises(MemoryError, match="engine='full'.*use engine='reduced'"):
        tsode.simulate(state, tsode.Setup("erf", eta=0.5), N=10**12, alpha_max=1e-9,
                       engine="full")


# ---------------------------------------------------------------------------------------------
# 4. silent wrong results
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("alphas", [[0.0, np.nan, 1.0], [np.nan], [0.0, np.inf]])
def test_non_finite_output_times_are_refused(state, alphas):
    setup = tsode.Setup("erf", eta=0.5)
    with pytest.raises(ValueError, match="alphas must be finite"):
        tsode.integrate(state, setup, 1.0, alphas=alphas)
    with pytest.raises(ValueError, match="alphas must be finite"):
        tsode.simulate(state, setup, N=100, alpha_max=1.0, alphas=alphas, engine="reduced")


@pytest.mark.parametrize("T", [np.eye(1), 1e-12 * np.eye(1)])
def test_tiny_non_psd_overlaps_are_refused(T):
    """Q = 1e-12 [[1, 2], [2, 1]] has eigenvalue -1e-12: a third of its scale."""
    Q = 1e-12 * np.array([[1.0, 2.0], [2.0, 1.0]])
    with pytest.raises(ValueError, match="not positive semi-definite"):
        tsode.OrderParameters(Q=Q, R=np.zeros((2, 1)), T=T, v=np.ones(2), v_star=np.ones(1))
    with pytest.raises(ValueError, match="not positive semi-definite"):
        tsode.activation("erf").I2(Q)


def test_psd_round_off_is_accepted():
    """Two parallel units whose correlation rounds to 1 + 2e-16 stay a valid state."""
    a = 1e-12
    Q = a * np.array([[1.0, 1.0 + 2e-16], [1.0 + 2e-16, 1.0]])
    tsode.OrderParameters(Q=Q, R=np.zeros((2, 1)), T=np.eye(1), v=np.ones(2), v_star=np.ones(1))


def _partial_corr(P, given, pair):
    S = P[np.ix_(pair, pair)] - P[np.ix_(pair, given)] @ np.linalg.solve(
        P[np.ix_(given, given)], P[np.ix_(given, pair)])
    return S[0, 1] / math.sqrt(S[0, 0] * S[1, 1])


def test_erf_integrals_at_huge_variances_have_the_right_limit():
    r"""As the variance s -> inf, g'(u) = sqrt(2/pi) e^{-u^2/2} -> 2 delta(u) and g -> sign, so
    s I4 -> 4 p(u_a = u_b = 0) E[sign u_c sign u_d | u_a = u_b = 0] (unit variances)
    = (2 / (pi sqrt(1 - r_ab^2))) (2/pi) asin(r_cd|ab), and I2 -> (2/pi) asin(r_ab).
    At s = 1e99 the old closed form overflowed (sqrt(L1 L2) = inf) and returned 0."""
    P = np.array([[1.0, 0.3, 0.2, 0.1], [0.3, 1.0, 0.4, 0.25], [0.2, 0.4, 1.0, 0.5],
                  [0.1, 0.25, 0.5, 1.0]])
    s = 1e99
    erf = tsode.activation("erf")
    limit4 = 2 / (math.pi * math.sqrt(1 - 0.3**2)) * 2 / math.pi * math.asin(
        _partial_corr(P, [0, 1], [2, 3]))
    assert s * erf.I4(s * P) == pytest.approx(limit4, rel=1e-9)
    assert erf.I2(s * P[:2, :2]) == pytest.approx(2 / math.pi * math.asin(0.3), rel=1e-12)


@pytest.mark.parametrize("which, n", [("I2", 2), ("I3", 3), ("I4", 4), ("J2", 2)])
def test_erf_integrals_beyond_their_range_raise(which, n):
    with pytest.raises(ValueError, match="variance 1e\\+160 > 1e\\+100"):
        getattr(tsode.activation("erf"), which)(1e160 * np.eye(n))


def test_eg_round_off_is_clipped_and_real_negatives_raise():
    """relu, K=5, M=3 'denoise' (v* normal, seed 3) is a perfect student: eps_g = 0 exactly,
    computed as -1.4e-17 before the fix."""
    s = tsode.initial_state(5, 3, "denoise", v_star="normal", seed=3)
    assert tsode.generalisation_error(s, "relu") == 0.0
    C = np.array([[1.0, 2.0], [2.0, 1.0]])  # not PSD: eps_g = (1 - 4 + 1)/2 < 0
    with pytest.raises(ValueError, match="negative .*beyond round-off"):
        eg_from_covariance(C, np.ones(1), np.ones(1), "linear")


# ---------------------------------------------------------------------------------------------
# 5. raw exceptions
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kw, culprit", [(dict(eta=1e300), "learning rate eta = 1e\\+300"),
                                         (dict(eta=0.5, sigma=1e200), "label noise sigma")])
def test_overflow_is_a_divergence_naming_the_parameter(state, kw, culprit):
    setup = tsode.Setup("erf", **kw)
    with pytest.raises(tsode.DivergenceError, match=culprit):
        tsode.integrate(state, setup, 10.0)
    with pytest.raises(FixedPointError, match=culprit):
        fixed_point(state, setup)


def test_output_time_a_rounding_error_above_alpha_max(state):
    alpha_max = 0.1 + 0.2  # 0.30000000000000004
    tr = tsode.integrate(state, tsode.Setup("erf", eta=0.5), 0.3, alphas=[0.0, alpha_max])
    assert tr.alpha[-1] == 0.3


# ---------------------------------------------------------------------------------------------
# 6. messages
# ---------------------------------------------------------------------------------------------

def test_divergence_from_label_noise_blames_sigma(state):
    """Linear, eta = 0.1 alone converges; sigma = 1e5 adds eta^2 sigma^2 J2 = 1e8 per unit of
    alpha to the diagonal of Q (J2 = 1 for linear)."""
    tsode.integrate(state, tsode.Setup("linear", eta=0.1), 10.0)
    with pytest.raises(tsode.DivergenceError, match="label noise sigma = 100000 is probably"):
        tsode.integrate(state, tsode.Setup("linear", eta=0.1, sigma=1e5), 10.0)


@pytest.mark.parametrize("engine", ["full", "reduced"])
@pytest.mark.parametrize("kw, culprit", [(dict(eta=1e300), "learning rate eta = 1e\\+300"),
                                         (dict(eta=0.5, sigma=1e200), "label noise sigma"),
                                         (dict(eta=0.5, eta_v=1e300), "eta_v = 1e\\+300")])
def test_simulation_divergence_names_the_parameter(state, engine, kw, culprit):
    with pytest.raises(tsode.DivergenceError, match=f"run 0 diverged .*{culprit}"):
        tsode.simulate(state, tsode.Setup("erf", **kw), N=100, alpha_max=1.0, engine=engine)


def test_divergence_from_eta_still_blames_eta(state):
    with pytest.raises(tsode.DivergenceError, match="learning rate eta = 50 is"):
        tsode.integrate(state, tsode.Setup("linear", eta=50.0, sigma=0.1), 100.0)


def test_relu_zero_state_has_no_artefact_spectrum():
    """All units of zero norm: the drift vanishes (a fixed point) but is not differentiable
    (J ~ 1/step); the old code reported eigenvalues ~1e9 = artefacts of the FD step."""
    s = tsode.initial_state(2, 2, "small", init_std=0.0, N=100, seed=0)
    fp = fixed_point(s, tsode.Setup("relu", eta=0.5))
    assert fp.converged
    assert np.all(np.isnan(fp.eigenvalues))
    assert "not differentiable" in fp.message


# ---------------------------------------------------------------------------------------------
# 7. one validator
# ---------------------------------------------------------------------------------------------

BAD_REALS = [True, "0.5", 1 + 0j, float("nan"), float("inf"), None, [0.5]]


@pytest.mark.parametrize("bad", BAD_REALS)
@pytest.mark.parametrize("name", ["eta", "eta_v", "sigma", "weight_decay"])
def test_setup_refuses_non_real(name, bad):
    kw = dict(eta=0.5)
    kw[name] = bad
    with pytest.raises(ValueError, match=f"^{name} must be"):
        tsode.Setup("erf", **kw)


@pytest.mark.parametrize("bad", BAD_REALS)
@pytest.mark.parametrize("name", ["alpha_max", "rtol", "atol", "max_norm"])
def test_integrate_refuses_non_real(state, name, bad):
    kw = dict(alpha_max=1.0)
    kw[name] = bad
    alpha_max = kw.pop("alpha_max")
    with pytest.raises(ValueError, match=f"^{name} must be"):
        tsode.integrate(state, tsode.Setup("erf", eta=0.5), alpha_max, **kw)


@pytest.mark.parametrize("name", ["max_norm", "alpha_max"])
def test_simulate_refuses_nan(state, name):
    kw = dict(N=100, alpha_max=1.0, engine="reduced", max_norm=1e8)
    kw[name] = float("nan")
    with pytest.raises(ValueError, match=f"^{name} must be"):
        tsode.simulate(state, tsode.Setup("erf", eta=0.5), **kw)


@pytest.mark.parametrize("name", ["teacher_std", "init_std", "extra_std"])
def test_initial_state_refuses_nan(name):
    with pytest.raises(ValueError, match=f"^{name} must be"):
        tsode.initial_state(2, 2, "random" if name != "extra_std" else "informed",
                            N=10, **{name: float("nan")})


def test_integral_floats_alike_in_simulate_and_initial_state(state):
    s1 = tsode.initial_state(2, 2, "random", N=100.0, seed=3.0)
    s2 = tsode.initial_state(2, 2, "random", N=100, seed=3)
    np.testing.assert_array_equal(s1.Q, s2.Q)
    tsode.simulate(state, tsode.Setup("erf", eta=0.5), N=100.0, alpha_max=0.1, engine="reduced")
    for bad in (100.5, True, "100", float("nan")):
        with pytest.raises(ValueError, match="N must be an integer >= 1"):
            tsode.initial_state(2, 2, "random", N=bad)
        with pytest.raises(ValueError, match="N must be an integer >= 1"):
            tsode.simulate(state, tsode.Setup("erf", eta=0.5), N=bad, alpha_max=0.1)


@pytest.mark.parametrize("seed", [-1, 0.5, "1", True, None])
def test_seed_is_checked(seed):
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        tsode.initial_state(2, 2, "random", N=10, seed=seed)


def test_setup_pickles_through_its_fields():
    """Process pools pickle a Setup in memory (never to files): rebuilt from its fields."""
    s = tsode.Setup("relu", eta=0.2, sigma=0.1)
    t = pickle.loads(pickle.dumps(s))
    assert t == s and t.act is tsode.activation("relu")


@pytest.mark.parametrize("content, match", [
    (b"hello\n", r"is not a \.npz file \(it starts with b'hell', not a zip archive\)"),
    (b"", r"is not a \.npz file \(it starts with b''"),
    (b"\x89HDF\r\n\x1a\n", r"is not a \.npz file \(it starts with b'\\x89HDF'"),
])
def test_from_npz_of_a_foreign_file_says_what_it_is(tmp_path, content, match):
    """Issue 22: a text file was reported as "contains pickled Python objects"."""
    path = tmp_path / "foreign.npz"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=match):
        tsode.Trajectory.from_npz(path)


def test_from_npz_of_a_truncated_file_is_a_value_error(tmp_path, traj):
    traj.to_npz(tmp_path / "t.npz")
    data = (tmp_path / "t.npz").read_bytes()
    (tmp_path / "t.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="is not a readable .npz file"):
        tsode.Trajectory.from_npz(tmp_path / "t.npz")
