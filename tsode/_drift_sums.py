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
(erf: the same arithmetic, with the row constants hoisted; the common factor
4/(π²√Λ4) is applied once per row).

Activations without a fused kernel (codes other than erf, ReLU, linear) are summed by
:func:`chunked_sums`: the indexed kernels over blocks of index tuples, a few rows at a time.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ._relu_i4 import _i4_tuple
from ._relu_quadrature import MAX_BREAKS, MAX_INTERVALS
from .activations import _ERF, _LINEAR, _RELU, _erf_I3, _linear_I3, _relu_I3

__all__ = ["fused_sums", "chunked_sums", "chunked_max_abs", "tuple_blocks", "FUSED_CODES"]

#: Activation codes with fused kernels.
FUSED_CODES = (_ERF, _RELU, _LINEAR)

_FOUR_OVER_PI2 = 4.0 / math.pi**2


# asin of fdlibm / musl (e_asin.c, Sun Microsystems 1993; coefficients as there, with their
# IEEE hex patterns): a rational approximation R(z) on one of two reduced arguments, written
# without branches or calls so that the row loops vectorise (libm's asin is a scalar call).
# Max error 1 ulp; tested against math.asin in tests/test_drift_sums.py.
_PIO2_HI = 1.57079632679489655800e+00  # 0x3FF921FB54442D18
_PIO2_LO = 6.12323399573676603587e-17  # 0x3C91A62633145C07
_PS0 = 1.66666666666666657415e-01      # 0x3FC5555555555555
_PS1 = -3.25565818622400915405e-01     # 0xBFD4D61203EB6F7D
_PS2 = 2.01212532134862925881e-01      # 0x3FC9C1550E884455
_PS3 = -4.00555345006794114027e-02     # 0xBFA48228B5688F3B
_PS4 = 7.91534994289814532176e-04      # 0x3F49EFE07501B288
_PS5 = 3.47933107596021167570e-05      # 0x3F023DE10DFDF709
_QS1 = -2.40339491173441421878e+00     # 0xC0033A271C8A2D4B
_QS2 = 2.02094576023350569471e+00      # 0x40002AE59C598AC8
_QS3 = -6.88283971605453293030e-01     # 0xBFE6066C1B8D0159
_QS4 = 7.70381505559019352791e-02      # 0x3FB3B8C5B12E9282


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def asin_clipped(x):
    """arcsin of x clipped to [-1, 1], branch-free (fdlibm's rational approximation)."""
    x = min(1.0, max(-1.0, x))
    ax = abs(x)
    small = ax < 0.5
    z = ax * ax if small else (1.0 - ax) * 0.5
    p = z * (_PS0 + z * (_PS1 + z * (_PS2 + z * (_PS3 + z * (_PS4 + z * _PS5)))))
    q = 1.0 + z * (_QS1 + z * (_QS2 + z * (_QS3 + z * _QS4)))
    r = p / q
    s = math.sqrt(z)
    # |x| > 0.975: pi/2 - 2 (s + s r); 0.5 <= |x| <= 0.975: s = f + c with f short (f*f exact)
    f = np.float64(np.float32(s))  # 24 bits: f * f is exact
    c = (z - f * f) / (s + f)
    near_one = _PIO2_HI - (2.0 * (s + s * r) - _PIO2_LO)
    middle = 0.5 * _PIO2_HI - (2.0 * s * r - (_PIO2_LO - 2.0 * c) - (0.5 * _PIO2_HI - 2.0 * f))
    big = near_one if ax > 0.975 else middle
    res = ax + ax * r if small else big
    return -res if x < 0.0 else res


@njit(cache=True, nogil=True, error_model="numpy")
def _erf_row(C, i, k, w, ac, bc, r1, acc):
    r"""S_ik for erf: Σ_{a≤b} (2 − δ_ab) w_a w_b I4(i, k, a, b) with the closed form of Saad &
    Solla, I4 = (4/π²) asin(Λ0 / √(Λ1 Λ2)) / √Λ4 (:func:`tsode.activations._erf_I4`), with the
    row constants hoisted: Λ1 of field c is a function of c alone, and Λ0 is linear in the
    entries of row b. ac, bc, r1, acc (n,) scratch; the inner loop accumulates acc[b] over a
    (no reduction inside it, so it vectorises), then acc is summed in order."""
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
        acc[a] += wa * wa * asin_clipped((lam4 * Ca[a] + bc[a] * pa + ac[a] * qa) * (ra * ra))
        w2 = 2.0 * wa
        for b in range(a + 1, n):
            x = (lam4 * Ca[b] + bc[b] * pa + ac[b] * qa) * (ra * r1[b])
            acc[b] += w2 * w[b] * asin_clipped(x)
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
