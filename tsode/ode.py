r"""The N -> infinity ordinary differential equations of online SGD (Goldt et al. 2019, eqs. 7-9).

With the signed readout :math:`w = (v_1..v_K, -v^*_1..-v^*_M)`, indices i, k over students, n over
teachers and a, b over all K+M fields:

.. math::

    \frac{dR_{in}}{d\alpha} &= -\eta v_i \sum_a w_a I_3(i,n,a) - \kappa R_{in}\\
    \frac{dQ_{ik}}{d\alpha} &= -\eta v_i \sum_a w_a I_3(i,k,a) - \eta v_k \sum_a w_a I_3(k,i,a)
        + \eta^2 v_i v_k\Big[\sum_{a,b} w_a w_b I_4(i,k,a,b) + \sigma^2 J_2(i,k)\Big]
        - 2\kappa Q_{ik}\\
    \frac{dv_i}{d\alpha} &= -\eta_v \sum_a w_a I_2(i,a) - \kappa v_i

T and v* are constant. The right-hand side is evaluated with one vectorised call per integral;
I4 is evaluated only on i <= k and a <= b (it is symmetric under both swaps).
"""

from __future__ import annotations

import time

import numpy as np
from scipy.integrate import solve_ivp

from .activations import activation, index_tuples
from .order_parameters import OrderParameters, Setup, eg_from_covariance
from .trajectory import Trajectory

__all__ = ["Drift", "drift", "integrate", "DivergenceError", "default_alphas"]


class DivergenceError(RuntimeError):
    """Raised when the order parameters blow up (typically: learning rate too large)."""


def default_alphas(alpha_max: float, n: int = 200) -> np.ndarray:
    """Output times: 0 followed by n log-spaced times from min(1e-2, alpha_max/10) to alpha_max."""
    start = min(1e-2, alpha_max / 10)
    return np.concatenate([[0.0], np.geomspace(start, alpha_max, n)])


