r"""The N -> infinity ordinary differential equations of online SGD (Goldt et al. 2019, eqs. 7-9).

With the signed readout :math:`w = (v_1..v_K, -v^*_1..-v^*_M)`, indices i, k over students, n over
teachers and a, b over all K+M fields:

.. math::

    \frac{dR_{in}}{d\alpha} &= -\eta v_i \sum_a w_a I_3(i,n,a) - \kappa R_{in}\\
    \frac{dQ_{ik}}{d\alpha} &= -\eta v_i \sum_a w_a I_3(i,k,a) - \eta v_k \sum_a w_a I_3(k,i,a)
        + \eta^2 v_i v_k\Big[\sum_{a,b} w_a w_b I_4(i,k,a,b) + \sigma^2 J_2(i,k)\Big]
        - 2\kappa Q_{ik}\\
    \frac{dv_i}{d\alpha} &= -\eta_v \sum_a w_a I_2(i,a) - \kappa v_i

T and v* are constant. The right-hand side accumulates the weighted sums over a (and a <= b) on
the fly in fused, threaded kernels (:mod:`tsode._drift_sums`), so memory stays O(K^2) however
many (~K^2 (K+M)^2 / 4) four-point integrals a step needs; I4 is evaluated only on i <= k and
a <= b (it is symmetric under both swaps). The finite-difference Jacobian works per integral
(index tuples materialised, memory ~K^4).
"""

from __future__ import annotations

import functools
import time

import numpy as np
from scipy.integrate import solve_ivp

from ._common import (
    BYTES_PER_I4, JACOBIAN_BUDGET, ProgressLog, check_alphas, check_int, check_memory,
    check_number, covariance, default_alphas, fd_jacobian, fd_steps, log_progress, ode_memory,
)
from ._drift_sums import FUSED_CODES, chunked_max_abs, chunked_sums, fused_sums
from .activations import index_tuples
from .order_parameters import OrderParameters, Setup, eg_from_covariance
from .trajectory import Trajectory

__all__ = ["Drift", "drift", "integrate", "DivergenceError", "StallError", "default_alphas"]


class DivergenceError(RuntimeError):
    """Raised when the order parameters blow up (typically: learning rate too large)."""


class StallError(RuntimeError):
    """Raised when the solver stops making progress or exceeds its budget of evaluations."""


#: Bytes held per I4 integral by the per-integral Jacobian (``tsode._common.BYTES_PER_I4``;
#: the drift itself holds none).
_BYTES_PER_I4 = BYTES_PER_I4


