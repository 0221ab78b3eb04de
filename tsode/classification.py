r"""Is a state "final"? Classify a state of the order-parameter ODEs as a fixed point, a saddle or
still drifting.

A state reached by integrating for a while is often called *final*. That is a claim about the
drift :math:`F(y)` of the ODEs (:class:`tsode.ode.Drift`) at the packed state :math:`y` and about
the Jacobian :math:`J = \partial F/\partial y` there, and :func:`classify` checks it:

* **fixed point** — :math:`\max|F(y)| \le` ``drift_rtol`` · :math:`\max|y|` (the state moves by
  less than that fraction of its own scale per unit α) and no eigenvalue of J has a positive real
  part (the package's one rule, :func:`tsode.fixed_points.count_unstable`: Re λ above
  :func:`tsode.fixed_points.zero_tol`);
* **saddle** — the drift is as small, but at least one eigenvalue has Re λ > zero_tol: the state
  is left along that direction, on a time scale 1/Re λ;
* **still drifting** — the drift is larger, or (when the time α of the state is given, e.g. for
  the end of a trajectory) ε_g still changes: :math:`|d\ln\epsilon_g/d\ln\alpha|` >
  ``exponent_tol``. The result reports the drift and that rate.

When the Jacobian cannot be evaluated (ReLU units of zero norm or parallel ReLU units, where the
drift is not differentiable) a stationary state is classified **stationary, stability unknown**.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._common import check_number
from .fixed_points import _check_state_setup, _safe_spectrum, count_unstable, zero_tol
from .ode import Drift
from .order_parameters import OrderParameters, Setup
from .slow_modes import local_exponents
from .trajectory import Trajectory

__all__ = ["KINDS", "Classification", "classify"]

#: The possible ``kind`` values of a :class:`Classification`.
KINDS = ("fixed point", "saddle", "still drifting", "stationary, stability unknown")


@dataclass(frozen=True, eq=False)
class Classification:
    r"""What a state of the ODEs is (:func:`classify`).

    Attributes
    ----------
    kind : one of :data:`KINDS`.
    state : the classified OrderParameters.
    setup : the Setup whose drift was evaluated.
    alpha : the time α of the state (None when not given); enables ``eg_exponent``.
    eg : generalisation error ε_g at the state.
    drift_norm : max|F(y)| of the packed drift (Q upper triangle, R, and v if trained).
    scale : max|y|, the scale of the packed state.
    drift_tol : ``drift_rtol`` · scale: the largest drift of a stationary state.
    eg_exponent : :math:`d\ln\epsilon_g/d\ln\alpha = \alpha\,(\nabla\epsilon_g\cdot F)/\epsilon_g`
        at the state (:func:`tsode.slow_modes.local_exponents`; None without ``alpha``).
    exponent_tol : largest |eg_exponent| of a stationary state (used only with ``alpha``).
    eigenvalues : (size,) complex eigenvalues of the Jacobian of the packed drift, sorted by
        decreasing real part (NaN when the drift is not differentiable there).
    min_abs_eigenvalue : smallest |λ|: the slowest direction (its time scale 1/|λ|).
    max_real : largest Re λ.
    n_unstable : number of eigenvalues with Re λ > ``zero_tol``
        (:func:`tsode.fixed_points.count_unstable`).
    zero_tol : :func:`tsode.fixed_points.zero_tol` of the spectrum.
    note : why the spectrum is missing, if it is.
    """

    kind: str
    state: OrderParameters
    setup: Setup
    alpha: float | None
    eg: float
    drift_norm: float
    scale: float
    drift_tol: float
    eg_exponent: float | None
    exponent_tol: float
    eigenvalues: np.ndarray
    min_abs_eigenvalue: float
    max_real: float
    n_unstable: int
    zero_tol: float
    note: str = ""

    @property
    def relative_drift(self) -> float:
        """drift_norm / scale: the fraction of its scale the state moves per unit α."""
        return self.drift_norm / self.scale

    @property
    def stationary(self) -> bool:
        """True for a fixed point, a saddle or a stationary state of unknown stability."""
        return self.kind != "still drifting"

    def __str__(self):
        at = "" if self.alpha is None else f" at alpha = {self.alpha:.3g}"
        rate = ("" if self.eg_exponent is None
                else f", d ln eg / d ln alpha = {self.eg_exponent:+.3g}")
        spec = ("no spectrum" if not np.isfinite(self.max_real) else
                f"{self.n_unstable} unstable (largest Re λ = {self.max_real:+.3g}), "
                f"smallest |λ| = {self.min_abs_eigenvalue:.3g}")
        return (f"{self.kind}{at}: eg = {self.eg:.4g}, max|drift| = {self.drift_norm:.2g} "
                f"({self.relative_drift:.2g} of max|y|){rate}; {spec}")


def classify(
    state,
    setup: Setup,
    *,
    alpha: float | None = None,
    drift_rtol: float = 1e-9,
    exponent_tol: float = 1e-3,
    rel_step: float = 1e-7,
) -> Classification:
    r"""Classify ``state`` as "fixed point", "saddle" or "still drifting" (module docstring).

    Parameters
    ----------
    state : OrderParameters, or a Trajectory (its final state, at its last time unless ``alpha``
        is given). A Trajectory with a run axis (SGD) is refused: classify one run's state.
    setup : the Setup of the ODEs.
    alpha : time α > 0 of the state; with it the classification also requires
        |d ln ε_g / d ln α| <= ``exponent_tol`` for a stationary state (a state on a slow
        power-law drift has a drift that decays with α, but ε_g still changes by a fixed
        fraction per decade).
    drift_rtol : > 0, the largest max|F| / max|y| of a stationary state. The default 1e-9 is far
        above the residual of a Newton-polished fixed point (~1e-17) and of an exponentially
        converged integration, and far below the drift of a state still moving on a time scale
        α ≲ 1e8.
    exponent_tol : > 0, see ``alpha``.
    rel_step : > 0, relative finite-difference step of the Jacobian.

    Returns
    -------
    :class:`Classification`.

    Raises
    ------
    TypeError : ``state`` is not an OrderParameters or a Trajectory, or ``setup`` not a Setup.
    ValueError : a bad number, a Trajectory of several runs, or a state whose drift is not finite.
    """
    if isinstance(state, Trajectory):
        if state.n_runs is not None:
            raise ValueError(
                f"state is a Trajectory of {state.n_runs} runs; classify one run's state, "
                "e.g. traj.state(-1, run=0)"
            )
        if alpha is None:
            alpha = float(state.alpha[-1])
    state = _check_state_setup(state, setup)
    if alpha is not None:
        alpha = check_number(alpha, "alpha", strict=True)
    drift_rtol = check_number(drift_rtol, "drift_rtol", strict=True)
    exponent_tol = check_number(exponent_tol, "exponent_tol", strict=True)
    rel_step = check_number(rel_step, "rel_step", strict=True, upper=0.1)
    f = Drift.from_state(state, setup)
    y = f.pack_state(state)
    F = f(0.0, y)
    if not np.all(np.isfinite(F)):
        raise ValueError("the drift is not finite at this state (overlaps outside the domain "
                         "of the integrals?)")
    drift = float(np.abs(F).max())
    scale = float(np.abs(y).max())
    if scale == 0:
        raise ValueError("the state is zero (Q = R = 0 and v frozen or 0): no scale to compare "
                         "the drift with")
    exponent = None if alpha is None else float(local_exponents(f, y[None], [alpha])[0])
    ev, note = _safe_spectrum(f, y, rel_step)
    finite = bool(np.all(np.isfinite(ev)))
    moving = drift > drift_rtol * scale or (exponent is not None and abs(exponent) > exponent_tol)
    n_unstable = int(count_unstable(ev)) if finite else 0
    if moving:
        kind = "still drifting"
    elif not finite:
        kind = "stationary, stability unknown"
    else:
        kind = "saddle" if n_unstable else "fixed point"
    nan = float("nan")
    return Classification(
        kind=kind, state=state, setup=setup, alpha=alpha, eg=float(f.eg(y)), drift_norm=drift,
        scale=scale, drift_tol=drift_rtol * scale, eg_exponent=exponent,
        exponent_tol=exponent_tol, eigenvalues=ev,
        min_abs_eigenvalue=float(np.abs(ev).min()) if finite else nan,
        max_real=float(ev.real.max()) if finite else nan, n_unstable=n_unstable,
        zero_tol=float(zero_tol(ev)) if finite else nan, note=note.lstrip("; "),
    )