class Drift:
    """Vectorised right-hand side of the ODEs for fixed (K, M, setup, T, v*).

    The state vector packs the upper triangle of Q (row-major), R (row-major) and, when the
    second layer is trained (eta_v > 0), v. Use :meth:`pack` / :meth:`unpack`.
    """

    def __init__(self, K: int, M: int, setup: Setup, T, v_star, v_frozen=None):
        self.K, self.M, self.setup = K, M, setup
        self.act = activation(setup.activation)
        self.T = np.asarray(T, dtype=float)
        self.v_star = np.asarray(v_star, dtype=float)
        self.train_v = setup.eta_v > 0
        self.v_frozen = None if v_frozen is None else np.asarray(v_frozen, dtype=float)
        n = K + M
        self.iu = np.triu_indices(K)
        self.n_q = len(self.iu[0])
        self.size = self.n_q + K * M + (K if self.train_v else 0)
        # index tuples for the integrals
        self.idx3 = index_tuples(K, n, n)  # (K*n*n, 3): (i, b, a)
        ab = np.ascontiguousarray(np.array(np.triu_indices(n)).T)  # a <= b
        self.ab_weight = np.where(ab[:, 0] == ab[:, 1], 1.0, 2.0)
        ik = np.ascontiguousarray(np.array(self.iu).T)  # i <= k
        self.ab, self.ik = ab, ik
        self.idx4 = np.concatenate(
            [np.repeat(ik, len(ab), axis=0), np.tile(ab, (len(ik), 1))], axis=1
        )  # (n_ik * n_ab, 4)
        self.idx2 = index_tuples(K, n)  # (K*n, 2): (i, a)
        self.k = self.act.kernels

    # ---- packing -------------------------------------------------------------------------
    def pack(self, Q, R, v) -> np.ndarray:
        """State vector(s) from overlaps; Q (..., K, K), R (..., K, M), v (..., K)."""
        Q, R = np.asarray(Q), np.asarray(R)
        parts = [Q[..., self.iu[0], self.iu[1]], R.reshape(R.shape[:-2] + (-1,))]
        if self.train_v:
            parts.append(np.asarray(v))
        return np.concatenate(parts, axis=-1)

    def unpack(self, y):
        """Overlaps (Q, R, v) from state vector(s) y of shape (..., size)."""
        K, M = self.K, self.M
        lead = y.shape[:-1]
        Q = np.empty(lead + (K, K))
        Q[..., self.iu[0], self.iu[1]] = y[..., : self.n_q]
        Q[..., self.iu[1], self.iu[0]] = y[..., : self.n_q]
        R = y[..., self.n_q : self.n_q + K * M].reshape(lead + (K, M))
        if self.train_v:
            v = y[..., self.n_q + K * M :]
        else:
            v = np.broadcast_to(self.v_frozen, lead + (K,))
        return Q, R, v

    def covariance(self, Q, R):
        """(..., K+M, K+M) field covariance [[Q, R], [R^T, T]]."""
        T = np.broadcast_to(self.T, Q.shape[:-2] + self.T.shape)
        return np.concatenate(
            [np.concatenate([Q, R], axis=-1), np.concatenate([np.swapaxes(R, -1, -2), T], axis=-1)],
            axis=-2,
        )

    # ---- the right-hand side ---------------------------------------------------------------
    def _index_sets(self):
        """(name, index tuples) of the integrals the drift needs."""
        sets = [("I3", self.idx3), ("I4", self.idx4)]
        if self.setup.sigma > 0:
            sets.append(("J2", self.ik))
        if self.train_v:
            sets.append(("I2", self.idx2))
        return sets

    def integrals(self, C) -> dict:
        """The Gaussian integrals of the drift at field covariances C (..., n, n), flat (..., P)."""
        return {name: self.k[name](C, idx) for name, idx in self._index_sets()}

    def combine(self, Q, R, v, ints):
        """(dQ, dR, dv) from overlaps and precomputed :meth:`integrals`; vectorised."""
        K, M, s = self.K, self.M, self.setup
        n = K + M
        lead = Q.shape[:-2]
        w = np.concatenate([v, -np.broadcast_to(self.v_star, lead + (M,))], axis=-1)
        I3 = ints["I3"].reshape(lead + (K, n, n))
        A = np.einsum("...iba,...a->...ib", I3, w)  # A[i, b] = sum_a w_a I3(i, b, a)
        vA = v[..., :, None] * A[..., :K]
        dR = -s.eta * v[..., :, None] * A[..., K:]
        dQ = -s.eta * (vA + np.swapaxes(vA, -1, -2))
        I4 = ints["I4"].reshape(lead + (len(self.ik), len(self.ab)))
        wab = self.ab_weight * w[..., self.ab[:, 0]] * w[..., self.ab[:, 1]]
        S4 = np.einsum("...pq,...q->...p", I4, wab)
        if s.sigma > 0:
            S4 = S4 + s.sigma**2 * ints["J2"]
        noise = np.empty(lead + (K, K))
        noise[..., self.iu[0], self.iu[1]] = S4
        noise[..., self.iu[1], self.iu[0]] = S4
        dQ += s.eta**2 * v[..., :, None] * v[..., None, :] * noise
        if self.train_v:
            I2 = ints["I2"].reshape(lead + (K, n))
            dv = -s.eta_v * np.einsum("...ia,...a->...i", I2, w)
        else:
            dv = np.zeros(lead + (K,))
        if s.weight_decay > 0:
            dQ -= 2 * s.weight_decay * Q
            dR -= s.weight_decay * R
            if self.train_v:
                dv -= s.weight_decay * v
        return dQ, dR, dv

    def derivatives(self, Q, R, v):
        """(dQ, dR, dv) at overlaps Q (..., K, K), R (..., K, M), v (..., K).

        dv is zero when the second layer is frozen. Vectorised over the leading axes.
        """
        return self.combine(Q, R, v, self.integrals(self.covariance(Q, R)))

    def __call__(self, alpha, y):
        """Packed drift at packed state(s) y (..., size)."""
        return self.pack(*self.derivatives(*self.unpack(y)))

    def _affected(self):
        """For each state component: the covariance entry (p, q) it moves (None for v) and,
        per integral, the index tuples whose sub-covariance contains that entry."""
        if not hasattr(self, "_affected_cache"):
            K = self.K
            entries = [(int(i), int(k)) for i, k in zip(*self.iu)]
            entries += [(i, K + m) for i in range(K) for m in range(self.M)]
            out = []
            for p, q in entries:
                rows = []
                for name, idx in self._index_sets():
                    hit = np.nonzero((idx == p).any(axis=1) & (idx == q).any(axis=1))[0]
                    rows.append((name, hit, np.ascontiguousarray(idx[hit])))
                out.append((p, q, rows))
            out += [None] * (self.size - len(out))  # v: the integrals do not depend on it
            self._affected_cache = out
        return self._affected_cache

    def jacobian(self, alpha, y, rel_step: float = 1e-7, central: bool = True):
        """Finite-difference Jacobian d(drift)/dy, shape (size, size).

        Column j moves one overlap, i.e. one entry of the field covariance, so only the
        integrals whose sub-covariance contains that entry are recomputed; the rest of the
        drift is assembled for all columns at once. Central differences by default (used for
        stability spectra); forward differences (``central=False``) for the stiff solver.
        """
        y = np.asarray(y, dtype=float)
        h = rel_step * np.maximum(np.abs(y), 1e-3)
        Q, R, v = self.unpack(y)
        C = self.covariance(Q, R)
        base = self.integrals(C)

        def drift_at(signed_h):
            Y = y + np.diag(signed_h)
            ints = {name: np.repeat(val[None], self.size, axis=0) for name, val in base.items()}
            for j, affected in enumerate(self._affected()):
                if affected is None:
                    continue
                p, q, rows = affected
                Cj = C.copy()
                Cj[p, q] += signed_h[j]
                if p != q:
                    Cj[q, p] += signed_h[j]
                for name, hit, idx in rows:
                    ints[name][j, hit] = self.k[name](Cj, idx)
            return self.pack(*self.combine(*self.unpack(Y), ints))

        if central:
            return ((drift_at(h) - drift_at(-h)) / (2 * h[:, None])).T
        f0 = self.pack(*self.combine(Q, R, v, base))  # the drift at y, from the same integrals
        return ((drift_at(h) - f0[None]) / h[:, None]).T

    def eg(self, Y) -> np.ndarray:
        """Generalisation error along packed states Y of shape (..., size)."""
        Q, R, v = self.unpack(Y)
        return eg_from_covariance(self.covariance(Q, R), v, self.v_star, self.act)


