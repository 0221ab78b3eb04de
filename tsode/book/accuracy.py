r"""The accuracy of the book's printed numbers, and printing them with the digits it supports.

An ODE number read from the book's integrations (default tolerances rtol = 1e-8, atol = 1e-12)
carries the error of the integration and the round-off a different CPU changes. Its *accuracy*
is estimated by recomputing it (:func:`ode_variants`: a start perturbed at 1e-12 relative with
halved tolerances, and the tolerances divided by 100) and taking the largest change
(:func:`spread`); fixed points are re-polished from a perturbed state
(:func:`fixed_point_accuracy`); finite-difference spectra are compared eigenvalue by eigenvalue
(:func:`spectrum_summary`). :func:`robust_format` then prints only the digits that accuracy
supports, :func:`robust_magnitude` signs and orders of magnitude, and :func:`claimed` rounds a
glued number to the precision its text claims — so that re-running a chapter on another machine
changes no committed output (issue 8).
"""

from __future__ import annotations

import numpy as np

from ..fixed_points import count_soft, zero_tol
from ..ode import integrate
from ..order_parameters import OrderParameters, Setup

__all__ = [
    "PERTURBATION", "TOL_FACTOR", "TIGHT", "RTOL", "ATOL", "SAFETY",
    "robust_format", "robust_magnitude", "claimed", "perturbed", "ode_variant", "ode_variants",
    "spread", "spectrum_summary", "fixed_point_accuracy", "ratio_accuracy",
]


# ------------------------------------------------------------------------------------------
# printing numbers with the digits their accuracy supports
# ------------------------------------------------------------------------------------------
#: the accuracy of every printed ODE number is its largest change under two recomputations:
#: from the initial state perturbed at PERTURBATION relative with the solver tolerances times
#: TOL_FACTOR (round-off and step-size choices: what another CPU changes), and without
#: perturbation at tolerances times TIGHT (the integration error itself)
PERTURBATION, TOL_FACTOR, TIGHT = 1e-12, 0.5, 0.01
#: integrate's default tolerances (the book's integrations use them)
RTOL, ATOL = 1e-8, 1e-12
#: a printed digit must be worth SAFETY times the estimated accuracy (the estimate is itself a
#: difference of two computations, which a third machine may not reproduce exactly)
SAFETY = 10.0


def robust_format(value: float, accuracy: float, *, digits: int = 4) -> str:
    """``value`` with at most ``digits`` significant digits (format ``g``), fewer when its
    ``accuracy`` does not support them.

    A digit of unit u is printed only if u >= SAFETY·accuracy and the value is farther than
    SAFETY·accuracy from the rounding edge (u/2 between two printed values); otherwise the
    last digit is dropped and the test repeated. A value far (SAFETY·accuracy) from both kinds
    of boundary — rounding edges and the accuracy at which a digit is dropped — prints the same
    on any machine that reproduces it to its accuracy; tests/test_chapters.py checks that the
    book's numbers are. Values within
    SAFETY·accuracy of 0 print as "0 (to rounding)"; values whose leading digit is uncertain
    as "~" and the order of magnitude.
    """
    digits = int(digits)
    if not np.isfinite(value) or digits < 1:
        raise ValueError(f"need a finite value and digits >= 1, got {value!r}, {digits}")
    acc = SAFETY * abs(float(accuracy))
    if abs(value) <= acc:
        return "0 (to rounding)"
    e = int(np.floor(np.log10(abs(value))))
    for n in range(digits, 0, -1):
        u = 10.0 ** (e - n + 1)
        r = value / u
        edge = abs(r - np.floor(r) - 0.5) * u
        if u >= acc and edge > acc:
            return f"{value:#.{n}g}".replace(".e", "e").rstrip(".")
    return f"~{value:.0e}"  # not even the leading digit is certain: the order of magnitude


def claimed(value: float, spec: str) -> float:
    """``value`` rounded to the precision that the format ``spec`` (".3g", ".2e", ".1%", ",.0f",
    as in the chapters' {glue:text} roles) prints: a glued number then stores no digit beyond
    those the text claims, so re-running on another CPU leaves the committed output unchanged."""
    text = format(float(value), spec).replace(",", "")
    return float(text[:-1]) / 100 if text.endswith("%") else float(text)


def perturbed(state: OrderParameters, rel: float = PERTURBATION, seed: int = 0) -> OrderParameters:
    """``state`` with Q (symmetrically), R and v multiplied by 1 + rel·N(0, 1) entrywise."""
    rng = np.random.default_rng(seed)
    Q = np.asarray(state.Q, dtype=float)
    S = rng.standard_normal(Q.shape)
    return OrderParameters(
        Q=Q * (1 + rel * (S + S.T) / 2),
        R=np.asarray(state.R) * (1 + rel * rng.standard_normal(np.shape(state.R))),
        T=state.T, v=np.asarray(state.v) * (1 + rel * rng.standard_normal(np.shape(state.v))),
        v_star=state.v_star)