class Drift:
    """Vectorised right-hand side of the ODEs for fixed (K, M, setup, T, v*).

    The state vector packs the upper triangle of Q (row-major), R (row-major) and, when the
    second layer is trained (eta_v > 0), v. Use :meth:`pack` / :meth:`unpack`.
    """

    def __init__(self, K: int, M: int, setup: Setup, T, v_star, v_frozen=None):
        self.K, self.M, self.setup = K, M, setup
        self.act = setup.act
        self.T = np.asarray(T, dtype=float)
        self.v_star = np.asarray(v_star, dtype=float)
        self.train_v = setup.eta_v > 0
        self.v_frozen = None if v_frozen is None else np.asarray(v_frozen, dtype=float)
        n = K + M
        self.iu = np.triu_indices(K)
        self.n_q = len(self.iu[0])
        self.size = self.n_q + K * M + (K if self.train_v else 0)
        ab = np.ascontiguousarray(np.array(np.triu_indices(n)).T)  # a <= b
        self.ab_weight = np.where(ab[:, 0] == ab[:, 1], 1.0, 2.0)
        ik = np.ascontiguousarray(np.array(self.iu).T)  # i <= k
        self.ab, self.ik = ab, ik
        self.idx2 = index_tuples(K, n)  # (K*n, 2): (i, a)
        self.k = self.act.kernels
        # float64 coefficients: eta**2 of a huge eta is inf (a clear divergence), never a
        # Python OverflowError
        self._eta, self._eta_v = np.float64(setup.eta), np.float64(setup.eta_v)
        with np.errstate(over="ignore", invalid="ignore"):
            self._eta2 = self._eta * self._eta
            self._noise2 = self._eta2 * np.float64(setup.sigma) ** 2 if setup.sigma > 0 else 0.0

    @classmethod
    def from_state(cls, state: OrderParameters, setup: Setup) -> "Drift":
        """The drift for the (K, M, T, v*) of ``state`` (a frozen v stays at ``state.v``)."""
        return cls(state.K, state.M, setup, state.T, state.v_star, state.v)

    def pack_state(self, state: OrderParameters) -> np.ndarray:
        """The packed state vector (size,) of ``state``."""
        return self.pack(np.asarray(state.Q), np.asarray(state.R), np.asarray(state.v))

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
        return covariance(Q, R, self.T)

    # ---- the right-hand side ---------------------------------------------------------------
    @functools.cached_property
    def idx3(self) -> np.ndarray:
        """(K*n*n, 3) index tuples (i, b, a) of the I3 integrals (the Jacobian's)."""
        n = self.K + self.M
        return index_tuples(self.K, n, n)

    def jacobian_bytes(self) -> float:
        """Memory of the per-integral Jacobian's index sets and values (~K^4 / 2 I4 tuples)."""
        n = self.K + self.M
        return _BYTES_PER_I4 * self.n_q * n * (n + 1) / 2

    @functools.cached_property
    def idx4(self) -> np.ndarray:
        """(n_ik * n_ab, 4) index tuples (i, k, a, b), i <= k, a <= b, of the I4 integrals.

        Materialised only for the per-integral path (:meth:`integrals`, the Jacobian): ~K^4 / 2
        tuples, hence the memory check; the drift itself never builds them."""
        n = self.K + self.M
        check_memory(self.jacobian_bytes(),
                     f"the per-integral Jacobian of the ODEs at K={self.K}, M={self.M}",
                     "its I4 index sets grow like K^4 / 2; use a smaller K (the drift and "
                     "integrate() with a non-stiff method need no Jacobian)")
        return np.concatenate([np.repeat(self.ik, len(self.ab), axis=0),
                               np.tile(self.ab, (len(self.ik), 1))], axis=1)

    def _index_sets(self):
        """(name, index tuples) of the integrals the drift needs."""
        sets = [("I3", self.idx3), ("I4", self.idx4)]
        if self.setup.sigma > 0:
            sets.append(("J2", self.ik))
        if self.train_v:
            sets.append(("I2", self.idx2))
        return sets

    def integrals(self, C) -> dict:
        """The Gaussian integrals of the drift at field covariances C (..., n, n), one per index
        tuple, flat (..., P): the per-integral path of the Jacobian (memory ~K^4; the drift
        itself uses the fused sums of :meth:`sums`)."""
        return {name: self.k[name](C, idx) for name, idx in self._index_sets()}

    def _w(self, v):
        """Signed readout w = (v, -v*) (..., K+M)."""
        return np.concatenate([v, -np.broadcast_to(self.v_star, v.shape[:-1] + (self.M,))],
                              axis=-1)

    def sums(self, C, w) -> dict:
        r"""The weighted integral sums of the drift at field covariances C (..., n, n) and
        signed readout w (..., n), without materialising the integrals:
        "A" (..., K, n) = Σ_a w_a I3(i, b, a); "S4" (..., n_q) = Σ_{a<=b} (2 - δ_ab) w_a w_b
        I4(i, k, a, b) on i <= k; "J2" (..., n_q) if σ > 0; "Iw2" (..., K) = Σ_a w_a I2(i, a)
        if the second layer is trained. Fused, threaded kernels (:mod:`tsode._drift_sums`)
        for erf, ReLU and linear; other activations are summed block by block."""
        C = np.asarray(C, dtype=float)
        K, n, code = self.K, self.K + self.M, self.act.code
        with np.errstate(over="ignore", invalid="ignore"):
            if code in FUSED_CODES:
                A, S4 = fused_sums(C, w, K, self.ik, code)
            else:
                A = chunked_sums(self.k["I3"], C, w, self.idx2, np.arange(n)[:, None])
                A = A.reshape(C.shape[:-2] + (K, n))
                wab = self.ab_weight * w[..., self.ab[:, 0]] * w[..., self.ab[:, 1]]
                S4 = chunked_sums(self.k["I4"], C, wab, self.ik, self.ab)
            out = {"A": A, "S4": S4}
            if self.setup.sigma > 0:
                out["J2"] = self.k["J2"](C, self.ik)
            if self.train_v:
                I2 = self.k["I2"](C, self.idx2).reshape(C.shape[:-2] + (K, n))
                out["Iw2"] = np.einsum("...ia,...a->...i", I2, w)
        return out

    def combine(self, Q, R, v, ints):
        """(dQ, dR, dv) from overlaps and precomputed per-integral :meth:`integrals`;
        vectorised."""
        K, n = self.K, self.K + self.M
        lead = Q.shape[:-2]
        w = self._w(v)
        with np.errstate(over="ignore", invalid="ignore"):
            I3 = ints["I3"].reshape(lead + (K, n, n))
            sums = {"A": np.einsum("...iba,...a->...ib", I3, w)}  # sum_a w_a I3(i, b, a)
            I4 = ints["I4"].reshape(lead + (len(self.ik), len(self.ab)))
            wab = self.ab_weight * w[..., self.ab[:, 0]] * w[..., self.ab[:, 1]]
            sums["S4"] = np.einsum("...pq,...q->...p", I4, wab)
            if self.setup.sigma > 0:
                sums["J2"] = ints["J2"]
            if self.train_v:
                I2 = ints["I2"].reshape(lead + (K, n))
                sums["Iw2"] = np.einsum("...ia,...a->...i", I2, w)
        return self._assemble(Q, R, v, sums)

    def _assemble(self, Q, R, v, sums):
        """(dQ, dR, dv) from overlaps and the integral sums of :meth:`sums`."""
        K, s = self.K, self.setup
        lead = Q.shape[:-2]
        with np.errstate(over="ignore", invalid="ignore"):
            A = sums["A"]
            vA = v[..., :, None] * A[..., :K]
            dR = -self._eta * v[..., :, None] * A[..., K:]
            dQ = -self._eta * (vA + np.swapaxes(vA, -1, -2))
            S4 = self._eta2 * sums["S4"]
            if s.sigma > 0:
                S4 = S4 + self._noise2 * sums["J2"]
            noise = np.empty(lead + (K, K))
            noise[..., self.iu[0], self.iu[1]] = S4
            noise[..., self.iu[1], self.iu[0]] = S4
            dQ += v[..., :, None] * v[..., None, :] * noise
            if self.train_v:
                dv = -self._eta_v * sums["Iw2"]
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
        v = np.asarray(v, dtype=float)
        return self._assemble(Q, R, v, self.sums(self.covariance(Q, R), self._w(v)))

    def __call__(self, alpha, y):
        """Packed drift at packed state(s) y (..., size)."""
        return self.pack(*self.derivatives(*self.unpack(y)))

    # ---- the Jacobian ----------------------------------------------------------------------
    def _columns(self):
        """Per Q/R column j: the covariance entry (p, q) it moves and, per integral, the flat
        positions of the index tuples that contain both p and q (cached, int32: O(K^4) ints)."""
        if not hasattr(self, "_columns_cache"):
            K = self.K
            entries = [(int(i), int(k)) for i, k in zip(*self.iu)]
            entries += [(i, K + m) for i in range(K) for m in range(self.M)]
            n = K + self.M
            rows = {name: [np.flatnonzero((idx == x).any(axis=1)).astype(np.int32)
                           for x in range(n)] for name, idx in self._index_sets()}
            self._columns_cache = [
                (p, q, {name: r[p] if p == q else np.intersect1d(r[p], r[q], assume_unique=True)
                        for name, r in rows.items()})
                for p, q in entries
            ]
        return self._columns_cache

    def _linear_maps(self, v):
        """Per integral: (packed position, coefficient) of each flat entry p, i.e. at fixed v the
        drift is sum_p coef_p * integral_p (+ the weight decay)."""
        K, M = self.K, self.M
        w = self._w(v)
        qpos = np.zeros((K, K), dtype=np.int64)
        qpos[self.iu] = np.arange(self.n_q)
        qpos[self.iu[1], self.iu[0]] = np.arange(self.n_q)
        out = {}
        with np.errstate(over="ignore", invalid="ignore"):
            i, b, a = self.idx3.T
            pos = np.where(b < K, qpos[i, np.minimum(b, K - 1)],
                           self.n_q + i * M + np.maximum(b - K, 0))
            out["I3"] = (pos, -self._eta * v[i] * w[a] * np.where(b == i, 2.0, 1.0))
            vv = v[self.ik[:, 0]] * v[self.ik[:, 1]]
            wab = self.ab_weight * w[self.ab[:, 0]] * w[self.ab[:, 1]]
            out["I4"] = (np.repeat(np.arange(len(self.ik)), len(self.ab)),
                         self._eta2 * np.outer(vv, wab).ravel())
            out["J2"] = (np.arange(len(self.ik)), self._noise2 * vv)
            if self.train_v:
                out["I2"] = (self.n_q + K * M + self.idx2[:, 0],
                             -self._eta_v * w[self.idx2[:, 1]])
        return out

    def jacobian(self, alpha, y, rel_step: float = 1e-7, central: bool = True):
        """Finite-difference Jacobian d(drift)/dy, shape (size, size).

        At fixed v the drift is linear in the integrals, sum_p coef_p I_p (see
        :meth:`_linear_maps`), plus the weight decay. Column j moves one overlap, i.e. one entry
        (p, q) of the field covariance, so only the integrals whose sub-covariance contains it
        change: those are recomputed at C ± h_j and scattered into the column with their
        coefficients. No copy of the integral set per column: memory O(K^4), not O(K^6). The v
        columns (trained second layer) are differenced through :meth:`combine` with the base
        integrals. Central differences by default (stability spectra); forward ones
        (``central=False``) for the stiff solver.
        """
        y = np.asarray(y, dtype=float)
        h = fd_steps(y, rel_step)
        Q, R, v = self.unpack(y)
        C = self.covariance(Q, R)
        base = self.integrals(C)
        maps, index = self._linear_maps(np.asarray(v, dtype=float)), dict(self._index_sets())
        J = np.zeros((self.size, self.size))
        for j, (p, q, hits) in enumerate(self._columns()):
            for name, hit in hits.items():
                if hit.size == 0:
                    continue
                idx = index[name][hit]
                plus = self.k[name](_moved(C, p, q, h[j]), idx)
                minus = self.k[name](_moved(C, p, q, -h[j]), idx) if central else base[name][hit]
                pos, coef = maps[name]
                with np.errstate(over="ignore", invalid="ignore"):
                    d = coef[hit] * ((plus - minus) / ((2 if central else 1) * h[j]))
                J[:, j] += np.bincount(pos[hit], weights=d, minlength=self.size)
        kappa = self.setup.weight_decay
        diag = np.arange(self.n_q + self.K * self.M)
        J[diag, diag] -= np.where(diag < self.n_q, 2 * kappa, kappa)
        if self.train_v:
            J[:, diag.size:] = self._v_columns(Q, R, y[diag.size:], base, rel_step, central)
        return J

    def _v_columns(self, Q, R, v, base, rel_step, central):
        """Columns d(drift)/dv (size, K), by finite differences: the integrals do not depend
        on v."""
        def F(V):
            return np.stack([self.pack(*self.combine(Q, R, vb, base)) for vb in V])

        return fd_jacobian(F, v, rel_step, central=central)

    # ---- diagnostics ------------------------------------------------------------------------
    def blame(self, y) -> str:
        """Name of the parameter whose term dominates the drift at packed state y (size,):
        ``"eta"`` (the gradient and eta^2 terms), ``"sigma"`` (eta^2 sigma^2 J2), ``"eta_v"`` or
        ``"weight_decay"``; compared on logarithms, so it never overflows."""
        Q, R, v = self.unpack(np.asarray(y, dtype=float))
        C = self.covariance(Q, R)
        ints = {name: self.k[name](C, idx) for name, idx in
                (("I3", self.idx3), ("J2", self.ik), ("I2", self.idx2))}
        ints["I4"] = chunked_max_abs(self.k["I4"], C, self.ik, self.ab)  # never materialised
        s = self.setup

        def lg(x):
            return float(np.log10(np.abs(x).max() + 1e-300))

        lv, lw, l3, l4 = lg(v), lg(self._w(np.asarray(v))), lg(ints["I3"]), lg(ints["I4"])
        logs = {"eta": max(lg(s.eta) + lv + lw + l3, 2 * (lg(s.eta) + lv + lw) + l4)}
        if s.sigma > 0:
            logs["sigma"] = 2 * (lg(s.eta) + lg(s.sigma) + lv) + lg(ints["J2"])
        if self.train_v:
            logs["eta_v"] = lg(s.eta_v) + lw + lg(ints["I2"])
        if s.weight_decay > 0:
            logs["weight_decay"] = lg(s.weight_decay) + lg(y)
        return max(logs, key=lambda k: logs[k] if np.isfinite(logs[k]) else -np.inf)

    def culprit(self, y) -> str:
        """The dominant parameter at packed state y in words, for divergence messages:
        'the learning rate eta = 1.5' (see :meth:`blame`)."""
        name = self.blame(y)
        return f"the {_PARAMETER_WORDS[name]} {name} = {getattr(self.setup, name):g}"

    def eg(self, Y) -> np.ndarray:
        """Generalisation error along packed states Y of shape (..., size)."""
        Q, R, v = self.unpack(Y)
        return eg_from_covariance(self.covariance(Q, R), v, self.v_star, self.act)