def drift(state: OrderParameters, setup: Setup):
    """The ODE drift (dQ/dalpha, dR/dalpha, dv/dalpha) at ``state``: arrays (K,K), (K,M), (K,)."""
    f = Drift(state.K, state.M, setup, state.T, state.v_star, state.v)
    return f.derivatives(np.asarray(state.Q), np.asarray(state.R), np.asarray(state.v))


def _check_alphas(alpha_max, alphas):
    try:
        alpha_max = float(alpha_max)
    except (TypeError, ValueError):
        raise ValueError(f"alpha_max must be a positive number, got {alpha_max!r}") from None
    if not np.isfinite(alpha_max) or alpha_max <= 0:
        raise ValueError(f"alpha_max must be finite and > 0, got {alpha_max}")
    if alphas is None:
        return alpha_max, default_alphas(alpha_max)
    alphas = np.asarray(alphas, dtype=float)
    if alphas.ndim != 1 or alphas.size < 1:
        raise ValueError("alphas must be a non-empty 1-D array of output times")
    if np.any(np.diff(alphas) <= 0) or alphas[0] < 0 or alphas[-1] > alpha_max * (1 + 1e-12):
        raise ValueError(f"alphas must be strictly increasing within [0, alpha_max={alpha_max}]")
    return alpha_max, alphas


