r"""Fixed points of the order-parameter ODEs and their linear stability.

The ODEs of :mod:`tsode.ode` are an autonomous system :math:`\dot y = F(y)` for the packed state
:math:`y` = (upper triangle of Q, R, and v when :math:`\eta_v > 0`). A *fixed point* solves
:math:`F(y^*) = 0`; its *stability* is read from the spectrum of the Jacobian
:math:`J = \partial F/\partial y` at :math:`y^*` (all real parts < 0: linearly stable; eigenvalues
with :math:`|\mathrm{Re}\,\lambda|` far below the rest: *soft* or *slow* modes, which set the
time scale :math:`\alpha \sim 1/|\lambda|` on which a "final" error is actually reached).

* :func:`fixed_point` — damped Newton on the packed drift, started from a guess (typically the
  end of a long integration); returns a :class:`FixedPoint` (state, ε_g*, spectrum, soft modes).
* :func:`stability` — the spectrum at any state.
* :func:`integrate_to_fixed_point` — integrate, then polish with :func:`fixed_point`
  (how ReLU fixed points are found from the paper's small initialisation).
* ``_Reduction`` — the drift restricted to an invariant set where the overlaps take few distinct
  values (coincident units here, the symmetric ansatz of :mod:`tsode.ansatz`).

All derivatives are those of :class:`tsode.ode.Drift`; nothing here re-implements the ODEs.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ._common import check_int, check_number, covariance, fd_jacobian, is_psd
from .ode import Drift, integrate
from .order_parameters import OrderParameters, Setup, generalisation_error
from .roles import describe
from .trajectory import Trajectory

__all__ = ["FixedPoint", "FixedPointError", "fixed_point", "stability", "integrate_to_fixed_point",
           "ZERO_RTOL", "zero_tol", "count_unstable", "soft_mask", "count_soft"]


class FixedPointError(RuntimeError):
    """The root finder did not reach a physical fixed point (the message says why)."""


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
        return _newton(self.F, lambda p: fd_jacobian(self.F, p), p0, tol=tol,
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


# ------------------------------------------------------------------------------------------
# the one definition of "unstable" and "soft" (FixedPoint, the book's tables and texts use it)
# ------------------------------------------------------------------------------------------
#: Relative accuracy of the real parts of a finite-difference spectrum: |Re λ| below
#: ZERO_RTOL · max|Re λ| is indistinguishable from 0.
ZERO_RTOL = 1e-8


def _scalar(x):
    """A 0-d array as a Python number, other arrays unchanged."""
    return x.item() if np.ndim(x) == 0 else x


def _zero_tol(re, keepdims: bool = False):
    return ZERO_RTOL * np.max(np.abs(re), axis=-1, initial=0.0, keepdims=keepdims)


def zero_tol(eigenvalues):
    r"""The threshold below which :math:`|\mathrm{Re}\,\lambda|` counts as 0:
    ``ZERO_RTOL`` · max|Re λ| (the accuracy of a finite-difference Jacobian's eigenvalues).

    ``eigenvalues``: (..., n) complex or real, one spectrum per leading index. Returns a float
    (one spectrum) or an array of shape (...). NaN if a spectrum contains NaN; 0 if n = 0.
    """
    return _scalar(_zero_tol(np.real(np.asarray(eigenvalues))))


def count_unstable(eigenvalues):
    r"""Number of unstable directions, however slow: eigenvalues with
    :math:`\mathrm{Re}\,\lambda >` :func:`zero_tol` (of the same spectrum).

    ``eigenvalues``: (..., n). Returns an int (one spectrum) or an int array of shape (...)
    (0 for a spectrum containing NaN, whose threshold is NaN).
    """
    re = np.real(np.asarray(eigenvalues))
    return _scalar(np.sum(re > _zero_tol(re, keepdims=True), axis=-1))


def soft_mask(eigenvalues, soft_tol):
    r"""Which eigenvalues are *soft* (slow, marginal or slowly unstable directions):
    :math:`|\mathrm{Re}\,\lambda| <` ``soft_tol``.

    ``eigenvalues``: (..., n); ``soft_tol``: a float or an array broadcasting against (...)
    (one threshold per spectrum). Returns a bool array of shape (..., n).
    """
    re = np.real(np.asarray(eigenvalues))
    return np.abs(re) < np.expand_dims(np.asarray(soft_tol, dtype=float), -1)


def count_soft(eigenvalues, soft_tol):
    """Number of soft modes (:func:`soft_mask`): an int (one spectrum) or an int array (...)."""
    return _scalar(np.sum(soft_mask(eigenvalues, soft_tol), axis=-1))


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
        :func:`zero_tol`, 1e-8 · max|Re λ|."""
        return float(zero_tol(self.eigenvalues))

    @property
    def soft_modes(self) -> np.ndarray:
        """Eigenvalues with |Re λ| < soft_tol (:func:`soft_mask`; near-zero modes: slow,
        marginal or slowly unstable directions)."""
        return self.eigenvalues[soft_mask(self.eigenvalues, self.soft_tol)]

    @property
    def n_soft(self) -> int:
        """Number of soft modes (:func:`count_soft`)."""
        return int(count_soft(self.eigenvalues, self.soft_tol))

    @property
    def n_unstable(self) -> int:
        """Number of eigenvalues with Re λ > zero_tol (:func:`count_unstable`: unstable
        directions, however slow)."""
        return int(count_unstable(self.eigenvalues))

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
    f = Drift.from_state(state, setup)
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
    f = Drift.from_state(guess, setup)
    group = np.arange(guess.K)
    if coincident_tol is not None:
        coincident_tol = check_number(coincident_tol, "coincident_tol", upper=1.0)
        group = _coincident_groups(guess, f.train_v, coincident_tol)
    y, res, n_iter, message, ok = _solve(f, guess, group, tol, max_iter, rel_step)
    if not ok and not np.isfinite(res):
        message += f"; {f.culprit(f.pack_state(guess))} is probably too large"
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