def ode_variant(state0: OrderParameters, setup: Setup, tr, tol_factor: float = TOL_FACTOR,
                rel: float = PERTURBATION):
    """The integration ``tr`` (from ``state0``, default tolerances, same output times) redone
    from the initial state perturbed at ``rel`` relative with the solver tolerances multiplied
    by ``tol_factor``: the differences estimate the accuracy of what is read from ``tr``."""
    return integrate(perturbed(state0, rel), setup, float(tr.alpha[-1]),
                     alphas=np.asarray(tr.alpha), rtol=tol_factor * RTOL, atol=tol_factor * ATOL)


def robust_magnitude(value: float, accuracy: float) -> str:
    """Sign and order of magnitude of ``value``, e.g. "+O(1e-05)" for 7.08e-05 (the power of
    ten at or below |value|), "0 (to rounding)" within SAFETY·accuracy of 0, or a range of two
    orders "+O(1e-06..1e-05)" when |value| ± SAFETY·accuracy straddles a power of ten. For
    finite-difference eigenvalues, whose digits beyond the first do not survive another CPU."""
    acc = SAFETY * abs(float(accuracy))
    if not np.isfinite(value):
        raise ValueError(f"need a finite value, got {value!r}")
    if abs(value) <= acc:
        return "0 (to rounding)"
    sign = "+" if value > 0 else "-"
    lo, hi = (int(np.floor(np.log10(abs(value) + d))) for d in (-acc, acc))
    return f"{sign}O(1e{lo:+03d})" if lo == hi else f"{sign}O(1e{lo:+03d}..1e{hi:+03d})"


def ode_variants(state0: OrderParameters, setup: Setup, tr) -> list:
    """The integration ``tr`` (from ``state0``, default tolerances) redone at the same output
    times (a) from ``state0`` perturbed at PERTURBATION relative, tolerances times TOL_FACTOR,
    (b) from ``state0``, tolerances times TIGHT; see :func:`spread`."""
    return [ode_variant(state0, setup, tr, TOL_FACTOR, PERTURBATION),
            ode_variant(state0, setup, tr, TIGHT, 0.0)]


def spread(read, base, variants):
    """max over ``variants`` of |read(variant) - read(base)| (elementwise for arrays): the
    accuracy of the number(s) ``read`` extracts from a computation."""
    ref = np.asarray(read(base), dtype=float)
    return np.max([np.abs(np.asarray(read(v), dtype=float) - ref) for v in variants], axis=0)


def spectrum_summary(ev, ev_alts, soft_tol: float) -> dict:
    """Signs, counts and orders of magnitude of a finite-difference spectrum ``ev`` that other
    evaluations (perturbed state, other tolerances) gave as ``ev_alts`` (a list): "n_soft"
    (|Re λ| < soft_tol; "a-b" when eigenvalues lie within SAFETY times their accuracy of the
    threshold) and "top" (:func:`robust_magnitude` of the largest Re λ). The accuracy of each
    Re λ is its largest change, at least 1e-8·max|Re λ| (the finite-difference floor,
    :func:`tsode.fixed_points.zero_tol`). Soft means what :func:`tsode.fixed_points.count_soft`
    counts."""
    re = np.sort(np.real(ev))
    change = np.maximum(spread(lambda e: np.sort(np.real(e)), ev, ev_alts), zero_tol(re))
    sure = np.abs(np.abs(re) - soft_tol) > SAFETY * change
    lo = int(count_soft(re[sure], soft_tol))
    hi = lo + int(np.sum(~sure))
    return dict(n_soft=str(lo) if lo == hi else f"{lo}-{hi}",
                top=robust_magnitude(re[-1], change[-1]))


def fixed_point_accuracy(fp) -> float:
    """|Δε_g*| when the fixed point ``fp`` is re-polished by Newton from its state perturbed at
    PERTURBATION relative (the round-off floor of ε_g* at a converged fixed point)."""
    from ..asymptotics import fixed_point

    alt = fixed_point(perturbed(fp.state), fp.setup, raise_on_failure=False)
    return abs(float(alt.eg) - float(fp.eg)) if alt.converged else abs(float(fp.eg))


def ratio_accuracy(x, dx, y, dy):
    """Accuracy of x / y from those of x and y (first order)."""
    x, dx, y, dy = map(np.asarray, (x, dx, y, dy))
    return np.abs(x / y) * (dx / np.abs(x) + dy / np.abs(y))