def _moved(C, p, q, h):
    """A copy of C (n, n) with the symmetric entry (p, q) moved by h."""
    Cj = C.copy()
    Cj[p, q] += h
    if p != q:
        Cj[q, p] += h
    return Cj


def drift(state: OrderParameters, setup: Setup):
    """The ODE drift (dQ/dalpha, dR/dalpha, dv/dalpha) at ``state``: arrays (K,K), (K,M), (K,)."""
    return Drift.from_state(state, setup).derivatives(
        np.asarray(state.Q), np.asarray(state.R), np.asarray(state.v))


#: Words naming each parameter in divergence messages.
_PARAMETER_WORDS = {
    "eta": "learning rate", "eta_v": "second-layer learning rate", "sigma": "label noise",
    "weight_decay": "weight decay",
}


class _Monitor:
    """The right-hand side as the solver sees it, with the run's safeguards.

    Raises DivergenceError when an overlap exceeds ``max_norm`` or the drift is not finite, and
    StallError after ``max_nfev`` evaluations, or after ``window`` evaluations during which the
    furthest time reached did not advance by ``1e-9 alpha_max`` (a hang otherwise: tiny steps).
    """

    def __init__(self, f: Drift, y0, alpha_max, max_norm, max_nfev, window=5000):
        self.f, self.alpha_max, self.max_norm, self.max_nfev = f, alpha_max, max_norm, max_nfev
        self.window, self.nfev, self.last_ok = window, 0, y0
        self.mark_alpha, self.mark_nfev = 0.0, 0

    def __call__(self, alpha, y):
        self.nfev += 1
        if not np.all(np.isfinite(y)) or np.abs(y).max() > self.max_norm:
            raise DivergenceError(
                f"the order parameters diverged at alpha = {alpha:.4g} (max |overlap| = "
                f"{np.nanmax(np.abs(y)):.3g} > max_norm = {self.max_norm:g}); "
                f"{self.f.culprit(self.last_ok)} is probably too large for this network")
        out = self.f(alpha, y)
        if not np.all(np.isfinite(out)):
            raise DivergenceError(
                f"the drift became non-finite at alpha = {alpha:.4g}; "
                f"{self.f.culprit(y)} is probably too large for this network")
        self.last_ok = y
        self._progress(alpha)
        return out

    def _progress(self, alpha):
        if alpha >= self.mark_alpha + 1e-9 * self.alpha_max:
            self.mark_alpha, self.mark_nfev = alpha, self.nfev
        if self.nfev > self.max_nfev:
            raise StallError(
                f"the ODE solver needed more than max_nfev = {self.max_nfev} evaluations of the "
                f"drift and reached alpha = {self.mark_alpha:.4g} of alpha_max = "
                f"{self.alpha_max:g}: the equations are very stiff; "
                f"{self.f.culprit(self.last_ok)} is probably too large (or raise max_nfev)")
        if self.nfev - self.mark_nfev > self.window:
            raise StallError(self._stall_message())

    def _stall_message(self) -> str:
        f, y = self.f, self.last_ok
        rate = np.abs(f(0.0, y)).max() / max(np.abs(y).max(), 1e-300)
        head = (f"the ODE solver stalled at alpha = {self.mark_alpha:.4g} of alpha_max = "
                f"{self.alpha_max:g} ({self.window} evaluations of the drift without progress)")
        if self.alpha_max * max(rate, 1.0) < 1e-6:
            return (f"{head}: alpha_max = {self.alpha_max:g} is too small for the solver's "
                    "resolution; integrate to alpha_max >= 1e-6 (or use a coarser grid)")
        return (f"{head}: the overlaps change on a time scale 1/rate = {1 / rate:.3g}, far "
                f"below alpha_max; {f.culprit(y)} is probably too large")


