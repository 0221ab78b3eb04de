r"""Asymptotics of online SGD: fixed points, final generalisation errors, stability, slow modes.

The ODEs of :mod:`tsode.ode` are an autonomous system :math:`\dot y = F(y)` for the packed state
:math:`y` = (upper triangle of Q, R, and v when :math:`\eta_v > 0`). A *fixed point* solves
:math:`F(y^*) = 0`; its *stability* is read from the spectrum of the Jacobian
:math:`J = \partial F/\partial y` at :math:`y^*` (all real parts < 0: linearly stable; eigenvalues
with :math:`|\mathrm{Re}\,\lambda|` far below the rest: *soft* or *slow* modes, which set the
time scale :math:`\alpha \sim 1/|\lambda|` on which a "final" error is actually reached).

Contents
--------
* :func:`fixed_point` — damped Newton on the packed drift, started from a guess (typically the
  end of a long integration); returns a :class:`FixedPoint` (state, ε_g*, spectrum, soft modes).
* :func:`integrate_to_fixed_point` — integrate, then polish with :func:`fixed_point`
  (how ReLU fixed points are found from the paper's small initialisation).
* Closed forms: :func:`linear_eg_star` (exact, linear, first layer only) and
  :func:`erf_eg_star_leading` (erf, first layer only, leading order in η).
* :func:`erf_symmetric_fixed_point` — the exact erf first-layer fixed point under the symmetric
  ansatz (M specialised units, L equivalent extra units, v = v* = 1, T = I).
* :func:`denoising_fixed_point` — erf, both layers: student units copying teacher units and
  sharing their output weight.
* :func:`describe` — which student aligns with which teacher, copies, splits, dead units,
  anti-aligned pairs, second-layer weights.
* :func:`slow_mode_scan` and :func:`fit_power_law` — characterise slow drifts (erf first layer
  with L >= 2; linear networks with both layers trained, ε_g ∝ α^(-1/2)).

All derivatives are those of :class:`tsode.ode.Drift`; nothing here re-implements the ODEs.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ._common import covariance, fd_jacobian, is_psd
from .ode import Drift, _culprit, integrate
from .order_parameters import (
    OrderParameters,
    Setup,
    check_int,
    check_number,
    generalisation_error,
    initial_state,
)
from .trajectory import Trajectory

__all__ = [
    "FixedPoint",
    "FixedPointError",
    "fixed_point",
    "stability",
    "integrate_to_fixed_point",
    "linear_eg_star",
    "erf_eg_star_leading",
    "erf_symmetric_fixed_point",
    "ANSATZ_PARAMETERS",
    "denoising_fixed_point",
    "Description",
    "describe",
    "SlowModeScan",
    "slow_mode_scan",
    "fit_power_law",
    "local_exponents",
    "power_law_slope_error",
]


class FixedPointError(RuntimeError):
    """The root finder did not reach a physical fixed point (the message says why)."""


# ---------------------------------------------------------------------------------------------
# closed forms
# ---------------------------------------------------------------------------------------------

def linear_eg_star(K: int, eta: float, sigma: float) -> float:
    r"""Exact asymptotic error of a linear student, first layer only (v = v* = 1).

    All K units receive the same update, so only :math:`s = \sum_k w_k` matters and it performs
    online regression with learning rate :math:`\eta K`; with :math:`e = |s - s^*|^2/N`,
    :math:`\dot e = -\eta K (2 - \eta K) e + (\eta K)^2 \sigma^2`, hence

    .. math::  \epsilon_g^* = \frac{\eta \sigma^2 K}{2 (2 - \eta K)},

    stable if and only if :math:`\eta K < 2`.

    Raises ``ValueError`` for :math:`\eta K \ge 2` (no stable fixed point: the error diverges).
    """
    K = check_int(K, "K", 1)
    eta = check_number(eta, "eta", strict=True)
    sigma = check_number(sigma, "sigma")
    if eta * K >= 2:
        raise ValueError(
            f"no stable fixed point for a linear network with eta*K >= 2 (eta={eta}, K={K}, "
            f"eta*K={eta * K:g}); need eta < {2 / K:g}"
        )
    return eta * sigma**2 * K / (2 * (2 - eta * K))


def erf_eg_star_leading(M: int, L: int, eta: float, sigma: float) -> float:
    r"""Leading order in η of the erf first-layer asymptotic error (Goldt et al. 2019):

    .. math::  \epsilon_g^* \approx \frac{\eta \sigma^2}{2\pi}\Big(L + \frac{M}{\sqrt 3}\Big),

    for M teacher units, K = M + L student units, v = v* = 1, T = I.
    """
    M = check_int(M, "M", 1)
    L = check_int(L, "L", 0)
    eta = check_number(eta, "eta", strict=True)
    sigma = check_number(sigma, "sigma")
    return eta * sigma**2 / (2 * np.pi) * (L + M / np.sqrt(3.0))


# ---------------------------------------------------------------------------------------------
# Newton iteration and the FixedPoint result
# ---------------------------------------------------------------------------------------------

def _fd_jacobian(F, y, rel_step=1e-7):
    """Central finite-difference Jacobian of a batched F (..., n) -> (..., m) at y (n,)."""
    return fd_jacobian(F, y, rel_step)


def _newton(F, jac, y0, *, tol, max_iter, admissible=lambda y: True):
    """Damped Newton (least-squares steps, backtracking on max|F|).

    Least-squares steps (``numpy.linalg.lstsq``) keep the iteration defined when J is singular,
    as it is on manifolds of fixed points (linear networks). Returns (y, residual, n_iter, message,
    ok) where ok means max|F(y)| <= tol.
    """
    y = np.array(y0, dtype=float)
    if not admissible(y):
        return y, np.inf, 0, (
            "the starting point is not admissible (its overlaps are not a Gram matrix, i.e. "
            "[[Q, R], [R^T, T]] is not positive semi-definite)"
        ), False
    Fy = F(y)
    if not np.all(np.isfinite(Fy)):
        return y, np.inf, 0, "the drift is not finite at the starting point", False
    res = np.abs(Fy).max()
    for it in range(1, max_iter + 1):
        if res <= tol:
            return y, res, it - 1, f"converged: max|drift| = {res:.3g} <= tol = {tol:.3g}", True
        try:
            J = jac(y)
        except ValueError as err:  # a finite-difference step left the domain of the integrals
            return y, res, it, (
                f"the finite-difference Jacobian could not be evaluated ({err}): the state is "
                "within a finite-difference step of the boundary of the Gram-matrix cone"
            ), False
        if not np.all(np.isfinite(J)):
            return y, res, it, "the Jacobian became non-finite", False
        step = np.linalg.lstsq(J, -Fy, rcond=None)[0]
        t = 1.0
        while t >= 2.0**-20:
            y_new = y + t * step
            if admissible(y_new):
                try:
                    F_new = F(y_new)
                except ValueError:  # outside the domain of the integrals: shorten the step
                    F_new = None
                if F_new is not None and np.all(np.isfinite(F_new)) and np.abs(F_new).max() < res:
                    break
            t /= 2
        else:
            return y, res, it, (
                f"the line search stalled at max|drift| = {res:.3g} > tol = {tol:.3g} (no step "
                "along the Newton direction reduces the drift: probably no fixed point near the "
                "guess, or tol below the round-off of the drift)"
            ), False
        y, Fy, res = y_new, F_new, np.abs(F_new).max()
    if res <= tol:
        return y, res, max_iter, f"converged: max|drift| = {res:.3g} <= tol = {tol:.3g}", True
    return y, res, max_iter, (
        f"no convergence after max_iter = {max_iter} Newton steps: max|drift| = {res:.3g} > "
        f"tol = {tol:.3g} (start from the end of a longer integration)"
    ), False


def _is_psd(Q, R, T):
    return is_psd(covariance(Q, R, T))


class _Reduction:
    """Drift restricted to an invariant set on which the overlaps take few distinct values.

    Every entry of Q (K,K), R (K,M) and, if trained, v (K,) is assigned a class; the parameters
    p (..., P) are the values of the classes, ``full(p)`` embeds them (a linear one-hot map) and
    ``F(p)`` is the full drift of :class:`tsode.ode.Drift` averaged over the entries of each class
    (on an invariant set all entries of a class have the same drift, so this is exact there).
    """

    def __init__(self, f: Drift, labQ, labR, labv=None):
        self.f = f
        K, M = f.K, f.M
        parts = [np.asarray(labQ).ravel(), np.asarray(labR).ravel()]
        if f.train_v:
            parts.append(np.asarray(labv).ravel())
        lab = np.concatenate(parts)
        classes, lab = np.unique(lab, return_inverse=True)
        self.n = len(classes)
        self.E = np.zeros((self.n, lab.size))
        self.E[lab, np.arange(lab.size)] = 1.0
        self.P = self.E / self.E.sum(axis=1, keepdims=True)
        self.sizes = (K * K, K * M)

    def full(self, p):
        """(Q, R, v) of shape (..., K, K), (..., K, M), (..., K) from parameters (..., P)."""
        f, (nq, nr) = self.f, self.sizes
        x = np.asarray(p) @ self.E
        lead = x.shape[:-1]
        Q = x[..., :nq].reshape(lead + (f.K, f.K))
        R = x[..., nq : nq + nr].reshape(lead + (f.K, f.M))
        v = x[..., nq + nr :] if f.train_v else np.broadcast_to(f.v_frozen, lead + (f.K,))
        return Q, R, v

    def reduce(self, Q, R, v):
        """Class averages of (Q, R, v): the parameters of the nearest state on the set."""
        parts = [np.ravel(Q), np.ravel(R)] + ([np.ravel(v)] if self.f.train_v else [])
        return self.P @ np.concatenate(parts)

    def F(self, p):
        Q, R, v = self.full(p)
        dQ, dR, dv = self.f.derivatives(Q, R, v)
        lead = Q.shape[:-2]
        parts = [dQ.reshape(lead + (-1,)), dR.reshape(lead + (-1,))]
        if self.f.train_v:
            parts.append(dv)
        return np.concatenate(parts, axis=-1) @ self.P.T

    def admissible(self, p):
        Q, R, _ = self.full(p)
        return bool(np.all(np.isfinite(p))) and _is_psd(Q, R, self.f.T)

    def solve(self, p0, *, tol, max_iter):
        return _newton(self.F, lambda p: _fd_jacobian(self.F, p), p0, tol=tol,
                       max_iter=max_iter, admissible=self.admissible)


def _coincident_groups(state: OrderParameters, train_v: bool, tol: float):
    """Group index (K,) of student units that coincide: 1 - Q_kl/sqrt(Q_kk Q_ll) <= tol,
    |Q_kk - Q_ll| <= tol max(Q_kk, Q_ll) and, if v is trained, |v_k - v_l| <= tol max|v|."""
    Q, v = np.asarray(state.Q), np.asarray(state.v)
    K = state.K
    d = np.sqrt(np.maximum(np.diag(Q), 1e-300))
    corr = Q / np.outer(d, d)
    group = np.arange(K)
    vscale = max(np.abs(v).max(), 1e-300)
    for k in range(K):
        for l in range(k):
            same = (1 - corr[k, l] <= tol
                    and abs(Q[k, k] - Q[l, l]) <= tol * max(Q[k, k], Q[l, l])
                    and (not train_v or abs(v[k] - v[l]) <= tol * vscale))
            if same and Q[k, k] > 0:
                group[k] = group[l]
                break
    _, group = np.unique(group, return_inverse=True)
    return group


def _group_labels(group, M):
    """Class labels of Q, R, v when the units of each group coincide."""
    G = group.max() + 1
    pair = np.full((G, G), -1)
    iu = np.triu_indices(G)
    pair[iu] = np.arange(len(iu[0]))
    pair = np.maximum(pair, pair.T)
    labQ = pair[np.ix_(group, group)]
    labR = len(iu[0]) + group[:, None] * M + np.arange(M)[None, :]
    labv = len(iu[0]) + G * M + group
    return labQ, labR, labv


@dataclass(frozen=True, eq=False)
class FixedPoint:
    """A fixed point of the order-parameter ODEs and its linear stability.

    Attributes
    ----------
    state : OrderParameters at the fixed point (for a failed solve: the last admissible iterate).
    setup : the Setup whose drift vanishes there.
    eg : generalisation error ε_g* at ``state``.
    eigenvalues : (size,) complex, eigenvalues of the Jacobian of the packed drift
        (``tsode.ode.Drift``), sorted by decreasing real part (least stable first).
    converged : max|drift| <= tol was reached.
    residual : max|drift| (packed) at ``state``.
    soft_tol : threshold below which |Re λ| counts as a soft mode (see also ``zero_tol``,
        ``n_unstable``, ``stable``).
    message : what the solver did (reason of failure included).
    n_iter : Newton steps taken.
    parameters : for ansatz solutions, the distinct overlaps (name -> value).
    trajectory : for :func:`integrate_to_fixed_point`, the integration that produced the guess.
    """

    state: OrderParameters
    setup: Setup
    eg: float
    eigenvalues: np.ndarray
    converged: bool
    residual: float
    soft_tol: float
    message: str
    n_iter: int = 0
    parameters: dict = field(default_factory=dict)
    trajectory: Trajectory | None = None

    @property
    def zero_tol(self) -> float:
        """|Re λ| below this is indistinguishable from 0 (finite-difference Jacobian accuracy):
        1e-8 · max|Re λ|."""
        return 1e-8 * float(np.abs(self.eigenvalues.real).max())

    @property
    def soft_modes(self) -> np.ndarray:
        """Eigenvalues with |Re λ| < soft_tol (near-zero modes: slow, marginal or slowly
        unstable directions)."""
        return self.eigenvalues[np.abs(self.eigenvalues.real) < self.soft_tol]

    @property
    def n_soft(self) -> int:
        return int(self.soft_modes.size)

    @property
    def n_unstable(self) -> int:
        """Number of eigenvalues with Re λ > zero_tol (unstable directions, however slow)."""
        return int(np.sum(self.eigenvalues.real > self.zero_tol))

    @property
    def max_real(self) -> float:
        """Largest real part of the spectrum (> 0: unstable, however slowly)."""
        return float(self.eigenvalues.real.max())

    @property
    def stable(self) -> bool:
        """Converged and every eigenvalue has Re λ < -zero_tol (linearly stable; soft but
        negative modes are allowed and listed in ``soft_modes``)."""
        return bool(self.converged and self.max_real < -self.zero_tol)

    def __str__(self):
        status = "converged" if self.converged else "NOT converged"
        if self.stable:
            kind = "stable"
        elif self.n_unstable:
            kind = f"unstable ({self.n_unstable} directions, largest Re λ = {self.max_real:.3g})"
        else:
            kind = f"marginal ({self.n_soft} soft modes, largest Re λ = {self.max_real:.2g})"
        return (
            f"FixedPoint(K={self.state.K}, M={self.state.M}, {self.setup.activation}, "
            f"eg*={self.eg:.6g}, {status}, residual={self.residual:.2g}, {kind}, "
            f"n_soft={self.n_soft}, slowest Re λ={self.eigenvalues.real[0]:.3g})"
        )


def _spectrum(J):
    ev = np.linalg.eigvals(J)
    return ev[np.lexsort((-ev.imag, -ev.real))]


def _soft_tol(ev, soft_tol, soft_rtol):
    if soft_tol is not None:
        return check_number(soft_tol, "soft_tol")
    return soft_rtol * float(np.abs(ev.real).max()) if ev.size else 0.0


def _drift_of(state: OrderParameters, setup: Setup) -> Drift:
    return Drift.from_state(state, setup)


def _check_state_setup(guess, setup):
    if isinstance(guess, Trajectory):
        guess = guess.final
    if not isinstance(guess, OrderParameters):
        raise TypeError(
            f"guess must be an OrderParameters (or a Trajectory), got {type(guess).__name__}"
        )
    if not isinstance(setup, Setup):
        raise TypeError(f"setup must be a Setup, got {type(setup).__name__}")
    return guess


def stability(state: OrderParameters, setup: Setup, *, soft_tol=None, soft_rtol=1e-3,
              rel_step=1e-7):
    """Eigenvalues (sorted by decreasing real part) of the packed drift's Jacobian at ``state``,
    and the soft-mode threshold used. See :class:`FixedPoint` for the conventions."""
    state = _check_state_setup(state, setup)
    f = _drift_of(state, setup)
    y = f.pack(np.asarray(state.Q), np.asarray(state.R), np.asarray(state.v))
    ev, _ = _safe_spectrum(f, y, rel_step)
    return ev, _soft_tol(ev, soft_tol, soft_rtol)


def fixed_point(
    guess,
    setup: Setup,
    *,
    tol: float = 1e-12,
    max_iter: int = 50,
    soft_tol: float | None = None,
    soft_rtol: float = 1e-3,
    rel_step: float = 1e-7,
    coincident_tol: float | None = 1e-8,
    raise_on_failure: bool = True,
) -> FixedPoint:
    r"""Solve :math:`F(y) = 0` for the full K×M system by damped Newton from ``guess``.

    The unknowns are the packed state of :class:`tsode.ode.Drift`: the K(K+1)/2 upper-triangle
    entries of Q, the K·M entries of R and, when the second layer is trained (η_v > 0), the K
    entries of v (T and v* are constants; a frozen v stays at ``guess.v``). Each Newton step
    solves :math:`J\,\delta = -F` in the least-squares sense (so that manifolds of fixed points,
    e.g. of linear networks, are handled) with the batched central-difference Jacobian of
    ``Drift``, and backtracks until max|F| decreases while the overlaps stay a Gram matrix.

    Student units that coincide in ``guess`` (identical vectors: correlation 1, equal norms and,
    if v is trained, equal v — up to ``coincident_tol``) stay identical under the ODEs; such
    states lie on the boundary of the positive semi-definite cone, where an unconstrained Newton
    step leaves the physical domain. The equations are then solved on the invariant set where
    those units coincide (class-averaged drift, see the ``message``); the residual reported is
    still that of the full system and the eigenvalues those of the full Jacobian.

    For erf the integrals are analytic across that boundary, so the spectrum there is
    meaningful. For ReLU the drift is not differentiable where two units (or a unit and a teacher
    unit) are parallel — copies and split units — and the finite-difference spectrum at such
    points is only indicative.

    Parameters
    ----------
    guess : OrderParameters (or a Trajectory, whose final state is used).
    setup : Setup.
    tol : convergence when max|drift| <= tol (absolute; the drift is O(η) away from fixed
        points). The error of the state is about tol/|slowest eigenvalue|.
    max_iter : maximal number of Newton steps.
    soft_tol : absolute threshold for soft modes, |Re λ| < soft_tol; default
        ``soft_rtol * max|Re λ|`` (soft_rtol = 1e-3: modes a thousand times slower than the
        fastest one).
    rel_step : relative finite-difference step of the Jacobian.
    coincident_tol : tolerance for detecting coincident units; None disables the reduction.
    raise_on_failure : if True (default) a failure raises :class:`FixedPointError`; if False a
        :class:`FixedPoint` with ``converged=False`` and the reason in ``message`` is returned
        (its state is the last admissible iterate).

    Returns
    -------
    FixedPoint with the spectrum of the Jacobian at the solution.

    Raises
    ------
    FixedPointError : no convergence within max_iter, stalled line search (no fixed point near
        the guess, or one on the boundary of the physical domain), non-finite drift.
    TypeError / ValueError : wrong argument types or ranges.
    """
    guess = _check_state_setup(guess, setup)
    tol = check_number(tol, "tol", strict=True)
    max_iter = check_int(max_iter, "max_iter", 1)
    soft_rtol = check_number(soft_rtol, "soft_rtol", upper=1.0)
    rel_step = check_number(rel_step, "rel_step", strict=True, upper=1e-2)
    f = _drift_of(guess, setup)
    group = np.arange(guess.K)
    if coincident_tol is not None:
        coincident_tol = check_number(coincident_tol, "coincident_tol", upper=1.0)
        group = _coincident_groups(guess, f.train_v, coincident_tol)
    y, res, n_iter, message, ok = _solve(f, guess, group, tol, max_iter, rel_step)
    if not ok and not np.isfinite(res):
        message += f"; {_culprit(f, f.pack_state(guess))} is probably too large"
    if not ok:
        message += _failure_hint(guess.replace(**dict(zip("QRv", _sym(*f.unpack(y))))), setup)
    if not ok and raise_on_failure:
        raise FixedPointError(
            f"fixed_point (K={guess.K}, M={guess.M}, {setup.activation}, eta={setup.eta}, "
            f"eta_v={setup.eta_v}, sigma={setup.sigma}): {message}"
        )
    return _result(f, y, guess, setup, res, ok, message, n_iter, soft_tol, soft_rtol, rel_step)


def _solve(f: Drift, guess: OrderParameters, group, tol, max_iter, rel_step):
    """Newton for :func:`fixed_point`: on the invariant set where the units of each ``group``
    coincide if some do, else on the full packed state. Returns (y, residual, n_iter, message,
    ok) with the residual of the full system."""
    Q0, R0, v0 = np.asarray(guess.Q), np.asarray(guess.R), np.asarray(guess.v)
    if group.max() + 1 < guess.K:
        red = _Reduction(f, *_group_labels(group, guess.M))
        p, res, n_iter, message, ok = red.solve(red.reduce(Q0, R0, v0), tol=tol,
                                                max_iter=max_iter)
        y = f.pack(*red.full(p))
        res = float(np.abs(f(0.0, y)).max())
        sets = [tuple(np.flatnonzero(group == g).tolist()) for g in range(group.max() + 1)]
        note = ("solved on the invariant set where the units "
                f"{', '.join(str(s_) for s_ in sets if len(s_) > 1)} coincide; ")
        return y, res, n_iter, note + message, ok and res <= tol

    def admissible(y):
        Q, R, _ = f.unpack(y)
        return bool(np.all(np.isfinite(y))) and _is_psd(Q, R, f.T)

    return _newton(lambda y: f(0.0, y), lambda y: f.jacobian(0.0, y, rel_step=rel_step),
                   f.pack(Q0, R0, v0), tol=tol, max_iter=max_iter, admissible=admissible)


def _sym(Q, R, v):
    return (Q + Q.T) / 2, R, np.array(v)


def _failure_hint(state: OrderParameters, setup: Setup) -> str:
    """Why Newton may fail at this state, read off :func:`describe`."""
    d = describe(state)
    alive = [k for k, r in enumerate(d.roles) if r not in ("dead", "silent")]
    parallel = [(k, l) for i, k in enumerate(alive) for l in alive[i + 1:]
                if d.student_cos[k, l] >= 0.99]
    hints = []
    if parallel:
        hints.append(
            f"units {parallel} are nearly parallel (cos >= 0.99): fixed points with copied or "
            "split units lie on the boundary of the Gram-matrix cone"
            + (", where the ReLU drift is not differentiable and, by positive homogeneity, "
               "can form a continuum (a soft mode)" if setup.activation == "relu" else "")
        )
    small = [k for k, r in enumerate(d.roles) if r in ("dead", "silent")]
    if small and setup.train_second_layer:
        hints.append(f"units {small} have a small norm or output weight and may be being "
                     "pruned (w, v -> 0), a fixed point approached only slowly")
    if not hints:
        return ""
    return "; hint: " + "; ".join(hints) + "; read the error from a long integration instead"


#: The drift counts as not differentiable when max|J| grows by more than this factor as the
#: finite-difference step shrinks a hundredfold (a smooth drift: ~1; sqrt-type singularities,
#: e.g. ReLU units of zero norm: ~10).
_BLOWUP = 3.0


def _safe_spectrum(f: Drift, y, rel_step):
    """Spectrum of the FD Jacobian; near the boundary of the Gram-matrix cone a central step can
    leave the domain of the integrals (ReLU raises there): retry with steps 10 and 100 times
    smaller, else return NaNs and say so. NaNs too, with the reason, when the Jacobian blows up
    as the step shrinks (the drift is not differentiable there: its 'eigenvalues' would be
    finite-difference artefacts of size ~1/sqrt(step))."""
    for step in (rel_step, rel_step / 10, rel_step / 100):
        try:
            J = f.jacobian(0.0, y, rel_step=step)
            big, small = np.abs(J).max(), np.abs(f.jacobian(0.0, y, rel_step=step / 100)).max()
        except ValueError as err:
            reason = str(err)
            continue
        if small > _BLOWUP * max(big, 1e-300):
            return np.full(f.size, np.nan + 0j), (
                f"; no spectrum: the drift is not differentiable at this state (max|J| grows "
                f"from {big:.3g} to {small:.3g} as the finite-difference step shrinks from "
                f"{step:.0e} to {step / 100:.0e}, e.g. ReLU units of zero norm)")
        return _spectrum(J), ("" if step == rel_step else f"; spectrum with FD step {step:.0e}")
    return np.full(f.size, np.nan + 0j), (
        f"; spectrum unavailable: the FD Jacobian leaves the physical domain ({reason})")


def _result(f, y, guess, setup, res, ok, message, n_iter, soft_tol, soft_rtol, rel_step,
            **extra):
    Q, R, v = f.unpack(y)
    state = guess.replace(Q=(Q + Q.T) / 2, R=R, v=np.array(v))
    ev, note = _safe_spectrum(f, y, rel_step)
    return FixedPoint(
        state=state, setup=setup, eg=generalisation_error(state, setup.activation),
        eigenvalues=ev, converged=ok, residual=float(res),
        soft_tol=_soft_tol(ev, soft_tol, soft_rtol), message=message + note, n_iter=n_iter,
        **extra,
    )


def integrate_to_fixed_point(
    state0: OrderParameters,
    setup: Setup,
    alpha_max: float,
    *,
    rtol: float = 1e-10,
    atol: float = 1e-14,
    **fixed_point_kwargs,
) -> FixedPoint:
    """Integrate the ODEs from ``state0`` to ``alpha_max`` and polish the end with
    :func:`fixed_point` (same keyword arguments). The trajectory is kept in the result.

    This is how fixed points without a closed form (ReLU) are found: start from the paper's
    initialisation, e.g. ``initial_state(K, M, kind="small")``, integrate well past the
    plateaus, then let Newton remove the remaining slow drift.

    What to expect for ReLU (measured, η = 0.1, σ = 0.1): K = M with the first layer only
    polishes to machine precision; over-parameterised students split teacher directions between
    nearly parallel units, where the ReLU drift is not differentiable, and Newton reports failure
    (with a hint); with both layers trained ReLU behaves like the linear network (positive
    homogeneity): |w| grows, v shrinks and ε_g decays like α^(-1/2), so there is no finite fixed
    point to polish (see :func:`slow_mode_scan`). Failures come back as ``converged=False`` only
    with ``raise_on_failure=False``.
    """
    traj = integrate(state0, setup, alpha_max, rtol=rtol, atol=atol)
    fp = fixed_point(traj.final, setup, **fixed_point_kwargs)
    return replace(fp, trajectory=traj)


# ---------------------------------------------------------------------------------------------
# erf, first layer only: the symmetric ansatz
# ---------------------------------------------------------------------------------------------

#: Names of the distinct overlaps of the symmetric ansatz (units 0..M-1 specialised on teacher
#: units 0..M-1, units M..K-1 the L extra units).
ANSATZ_PARAMETERS = (
    "Q_spec",        # Q_mm, m < M            (norm² of a specialised unit)
    "Q_spec_cross",  # Q_mm', m != m' < M     (between specialised units)
    "R_diag",        # R_mm                   (specialised unit m on its teacher unit m)
    "R_off",         # R_mn, m != n           (specialised unit on another teacher unit)
    "Q_extra",       # Q_ee                   (norm² of an extra unit)
    "Q_extra_cross", # Q_ee', e != e'         (between extra units; = Q_extra when they coincide)
    "Q_extra_spec",  # Q_em                   (extra unit with a specialised unit)
    "R_extra",       # R_en                   (extra unit on any teacher unit)
)


def _ansatz_classes(M, L, coincident):
    """Class index (into ANSATZ_PARAMETERS) of every entry of Q (K,K) and R (K,M)."""
    K = M + L
    labQ = np.empty((K, K), dtype=int)
    labR = np.empty((K, M), dtype=int)
    for i in range(K):
        for j in range(K):
            if i < M and j < M:
                labQ[i, j] = 0 if i == j else 1
            elif i >= M and j >= M:
                labQ[i, j] = 4 if (i == j or coincident) else 5
            else:
                labQ[i, j] = 6
        for n in range(M):
            labR[i, n] = (2 if i == n else 3) if i < M else 7
    return labQ, labR


def erf_symmetric_fixed_point(
    M: int,
    L: int,
    eta: float,
    sigma: float,
    *,
    coincident_extras: bool = True,
    guess: dict | None = None,
    tol: float = 1e-13,
    max_iter: int = 50,
    soft_tol: float | None = None,
    soft_rtol: float = 1e-3,
    raise_on_failure: bool = True,
) -> FixedPoint:
    r"""Exact erf fixed point, first layer only, under the symmetric ansatz.

    Set-up: g = erf(x/√2), K = M + L student units, v = v* = 1, T = I (exactly), learning rate
    η, label noise σ, second layer frozen. Ansatz: student unit m < M is specialised on teacher
    unit m and all M specialised units are equivalent; the L extra units are equivalent and treat
    all teacher and specialised units alike. The overlaps then take at most eight distinct
    values (:data:`ANSATZ_PARAMETERS`):

    .. math::

        Q = \begin{pmatrix} (q_s - c_s) I + c_s \mathbf 1\mathbf 1^\top
                                & d\,\mathbf 1\mathbf 1^\top\\
                            d\,\mathbf 1\mathbf 1^\top & (q_e - c_e) I + c_e \mathbf 1\mathbf 1^\top
            \end{pmatrix},\quad
        R = \begin{pmatrix} (r - r_o) I + r_o \mathbf 1\mathbf 1^\top \\ r_e \mathbf 1\mathbf 1^\top
            \end{pmatrix}

    (q_s = Q_spec, c_s = Q_spec_cross, r = R_diag, r_o = R_off, q_e = Q_extra,
    c_e = Q_extra_cross, d = Q_extra_spec, r_e = R_extra). This set is invariant under the ODEs
    (it is the set of states symmetric under simultaneous permutations of teacher units with their
    specialised students and of the extra units), so on it the full drift of
    :class:`tsode.ode.Drift` is itself of ansatz form; the reduced drift of each parameter is the
    average of the full drift over the entries of its class, and the reduced equations are solved
    by damped Newton. With ``coincident_extras=True`` (default) the extra units are moreover
    identical vectors, Q_extra_cross = Q_extra: the invariant set on which the fixed point lies
    that the paper's values refer to (for L >= 2 it is unstable in the full equations through
    extra units pairing with opposite signs: see :func:`slow_mode_scan`).

    Parameters
    ----------
    M : teacher units (>= 1). L : extra student units (>= 0). eta : > 0. sigma : >= 0.
    coincident_extras : tie Q_extra_cross to Q_extra (only matters for L >= 2).
    guess : optional starting values for some parameters (name -> value); defaults are the
        small-η picture Q_spec = R_diag = 1, Q_extra = ησ²/(2L), everything else 0.
    tol : convergence of the reduced Newton iteration (max|reduced drift|); the returned
        ``residual`` is max|drift| of the *full* packed system at the full state.
    soft_tol, soft_rtol, raise_on_failure : as in :func:`fixed_point`.

    Returns
    -------
    FixedPoint of the full K×M system, with ``parameters`` the distinct overlaps and the
    eigenvalues of the full Jacobian (stability in the full equations, not only on the ansatz).
    """
    M = check_int(M, "M", 1)
    L = check_int(L, "L", 0)
    eta = check_number(eta, "eta", strict=True)
    sigma = check_number(sigma, "sigma")
    tol = check_number(tol, "tol", strict=True)
    max_iter = check_int(max_iter, "max_iter", 1)
    K = M + L
    setup = Setup(activation="erf", eta=eta, eta_v=0.0, sigma=sigma)
    labQ, labR = _ansatz_classes(M, L, bool(coincident_extras))
    used = np.unique(np.concatenate([labQ.ravel(), labR.ravel()]))
    names = [ANSATZ_PARAMETERS[c] for c in used]
    # v = v* = 1, T = I; Q and R are the unknowns
    blank = OrderParameters(np.zeros((K, K)), np.zeros((K, M)), np.eye(M), np.ones(K), np.ones(M))
    f = Drift.from_state(blank, setup)
    red = _Reduction(f, labQ, labR)

    start = {"Q_spec": 1.0, "R_diag": 1.0, "Q_extra": eta * sigma**2 / (2 * max(L, 1))}
    start["Q_extra_cross"] = start["Q_extra"]
    if guess is not None:
        unknown = set(guess) - set(ANSATZ_PARAMETERS)
        if unknown:
            raise ValueError(
                f"unknown ansatz parameters {sorted(unknown)}; allowed: {ANSATZ_PARAMETERS}"
            )
        start.update({k: float(x) for k, x in guess.items()})
    p0 = np.array([start.get(n, 0.0) for n in names])
    if not red.admissible(p0):
        raise ValueError(
            f"the starting overlaps {dict(zip(names, p0.tolist()))} are not a Gram matrix "
            "([[Q, R], [R^T, T]] must be positive semi-definite); change `guess`"
        )
    p, res, n_iter, message, ok = red.solve(p0, tol=tol, max_iter=max_iter)
    if not ok and raise_on_failure:
        raise FixedPointError(
            f"erf_symmetric_fixed_point (M={M}, L={L}, eta={eta}, sigma={sigma}): {message}"
        )
    Q, R, _ = red.full(p)
    y = f.pack(Q, R, np.ones(K))
    full_res = float(np.abs(f(0.0, y)).max())
    params = dict(zip(names, map(float, p)))
    if coincident_extras and L >= 2:
        params["Q_extra_cross"] = params["Q_extra"]
    return _result(
        f, y, blank.replace(Q=Q, R=R), setup, full_res, ok, "symmetric ansatz: " + message, n_iter,
        soft_tol, soft_rtol, 1e-7, parameters=params,
    )


def denoising_fixed_point(
    K: int,
    M: int,
    eta: float,
    eta_v: float,
    sigma: float,
    *,
    v_star="ones",
    **fixed_point_kwargs,
) -> FixedPoint:
    """erf, both layers trained: the *denoising* fixed point.

    Student unit k copies teacher unit k mod M (the copies are identical vectors) and the copies
    of teacher unit m share its output weight, Σ_copies v_k ≈ v*_m. Solved by :func:`fixed_point`
    on the full K×M system (second layer included) started from
    ``initial_state(K, M, kind="denoise")``; the copies stay identical because that set is
    invariant. For M=2, η=η_v=0.1, σ=0.1 the errors are ≈ 1.886e-4, 9.31e-5, 6.18e-5, 3.69e-5
    for K = 2, 4, 6, 10 (≈ (M/K) ε_g*(K=M)).

    Parameters
    ----------
    K >= M >= 1, eta > 0, eta_v > 0, sigma >= 0; v_star as in :func:`tsode.initial_state`;
    other keyword arguments go to :func:`fixed_point`.
    """
    K = check_int(K, "K", 1)
    M = check_int(M, "M", 1)
    if K < M:
        raise ValueError(f"a denoising fixed point needs K >= M, got K={K}, M={M}")
    eta_v = check_number(eta_v, "eta_v", strict=True)
    setup = Setup(activation="erf", eta=eta, eta_v=eta_v, sigma=sigma)
    state0 = initial_state(K, M, kind="denoise", v_star=v_star)
    return fixed_point(state0, setup, **fixed_point_kwargs)


# ---------------------------------------------------------------------------------------------
# describe: the vocabulary of chapter 4
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class Description:
    r"""What a (fixed-point) state looks like, unit by unit.

    Attributes
    ----------
    cos : (K, M) normalised student-teacher overlaps :math:`R_{kn}/\sqrt{Q_{kk}T_{nn}}`.
    student_cos : (K, K) normalised student-student overlaps :math:`Q_{kl}/\sqrt{Q_{kk}Q_{ll}}`.
    norm2 : (K,) :math:`Q_{kk}`; norm_ratio : (K,) :math:`\sqrt{Q_{kk}/T_{nn}}` for the teacher
        unit n that k is closest to (``nan`` for dead units).
    v, v_star : second-layer weights.
    roles : per student unit, one of
        "specialised" (aligned, cos >= align_tol, the only live student on its teacher unit),
        "copy" (aligned with a teacher unit that has several aligned students, full norm),
        "split" (the same with a partial norm: the teacher direction is shared with partial
        norms, as positive homogeneity allows for ReLU),
        "anti-aligned" (cos <= -align_tol), "unspecialised" (no |cos| >= align_tol),
        "dead" (Q_kk < dead_tol · mean T_nn), "silent" (|v_k| < dead_tol · mean|v*|, alive).
    teacher_of : per student unit, the teacher unit it is closest to (largest |cos|) or None
        for dead units.
    aligned : teacher unit n -> students aligned with it (cos >= align_tol, alive, not silent).
    shared_v : teacher unit n -> Σ_k v_k over ``aligned[n]`` (copies share v*_n: ≈ v*_n).
    shared_v_norm : teacher unit n -> Σ_k v_k √(Q_kk/T_nn) over ``aligned[n]`` (≈ v*_n for
        split ReLU units, by positive homogeneity).
    anti_aligned_pairs : student pairs (k, l) with student_cos <= -align_tol (both alive).
    """

    cos: np.ndarray
    student_cos: np.ndarray
    norm2: np.ndarray
    norm_ratio: np.ndarray
    v: np.ndarray
    v_star: np.ndarray
    roles: tuple
    teacher_of: tuple
    aligned: dict
    shared_v: dict
    shared_v_norm: dict
    anti_aligned_pairs: tuple
    thresholds: dict

    def units(self, role: str) -> tuple:
        """Student units with the given role."""
        return tuple(k for k, r in enumerate(self.roles) if r == role)

    @property
    def dead(self) -> tuple:
        return self.units("dead")

    def _by_teacher(self, role: str) -> dict:
        """Teacher unit -> the student units of ``role`` aligned with it."""
        out = {}
        for k in self.units(role):
            out.setdefault(self.teacher_of[k], []).append(k)
        return {n: tuple(ks) for n, ks in out.items()}

    @property
    def copies(self) -> dict:
        """Teacher unit -> its student copies (only teacher units with >= 2 copies)."""
        return self._by_teacher("copy")

    @property
    def split(self) -> dict:
        """Teacher unit -> students sharing its direction with partial norms."""
        return self._by_teacher("split")

    def summary(self) -> str:
        counts = {r: len(self.units(r)) for r in dict.fromkeys(self.roles)}
        parts = [f"{n} {r}" for r, n in counts.items()]
        if self.anti_aligned_pairs:
            parts.append(f"{len(self.anti_aligned_pairs)} anti-aligned pair(s)")
        return ", ".join(parts)

    def __str__(self):
        lines = [f"K={len(self.roles)} students, M={len(self.v_star)} teachers: {self.summary()}"]
        for k, role in enumerate(self.roles):
            n = self.teacher_of[k]
            near = "" if n is None else f", teacher {n} (cos {self.cos[k, n]:+.4f})"
            lines.append(
                f"  student {k}: {role:<13s} Q_kk={self.norm2[k]:.4g}, v={self.v[k]:+.4g}{near}"
            )
        for n, ks in self.aligned.items():
            if len(ks) > 1:
                lines.append(
                    f"  teacher {n} (v*={self.v_star[n]:+.4g}) shared by students {list(ks)}: "
                    f"sum v = {self.shared_v[n]:+.4g}, sum v*norm ratio = "
                    f"{self.shared_v_norm[n]:+.4g}"
                )
        for k, l in self.anti_aligned_pairs:
            lines.append(f"  students {k} and {l} anti-aligned (cos {self.student_cos[k, l]:+.4f})")
        return "\n".join(lines)


def describe(
    state,
    *,
    align_tol: float = 0.99,
    dead_tol: float = 1e-2,
    norm_tol: float = 0.1,
) -> Description:
    r"""Classify the student units of ``state`` (an OrderParameters, FixedPoint or Trajectory).

    Parameters
    ----------
    align_tol : |cos| >= align_tol counts as aligned (0 < align_tol < 1).
    dead_tol : a unit is "dead" if Q_kk < dead_tol · mean_n T_nn and "silent" if
        |v_k| < dead_tol · mean|v*| (while alive).
    norm_tol : a unit aligned with a shared teacher unit is a "copy" if
        |√(Q_kk/T_nn) − 1| <= norm_tol, else "split".

    Returns
    -------
    Description (print it for a table).
    """
    if isinstance(state, FixedPoint):
        state = state.state
    if isinstance(state, Trajectory):
        state = state.final
    if not isinstance(state, OrderParameters):
        raise TypeError(
            "state must be an OrderParameters, FixedPoint or Trajectory, got "
            f"{type(state).__name__}"
        )
    align_tol = check_number(align_tol, "align_tol", strict=True, upper=1.0)
    dead_tol = check_number(dead_tol, "dead_tol")
    norm_tol = check_number(norm_tol, "norm_tol")
    Q, R, T = np.asarray(state.Q), np.asarray(state.R), np.asarray(state.T)
    v, vs = np.asarray(state.v), np.asarray(state.v_star)
    K, M = state.K, state.M
    qd, td = np.diag(Q), np.diag(T)
    sq = np.sqrt(np.maximum(qd, 1e-300))
    cos = R / np.outer(sq, np.sqrt(td))
    scos = Q / np.outer(sq, sq)
    dead = qd < dead_tol * td.mean()
    silent = ~dead & (np.abs(v) < dead_tol * np.abs(vs).mean())
    nearest = np.argmax(np.abs(cos), axis=1)
    c_near = cos[np.arange(K), nearest]
    ratio = np.where(dead, np.nan, np.sqrt(qd / td[nearest]))
    aligned = {n: tuple(int(k) for k in np.flatnonzero((nearest == n) & (c_near >= align_tol)
                                                       & ~dead & ~silent)) for n in range(M)}
    roles = []
    for k in range(K):
        n = nearest[k]
        if dead[k]:
            roles.append("dead")
        elif silent[k]:
            roles.append("silent")
        elif c_near[k] >= align_tol:
            if len(aligned[n]) == 1:
                roles.append("specialised")
            else:
                roles.append("copy" if abs(ratio[k] - 1) <= norm_tol else "split")
        elif c_near[k] <= -align_tol:
            roles.append("anti-aligned")
        else:
            roles.append("unspecialised")
    pairs = tuple((k, l) for k in range(K) for l in range(k + 1, K)
                  if not dead[k] and not dead[l] and scos[k, l] <= -align_tol)
    return Description(
        cos=cos, student_cos=scos, norm2=qd.copy(), norm_ratio=ratio, v=v.copy(),
        v_star=vs.copy(), roles=tuple(roles),
        teacher_of=tuple(None if dead[k] else int(nearest[k]) for k in range(K)),
        aligned={n: ks for n, ks in aligned.items() if ks},
        shared_v={n: float(v[list(ks)].sum()) for n, ks in aligned.items() if ks},
        shared_v_norm={n: float((v[list(ks)] * ratio[list(ks)]).sum())
                       for n, ks in aligned.items() if ks},
        anti_aligned_pairs=pairs,
        thresholds=dict(align_tol=align_tol, dead_tol=dead_tol, norm_tol=norm_tol),
    )


# ---------------------------------------------------------------------------------------------
# slow modes
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class SlowModeScan:
    r"""ε_g and the local dynamics at several times α of one long integration.

    Attributes
    ----------
    alpha : (P,) scan times.
    eg : (P,) generalisation error.
    local_exponent : (P,) :math:`d\ln\epsilon_g/d\ln\alpha = \alpha\,(\nabla\epsilon_g\cdot F)/
        \epsilon_g`, the instantaneous power-law exponent (≈ 0 once settled, ≈ −1/2 for the
        linear both-layer decay), from the drift F at the state of the tighter integration.
    exponent_error : (P,) accuracy of ``local_exponent``: the largest change when the solver
        tolerances are divided by 100 or the state is perturbed at 1e-12 relative.
    drift_norm : (P,) max|F| of the packed drift.
    leading_eigenvalues : (P, n_modes) complex, the Jacobian eigenvalues with the largest real
        parts at each scan time (near-zero or positive: slow/unstable directions), or empty.
    n_anti_aligned : (P,) number of anti-aligned student pairs (:func:`describe`).
    trajectory : the integration (at the tighter tolerances).
    """

    alpha: np.ndarray
    eg: np.ndarray
    local_exponent: np.ndarray
    exponent_error: np.ndarray
    drift_norm: np.ndarray
    leading_eigenvalues: np.ndarray
    n_anti_aligned: np.ndarray
    trajectory: Trajectory

    def settled_alpha(self, max_exponent: float = 0.01):
        """The first scan time from which |local_exponent| + exponent_error <= max_exponent at
        every later scan time (ε_g then changes by less than a factor 10^max_exponent per decade,
        whatever the numerical error of the exponent), or None."""
        ok = np.abs(self.local_exponent) + self.exponent_error <= max_exponent
        for i in range(len(ok)):
            if ok[i:].all():
                return float(self.alpha[i])
        return None

    def __str__(self):
        lines = ["     alpha          eg   d ln eg/d ln alpha   max|drift|   largest Re λ   "
                 "anti-aligned pairs"]
        for i, a in enumerate(self.alpha):
            lead = (f"{self.leading_eigenvalues[i, 0].real:+.3e}"
                    if self.leading_eigenvalues.size else "-")
            lines.append(f"{a:10.3g}  {self.eg[i]:10.4e}   {self.local_exponent[i]:+10.4f}"
                         f"          {self.drift_norm[i]:9.3e}    {lead:>11s}    "
                         f"{self.n_anti_aligned[i]}")
        return "\n".join(lines)


#: smallest rtol that solve_ivp accepts without clipping (100 machine epsilons), times 100 for
#: the tighter of the two integrations of :func:`slow_mode_scan`
_MIN_SCAN_RTOL = 100 * 100 * np.finfo(float).eps


def local_exponents(f: Drift, Y, alpha) -> np.ndarray:
    r"""d ln ε_g / d ln α = α (∇ε_g · F(y)) / ε_g(y) at packed states Y (P, size), times α (P,).

    Exact in α (no differencing of a trajectory): the derivative of ε_g along the drift F is a
    central difference of ε_g at fixed α, y ± h F(y), with a step h F of 1e-6 |y| (truncation
    error ~1e-12 relative, round-off ~1e-10 relative of the directional derivative).
    """
    Y = np.atleast_2d(Y)
    Fy = f(0.0, Y)
    h = 1e-6 * np.abs(Y).max(axis=1) / np.maximum(np.abs(Fy).max(axis=1), 1e-300)
    deg = (f.eg(Y + h[:, None] * Fy) - f.eg(Y - h[:, None] * Fy)) / (2 * h)
    return np.asarray(alpha) * deg / f.eg(Y)


def _exponent_error(f: Drift, Y_loose, Y_tight, alpha, rel_perturbation=1e-12, seed=0):
    """Largest change of the local exponents between the two integrations and under random
    relative perturbations of the tight states (``rel_perturbation``, 4 draws), shape (P,)."""
    p_tight = local_exponents(f, Y_tight, alpha)
    err = np.abs(local_exponents(f, Y_loose, alpha) - p_tight)
    rng = np.random.default_rng(seed)
    for _ in range(4):
        Yp = Y_tight * (1 + rel_perturbation * rng.standard_normal(Y_tight.shape))
        err = np.maximum(err, np.abs(local_exponents(f, Yp, alpha) - p_tight))
    return p_tight, err


def slow_mode_scan(
    state0: OrderParameters,
    setup: Setup,
    alphas=(1e3, 1e4, 1e5, 1e6),
    *,
    n_modes: int = 3,
    spectrum: bool = True,
    rtol: float = 1e-10,
    atol: float = 1e-14,
    exponent_tol: float = 1e-2,
) -> SlowModeScan:
    r"""Integrate from ``state0`` and characterise the dynamics at the times ``alphas``.

    Use it to decide at which α a "final" error is read: e.g. erf, first layer only, L >= 2 from
    random initialisation, where ε_g keeps drifting below the symmetric-ansatz value while
    extra units pair up with opposite signs; or linear networks with both layers trained, which
    have no finite fixed point (ε_g ∝ α^(-1/2), :func:`fit_power_law`).

    The local exponent α ε̇_g/ε_g is evaluated from the drift, but the drift at late times is
    dominated by whatever the integration error leaves in the fast directions: an error δ of
    the state moves the exponent by ~ α |λ_fast| |∇ε_g·δ| / ε_g, which grows with α (ReLU,
    K = M = 1, both layers: at rtol = 1e-8 the exponent at α = 1e7 is off by 0.15). So the
    scan integrates twice, at (rtol, atol) and at (rtol/100, atol/100), reports the tighter
    one and, as ``exponent_error``, the change between the two and under a 1e-12 relative
    perturbation of the state; it refuses (ValueError) when that error exceeds
    ``exponent_tol``.

    Parameters
    ----------
    state0, setup : as for :func:`tsode.integrate`.
    alphas : increasing scan times > 0.
    n_modes : number of leading Jacobian eigenvalues kept per scan time.
    spectrum : compute the Jacobian spectra (one batched finite-difference Jacobian per time).
    rtol, atol : integration tolerances of the looser integration (rtol >= 2.2e-12).
    exponent_tol : largest accepted ``exponent_error`` (> 0).
    """
    state0 = _check_state_setup(state0, setup)
    alphas = np.asarray(alphas, dtype=float)
    if alphas.ndim != 1 or alphas.size < 1 or np.any(alphas <= 0) or np.any(np.diff(alphas) <= 0):
        raise ValueError(
            f"alphas must be a non-empty increasing sequence of times > 0, got {alphas}"
        )
    n_modes = check_int(n_modes, "n_modes", 1)
    rtol = check_number(rtol, "rtol", lower=_MIN_SCAN_RTOL, upper=0.1)
    atol = check_number(atol, "atol", strict=True)
    exponent_tol = check_number(exponent_tol, "exponent_tol", strict=True)
    loose = integrate(state0, setup, alphas[-1], alphas=alphas, rtol=rtol, atol=atol)
    traj = integrate(state0, setup, alphas[-1], alphas=alphas, rtol=rtol / 100, atol=atol / 100)
    f = _drift_of(state0, setup)
    Y = f.pack(traj.Q, traj.R, traj.v)
    exponent, err = _exponent_error(f, f.pack(loose.Q, loose.R, loose.v), Y, alphas)
    if np.any(err > exponent_tol):
        i = int(np.argmax(err > exponent_tol))
        raise ValueError(
            f"rtol={rtol:g}, atol={atol:g} cannot support local exponents to exponent_tol="
            f"{exponent_tol:g}: at alpha={alphas[i]:g} the exponent {exponent[i]:+.4f} moves by "
            f"{err[i]:.2g} when the tolerances are divided by 100 or the state is perturbed at "
            "1e-12 relative (the drift at late times amplifies integration errors by ~alpha); "
            "use a smaller rtol and atol, a larger exponent_tol, or earlier alphas"
        )
    lead = np.empty((len(alphas), n_modes if spectrum else 0), dtype=complex)
    if spectrum:
        for i, y in enumerate(Y):
            lead[i] = _spectrum(f.jacobian(0.0, y))[:n_modes]
    n_anti = np.array([len(describe(traj.state(i)).anti_aligned_pairs)
                       for i in range(len(alphas))])
    return SlowModeScan(
        alpha=np.asarray(traj.alpha), eg=f.eg(Y), local_exponent=exponent, exponent_error=err,
        drift_norm=np.abs(f(0.0, Y)).max(axis=1), leading_eigenvalues=lead,
        n_anti_aligned=n_anti, trajectory=traj,
    )


def power_law_slope_error(alpha, rel_error: float) -> float:
    r"""Bound on the error of the least-squares log-log slope when every ε_g carries a relative
    error <= ``rel_error``: :math:`|\delta p| \le \epsilon \sum_i |x_i-\bar x| / \sum_i
    (x_i-\bar x)^2` with :math:`x = \ln\alpha` — the closer the times, the larger the bound."""
    x = np.log(np.asarray(alpha, dtype=float))
    d = x - x.mean()
    return float(rel_error * np.abs(d).sum() / (d @ d))


def fit_power_law(alpha, eg, *, alpha_min: float | None = None, rel_error: float = 0.0,
                  max_slope_error: float | None = None):
    r"""Least-squares fit of :math:`\epsilon_g = c\,\alpha^{p}` in log-log coordinates.

    Parameters
    ----------
    alpha, eg : (P,) positive arrays (e.g. ``traj.alpha``, ``traj.eg``).
    alpha_min : only points with alpha >= alpha_min enter the fit.
    rel_error : relative accuracy of ``eg`` (e.g. the change when the solver tolerances are
        tightened); with ``max_slope_error``, the fit is refused (ValueError) when the spacing
        of the fitted times cannot resolve the slope to that accuracy
        (:func:`power_law_slope_error`).

    Returns
    -------
    (p, c) : exponent and prefactor.
    """
    alpha, eg = np.asarray(alpha, dtype=float), np.asarray(eg, dtype=float)
    if alpha.shape != eg.shape or alpha.ndim != 1:
        raise ValueError(f"alpha and eg must be 1-D arrays of equal length, got {alpha.shape}, "
                         f"{eg.shape}")
    keep = alpha >= (alpha_min if alpha_min is not None else -np.inf)
    if np.count_nonzero(keep) < 2:
        raise ValueError(f"need at least 2 points with alpha >= alpha_min={alpha_min} to fit")
    if np.any(alpha[keep] <= 0) or np.any(eg[keep] <= 0):
        raise ValueError("alpha and eg must be > 0 where fitted (log-log fit)")
    rel_error = check_number(rel_error, "rel_error")
    if max_slope_error is not None:
        bound = power_law_slope_error(alpha[keep], rel_error)
        if bound > check_number(max_slope_error, "max_slope_error", strict=True):
            raise ValueError(
                f"eg with relative error rel_error={rel_error:g} at these times resolves the "
                f"slope only to {bound:.2g} > max_slope_error={max_slope_error:g}: spread the "
                "times over more decades or tighten the solver tolerances"
            )
    p, logc = np.polyfit(np.log(alpha[keep]), np.log(eg[keep]), 1)
    return float(p), float(np.exp(logc))
