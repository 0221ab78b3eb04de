"""Simulators: exact single steps, agreement of the two engines in law, convergence to the ODE.

Reference values come from independent computations: explicit N-dimensional updates written here
in numpy from DESIGN.md §2, the full engine for the reduced one (two-sample tests), the ODE
integrator for the N -> infinity limit. Statistical tests use fixed seeds and Bonferroni-
corrected thresholds; the power test shows that the same test rejects a deliberately wrong chain.
"""

import copy
import dataclasses
import functools

import numpy as np
import pytest
from scipy import stats
from scipy.stats import ks_2samp

import tsode
from tsode import _sim_kernels as kern
from tsode.simulate import record_steps

ACTS = ("erf", "relu", "linear")


# ---------------------------------------------------------------------------------------------
# building blocks
# ---------------------------------------------------------------------------------------------


def _sgd_step_numpy(W, Ws, v, vs, x, zeta, act, eta, eta_v, sigma, decay):
    """One SGD step exactly as written in DESIGN.md §2 (plus weight decay), plain numpy."""
    N = x.size
    g, dg = act.g, act.dg
    lam, rho = W @ x / np.sqrt(N), Ws @ x / np.sqrt(N)
    delta = v @ g(lam) - (vs @ g(rho) + sigma * zeta)
    a = 1 - decay / N
    W_new = a * W - eta / np.sqrt(N) * np.outer(v * dg(lam) * delta, x)
    v_new = a * v - eta_v / N * g(lam) * delta if eta_v > 0 else v.copy()
    return W_new, v_new