def _check_integrate_args(state0, setup, alpha_max, alphas, rtol, atol, max_norm, max_nfev):
    """Validated (alpha_max, alphas, rtol, atol, max_norm, max_nfev)."""
    if not isinstance(state0, OrderParameters):
        raise TypeError(f"state0 must be an OrderParameters, got {type(state0).__name__}")
    if not isinstance(setup, Setup):
        raise TypeError(f"setup must be a Setup, got {type(setup).__name__}")
    alpha_max, alphas = check_alphas(alpha_max, alphas)
    rtol = check_number(rtol, "rtol", strict=True, upper=0.1)
    atol = check_number(atol, "atol", strict=True)
    max_norm = check_number(max_norm, "max_norm", strict=True, upper=1e100)
    max_nfev = check_int(max_nfev, "max_nfev", 1, integral_float=True)
    K, M = state0.K, state0.M
    check_memory(ode_memory(K, M, alphas.size), f"the ODEs at K={K}, M={M}",
                 f"(the solver's dense Jacobian and {alphas.size} output times) the Jacobian "
                 "grows like K^4 / 4; use a smaller K")
    return alpha_max, alphas, rtol, atol, max_norm, max_nfev


def _logged(rhs, alpha_max: float, K: int, M: int):
    """``rhs`` reporting the time it reached as :class:`tsode._common.ProgressLog` lines (one
    every 10 s) when stderr is not a terminal (:func:`tsode._common.log_progress`)."""
    if not log_progress(None):
        return rhs
    log = ProgressLog(f"integrate (K={K}, M={M})", alpha_max, unit="of alpha")

    def fun(alpha, y):
        if alpha > log.n:
            log.set(alpha)
        return rhs(alpha, y)

    return fun


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
    max_nfev: int = 100_000,
) -> Trajectory:
    """Integrate the ODEs from ``state0`` to ``alpha_max`` with an adaptive, error-controlled solver.

    Parameters
    ----------
    state0 : OrderParameters, the initial overlaps (Q, R, T, v, v*).
    setup : Setup (activation, eta, eta_v, sigma, weight_decay).
    alpha_max : final time (> 0).
    alphas : output times (finite, increasing, within [0, alpha_max]; a last time a rounding
        error above alpha_max counts as alpha_max); default 0 and 200 log-spaced times.
    rtol, atol : solver tolerances (scipy.integrate.solve_ivp), 0 < rtol <= 0.1, atol > 0.
    method : any solve_ivp method; LSODA switches between Adams and BDF as the dynamics stiffen.
        The implicit methods get the sparse FD Jacobian while its index sets fit in 1 GiB
        (K <~ 60 at M = 4); beyond, they difference the drift themselves (size evaluations).
    max_norm : the run is declared divergent when an overlap exceeds this in absolute value
        (0 < max_norm <= 1e100).
    max_nfev : budget of drift evaluations; the run also stops when 5000 evaluations pass
        without the time advancing by 1e-9 alpha_max.

    Returns
    -------
    Trajectory with alpha (T,), eg (T,), Q (T,K,K), R (T,K,M), v (T,K).

    Raises
    ------
    DivergenceError if the overlaps blow up or become non-finite, naming the parameter whose
    term dominates the drift (eta, eta_v, sigma, weight_decay). StallError when the solver
    exceeds max_nfev or stops advancing (a too large learning rate, a too small alpha_max).
    MemoryError, before any work, when the integrals, Jacobian and outputs would exceed 80 % of
    the memory available (:func:`tsode._common.ode_memory`).

    When stderr is not a terminal (batch logs; not in a notebook) a line every 10 s reports the
    time reached.
    """
    alpha_max, alphas, rtol, atol, max_norm, max_nfev = _check_integrate_args(
        state0, setup, alpha_max, alphas, rtol, atol, max_norm, max_nfev)
    f = Drift.from_state(state0, setup)
    y0 = f.pack_state(state0)
    rhs = _Monitor(f, y0, alpha_max, max_norm, max_nfev)
    t0 = time.perf_counter()
    options = {}
    if method in ("LSODA", "BDF", "Radau") and f.jacobian_bytes() <= JACOBIAN_BUDGET:
        # implicit solvers: a cheap sparse FD Jacobian (beyond the budget, K >~ 60, the solver's
        # own dense FD Jacobian: size evaluations of the drift, no K^4 index sets)
        options["jac"] = lambda a, y: f.jacobian(a, y, central=False)
    try:
        sol = solve_ivp(_logged(rhs, alpha_max, f.K, f.M), (0.0, alpha_max), y0, method=method,
                        t_eval=alphas, rtol=rtol, atol=atol, **options)
    except (OverflowError, FloatingPointError) as err:
        raise DivergenceError(f"the integration overflowed ({err}); {f.culprit(rhs.last_ok)} "
                              "is probably too large for this network") from None
    if sol.status != 0:
        raise RuntimeError(f"ODE solver failed at alpha = {sol.t[-1]:.4g}: {sol.message}")
    Y = sol.y.T
    if Y.shape[0] != alphas.size or np.abs(Y).max() > max_norm:
        raise DivergenceError(f"the order parameters diverged; {f.culprit(rhs.last_ok)} is "
                              "probably too large for this network")
    info = dict(engine="ode", method=method, rtol=rtol, atol=atol, nfev=int(sol.nfev),
                njev=int(sol.njev), seconds=time.perf_counter() - t0)
    return _trajectory(f, state0, setup, np.asarray(sol.t), Y, info)


def _trajectory(f: Drift, state0, setup, alpha, Y, info) -> Trajectory:
    """Assemble the Trajectory of packed states Y (T, size) at times alpha (T,)."""
    Q, R, v = f.unpack(Y)
    return Trajectory(
        alpha=alpha, eg=f.eg(Y), Q=Q.copy(), R=R.copy(), v=np.array(v, dtype=float),
        T_teacher=np.array(state0.T), v_star=np.array(state0.v_star), setup=setup, info=info,
    )
