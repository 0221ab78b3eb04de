r"""The weighted sums of Gaussian integrals that the ODE drift needs, fused and threaded.

With the signed readout w (..., n), n = K + M, the drift (:mod:`tsode.ode`) needs

.. math::

    A_{ib} = \sum_a w_a I_3(i, b, a) \quad (i < K,\ b < n),\qquad
    S_{ik} = \sum_{a \le b} (2 - \delta_{ab})\, w_a w_b\, I_4(i, k, a, b) \quad (i \le k < K).

The S sums hold ~K²(K+M)²/4 four-point integrals: here they are accumulated on the fly, one
(batch, i ≤ k) row per iteration of a numba ``prange`` loop, so no index or value array of that
size is ever materialised (memory O(K² + batch · n²)). Each row is summed by one thread in a fixed
order (a, then b ≥ a), so the result does not depend on the number of threads. The per-term
values are those of the scalar kernels in :mod:`tsode.activations` and :mod:`tsode._relu_i4`
(ReLU, linear: the same functions; erf: the same closed form with the row constants hoisted,
Λ0 regrouped and the common factor 4/(π²√Λ4) applied once per row, so equal to rounding).

Activations without a fused kernel (codes other than erf, ReLU, linear) are summed by
:func:`chunked_sums`: the indexed kernels over blocks of index tuples, a few rows at a time.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ._relu_i4 import _i4_tuple
from ._relu_quadrature import MAX_BREAKS, MAX_INTERVALS
from .activations import _ERF, _LINEAR, _RELU, _asin, _erf_I3, _linear_I3, _relu_I3

__all__ = ["fused_sums", "chunked_sums", "chunked_max_abs", "tuple_blocks", "FUSED_CODES"]

#: Activation codes with fused kernels.
FUSED_CODES = (_ERF, _RELU, _LINEAR)

_FOUR_OVER_PI2 = 4.0 / math.pi**2


@njit(cache=True, nogil=True, error_model="numpy")
def _erf_row(C, i, k, w, ac, bc, r1, acc):
    r"""S_ik for erf: Σ_{a≤b} (2 − δ_ab) w_a w_b I4(i, k, a, b) with the closed form of Saad &
    Solla, I4 = (4/π²) asin(Λ0 / √(Λ1 Λ2)) / √Λ4 (:func:`tsode.activations._erf_I4`), with the
    row constants hoisted: Λ1 of field c is a function of c alone, and Λ0 is linear in the
    entries of row b; the arcsine is libm's, as in the per-integral kernel (a branch-free
    rational one that lets the loop vectorise measured 2.6x slower). ac, bc, r1, acc (n,)
    scratch; acc[b] accumulates over a, then acc is summed in order."""
    n = C.shape[0]
    aa1, bb1, ab = 1.0 + C[i, i], 1.0 + C[k, k], C[i, k]
    lam4 = aa1 * bb1 - ab * ab
    for c in range(n):
        ac[c], bc[c] = C[i, c], C[k, c]
        lam1 = (lam4 * (1.0 + C[c, c]) - bc[c] * bc[c] * aa1 - ac[c] * ac[c] * bb1
                + 2.0 * ab * ac[c] * bc[c])
        r1[c] = 1.0 / math.sqrt(lam1)
        acc[c] = 0.0
    for a in range(n):
        # Λ0 = Λ4 C_ab + bc_b (ab ac_a - aa1 bc_a) + ac_b (ab bc_a - bb1 ac_a)
        pa, qa, ra = ab * ac[a] - aa1 * bc[a], ab * bc[a] - bb1 * ac[a], r1[a]
        Ca, wa = C[a], w[a]
        acc[a] += wa * wa * _asin((lam4 * Ca[a] + bc[a] * pa + ac[a] * qa) * (ra * ra))
        w2 = 2.0 * wa
        for b in range(a + 1, n):
            x = (lam4 * Ca[b] + bc[b] * pa + ac[b] * qa) * (ra * r1[b])
            acc[b] += w2 * w[b] * _asin(x)
    s = 0.0
    for b in range(n):
        s += acc[b]
    return _FOUR_OVER_PI2 * s / math.sqrt(lam4)


@njit(cache=True, nogil=True)
def _pair_weight(w, a, b):
    """(2 − δ_ab) w_a w_b, as the per-integral path computes it."""
    return w[a] * w[a] if a == b else 2.0 * w[a] * w[b]


@njit(cache=True, nogil=True)
def _relu_row(C, i, k, w, stack, brk):
    """S_ik for ReLU: the exact per-tuple I4 of :mod:`tsode._relu_i4` (closed forms for
    repeated indices, quadrature for distinct ones)."""
    n = C.shape[0]
    s = 0.0
    for a in range(n):
        for b in range(a, n):
            s += _pair_weight(w, a, b) * _i4_tuple(C, i, k, a, b, stack, brk)
    return s


@njit(cache=True, nogil=True)
def _linear_row(C, w):
    """S_ik for the linear activation, I4(i, k, a, b) = C_ab (the same for every row)."""
    n = C.shape[0]
    s = 0.0
    for a in range(n):
        for b in range(a, n):
            s += _pair_weight(w, a, b) * C[a, b]
    return s


@njit(cache=True, nogil=True, error_model="numpy")
def _row_at(C, w, ik, code, A, S4, t):
    """Row t of the flat work list: t < B K: A[m, i, :] (t = m K + i); then S4[m, p]
    (t − B K = m P + p)."""
    B, K, n = A.shape
    P = ik.shape[0]
    if t < B * K:
        m, i = t // K, t % K
        Cm = C[m]
        for b in range(n):
            s = 0.0
            for a in range(n):
                if code == _ERF:
                    val = _erf_I3(Cm, i, b, a)
                elif code == _RELU:
                    val = _relu_I3(Cm, i, b, a)
                else:
                    val = _linear_I3(Cm, i, b, a)
                s += w[m, a] * val
            A[m, i, b] = s
        return
    t -= B * K
    m, p = t // P, t % P
    i, k = ik[p, 0], ik[p, 1]
    if code == _ERF:
        ac, bc, r1, acc = np.empty(n), np.empty(n), np.empty(n), np.empty(n)
        S4[m, p] = _erf_row(C[m], i, k, w[m], ac, bc, r1, acc)
    elif code == _RELU:
        stack, brk = np.empty((MAX_INTERVALS + 2, 2)), np.empty(MAX_BREAKS)
        S4[m, p] = _relu_row(C[m], i, k, w[m], stack, brk)
    else:
        S4[m, p] = _linear_row(C[m], w[m])


# Each row is computed by one thread, whatever their number: the threaded and serial loops give
# bitwise the same result. Small problems use the serial loop: a parallel region costs a
# barrier, which on a loaded machine (another process on the cores) can take a scheduler time
# slice (~10 ms; measured 0.8 ms -> 40 ms per drift at K = 20).

@njit(cache=True, parallel=True)
def _rows_threaded(C, w, ik, code, A, S4):
    for t in prange(A.shape[0] * (A.shape[1] + ik.shape[0])):
        _row_at(C, w, ik, code, A, S4, t)


@njit(cache=True)
def _rows_serial(C, w, ik, code, A, S4):
    for t in range(A.shape[0] * (A.shape[1] + ik.shape[0])):
        _row_at(C, w, ik, code, A, S4, t)


#: Integral evaluations (weighted: a ReLU I4 counts _RELU_COST) from which the threaded loop
#: is used: ~5 ms of work on one core.
PARALLEL_WORK = 5e5
_RELU_COST = 20


def fused_sums(C, w, K: int, ik, code):
    r"""(A, S) of the drift at field covariances C (..., n, n) and signed readout w (..., n):

    A (..., K, n) = Σ_a w_a I3(i, b, a); S (..., P) = Σ_{a≤b} (2 − δ_ab) w_a w_b
    I4(ik[p, 0], ik[p, 1], a, b) for the student pairs ik (P, 2) int64. One compiled call,
    threaded from PARALLEL_WORK integrals on. ``code`` in FUSED_CODES (erf, ReLU, linear).
    """
    n = C.shape[-1]
    lead = C.shape[:-2]
    if w.shape != lead + (n,):
        w = np.broadcast_to(w, lead + (n,))
    Cb = np.ascontiguousarray(C, dtype=float).reshape((-1, n, n))
    wb = np.ascontiguousarray(w, dtype=float).reshape((-1, n))
    B, P = Cb.shape[0], ik.shape[0]
    A, S4 = np.empty((B, K, n)), np.empty((B, P))
    work = B * (K * n * n + P * n * (n + 1) / 2 * (_RELU_COST if code == _RELU else 1))
    rows = _rows_threaded if work >= PARALLEL_WORK else _rows_serial
    rows(Cb, wb, ik, int(code), A, S4)
    return A.reshape(lead + (K, n)), S4.reshape(lead + (P,))


def tuple_blocks(rows, cols, rows_per_block: int = 64):
    """(first row, index tuples) of blocks of ``rows_per_block`` rows: each block's tuples are
    [rows[p], cols[q]] for its rows p and every q, row-major, (rows in block * Q, r + c)."""
    for lo in range(0, rows.shape[0], rows_per_block):
        blk = rows[lo: lo + rows_per_block]
        yield lo, np.concatenate([np.repeat(blk, len(cols), axis=0),
                                  np.tile(cols, (len(blk), 1))], axis=1)


def chunked_sums(kernel, C, weights, rows, cols, rows_per_block: int = 64) -> np.ndarray:
    r"""Σ_q weights[..., q] · kernel(C, [rows[p], cols[q]])[..., p, q] for any indexed kernel,
    a block of ``rows_per_block`` rows at a time (memory O(rows_per_block · len(cols)) per
    covariance, never the full product of the index sets).

    kernel : indexed integral ``(C, idx) -> (..., P)``; C (..., n, n); weights (..., Q);
    rows (P, r), cols (Q, c) int64 index tuples, concatenated per pair. Returns (..., P).
    """
    C = np.asarray(C, dtype=float)
    lead = C.shape[:-2]
    weights = np.broadcast_to(np.asarray(weights, dtype=float), lead + (cols.shape[0],))
    out = np.empty(lead + (rows.shape[0],))
    for lo, idx in tuple_blocks(rows, cols, rows_per_block):
        m = idx.shape[0] // len(cols)
        vals = kernel(C, idx).reshape(lead + (m, len(cols)))
        out[..., lo: lo + m] = np.einsum("...pq,...q->...p", vals, weights)
    return out


def chunked_max_abs(kernel, C, rows, cols, rows_per_block: int = 64) -> float:
    """max |kernel(C, [rows[p], cols[q]])| over all p, q, block by block (as
    :func:`chunked_sums`); NaN if any entry is NaN, 0.0 for empty sets."""
    tops = [np.abs(kernel(C, idx)).max(initial=0.0)
            for _, idx in tuple_blocks(rows, cols, rows_per_block)]
    return float(np.max(tops, initial=0.0))