@pytest.mark.parametrize("name", ACTS)
@pytest.mark.parametrize("eta_v, sigma, decay", [(0.0, 0.0, 0.0), (0.7, 0.3, 0.2)])
def test_one_step_of_both_engines_equals_explicit_sgd(name, eta_v, sigma, decay):
    rng = np.random.default_rng(11)
    K, M, N = 3, 2, 40
    W, Ws = rng.standard_normal((K, N)), rng.standard_normal((M, N))
    v, vs = rng.standard_normal(K), rng.standard_normal(M)
    x, zeta = rng.standard_normal(N), rng.standard_normal()
    act = tsode.activation(name)
    eta = 0.9
    W_new, v_new = _sgd_step_numpy(W, Ws, v, vs, x, zeta, act, eta, eta_v, sigma, decay)
    code = kern.ACT_CODES[name]

    # full engine kernel
    W1, v1 = W.copy(), v.copy()
    kern.full_update(W1, Ws, v1, vs, x, zeta, code, eta, eta_v, sigma, decay, np.empty(K))
    np.testing.assert_allclose(W1, W_new, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(v1, v_new, rtol=1e-12, atol=1e-13)

    # reduced engine: update of the Gram matrix from (u, ||x||^2) only
    B = np.vstack([W, Ws])
    G = B @ B.T / N
    u = B @ x / np.sqrt(N)
    v2 = v.copy()
    kern.reduced_update(
        G, v2, vs, u, x @ x, zeta, K, N, code, eta, eta_v, sigma, decay, np.empty(K)
    )
    B_new = np.vstack([W_new, Ws])
    np.testing.assert_allclose(G, B_new @ B_new.T / N, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(v2, v_new, rtol=1e-12, atol=1e-13)


def test_full_advance_draws_x_then_noise_and_applies_sgd():
    # the compiled loop reproduces, draw for draw, the numpy stream of the same Generator
    rng = np.random.default_rng(5)
    K, M, N = 2, 3, 30
    W, Ws = rng.standard_normal((K, N)), rng.standard_normal((M, N))
    v, vs = rng.standard_normal(K), rng.standard_normal(M)
    act = tsode.activation("erf")
    gen = np.random.default_rng(99)
    ref_gen = copy.deepcopy(gen)
    W1, v1 = W.copy(), v.copy()
    kern.full_advance(W1, Ws, v1, vs, gen, 7, 0, 0.8, 0.5, 0.2, 0.0, np.empty(N), np.empty(K))
    for _ in range(7):
        x = ref_gen.standard_normal(N)
        zeta = ref_gen.standard_normal()
        W, v = _sgd_step_numpy(W, Ws, v, vs, x, zeta, act, 0.8, 0.5, 0.2, 0.0)
    np.testing.assert_allclose(W1, W, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(v1, v, rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("n, r, N", [(5, 5, 100), (7, 3, 100), (6, 2, 1), (6, 0, 10), (7, 4, 2)])
def test_factor_reconstructs_gram_matrices_of_any_rank(n, r, N):
    rng = np.random.default_rng(n * 10 + r)
    F = rng.standard_normal((n, r))
    G = F @ F.T
    A, L, perm = np.empty((n, n)), np.empty((n, n)), np.empty(n, dtype=np.int64)
    rank = kern.factor(G, A, L, perm, 1e-13, N)
    assert rank == min(r, N)
    Lr = np.tril(L)[:, :rank]
    rebuilt = np.empty((n, n))
    rebuilt[np.ix_(perm, perm)] = Lr @ Lr.T
    if r <= N:
        np.testing.assert_allclose(rebuilt, G, atol=1e-12 * max(1.0, np.abs(G).max()))
    else:  # rank capped at N: the largest pivots are kept, the rest is a PSD remainder
        assert np.linalg.eigvalsh(G - rebuilt).min() > -1e-10


def test_full_engine_starts_exactly_at_state0_even_when_rank_deficient():
    # zero student weights: the Gram matrix has rank M = 2 < K + M
    state0 = tsode.initial_state(3, 2, "small", N=100, seed=1, init_std=0.0)
    for st in (state0, tsode.initial_state(3, 2, "random", N=100, seed=2)):
        traj = tsode.simulate(st, tsode.Setup("erf", eta=0.5), N=60, alpha_max=1, alphas=[0.0, 1.0])
        np.testing.assert_allclose(traj.Q[0], st.Q, atol=1e-12)
        np.testing.assert_allclose(traj.R[0], st.R, atol=1e-12)
        np.testing.assert_array_equal(traj.v[0], st.v)


def test_output_grid_and_shapes():
    state0 = tsode.initial_state(3, 2, "random", N=500, seed=0)
    setup = tsode.Setup("relu", eta=0.3, eta_v=0.2)
    one = tsode.simulate(state0, setup, N=100, alpha_max=3, engine="reduced")
    steps = record_steps(100, 3)
    np.testing.assert_array_equal(one.alpha, steps / 100)
    assert one.alpha[0] == 0 and one.alpha[-1] == 3 and np.all(np.diff(one.alpha) > 0)
    T = one.alpha.size
    assert one.eg.shape == (T,) and one.Q.shape == (T, 3, 3)
    assert one.R.shape == (T, 3, 2) and one.v.shape == (T, 3)
    many = tsode.simulate(state0, setup, N=100, alpha_max=3, engine="full", n_runs=3,
                          alphas=[0.5, 1.0, 2.99])
    np.testing.assert_allclose(many.alpha, [0.5, 1.0, 2.99])
    assert many.eg.shape == (3, 3) and many.Q.shape == (3, 3, 3, 3) and many.v.shape == (3, 3, 3)
    assert many.n_runs == 3
    # eps_g is the closed form of the recorded order parameters
    assert many.eg[1, 2] == pytest.approx(tsode.generalisation_error(many.state(2, run=1), "relu"))
    for key in ("engine", "N", "seed", "n_runs", "seconds"):
        assert key in many.info
    assert many.info["engine"] == "full" and many.info["N"] == 100


# ---------------------------------------------------------------------------------------------
# determinism
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ["full", "reduced"])
def test_same_seed_same_trajectory_and_runs_independent_of_batching(engine):
    state0 = tsode.initial_state(2, 2, "random", N=300, seed=4)
    setup = tsode.Setup("erf", eta=1.0, eta_v=0.3, sigma=0.2)
    kw = dict(N=80, alpha_max=2, engine=engine)
    a = tsode.simulate(state0, setup, seed=3, n_runs=4, workers=2, **kw)
    b = tsode.simulate(state0, setup, seed=3, n_runs=4, workers=2, **kw)
    c = tsode.simulate(state0, setup, seed=3, n_runs=2, workers=1, **kw)
    d = tsode.simulate(state0, setup, seed=4, n_runs=2, **kw)
    for f in ("Q", "R", "v", "eg"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
        np.testing.assert_array_equal(getattr(a, f)[:2], getattr(c, f))
        assert not np.array_equal(getattr(a, f)[:2, -1], getattr(d, f)[:, -1])
    assert not np.array_equal(a.Q[0, -1], a.Q[1, -1])  # runs are distinct streams


@pytest.mark.parametrize("kind", ["random", "zero"])
def test_reduced_runs_do_not_depend_on_how_they_are_grouped(kind):
    # the reduced engine advances groups of runs in lockstep (vectorised loops over runs, a
    # scalar remainder, per-run fallback factorisations while G is rank-deficient) and single
    # runs with scalar loops: a run's trajectory must be the same either way
    if kind == "zero":
        state0 = tsode.initial_state(3, 2, "small", N=60, seed=1, init_std=0.0)
    else:
        state0 = tsode.initial_state(3, 2, "random", N=60, seed=1)
    setup = tsode.Setup("erf", eta=1.0, eta_v=0.3, sigma=0.1)
    kw = dict(N=60, alpha_max=2, engine="reduced", seed=5, n_runs=40)
    big = tsode.simulate(state0, setup, workers=1, **kw)  # groups of 32 and 8 runs
    small = tsode.simulate(state0, setup, workers=20, **kw)  # 2 runs per worker: single runs
    for f in ("Q", "R", "v"):
        np.testing.assert_array_equal(getattr(big, f), getattr(small, f))
    one = tsode.simulate(state0, setup, **dict(kw, n_runs=1))
    np.testing.assert_array_equal(big.Q[0], one.Q)


# ---------------------------------------------------------------------------------------------
# the two engines have the same law
# ---------------------------------------------------------------------------------------------

RUNS = 256
ALPHAS = np.array([0.5, 1.5, 4.0])
# (activation, eta, eta_v, sigma, N, K, M, initial state kind)
AGREEMENT_CASES = [
    ("erf", 1.0, 0.0, 0.0, 50, 2, 2, "random"),
    ("erf", 1.0, 0.5, 0.1, 50, 2, 2, "random"),
    ("erf", 1.0, 0.0, 0.0, 200, 2, 2, "random"),
    ("erf", 1.0, 0.5, 0.1, 200, 2, 2, "random"),
    ("relu", 0.5, 0.0, 0.0, 50, 2, 2, "random"),
    ("relu", 0.5, 0.5, 0.1, 50, 2, 2, "random"),
    ("relu", 0.5, 0.0, 0.0, 200, 2, 2, "random"),
    ("relu", 0.5, 0.5, 0.1, 200, 2, 2, "random"),
    ("erf", 1.0, 0.5, 0.0, 50, 3, 2, "zero"),  # zero student weights: rank-deficient start
    ("erf", 0.5, 0.5, 0.1, 3, 3, 2, "random"),  # K + M = 5 > N = 3: rank-deficient forever
]


def _initial(case):
    act, eta, eta_v, sigma, N, K, M, kind = case
    if kind == "zero":
        return tsode.initial_state(K, M, "small", N=N, seed=3, init_std=0.0)
    return tsode.initial_state(K, M, "random", N=N, seed=3)


def _observables(traj):
    """All non-constant scalars (eps_g, upper triangle of Q, R, and v if trained) at each time."""
    K = traj.Q.shape[-1]
    iu = np.triu_indices(K)
    cols = [traj.eg[..., None], traj.Q[..., iu[0], iu[1]], traj.R.reshape(traj.R.shape[:2] + (-1,))]
    if traj.setup.eta_v > 0:
        cols.append(traj.v)
    return np.concatenate(cols, axis=-1)  # (runs, times, observables)


def _n_observables(case):
    act, eta, eta_v, sigma, N, K, M, kind = case
    return len(ALPHAS) * (1 + K * (K + 1) // 2 + K * M + (K if eta_v > 0 else 0))


# Bonferroni over every two-sample test of the whole family (all cases, observables, times)
FAMILY_SIZE = sum(_n_observables(c) for c in AGREEMENT_CASES)
THRESHOLD = 0.01 / FAMILY_SIZE  # family-wise error rate 1 %


def _ks_pvalues(case, seed_full=1, seed_reduced=2, **reduced_kw):
    act, eta, eta_v, sigma, N, K, M, kind = case
    state0 = _initial(case)
    setup = tsode.Setup(act, eta=eta, eta_v=eta_v, sigma=sigma)
    kw = dict(N=N, alpha_max=ALPHAS[-1], alphas=ALPHAS, n_runs=RUNS)
    full = tsode.simulate(state0, setup, engine="full", seed=seed_full, **kw)
    red = tsode.simulate(state0, setup, engine="reduced", seed=seed_reduced, **kw, **reduced_kw)
    a, b = _observables(full), _observables(red)
    assert a.shape[-1] * a.shape[-2] == _n_observables(case)
    p = np.array([[ks_2samp(a[:, t, j], b[:, t, j]).pvalue for j in range(a.shape[-1])]
                  for t in range(a.shape[1])])
    return p


@pytest.mark.parametrize("case", AGREEMENT_CASES, ids=lambda c: f"{c[0]}-N{c[4]}-K{c[5]}M{c[6]}-"
                         f"{'both' if c[2] else 'first'}-{c[7]}")
def test_reduced_engine_has_the_law_of_full_sgd(case):
    p = _ks_pvalues(case)
    assert p.min() > THRESHOLD, (
        f"two-sample KS: smallest p = {p.min():.3g} < Bonferroni threshold {THRESHOLD:.3g} "
        f"({FAMILY_SIZE} tests); p-values by time x observable:\n{np.array2string(p, precision=3)}"
    )


@pytest.mark.parametrize("case", [AGREEMENT_CASES[0], AGREEMENT_CASES[7]],
                         ids=["erf-N50-first", "relu-N200-both"])
def test_the_agreement_test_rejects_a_chain_without_the_chi2_term(case):
    # the same test on a deliberately wrong chain: ||x||^2 = ||z||^2 (no chi^2(N - r) term)
    p = _ks_pvalues(case, _with_chi2=False)
    assert p.min() < THRESHOLD


def test_the_agreement_test_detects_a_five_percent_error_in_the_learning_rate():
    # power against a subtler error: the reduced chain run with eta 5 % too large
    act, eta, eta_v, sigma, N, K, M, kind = case = AGREEMENT_CASES[2]
    state0 = _initial(case)
    kw = dict(N=N, alpha_max=ALPHAS[-1], alphas=ALPHAS, n_runs=RUNS)
    full = tsode.simulate(state0, tsode.Setup(act, eta=eta), engine="full", seed=1, **kw)
    wrong_setup = tsode.Setup(act, eta=1.05 * eta)
    wrong = tsode.simulate(state0, wrong_setup, engine="reduced", seed=2, **kw)
    a, b = _observables(full), _observables(wrong)
    p = min(ks_2samp(a[:, t, j], b[:, t, j]).pvalue
            for t in range(a.shape[1]) for j in range(a.shape[2]))
    assert p < THRESHOLD


def test_test_set_estimate_of_eg_agrees_with_the_closed_form():
    state0 = tsode.initial_state(3, 2, "random", N=200, seed=8)
    setup = tsode.Setup("relu", eta=0.5, eta_v=0.3)
    P = 4000
    traj = tsode.simulate(state0, setup, N=200, alpha_max=2, alphas=[0.0, 1.0, 2.0],
                          engine="full", test_set=P, seed=5)
    eg_test = traj.info["eg_test"]
    assert eg_test.shape == traj.eg.shape
    # standard error of a P-sample mean of l = (phi - phi*)^2 / 2, the variance of l estimated
    # by an independent Monte Carlo over Gaussian fields with the recorded covariance
    rng = np.random.default_rng(0)
    g = tsode.activation("relu").g
    for t in range(traj.alpha.size):
        st = traj.state(t)
        u = rng.multivariate_normal(np.zeros(5), st.covariance, size=200_000)
        loss = 0.5 * (g(u[:, :3]) @ st.v - g(u[:, 3:]) @ st.v_star) ** 2
        se = loss.std() / np.sqrt(P)
        assert abs(eg_test[t] - traj.eg[t]) < 4 * se, (t, eg_test[t], traj.eg[t], se)


# ---------------------------------------------------------------------------------------------
# convergence to the ODE as N grows
# ---------------------------------------------------------------------------------------------


def test_reduced_engine_converges_to_the_ode_like_one_over_sqrt_n():
    state0 = tsode.initial_state(2, 2, "random", N=10_000, seed=5)
    setup = tsode.Setup("erf", eta=1.0)
    alphas = np.linspace(0, 6, 31)
    ode = tsode.integrate(state0, setup, 6, alphas=alphas)
    Ns = np.array([1e2, 1e3, 1e4, 1e5])
    dev = []
    for N in Ns:
        traj = tsode.simulate(state0, setup, N=N, alpha_max=6, alphas=alphas, engine="reduced",
                              n_runs=16, seed=7)
        dev.append(np.abs(traj.eg - ode.eg).max(axis=1).mean())  # mean over runs of sup |.|
    slope = np.polyfit(np.log(Ns), np.log(dev), 1)[0]
    assert -0.7 <= slope <= -0.3, (slope, dev)
    assert np.all(np.diff(dev) < 0)


CONVENTION_RUNS, CONVENTION_ALPHA = 48, 10.0


@functools.lru_cache(maxsize=None)
def _convention_sim(act, eta):
    """Reduced SGD at N = 1e4 (48 runs to alpha = 10) with sigma, eta_v and kappa all active."""
    state0 = tsode.initial_state(2, 2, "random", N=10_000, seed=2, v="normal")
    setup = tsode.Setup(act, eta=eta, eta_v=0.5, sigma=0.3, weight_decay=0.05)
    alphas = np.array([0.5, 1.5, 3.0, 10.0])
    sim = tsode.simulate(state0, setup, N=10_000, alpha_max=CONVENTION_ALPHA, alphas=alphas,
                         engine="reduced", n_runs=CONVENTION_RUNS, seed=1)
    return state0, setup, alphas, sim


def _convention_tstat(act, eta, ode_setup=None):
    """Largest |t| of the run means of eg, Q, R, v against the ODE (of ``ode_setup``, default the
    simulated setup) and the Bonferroni critical value (1 % two-sided)."""
    state0, setup, alphas, sim = _convention_sim(act, eta)
    ode = tsode.integrate(state0, ode_setup or setup, CONVENTION_ALPHA, alphas=alphas)
    iu = np.triu_indices(2)
    pairs = [(sim.eg, ode.eg), (sim.Q[..., iu[0], iu[1]], ode.Q[..., iu[0], iu[1]]),
             (sim.R, ode.R), (sim.v, ode.v)]
    runs = CONVENTION_RUNS
    tstat = np.concatenate([
        np.ravel((a.mean(0) - b) / (a.std(0, ddof=1) / np.sqrt(runs))) for a, b in pairs
    ])
    return np.abs(tstat).max(), stats.t.ppf(1 - 0.005 / tstat.size, df=runs - 1)


@pytest.mark.parametrize("act, eta", [("erf", 1.0), ("relu", 0.5)])
def test_noise_second_layer_and_weight_decay_follow_the_ode_conventions(act, eta):
    # at N = 1e4 the mean over runs must match the ODE (bias O(1/N) << standard error): checks
    # that sigma, eta_v and kappa mean the same thing in the simulator and in the ODE
    t, crit = _convention_tstat(act, eta)
    assert t < crit, (t, crit)


@pytest.mark.parametrize("act, eta", [("erf", 1.0), ("relu", 0.5)])
@pytest.mark.parametrize("wrong", [dict(sigma=0.33), dict(eta_v=0.55), dict(weight_decay=0.055)])
def test_convention_check_detects_a_10_percent_error(act, eta, wrong):
    """Power: the same t-test rejects an ODE whose sigma, eta_v or kappa is 10 % off (with 24
    runs to alpha = 3 a 10 % error in sigma for ReLU gave |t| = 4.4 against a critical 4.2;
    48 runs to alpha = 10 give a clear margin)."""
    setup = _convention_sim(act, eta)[1]
    t, crit = _convention_tstat(act, eta, dataclasses.replace(setup, **wrong))
    assert t > crit, (t, crit)


# ---------------------------------------------------------------------------------------------
# divergence, progress, bad input
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ["full", "reduced"])
def test_divergence_raises_with_the_time_instead_of_returning_nans(engine):
    state0 = tsode.initial_state(2, 1, "random", N=200, seed=0)
    with pytest.raises(tsode.DivergenceError, match=r"diverged (at|before) alpha = [0-9.]+"):
        tsode.simulate(state0, tsode.Setup("linear", eta=5.0), N=50, alpha_max=50, engine=engine)


def test_progress_bar_only_when_asked(capsys):
    state0 = tsode.initial_state(2, 2, "random", N=100, seed=0)
    setup = tsode.Setup("erf", eta=0.5)
    tsode.simulate(state0, setup, N=50, alpha_max=1, engine="reduced")
    assert capsys.readouterr().err == ""
    tsode.simulate(state0, setup, N=50, alpha_max=1, engine="reduced", progress=True)
    assert "simulate (reduced, N=50)" in capsys.readouterr().err


STATE = tsode.initial_state(3, 2, "random", N=100, seed=0)
SETUP = tsode.Setup("erf", eta=0.5)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(N=0), ValueError, r"N must be an integer >= 1"),
        (dict(N=2.5), ValueError, r"N must be an integer >= 1"),
        (dict(n_runs=0), ValueError, r"n_runs must be an integer >= 1"),
        (dict(alpha_max=0), ValueError, r"alpha_max must be finite and > 0"),
        (dict(alpha_max=-1.0), ValueError, r"alpha_max must be finite and > 0"),
        (dict(engine="exact"), ValueError, r"unknown engine 'exact'; allowed: full, reduced"),
        (dict(seed=-1), ValueError, r"seed must be an integer >= 0"),
        (dict(N=4), ValueError, r"rank 5 > N; use N >= 5"),
        (dict(N=10, alphas=[0.1, 0.12]), ValueError, r"at least 1/N"),
        (dict(alphas=[0.5, 2.0], alpha_max=1.0), ValueError, r"alphas must be strictly increasing"),
        (dict(engine="reduced", test_set=10), ValueError, r"test_set > 0 needs engine='full'"),
        (dict(workers=0), ValueError, r"workers must be an integer >= 1"),
        (dict(N=10, alpha_max=0.01), ValueError, r"less than one SGD step"),
    ],
)
def test_bad_input_is_rejected_with_a_clear_message(kwargs, error, match):
    kw = dict(N=100, alpha_max=1.0)
    kw.update(kwargs)
    with pytest.raises(error, match=match):
        tsode.simulate(STATE, SETUP, **kw)


def test_state_and_setup_of_the_wrong_type_or_swapped_are_rejected():
    with pytest.raises(TypeError, match="state0 must be an OrderParameters"):
        tsode.simulate(SETUP, STATE, N=100, alpha_max=1)
    with pytest.raises(TypeError, match="setup must be a Setup"):
        tsode.simulate(STATE, {"activation": "erf"}, N=100, alpha_max=1)


def test_weight_decay_must_be_smaller_than_n():
    with pytest.raises(ValueError, match="weight_decay must be < N"):
        tsode.simulate(STATE, tsode.Setup("erf", eta=0.5, weight_decay=20.0), N=10, alpha_max=1)
