"""Tests of tsode.classification.classify: "final" as a checked word (issue 18).

Expected values: the linear fixed point and its spectrum from the closed form derived by hand
below; the erf L = 2 symmetric point's unstable eigenvalue from PAPER-NOTES.md (Re λ ≈ +7e-5,
measured independently as the escape rate of a perturbation in test_asymptotics); the rate of
change of ε_g from a finite difference of an independent integration. No expected value comes
from the code under test.
"""

import numpy as np
import pytest

import tsode
from tsode.asymptotics import Classification, classify, erf_symmetric_fixed_point
from tsode.classification import KINDS


def _linear_fixed_point(eta, sigma):
    """K = M = 1, linear, first layer only, T = v = v* = 1. By hand: dR/dα = -η(R - 1),
    dQ/dα = -2η(Q - R) + η²(Q - 2R + 1 + σ²); the fixed point is R = 1,
    Q = 1 + ησ²/(2 - η), and the Jacobian in (Q, R) is [[-2η + η², 2η - 2η²], [0, -η]] with
    eigenvalues -η(2 - η) and -η."""
    Q = 1 + eta * sigma**2 / (2 - eta)
    state = tsode.OrderParameters(Q=[[Q]], R=[[1.0]], T=[[1.0]], v=[1.0], v_star=[1.0])
    return state, tsode.Setup("linear", eta=eta, sigma=sigma), np.array([-eta, -eta * (2 - eta)])


def test_linear_closed_form_fixed_point():
    state, setup, ev = _linear_fixed_point(0.5, 0.3)
    c = classify(state, setup)
    assert isinstance(c, Classification) and c.kind == "fixed point" and c.stationary
    assert c.drift_norm < 1e-15 and c.n_unstable == 0
    assert np.sort(c.eigenvalues.real) == pytest.approx(np.sort(ev), rel=1e-6)
    assert c.min_abs_eigenvalue == pytest.approx(np.abs(ev).min(), rel=1e-6)
    assert c.eg == pytest.approx(0.5 * 0.3**2 / (2 * (2 - 0.5)), rel=1e-12)
    # moved off the fixed point by 1e-5 the drift is ~ |λ| 1e-5 >> 1e-9 max|y|: drifting
    off = state.replace(R=[[1 - 1e-5]])
    d = classify(off, setup)
    assert d.kind == "still drifting" and not d.stationary
    assert d.drift_norm == pytest.approx(0.5 * 1e-5, rel=0.5)


def test_erf_fixed_point_L1_is_stable():
    """The erf symmetric fixed point with one extra unit (M = 2, η = σ = 0.1) is a stable fixed
    point, also at the end of a long integration from random weights (α = 1e4, converged)."""
    fp = erf_symmetric_fixed_point(2, 1, 0.1, 0.1)
    c = classify(fp.state, fp.setup)
    assert c.kind == "fixed point" and c.max_real < 0
    assert c.eg == pytest.approx(3.694e-4, abs=5e-8)  # PAPER-NOTES reference value
    tr = tsode.integrate(tsode.initial_state(3, 2, kind="random", seed=3,
                                              orthogonal_teacher=True), fp.setup, 1e4,
                         alphas=[1e4], rtol=1e-10, atol=1e-14)
    end = classify(tr, fp.setup)
    assert end.alpha == 1e4 and end.kind == "fixed point"
    assert abs(end.eg_exponent) < 1e-6 and end.eg == pytest.approx(3.694e-4, abs=5e-8)


def test_erf_L2_symmetric_point_is_a_saddle():
    """PAPER-NOTES: the symmetric fixed point with L = 2 is a slow saddle, Re λ ≈ +7e-5."""
    fp = erf_symmetric_fixed_point(2, 2, 0.1, 0.1)
    c = classify(fp.state, fp.setup)
    assert c.kind == "saddle" and c.stationary and c.n_unstable >= 1
    assert c.max_real == pytest.approx(7e-5, abs=0.5e-5)
    assert c.min_abs_eigenvalue <= c.max_real
    assert c.drift_norm < 1e-12 and "saddle" in str(c)


def test_state_early_on_a_trajectory_is_drifting_with_the_right_rate():
    """At α = 10 (before the plateau) the state is still drifting; d ln ε_g / d ln α agrees with
    a central difference of an independent integration."""
    setup = tsode.Setup("erf", eta=0.1, sigma=0.1)
    s0 = tsode.initial_state(2, 2, kind="random", seed=5)
    h = 1e-4
    tr = tsode.integrate(s0, setup, 10 * np.exp(h), alphas=10 * np.exp([-h, 0.0, h]),
                         rtol=1e-12, atol=1e-16)
    rate = (np.log(tr.eg[2]) - np.log(tr.eg[0])) / (2 * h)
    c = classify(tr.state(1), setup, alpha=10.0)
    assert c.kind == "still drifting" and c.relative_drift > 1e-4
    assert abs(rate) > 0.1 and c.eg_exponent == pytest.approx(rate, rel=1e-4)


def test_alpha_turns_a_slow_power_law_drift_into_still_drifting():
    """Erf with L = 2 at α = 1e6: the drift is small (the anti-aligned pair grows slowly) but ε_g
    still falls by ~10 % per e-fold of α. With a drift tolerance above its drift the state counts
    as stationary without α, and as still drifting once its time α is given."""
    setup = tsode.Setup("erf", eta=0.1, sigma=0.1)
    tr = tsode.integrate(tsode.initial_state(4, 2, kind="random", seed=1), setup, 1e6,
                         alphas=[1e6], rtol=1e-10, atol=1e-14)
    plain = classify(tr.final, setup, drift_rtol=1e-4)
    assert plain.stationary and plain.eg_exponent is None
    timed = classify(tr, setup, drift_rtol=1e-4)
    assert timed.kind == "still drifting" and timed.eg_exponent < -0.01


def test_kinds_are_documented():
    assert set(KINDS) >= {"fixed point", "saddle", "still drifting"}


@pytest.mark.parametrize("kwargs, match", [
    (dict(alpha=0.0), "alpha must be finite and > 0"),
    (dict(alpha=float("nan")), "alpha must be finite"),
    (dict(drift_rtol=-1.0), "drift_rtol must be finite and > 0"),
    (dict(exponent_tol=0.0), "exponent_tol must be finite and > 0"),
    (dict(rel_step=1.0), "rel_step must be finite and > 0 and <= 0.1"),
])
def test_bad_numbers(kwargs, match):
    state, setup, _ = _linear_fixed_point(0.5, 0.3)
    with pytest.raises(ValueError, match=match):
        classify(state, setup, **kwargs)


def test_bad_types_and_runs():
    state, setup, _ = _linear_fixed_point(0.5, 0.3)
    with pytest.raises(TypeError, match="must be an OrderParameters"):
        classify({"Q": 1}, setup)
    with pytest.raises(TypeError, match="setup must be a Setup"):
        classify(state, "linear")
    runs = tsode.simulate(state, setup, N=50, alpha_max=0.1, engine="reduced", n_runs=2, seed=0)
    with pytest.raises(ValueError, match="Trajectory of 2 runs"):
        classify(runs, setup)