def integrate(
    state0: OrderParameters,
    setup: Setup,
    alpha_max: float,
    *,
    alphas=None,
    rtol: float = 1e-8,
    atol: float = 1e-12,
    method: str = "LSODA",
    max_norm: float = 1e8,
) -> Trajectory:
    """Integrate the ODEs from ``state0`` to ``alpha_max`` with an adaptive, error-controlled solver.

    Parameters
    ----------
    state0 : OrderParameters, the initial overlaps (Q, R, T, v, v*).
    setup : Setup (activation, eta, eta_v, sigma, weight_decay).
    alpha_max : final time (> 0).
    alphas : output times (increasing, within [0, alpha_max]); default 0 and 200 log-spaced times.
    rtol, atol : solver tolerances (scipy.integrate.solve_ivp).
    method : any solve_ivp method; LSODA switches between Adams and BDF as the dynamics stiffen.
    max_norm : the run is declared divergent when an overlap exceeds this in absolute value.

    Returns
    -------
    Trajectory with alpha (T,), eg (T,), Q (T,K,K), R (T,K,M), v (T,K).

    Raises
    ------
    DivergenceError if the overlaps blow up or become non-finite (learning rate too large).
    """
    if not isinstance(state0, OrderParameters):
        raise TypeError(f"state0 must be an OrderParameters, got {type(state0).__name__}")
    if not isinstance(setup, Setup):
        raise TypeError(f"setup must be a Setup, got {type(setup).__name__}")
    alpha_max, alphas = _check_alphas(alpha_max, alphas)
    if not (0 < rtol < 1) or not (atol > 0):
        raise ValueError(f"need 0 < rtol < 1 and atol > 0, got rtol={rtol}, atol={atol}")
    f = Drift(state0.K, state0.M, setup, state0.T, state0.v_star, state0.v)

    def rhs(alpha, y):
        if not np.all(np.isfinite(y)) or np.abs(y).max() > max_norm:
            raise DivergenceError(
                f"the order parameters diverged at alpha = {alpha:.4g} (max |overlap| = "
                f"{np.nanmax(np.abs(y)):.3g}); the learning rate eta = {setup.eta} is probably "
                "too large for this network"
            )
        out = f(alpha, y)
        if not np.all(np.isfinite(out)):
            raise DivergenceError(f"the drift became non-finite at alpha = {alpha:.4g}")
        return out

    y0 = f.pack(np.asarray(state0.Q), np.asarray(state0.R), np.asarray(state0.v))
    t0 = time.perf_counter()
    options = {}
    if method in ("LSODA", "BDF", "Radau"):  # implicit solvers: a cheap sparse FD Jacobian
        options["jac"] = lambda a, y: f.jacobian(a, y, central=False)
    sol = solve_ivp(
        rhs, (0.0, alpha_max), y0, method=method, t_eval=alphas, rtol=rtol, atol=atol, **options
    )
    if sol.status != 0:
        raise RuntimeError(f"ODE solver failed at alpha = {sol.t[-1]:.4g}: {sol.message}")
    Y = sol.y.T
    if np.abs(Y).max() > max_norm:
        raise DivergenceError("the order parameters diverged (learning rate too large?)")
    Q, R, v = f.unpack(Y)
    Q, R, v = Q.copy(), R.copy(), np.array(v, dtype=float)
    eg = f.eg(Y)
    info = dict(
        engine="ode", method=method, rtol=rtol, atol=atol, nfev=int(sol.nfev),
        njev=int(sol.njev), seconds=time.perf_counter() - t0,
    )
    return Trajectory(
        alpha=np.asarray(sol.t), eg=eg, Q=Q, R=R, v=v, T_teacher=np.array(state0.T),
        v_star=np.array(state0.v_star), setup=setup, info=info,
    )
