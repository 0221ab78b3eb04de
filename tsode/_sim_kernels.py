r"""Compiled (numba) step loops of the two simulators; see :mod:`tsode.simulate` for the driver.

Everything here is an unchecked kernel working in place on float64 arrays; the caller validates
inputs. One SGD step, with local fields :math:`\lambda_k = w_k\cdot x/\sqrt N`,
:math:`\rho_n = w^*_n\cdot x/\sqrt N`, error :math:`\Delta = \phi - y` (DESIGN.md §2) and
:math:`a = 1 - \kappa/N` (weight decay :math:`\kappa`, so that the drift gains :math:`-\kappa R`,
:math:`-2\kappa Q`, :math:`-\kappa v`):

.. math::

    \phi = \sum_k v_k g(\lambda_k),\qquad y = \sum_n v^*_n g(\rho_n) + \sigma\zeta,\qquad
    c_k = -\eta\, v_k\, g'(\lambda_k)\,\Delta,

    w_k \leftarrow a\,w_k + c_k\,x/\sqrt N,\qquad
    v_k \leftarrow a\,v_k - (\eta_v/N)\,g(\lambda_k)\,\Delta \quad(\text{only if }\eta_v>0),

all right-hand sides with the pre-step values. In terms of the Gram matrix
:math:`G = [[Q, R], [R^\top, T]]` and :math:`s = \|x\|^2` this is (the *reduced* engine)

.. math::

    Q_{kl} &\leftarrow a^2 Q_{kl} + a\,(c_k\lambda_l + c_l\lambda_k)/N + c_k c_l\, s/N^2,\\
    R_{kn} &\leftarrow a R_{kn} + c_k\rho_n/N,

and :math:`(\lambda, \rho) = u = Lz` with :math:`G = LL^\top` (rank-revealing), :math:`z\sim
\mathcal N(0, I_r)`, :math:`s = \|z\|^2 + \chi^2_{N-r}` (DESIGN.md §3).

Random numbers come from a ``numpy.random.Generator`` passed in (numba reproduces NumPy's
streams exactly). Order of draws per step — full engine: the N entries of x, then ζ (if σ > 0);
reduced engine: m = min(K + M, N) entries of z whatever the rank r of G (the m − r unused ones
stand for the part of ‖x‖² outside the row space, see :func:`sample_lanes`), the χ²(N − m)
variate (if N > m), then ζ (if σ > 0).

The reduced engine advances a group of runs ("lanes", the last axis of its arrays) in lockstep:
the random numbers of a block of steps are drawn ahead, run by run from each run's own generator,
then each step works on all lanes at once (loops over lanes innermost, so that they vectorise and
the latencies of the lanes' Cholesky factorisations overlap). A lane's arithmetic is that of a
single run, so its trajectory does not depend on the other lanes nor on the grouping.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .activations import ACT_CODES, dg_scalar, g_scalar  # noqa: F401  (one code table)

_FM = {"reassoc", "contract"}  # allow vectorised dot products; keeps NaN/inf semantics


# ---------------------------------------------------------------------------------------------
# Full engine: N-dimensional weights
# ---------------------------------------------------------------------------------------------


@njit(cache=True, nogil=True, fastmath=_FM)
def full_update(W, Ws, v, vs, x, zeta, code, eta, eta_v, sigma, decay, lam):
    """One SGD step in place for a given input ``x`` (N,) and label noise ``zeta``.

    W (K, N), Ws (M, N), v (K,), vs (M,); lam (K,) is scratch (receives the pre-step λ).
    Returns Δ = φ − y (non-finite Δ signals divergence).
    """
    K, N = W.shape
    M = Ws.shape[0]
    isq = 1.0 / math.sqrt(N)
    phi = 0.0
    for k in range(K):
        s = 0.0
        for i in range(N):
            s += W[k, i] * x[i]
        lam[k] = s * isq
        phi += v[k] * g_scalar(code, lam[k])
    y = sigma * zeta
    for m in range(M):
        s = 0.0
        for i in range(N):
            s += Ws[m, i] * x[i]
        y += vs[m] * g_scalar(code, s * isq)
    delta = phi - y
    a = 1.0 - decay / N
    for k in range(K):
        ck = -eta * v[k] * dg_scalar(code, lam[k]) * delta * isq
        if a != 1.0:
            for i in range(N):
                W[k, i] = a * W[k, i] + ck * x[i]
        else:
            for i in range(N):
                W[k, i] += ck * x[i]
    if eta_v > 0.0:
        for k in range(K):
            v[k] = a * v[k] - eta_v / N * g_scalar(code, lam[k]) * delta
    return delta


@njit(cache=True, nogil=True, fastmath=_FM)
def full_advance(W, Ws, v, vs, rng, n_steps, code, eta, eta_v, sigma, decay, x, lam):
    """Run ``n_steps`` SGD steps in place, drawing x ~ N(0, I_N) and ζ ~ N(0, 1) from ``rng``.

    x (N,) and lam (K,) are scratch. Returns the number of steps completed: fewer than
    ``n_steps`` means the error Δ became non-finite at step (returned value + 1), i.e. divergence.
    """
    N = W.shape[1]
    for step in range(n_steps):
        for i in range(N):
            x[i] = rng.standard_normal()
        zeta = rng.standard_normal() if sigma > 0.0 else 0.0
        delta = full_update(W, Ws, v, vs, x, zeta, code, eta, eta_v, sigma, decay, lam)
        if not math.isfinite(delta):
            return step
    return n_steps


# ---------------------------------------------------------------------------------------------
# Reduced engine: the exact Markov chain of the Gram matrix
# ---------------------------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def pivoted_cholesky(G, A, L, perm, rtol):
    r"""Rank-revealing Cholesky factorisation :math:`G_{\pi\pi} = L_{:, :r} L_{:, :r}^\top`.

    Outer-product Cholesky with diagonal pivoting (Higham, *Accuracy and Stability*, §10.3),
    stopped when the largest remaining Schur-complement diagonal is ``<= rtol * max(diag G)``:
    directions of G with (relative) variance below that are treated as exactly zero, which is how
    rank deficiency (zero weights, K + M > N) is handled. A (n, n) and L (n, n) are scratch,
    perm (n,) receives the permutation π (row i of L belongs to field perm[i]).

    Returns the numerical rank r.
    """
    n = G.shape[0]
    scale = 0.0
    for i in range(n):
        perm[i] = i
        if G[i, i] > scale:
            scale = G[i, i]
        for j in range(n):
            A[i, j] = G[i, j]
            L[i, j] = 0.0
    tol = rtol * scale
    for j in range(n):
        p = j
        for i in range(j + 1, n):
            if A[i, i] > A[p, p]:
                p = i
        if not A[p, p] > tol:  # also stops on NaN
            return j
        if p != j:
            for c in range(n):
                t = A[j, c]
                A[j, c] = A[p, c]
                A[p, c] = t
            for c in range(n):
                t = A[c, j]
                A[c, j] = A[c, p]
                A[c, p] = t
            for c in range(j):
                t = L[j, c]
                L[j, c] = L[p, c]
                L[p, c] = t
            t2 = perm[j]
            perm[j] = perm[p]
            perm[p] = t2
        ljj = math.sqrt(A[j, j])
        L[j, j] = ljj
        for i in range(j + 1, n):
            L[i, j] = A[i, j] / ljj
        for i in range(j + 1, n):
            for c in range(j + 1, i + 1):
                A[i, c] -= L[i, j] * L[c, j]
                A[c, i] = A[i, c]
    return n


@njit(cache=True, nogil=True)
def cholesky(G, L, rtol):
    """Plain Cholesky factor G = L L^T (L lower triangular, written into L (n, n)).

    Returns False (leaving L partly written) as soon as a pivot is ``<= rtol * max(diag G)``:
    the caller then falls back to :func:`pivoted_cholesky`.
    """
    n = G.shape[0]
    scale = 0.0
    for i in range(n):
        if G[i, i] > scale:
            scale = G[i, i]
    tol = rtol * scale
    for j in range(n):
        d = G[j, j]
        for c in range(j):
            d -= L[j, c] * L[j, c]
        if not d > tol:
            return False
        ljj = math.sqrt(d)
        L[j, j] = ljj
        inv = 1.0 / ljj
        for i in range(j + 1, n):
            t = G[i, j]
            for c in range(j):
                t -= L[i, c] * L[j, c]
            L[i, j] = t * inv
    return True


@njit(cache=True, nogil=True)
def factor(G, A, L, perm, rtol, N):
    """Factor G for sampling: returns the rank r (<= N) with G[π, π] ≈ L[:, :r] L[:, :r]^T.

    Plain Cholesky when it succeeds (the usual full-rank case, π = identity), else the
    rank-revealing :func:`pivoted_cholesky`; the rank is capped at N (a Gram matrix of N-dim
    vectors has rank <= N; the largest pivots are kept).
    """
    n = G.shape[0]
    if n <= N and cholesky(G, L, rtol):
        for i in range(n):
            perm[i] = i
        return n
    r = pivoted_cholesky(G, A, L, perm, rtol)
    return min(r, N)


@njit(cache=True, nogil=True)
def reduced_update(G, v, vs, u, s, zeta, K, N, code, eta, eta_v, sigma, decay, c):
    """Apply one SGD step to the Gram matrix G (n, n) and v (K,) in place.

    u (n,) are the fields (λ_1..λ_K, ρ_1..ρ_M) of the step's input, s = ‖x‖², zeta the label
    noise; c (K,) is scratch (receives c_k = −η v_k g'(λ_k) Δ). The teacher block of G is not
    touched. Returns Δ = φ − y.
    """
    n = G.shape[0]
    phi = 0.0
    for k in range(K):
        phi += v[k] * g_scalar(code, u[k])
    y = sigma * zeta
    for m in range(n - K):
        y += vs[m] * g_scalar(code, u[K + m])
    delta = phi - y
    for k in range(K):
        c[k] = -eta * v[k] * dg_scalar(code, u[k]) * delta
    a = 1.0 - decay / N
    inv_n = 1.0 / N
    s_n2 = s * inv_n * inv_n
    for k in range(K):
        for l in range(k, K):
            q = a * a * G[k, l] + a * (c[k] * u[l] + c[l] * u[k]) * inv_n + c[k] * c[l] * s_n2
            G[k, l] = q
            G[l, k] = q
        for m in range(K, n):
            r = a * G[k, m] + c[k] * u[m] * inv_n
            G[k, m] = r
            G[m, k] = r
    if eta_v > 0.0:
        for k in range(K):
            v[k] = a * v[k] - eta_v * inv_n * g_scalar(code, u[k]) * delta
    return delta


@njit(cache=True, nogil=True)
def reduced_advance_one(
    G, v, vs, Z, X2, ZE, n_steps, K, N, code, eta, eta_v, sigma, decay, max_norm, rank_rtol,
):
    """:func:`reduced_advance_lanes` for a single run (same arithmetic, scalar loops).

    G (n, n), v (K,), Z (>= n_steps, m), X2 and ZE (>= n_steps,) drawn by :func:`draw_block`.
    Returns the number of steps completed; fewer than ``n_steps`` means divergence (a
    non-finite Δ, or a diagonal of Q or an entry of v beyond ``max_norm``) at step (value + 1).
    """
    n = G.shape[0]
    m = min(n, N)
    A, L, perm = np.empty((n, n)), np.empty((n, n)), np.empty(n, dtype=np.int64)
    u, c = np.empty(n), np.empty(K)
    for b in range(n_steps):
        r = factor(G, A, L, perm, rank_rtol, N)
        zz = 0.0
        for j in range(m):
            zz += Z[b, j] * Z[b, j]
        for i in range(n):
            t = 0.0
            for j in range(min(i + 1, r)):
                t += L[i, j] * Z[b, j]
            u[perm[i]] = t
        delta = reduced_update(
            G, v, vs, u, zz + X2[b], ZE[b], K, N, code, eta, eta_v, sigma, decay, c
        )
        if not math.isfinite(delta):
            return b
        for k in range(K):
            if not (G[k, k] <= max_norm and abs(v[k]) <= max_norm):
                return b
    return n_steps


# ---------------------------------------------------------------------------------------------
# Reduced engine, several runs ("lanes") in lockstep
# ---------------------------------------------------------------------------------------------



@njit(cache=True, nogil=True)
def draw_block(rng, m, N, sigma, with_chi2, Z, X2, ZE):
    r"""Draw the random numbers of Z.shape[0] steps of one run from ``rng``, in stream order.

    Per step b: m normals (into Z[b, :m]), then χ²(N − m) if ``with_chi2`` and N > m (into X2[b],
    else 0), then ζ if σ > 0 (into ZE[b], else 0). Z (steps, m), X2 and ZE (steps,) may be
    strided views (one lane of the arrays of :func:`reduced_advance_lanes`).
    """
    for b in range(Z.shape[0]):
        for j in range(m):
            Z[b, j] = rng.standard_normal()
        X2[b] = rng.chisquare(N - m) if (with_chi2 and N > m) else 0.0
        ZE[b] = rng.standard_normal() if sigma > 0.0 else 0.0


@njit(cache=True, nogil=True)
def draw_lanes(rngs, m, N, sigma, with_chi2, Z, X2, ZE):
    """:func:`draw_block` of every lane j from its generator rngs[j] (a numba typed List):
    one compiled call per block instead of one per lane (a call costs ~20 us of argument
    typing per Generator). Z (steps, m, lanes), X2 and ZE (steps, lanes)."""
    for j in range(len(rngs)):
        draw_block(rngs[j], m, N, sigma, with_chi2, Z[:, :, j], X2[:, j], ZE[:, j])


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _residual_lanes(G, L, i, j, out, nl):
    """out[l] = G[i, j, l] − Σ_{c<j} L[i, c, l] L[j, c, l] (summed in order) for every lane."""
    for l in range(nl):
        out[l] = G[i, j, l]
    for c in range(j):
        for l in range(nl):
            out[l] -= L[i, c, l] * L[j, c, l]


@njit(cache=True, nogil=True, error_model="numpy")
def cholesky_lanes(G, L, tol, ok, d, e, nl):
    """Plain Cholesky G[:, :, l] = L[:, :, l] L[:, :, l]^T of every lane l < nl, in lockstep.

    The arithmetic of :func:`cholesky`, lane by lane (lanes innermost, so that the loops
    vectorise); ok[l] becomes 0 where a pivot is ``<= tol[l]`` (L of that lane is then
    meaningless). d, e (lanes,) scratch.
    """
    n = G.shape[0]
    for l in range(nl):
        ok[l] = 1.0
    for j in range(n):
        _residual_lanes(G, L, j, j, d, nl)
        for l in range(nl):
            good = d[l] > tol[l]
            ok[l] = ok[l] if good else 0.0
            ljj = math.sqrt(d[l] if good else 1.0)
            L[j, j, l] = ljj
            d[l] = 1.0 / ljj
        for i in range(j + 1, n):
            _residual_lanes(G, L, i, j, e, nl)
            for l in range(nl):
                L[i, j, l] = e[l] * d[l]


@njit(cache=True, nogil=True, error_model="numpy")
def sample_lanes(G, Z, X2, b, N, rank_rtol, L, U, S, tol, ok, d, e, G1, A1, L1, perm, nl,
                 fresh):
    r"""Fields u = Lz (into U (n, lanes)) and s = ‖x‖² (into S (lanes,)) of step b of each lane.

    z = Z[b, :m, l] with m = min(n, N) and s = ‖z‖² + X2[b, l]. Full-rank lanes use
    :func:`cholesky_lanes` if ``fresh``, else the factor L that :func:`rank2_lanes` kept up to
    date (lanes with ok[l] == 1; the others are factorised afresh by :func:`cholesky`); lanes
    that are not of full rank fall back to :func:`factor` (rank r <= m, L padded with zero
    columns: the unused z_{r+1..m} make ‖z‖² + χ²(N − m) ~ ‖z_{1..r}‖² + χ²(N − r), so the
    law is unchanged) and leave ok[l] = 0. L (n, n, lanes) and ok (lanes,) carry the factor
    between steps; tol, d, e (lanes,), G1, A1, L1 (n, n), perm (n,) are scratch.
    """
    n = G.shape[0]
    m = min(n, N)
    for l in range(nl):
        tol[l] = 0.0
        S[l] = 0.0
    for i in range(n):
        for l in range(nl):
            if G[i, i, l] > tol[l]:
                tol[l] = G[i, i, l]
    for j in range(m):
        for l in range(nl):
            S[l] += Z[b, j, l] * Z[b, j, l]
    for l in range(nl):
        tol[l] *= rank_rtol
        S[l] += X2[b, l]
    if n <= N:
        if fresh:
            cholesky_lanes(G, L, tol, ok, d, e, nl)
        else:
            for l in range(nl):
                if ok[l] == 0.0:
                    G1[:, :] = G[:, :, l]
                    if cholesky(G1, L1, rank_rtol):
                        ok[l] = 1.0
                        for i in range(n):
                            for j in range(i + 1):
                                L[i, j, l] = L1[i, j]
        for i in range(n):
            for l in range(nl):
                U[i, l] = 0.0
            for j in range(i + 1):
                for l in range(nl):
                    U[i, l] += L[i, j, l] * Z[b, j, l]
    else:
        ok[:] = 0.0
    for l in range(nl):
        if ok[l] == 0.0:
            G1[:, :] = G[:, :, l]
            r = factor(G1, A1, L1, perm, rank_rtol, N)
            for i in range(n):
                t = 0.0
                for j in range(min(i + 1, r)):
                    t += L1[i, j] * Z[b, j, l]
                U[perm[i], l] = t


@njit(cache=True, nogil=True, error_model="numpy")
def update_lanes(G, v, vs, U, S, ZE, b, K, N, code, eta, eta_v, sigma, decay, max_norm, C, D, nl):
    """:func:`reduced_update` of every lane l < nl (same arithmetic), then the divergence check.

    G (n, n, lanes), v (K, lanes), U (n, lanes) fields (overwritten by g(U) for the teachers),
    S (lanes,) ‖x‖² (overwritten), ZE[b] label noises; C (K, lanes), D (lanes,) scratch.
    Returns the first lane that diverged (non-finite Δ, or a diagonal of Q or an entry of v
    beyond ``max_norm``), or -1.
    """
    n = G.shape[0]
    for l in range(nl):
        D[l] = 0.0
    for k in range(K):
        for l in range(nl):
            D[l] += v[k, l] * g_scalar(code, U[k, l])
    for l in range(nl):
        C[0, l] = sigma * ZE[b, l]  # y, accumulated in C[0] (C is written below)
    for m in range(n - K):
        for l in range(nl):
            C[0, l] += vs[m] * g_scalar(code, U[K + m, l])
    for l in range(nl):
        D[l] -= C[0, l]  # delta = phi - y
    for k in range(K):
        for l in range(nl):
            C[k, l] = -eta * v[k, l] * dg_scalar(code, U[k, l]) * D[l]
    a = 1.0 - decay / N
    a2 = a * a
    inv_n = 1.0 / N
    for l in range(nl):
        S[l] = S[l] * inv_n * inv_n
    for k in range(K):
        for j in range(k, K):
            for l in range(nl):
                q = (a2 * G[k, j, l] + a * (C[k, l] * U[j, l] + C[j, l] * U[k, l]) * inv_n
                     + C[k, l] * C[j, l] * S[l])
                G[k, j, l] = q
                G[j, k, l] = q
        for j in range(K, n):
            for l in range(nl):
                r = a * G[k, j, l] + C[k, l] * U[j, l] * inv_n
                G[k, j, l] = r
                G[j, k, l] = r
    if eta_v > 0.0:
        for k in range(K):
            for l in range(nl):
                v[k, l] = a * v[k, l] - eta_v * inv_n * g_scalar(code, U[k, l]) * D[l]
    for l in range(nl):
        if not math.isfinite(D[l]):
            return l
        for k in range(K):
            if not (G[k, k, l] <= max_norm and abs(v[k, l]) <= max_norm):
                return l
    return -1


@njit(cache=True, nogil=True, error_model="numpy")
def rank2_lanes(L, U, C, S, a, K, N, tol, ok, P, X, d, e, f, nl):
    r"""Carry the Cholesky factor of every full-rank lane (ok[l] == 1) through one SGD step.

    The step of :func:`update_lanes` is :math:`G' = DGD + pp^\top - qq^\top` with
    :math:`D = \mathrm{diag}(a 1_K, 1_M)`, :math:`\tilde u = Du`, :math:`q = \tilde u/\sqrt s`
    and :math:`p = q + (\sqrt s/N)(c, 0)`; :math:`DGD - qq^\top = DL(I - zz^\top/s)L^\top D`
    is PSD (s >= ‖z‖²), so L <- DL, then a rank-1 downdate by q and an update by p, column by
    column (O(n²) per lane instead of the O(n³) of a new factorisation). A lane whose pivot
    falls to ``<= tol[l]`` gets ok[l] = 0 (factorised afresh at the next step).

    L (n, n, lanes); U (n, lanes) the step's fields, C (K, lanes) its c_k and S (lanes,) its
    s/N² (as left by :func:`update_lanes`); P, X (n, lanes), d, e, f (lanes,) scratch.
    """
    n = L.shape[0]
    inv_n = 1.0 / N
    for l in range(nl):
        d[l] = math.sqrt(S[l])            # √s / N
        f[l] = inv_n / d[l]               # 1 / √s
    for i in range(n):
        ai = a if i < K else 1.0
        for l in range(nl):
            X[i, l] = ai * U[i, l] * f[l]
            P[i, l] = X[i, l] + (d[l] * C[i, l] if i < K else 0.0)
    if a != 1.0:
        for i in range(K):
            for j in range(i + 1):
                for l in range(nl):
                    L[i, j, l] *= a
    for j in range(n):
        # downdate by X (hyperbolic rotation), then update by P, of column j
        for l in range(nl):
            ljj, x = L[j, j, l], X[j, l]
            r2 = (ljj - x) * (ljj + x)
            good = r2 > tol[l] and ljj > 0.0
            ok[l] = ok[l] if good else 0.0
            r = math.sqrt(r2) if good else 1.0
            d[l] = r / (ljj if good else 1.0)
            e[l] = x / (ljj if good else 1.0)
            L[j, j, l] = r
        for i in range(j + 1, n):
            for l in range(nl):
                lij = (L[i, j, l] - e[l] * X[i, l]) / d[l]
                X[i, l] = d[l] * X[i, l] - e[l] * lij
                L[i, j, l] = lij
        for l in range(nl):
            ljj, p = L[j, j, l], P[j, l]
            r = math.sqrt(ljj * ljj + p * p)
            d[l] = r / ljj
            e[l] = p / ljj
            L[j, j, l] = r
        for i in range(j + 1, n):
            for l in range(nl):
                lij = (L[i, j, l] + e[l] * P[i, l]) / d[l]
                P[i, l] = d[l] * P[i, l] - e[l] * lij
                L[i, j, l] = lij


@njit(cache=True, nogil=True, error_model="numpy")
def reduced_advance_lanes(
    G, v, vs, Z, X2, ZE, n_steps, K, N, code, eta, eta_v, sigma, decay, max_norm, rank_rtol,
    failed, refresh, L, ok, step0,
):
    """Run ``n_steps`` steps of the exact chain on every lane (one run each) in place.

    G (n, n, lanes), v (K, lanes), vs (M,); Z (>= n_steps, m, lanes), X2 and ZE (>= n_steps,
    lanes) hold each lane's random numbers, drawn ahead by :func:`draw_block` from that lane's
    generator (m = min(n, N)). Per step and lane: u = Lz and s = ‖z‖² + χ²(N − m)
    (:func:`sample_lanes`), then the SGD update of G and v (:func:`update_lanes`). Returns the
    number of steps completed by all lanes; fewer than ``n_steps`` means that lane failed[0]
    diverged (see :func:`update_lanes`) at step (value + 1).

    ``refresh`` (>= 1): G is factorised afresh at the steps whose absolute count (``step0``
    steps done before this call) is a multiple of ``refresh``; in between, the factor L
    (n, n, lanes) is carried through each step by the rank-2 update of :func:`rank2_lanes`
    (lanes with ok[l] == 0, e.g. all of them at the first call, are factorised afresh).
    refresh = 1: a new factorisation every step. L and ok (lanes,) persist between calls, so
    a run does not depend on how its steps are split into calls.
    """
    n, _, nl = G.shape
    U, C = np.empty((n, nl)), np.empty((K, nl))
    P, X, f = np.empty((n, nl)), np.empty((n, nl)), np.empty(nl)
    S, tol, d, D = np.empty(nl), np.empty(nl), np.empty(nl), np.empty(nl)
    e = np.empty(nl)
    G1, A1, L1 = np.empty((n, n)), np.empty((n, n)), np.empty((n, n))
    perm = np.empty(n, dtype=np.int64)
    a = 1.0 - decay / N
    for b in range(n_steps):
        sample_lanes(G, Z, X2, b, N, rank_rtol, L, U, S, tol, ok, d, e, G1, A1, L1, perm, nl,
                     (step0 + b) % refresh == 0)
        lane = update_lanes(
            G, v, vs, U, S, ZE, b, K, N, code, eta, eta_v, sigma, decay, max_norm, C, D, nl
        )
        if lane >= 0:
            failed[0] = lane
            return b
        if refresh > 1 and n <= N:
            rank2_lanes(L, U, C, S, a, K, N, tol, ok, P, X, d, e, f, nl)
    return n_steps
