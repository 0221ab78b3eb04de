r"""Finite-N online SGD: N-dimensional simulation and an exact reduced engine.

Both engines simulate exactly the same stochastic process, online SGD of a two-layer student on
a two-layer teacher (DESIGN.md §2; Goldt et al. 2019, eqs. 3-4), from a macroscopic initial
state ``state0`` (Q, R, T, v, v*):

* ``engine="full"`` builds N-dimensional weights :math:`B = [W; W^*]` (K+M rows) with
  :math:`BB^\top/N = G = [[Q, R], [R^\top, T]]` exactly — :math:`B = \sqrt N F O^\top` with
  :math:`G = FF^\top` (eigendecomposition, rank r) and O an N×r matrix with random orthonormal
  columns (a random rotation) — then runs plain SGD with fresh inputs x ~ N(0, I_N):
  :math:`w_k \leftarrow w_k - (\eta/\sqrt N)\,v_k g'(\lambda_k)\Delta\,x`,
  :math:`v_k \leftarrow v_k - (\eta_v/N)\,g(\lambda_k)\Delta`. Cost per step O((K+M) N).
* ``engine="reduced"`` runs the exact Markov chain of (G, v) (DESIGN.md §3): the fields
  :math:`u = Bx/\sqrt N \sim \mathcal N(0, G)` are drawn as :math:`u = Lz`, :math:`G = LL^\top`,
  and :math:`\|x\|^2 = \|z\|^2 + \chi^2_{N - r}` (projection of x on the row space of B and its
  orthogonal complement), which is all the update of G needs. The law of the trajectory is that
  of the full engine at every N; the cost per step is O((K+M)^3), independent of N. G is
  factorised by Cholesky, or — when it is rank-deficient (zero weights, K + M > N) — by a
  rank-revealing pivoted Cholesky with r = rank G <= N columns; directions of G with variance
  below ``RANK_RTOL`` times its largest diagonal entry count as zero (their share of ‖x‖² is then
  in the χ² term, so the law of ‖x‖² stays exactly χ²_N).

The compiled step loops live in :mod:`tsode._sim_kernels`.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

import numpy as np

from . import _sim_kernels as _k
from .activations import activation
from .ode import DivergenceError, _check_alphas
from .order_parameters import OrderParameters, Setup, eg_from_covariance
from .trajectory import Trajectory

__all__ = ["simulate", "ENGINES", "record_steps"]

#: Names of the simulation engines.
ENGINES = ("full", "reduced")

#: Eigenvalues / Cholesky pivots of G below this fraction of its largest diagonal count as zero.
RANK_RTOL = 1e-13

#: Work (steps x cost per step, in flops) of one kernel call before control returns to Python
#: (progress bar, stopping all runs when one diverges or on KeyboardInterrupt): ~0.1 s.
_PIECE_WORK = 2e7

#: Largest group of runs that one task of the reduced engine advances in lockstep.
_LANES = 32
_MIN_LANES = 4


def _integer(x, name, minimum) -> int:
    """x as an int >= minimum (integral floats such as 1e5 are accepted), else ValueError."""
    if isinstance(x, (bool, np.bool_)):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {x!r}")
    if isinstance(x, (int, np.integer)):
        value = int(x)
    elif isinstance(x, (float, np.floating)) and np.isfinite(x) and float(x).is_integer():
        value = int(x)
    else:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {x!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    return value


def record_steps(N: int, alpha_max: float, alphas=None) -> np.ndarray:
    """Step counts at which a simulation of input dimension N records the order parameters.

    ``alphas`` (increasing, within [0, alpha_max]) are rounded to the nearest integer step
    count ``round(alpha N)``; by default ``tsode.ode.default_alphas(alpha_max)`` (0 and 200
    log-spaced times) rounded the same way, with duplicates removed. Returns an int64 array
    (T,); the recorded times are exactly ``steps / N``.
    """
    alpha_max, grid = _check_alphas(alpha_max, alphas)
    steps = np.rint(np.asarray(grid) * N).astype(np.int64)
    if alphas is None:
        steps = np.unique(steps)
    elif np.any(np.diff(steps) <= 0):
        i = int(np.argmax(np.diff(steps) <= 0))
        raise ValueError(
            f"alphas {grid[i]:g} and {grid[i + 1]:g} round to the same step count at N={N}: "
            f"output times must be at least 1/N = {1 / N:g} apart"
        )
    if steps[-1] < 1:
        raise ValueError(
            f"the last output time {grid[-1]:g} times N = {N} rounds to zero SGD steps, i.e. "
            "less than one SGD step; increase alpha_max (or the output times) or N"
        )
    return steps


def _gram_factor(G: np.ndarray) -> np.ndarray:
    """F (n, r) with F F^T = G up to eigenvalues <= RANK_RTOL * max(diag G) (set to zero)."""
    lam, V = np.linalg.eigh(G)
    keep = lam > RANK_RTOL * max(float(np.max(np.diag(G))), 0.0)
    return V[:, keep] * np.sqrt(lam[keep])


def _streams(seed: int, run: int):
    """Independent generators of run ``run``: (dynamics, initial rotation).

    Run i uses the SeedSequence with spawn key (i, j), so a run's trajectory does not depend on
    ``n_runs`` nor on the number of worker threads.
    """
    return tuple(
        np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(run, j))))
        for j in range(2)
    )


def _available_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _auto_progress(progress) -> bool:
    if progress is None:  # interactive terminals only: silent in pytest, papermill, CI logs
        try:
            return bool(sys.stderr.isatty())
        except (AttributeError, ValueError):
            return False
    return bool(progress)


class _FullRun:
    """State and step loop of one N-dimensional SGD run."""

    def __init__(self, state0: OrderParameters, F, N, rng, rot_rng, pars):
        K = state0.K
        r = F.shape[1]
        # O: N x r with orthonormal columns, uniformly random (QR of a Gaussian matrix).
        O, Rq = np.linalg.qr(rot_rng.standard_normal((N, r)))
        O *= np.sign(np.diag(Rq))
        B = math.sqrt(N) * (F @ O.T)  # (K+M, N), B B^T / N = G
        self.W = np.ascontiguousarray(B[:K])
        self.Ws = np.ascontiguousarray(B[K:])
        self.v = np.array(state0.v, dtype=float)
        self.vs = np.array(state0.v_star, dtype=float)
        self.N, self.rng, self.pars = N, rng, pars
        self.x = np.empty(N)
        self.lam = np.empty(K)

    def advance(self, n_steps):
        return _k.full_advance(
            self.W, self.Ws, self.v, self.vs, self.rng, n_steps, *self.pars, self.x, self.lam
        )

    def observe(self):
        """(Q, R, v) now, computed from the weights."""
        N = self.N
        return self.W @ self.W.T / N, self.W @ self.Ws.T / N, self.v.copy()

    def test_error(self, X, g):
        """½ mean over the rows of X of (φ − φ*)² (noiseless teacher)."""
        sq = 1.0 / math.sqrt(self.N)
        phi = g(X @ self.W.T * sq) @ self.v
        phi_star = g(X @ self.Ws.T * sq) @ self.vs
        return 0.5 * float(np.mean((phi - phi_star) ** 2))


class _ReducedRuns:
    """State and step loop of a group of runs of the exact reduced Markov chain, in lockstep.

    G (n, n, runs) and v (K, runs) hold the runs along the last axis; run j draws only from
    ``rngs[j]`` (its random numbers for up to ``chunk`` steps are drawn ahead), so its trajectory
    does not depend on the grouping.
    """

    def __init__(self, state0: OrderParameters, N, rngs, pars, rank_rtol, with_chi2, chunk=1024):
        runs = len(rngs)
        G = np.array(state0.covariance, dtype=float)
        n = G.shape[0]
        self.G = np.ascontiguousarray(np.repeat(G[:, :, None], runs, axis=2))
        self.v = np.ascontiguousarray(np.repeat(np.array(state0.v, dtype=float)[:, None], runs, 1))
        self.vs = np.array(state0.v_star, dtype=float)
        self.K, self.N, self.rngs = state0.K, N, rngs
        code, eta, eta_v, sigma, decay, max_norm = pars
        self.draw_pars = (min(n, N), N, sigma, with_chi2)
        self.pars = (code, eta, eta_v, sigma, decay, max_norm, rank_rtol)
        self.Z = np.empty((chunk, min(n, N), runs))
        self.X2, self.ZE = np.empty((chunk, runs)), np.empty((chunk, runs))
        self.failed = np.zeros(1, dtype=np.int64)  # the run of the group that diverged

    def advance(self, n_steps):
        done = 0
        while done < n_steps:
            b = min(self.Z.shape[0], n_steps - done)
            for j, rng in enumerate(self.rngs):
                _k.draw_block(rng, *self.draw_pars, self.Z[:b, :, j], self.X2[:b, j],
                              self.ZE[:b, j])
            if len(self.rngs) == 1:  # scalar loops: faster than lanes for one run
                n = self.G.shape[0]
                completed = _k.reduced_advance_one(
                    self.G.reshape(n, n), self.v.reshape(-1), self.vs, self.Z[:, :, 0],
                    self.X2[:, 0], self.ZE[:, 0], b, self.K, self.N, *self.pars,
                )
            else:
                completed = _k.reduced_advance_lanes(
                    self.G, self.v, self.vs, self.Z, self.X2, self.ZE, b, self.K, self.N,
                    *self.pars, self.failed,
                )
            done += completed
            if completed < b:
                break
        return done

    def observe(self):
        """(Q, R, v) now, with a leading run axis."""
        K = self.K
        Q = np.moveaxis(self.G[:K, :K], -1, 0).copy()
        return Q, np.moveaxis(self.G[:K, K:], -1, 0).copy(), self.v.T.copy()


def simulate(
    state0: OrderParameters,
    setup: Setup,
    N: int = 1000,
    alpha_max: float = 100,
    *,
    engine: str = "full",
    seed: int = 0,
    n_runs: int = 1,
    alphas=None,
    progress: bool | None = None,
    workers: int | None = None,
    test_set: int = 0,
    max_norm: float = 1e8,
    _with_chi2: bool = True,
) -> Trajectory:
    r"""Simulate online SGD at finite input dimension N from the macroscopic state ``state0``.

    Parameters
    ----------
    state0 : OrderParameters
        Initial overlaps Q (K, K), R (K, M), T (M, M) and second layers v (K,), v* (M,). The
        Gram matrix G = [[Q, R], [R^T, T]] must have rank <= N (it is realised by N-dim vectors).
    setup : Setup
        Activation, η (first layer, step η/√N), η_v (second layer, step η_v/N; 0 = frozen), label
        noise σ, weight decay κ (per step w ← (1 − κ/N) w, also v when η_v > 0; needs κ < N).
    N : int >= 1
        Input dimension.
    alpha_max : float > 0
        Final time α = steps / N.
    engine : "full" or "reduced"
        ``"full"``: SGD on N-dimensional weights, O((K+M) N) per step. ``"reduced"``: the exact
        Markov chain of (Q, R, v), O((K+M)^3) per step whatever N; same law as ``"full"``.
    seed : int >= 0
        Run i draws from ``SeedSequence(seed, spawn_key=(i, j))``: the same seed gives the same
        trajectories (whatever ``workers``), and run i is the same for every ``n_runs`` > i.
    n_runs : int >= 1
        Independent runs from the same initial state.
    alphas : 1-D array, optional
        Output times in [0, alpha_max], rounded to integer step counts round(α N) (they must stay
        distinct). Default: ``tsode.ode.default_alphas(alpha_max)`` (0 and 200 log-spaced times)
        rounded to step counts, duplicates removed. The runs stop at the last output time.
    progress : bool or None
        tqdm progress bar (in run-steps). None: only when stderr is a terminal, and only once a
        run has lasted 2 s — so silent in tests, CI logs and notebooks executed by papermill.
    workers : int >= 1, optional
        Threads running independent runs in parallel (the compiled loops release the GIL).
        Default min(n_runs, number of CPUs).
    test_set : int >= 0
        Full engine only: if > 0, also estimate ε_g on a fixed test set of that many Gaussian
        inputs (shared by all runs) at every output time; returned as ``info["eg_test"]``
        (same shape as ``eg``). A cross-check of the closed forms; costs O(test_set (K+M) N) per
        output time. (Arrays in ``info`` are not restored by ``Trajectory.from_npz``.)
    max_norm : float
        A run diverges when Δ = φ − y becomes non-finite, or (reduced engine, every step; full
        engine, at output times) a diagonal entry of Q or an entry of v exceeds max_norm.

    Returns
    -------
    Trajectory
        ``alpha`` (T,) = recorded steps / N; ``eg`` (T,) from the closed forms
        (ε_g = ½ Σ_ab w_a w_b I2(a, b), noiseless teacher); ``Q`` (T, K, K), ``R`` (T, K, M),
        ``v`` (T, K) — with a leading run axis (n_runs, ...) when n_runs > 1; ``info`` with
        engine, N, seed, n_runs, steps (per run), workers, seconds, run_steps_per_second
        (and eg_test, test_set if requested).

    Raises
    ------
    TypeError if state0/setup have the wrong type; ValueError on bad parameters (naming the
    parameter and its allowed range); DivergenceError (from :mod:`tsode.ode`) if a run blows up
    (learning rate too large), naming the run and the time α — never returns NaNs.

    Examples
    --------
    >>> import tsode
    >>> state0 = tsode.initial_state(2, 2, "random", N=1000, seed=0)
    >>> setup = tsode.Setup("erf", eta=1.0)
    >>> traj = tsode.simulate(state0, setup, N=1000, alpha_max=10, engine="reduced", n_runs=8)
    >>> traj.eg.shape == (8, traj.alpha.size)
    True
    """
    t_start = time.perf_counter()
    if not isinstance(state0, OrderParameters):
        raise TypeError(f"state0 must be an OrderParameters, got {type(state0).__name__}")
    if not isinstance(setup, Setup):
        raise TypeError(f"setup must be a Setup, got {type(setup).__name__}")
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; allowed: {', '.join(ENGINES)}")
    N = _integer(N, "N", 1)
    n_runs = _integer(n_runs, "n_runs", 1)
    seed = _integer(seed, "seed", 0)
    test_set = _integer(test_set, "test_set", 0)
    if test_set and engine != "full":
        raise ValueError("test_set > 0 needs engine='full' (the reduced engine has no weights)")
    if workers is None:
        workers = min(n_runs, _available_cpus())
    else:
        workers = _integer(workers, "workers", 1)
    if not (max_norm > 0):
        raise ValueError(f"max_norm must be > 0, got {max_norm}")
    if setup.weight_decay >= N:
        raise ValueError(
            f"weight_decay must be < N (each step multiplies the weights by 1 - kappa/N), got "
            f"weight_decay={setup.weight_decay}, N={N}"
        )
    steps = record_steps(N, alpha_max, alphas)
    G = np.array(state0.covariance, dtype=float)
    F = _gram_factor(G)
    rank = F.shape[1]
    if rank > N:
        raise ValueError(
            f"state0 does not exist in N={N} dimensions: its Gram matrix [[Q, R], [R^T, T]] has "
            f"rank {rank} > N; use N >= {rank} or a state of lower rank"
        )

    act = activation(setup.activation)
    code = _k.ACT_CODES[act.name]
    K, M = state0.K, state0.M
    if engine == "full":
        pars = (code, setup.eta, setup.eta_v, setup.sigma, setup.weight_decay)
    else:
        pars = (code, setup.eta, setup.eta_v, setup.sigma, setup.weight_decay, float(max_norm))

    X_test = None
    if test_set:
        test_rng = np.random.Generator(
            np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(2**32, 0)))
        )
        X_test = test_rng.standard_normal((test_set, N))

    T_out = steps.size
    Qs = np.empty((n_runs, T_out, K, K))
    Rs = np.empty((n_runs, T_out, K, M))
    vs = np.empty((n_runs, T_out, K))
    eg_test = np.empty((n_runs, T_out)) if test_set else None

    # segments: (steps to advance, output index to record afterwards or -1)
    # tasks: (first run, number of runs); the reduced engine advances groups of runs in lockstep
    if engine == "full":
        tasks = [(i, 1) for i in range(n_runs)]
    else:
        lanes = min(_LANES, -(-n_runs // workers))
        lanes = lanes if lanes >= _MIN_LANES else 1  # small groups run slower than single runs
        tasks = [(i, min(lanes, n_runs - i)) for i in range(0, n_runs, lanes)]
    cost = (K + M) * N if engine == "full" else (K + M) ** 3 * lanes
    piece = max(1, int(_PIECE_WORK / cost))
    segments = []
    prev = 0
    for t, s in enumerate(steps):
        gap = int(s - prev)
        while gap > piece:
            segments.append((piece, -1))
            gap -= piece
        segments.append((gap, t))
        prev = int(s)
    total = int(steps[-1])

    bar = None
    if _auto_progress(progress):
        from tqdm import tqdm

        bar = tqdm(
            total=total * n_runs, unit="step", unit_scale=True, delay=0 if progress else 2.0,
            desc=f"simulate ({engine}, N={N})", file=sys.stderr,
        )
    lock = threading.Lock()
    stop = threading.Event()

    def one_task(first, count):
        """Runs first, ..., first + count - 1 to the last output time, recording them."""
        rngs = [_streams(seed, i) for i in range(first, first + count)]
        if engine == "full":
            run = _FullRun(state0, F, N, *rngs[0], pars)
        else:
            run = _ReducedRuns(state0, N, [r[0] for r in rngs], pars, RANK_RTOL, bool(_with_chi2))
        done = 0
        for n_steps, t in segments:
            if stop.is_set():
                return
            if n_steps:
                completed = run.advance(n_steps)
                if completed < n_steps:
                    lane = 0 if engine == "full" else int(run.failed[0])
                    raise _diverged(first + lane, done + completed + 1, N, setup, "at")
                done += n_steps
                if bar is not None:
                    with lock:
                        bar.update(n_steps * count)
            if t >= 0:
                Q, R, v = run.observe()
                Q, R, v = Q.reshape(count, K, K), R.reshape(count, K, M), v.reshape(count, K)
                bad = ~(np.isfinite(Q).all(axis=(1, 2)) & np.isfinite(v).all(axis=1)
                        & (np.abs(np.diagonal(Q, axis1=1, axis2=2)).max(axis=1) <= max_norm)
                        & (np.abs(v).max(axis=1) <= max_norm))
                if bad.any():
                    raise _diverged(first + int(np.argmax(bad)), done, N, setup, "before")
                Qs[first:first + count, t], Rs[first:first + count, t] = Q, R
                vs[first:first + count, t] = v
                if eg_test is not None:
                    eg_test[first, t] = run.test_error(X_test, act.g)

    try:
        if workers == 1:
            for task in tasks:
                one_task(*task)
        else:
            with ThreadPoolExecutor(max_workers=min(workers, len(tasks))) as pool:
                futures = [pool.submit(one_task, *task) for task in tasks]
                try:
                    wait(futures, return_when=FIRST_EXCEPTION)
                    for f in futures:
                        f.result()
                except BaseException:  # a divergence, or KeyboardInterrupt: stop the others
                    stop.set()
                    raise
    finally:
        if bar is not None:
            bar.close()

    T_teacher = np.array(state0.T, dtype=float)
    C = np.empty((n_runs, T_out, K + M, K + M))
    C[..., :K, :K] = Qs
    C[..., :K, K:] = Rs
    C[..., K:, :K] = np.swapaxes(Rs, -1, -2)
    C[..., K:, K:] = T_teacher
    eg = eg_from_covariance(C, vs, np.asarray(state0.v_star), act)
    seconds = time.perf_counter() - t_start
    info = dict(
        engine=engine, N=N, seed=seed, n_runs=n_runs, steps=total, workers=workers,
        seconds=seconds, run_steps_per_second=total * n_runs / max(seconds, 1e-12),
    )
    if n_runs == 1:
        Qs, Rs, vs, eg = Qs[0], Rs[0], vs[0], eg[0]
        eg_test = None if eg_test is None else eg_test[0]
    if eg_test is not None:
        info.update(eg_test=eg_test, test_set=test_set)
    return Trajectory(
        alpha=steps / N, eg=eg, Q=Qs, R=Rs, v=vs, T_teacher=T_teacher,
        v_star=np.array(state0.v_star, dtype=float), setup=setup, info=info,
    )


def _diverged(run: int, step: int, N: int, setup: Setup, when: str) -> DivergenceError:
    return DivergenceError(
        f"run {run} diverged {when} alpha = {step / N:.6g} (step {step}): the weights blew up; the "
        f"learning rate eta = {setup.eta:g} (eta_v = {setup.eta_v:g}) is probably too large for "
        "this network"
    )
