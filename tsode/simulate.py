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
from dataclasses import dataclass

import numpy as np

from . import _sim_kernels as _k
from ._common import (
    ProgressLog, check_alphas, check_int, check_memory, check_number, covariance, log_progress,
    simulation_memory,
)
from .ode import DivergenceError, Drift
from .order_parameters import OrderParameters, Setup, eg_from_covariance
from .trajectory import Trajectory

__all__ = ["simulate", "ENGINES", "record_steps"]

#: Names of the simulation engines.
ENGINES = ("full", "reduced", "sde")

#: Eigenvalues / Cholesky pivots of G below this fraction of its largest diagonal count as zero.
RANK_RTOL = 1e-13

#: Work (steps x cost per step, in flops) of one kernel call before control returns to Python
#: (progress bar, stopping all runs when one diverges or on KeyboardInterrupt): ~0.1 s.
_PIECE_WORK = 2e7

#: Groups of runs that one task of the reduced engine advances in lockstep: at most _LANES runs;
#: groups below _MIN_LANES runs are split into single runs (scalar loops are faster there).
_LANES = 32
_MIN_LANES = 4

#: From this many fields K + M on, the reduced engine carries the Cholesky factor of G from step
#: to step by a rank-2 update (O((K+M)^2)) and factorises afresh (O((K+M)^3)) only every
#: _REFRESH steps; below it a new factorisation is as cheap (measured, benchmarks/scale.py).
_RANK2_MIN_FIELDS = 24
_REFRESH = 128


def record_steps(N: int, alpha_max: float, alphas=None) -> np.ndarray:
    """Step counts at which a simulation of input dimension N records the order parameters.

    ``alphas`` (increasing, within [0, alpha_max]) are rounded to the nearest integer step
    count ``round(alpha N)``; by default ``tsode.ode.default_alphas(alpha_max)`` (0 and 200
    log-spaced times) rounded the same way, with duplicates removed. Returns an int64 array
    (T,); the recorded times are exactly ``steps / N``.
    """
    alpha_max, grid = check_alphas(alpha_max, alphas)
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
        with np.errstate(over="ignore", invalid="ignore"):  # blown-up weights: checked later
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
    ``rngs[j]``, in stream order, a block of ``chunk`` steps ahead (whatever the segments
    advanced: fewer compiled calls per step), so its trajectory does not depend on the
    grouping nor on the output times.
    """

    def __init__(self, state0: OrderParameters, N, rngs, pars, rank_rtol, with_chi2, chunk=1024):
        runs = len(rngs)
        G = np.array(state0.covariance, dtype=float)
        n = G.shape[0]
        self.G = np.ascontiguousarray(np.repeat(G[:, :, None], runs, axis=2))
        self.v = np.ascontiguousarray(np.repeat(np.array(state0.v, dtype=float)[:, None], runs, 1))
        self.vs = np.array(state0.v_star, dtype=float)
        self.K, self.N, self.rngs = state0.K, N, rngs
        from numba.typed import List  # here: importing tsode stays free of numba.typed

        self.typed_rngs = List(rngs)  # the same generators, typed once
        code, eta, eta_v, sigma, decay, max_norm = pars
        self.draw_pars = (min(n, N), N, sigma, with_chi2)
        self.pars = (code, eta, eta_v, sigma, decay, max_norm, rank_rtol)
        self.Z = np.empty((chunk, min(n, N), runs))
        self.X2, self.ZE = np.empty((chunk, runs)), np.empty((chunk, runs))
        self.failed = np.zeros(1, dtype=np.int64)  # the run of the group that diverged
        self.next = self.filled = 0  # rows of Z used / drawn (drawn ahead, whole blocks)
        self.steps = 0  # steps done (the rank-2 update's refresh schedule)
        # the Cholesky factor carried by rank-2 updates between fresh factorisations
        self.refresh = _REFRESH if n >= _RANK2_MIN_FIELDS else 1
        self.L, self.ok = np.zeros((n, n, runs)), np.zeros(runs)

    def advance(self, n_steps):
        done = 0
        while done < n_steps:
            if self.next == self.filled:  # draw the next block of every run ahead
                _k.draw_lanes(self.typed_rngs, *self.draw_pars, self.Z, self.X2, self.ZE)
                self.next, self.filled = 0, self.Z.shape[0]
            lo = self.next
            b = min(self.filled - lo, n_steps - done)
            Z, X2, ZE = self.Z[lo:], self.X2[lo:], self.ZE[lo:]
            if len(self.rngs) == 1 and self.refresh == 1:  # scalar loops: faster for one run
                n = self.G.shape[0]
                completed = _k.reduced_advance_one(
                    self.G.reshape(n, n), self.v.reshape(-1), self.vs, Z[:, :, 0], X2[:, 0],
                    ZE[:, 0], b, self.K, self.N, *self.pars,
                )
            else:
                completed = _k.reduced_advance_lanes(
                    self.G, self.v, self.vs, Z, X2, ZE, b, self.K, self.N,
                    *self.pars, self.failed, self.refresh, self.L, self.ok, self.steps,
                )
            done += completed
            self.next += completed
            self.steps += completed
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
    N : int >= 1 (a whole float such as 1e5 is accepted), input dimension.
    alpha_max : float > 0, final time α = steps / N.
    engine : "full", "reduced" or "sde"
        ``"full"``: SGD on N-dimensional weights, O((K+M) N) per step. ``"reduced"``: the exact
        Markov chain of (Q, R, v), O((K+M)^3) per step whatever N; same law as ``"full"``.
        ``"sde"``: the diffusion approximation dy = F dα + sqrt(D/N) dW (:mod:`tsode.sde`),
        Euler–Maruyama with a step in α independent of N: cost per run independent of N.
    seed : int >= 0
        Run i draws from ``SeedSequence(seed, spawn_key=(i, j))``: the same seed gives the same
        trajectories (whatever ``workers``), and run i is the same for every ``n_runs`` > i.
    n_runs : int >= 1, independent runs from the same initial state.
    alphas : 1-D array, optional
        Output times in [0, alpha_max], rounded to integer step counts round(α N) (they must stay
        distinct). Default: ``tsode.ode.default_alphas(alpha_max)`` (0 and 200 log-spaced times)
        rounded to step counts, duplicates removed. The runs stop at the last output time.
    progress : bool or None, tqdm bar; None: a bar when stderr is a terminal (after 2 s),
        otherwise (batch logs, not in a notebook) a line every 10 s with the run-steps done
        and the time left.
    workers : int >= 1, threads running runs in parallel; default min(n_runs, CPUs).
    test_set : int >= 0
        Full engine only: if > 0, also estimate ε_g on a fixed test set of that many Gaussian
        inputs (shared by all runs) at every output time; returned as ``info["eg_test"]``
        (same shape as ``eg``). A cross-check of the closed forms; costs O(test_set (K+M) N) per
        output time.
    max_norm : float in (0, 1e100]; a run diverges when Δ = φ − y becomes non-finite, or a
        diagonal entry of Q or an entry of v exceeds it (reduced: every step; full: output times).

    Returns
    -------
    Trajectory
        ``alpha`` (T,) = recorded steps / N; ``eg`` (T,) from the closed forms
        (ε_g = ½ Σ_ab w_a w_b I2(a, b), noiseless teacher); ``Q`` (T, K, K), ``R`` (T, K, M),
        ``v`` (T, K) — with a leading run axis (n_runs, ...) when n_runs > 1; ``info``: engine,
        N, seed, n_runs, steps, workers, seconds, run_steps_per_second (eg_test, test_set).

    Raises
    ------
    TypeError if state0/setup have the wrong type; ValueError on bad parameters (naming the
    parameter and its allowed range; also alpha_max N >= 2^62 steps); MemoryError when the
    estimated memory (full engine's weights, recorded overlaps, the plan of kernel calls, which
    grows with the number of steps) exceeds 80 % of the memory available;
    DivergenceError (:mod:`tsode.ode`) if a run blows up, naming the run and α — never NaNs.

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
    plan = _check_simulate_args(state0, setup, N, alpha_max, engine, seed, n_runs, alphas,
                                workers, test_set, max_norm)
    if plan.engine == "sde":  # diffusion approximation: tsode.sde
        from .sde import trajectory

        return trajectory(plan, plan.workers)
    bar = _progress_bar(plan, progress)
    try:
        rec = _Recorder(plan, bar, bool(_with_chi2))
        _run_all(rec, plan.workers)
    finally:
        if bar is not None:
            bar.close()
    return _assemble(plan, rec, time.perf_counter() - t_start)


@dataclass(frozen=True)
class _Plan:
    """The validated arguments of one :func:`simulate` call."""

    state0: OrderParameters
    setup: Setup
    N: int
    engine: str
    seed: int
    n_runs: int
    workers: int
    test_set: int
    max_norm: float
    steps: np.ndarray  # (T,) recorded step counts
    F: np.ndarray  # (K+M, r) Gram factor of state0


def _check_simulate_args(state0, setup, N, alpha_max, engine, seed, n_runs, alphas, workers,
                         test_set, max_norm) -> _Plan:
    """Validate the arguments of :func:`simulate` (ValueError naming the parameter)."""
    if not isinstance(state0, OrderParameters):
        raise TypeError(f"state0 must be an OrderParameters, got {type(state0).__name__}")
    if not isinstance(setup, Setup):
        raise TypeError(f"setup must be a Setup, got {type(setup).__name__}")
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; allowed: {', '.join(ENGINES)}")
    N = check_int(N, "N", 1, integral_float=True)
    n_runs = check_int(n_runs, "n_runs", 1, integral_float=True)
    seed = check_int(seed, "seed", 0, integral_float=True)
    test_set = check_int(test_set, "test_set", 0, integral_float=True)
    if test_set and engine != "full":
        raise ValueError("test_set > 0 needs engine='full' (the reduced engine has no weights)")
    workers = (min(n_runs, _available_cpus()) if workers is None
               else check_int(workers, "workers", 1, integral_float=True))
    max_norm = check_number(max_norm, "max_norm", strict=True, upper=1e100)
    if setup.weight_decay >= N:
        raise ValueError(
            f"weight_decay must be < N (each step multiplies the weights by 1 - kappa/N), got "
            f"weight_decay={setup.weight_decay}, N={N}"
        )
    if check_number(alpha_max, "alpha_max", strict=True) * N >= 2.0**62:
        raise ValueError(f"alpha_max * N = {alpha_max * N:.3g} steps: at most 2^62 steps can be "
                         f"counted (alpha_max = {alpha_max}, N = {N})")
    steps = record_steps(N, alpha_max, alphas)
    F = _gram_factor(np.array(state0.covariance, dtype=float))
    if F.shape[1] > N:
        raise ValueError(
            f"state0 does not exist in N={N} dimensions: its Gram matrix [[Q, R], [R^T, T]] has "
            f"rank {F.shape[1]} > N; use N >= {F.shape[1]} or a state of lower rank"
        )
    plan = _Plan(state0, setup, N, engine, seed, n_runs, workers, test_set, max_norm, steps, F)
    _check_simulation_memory(plan)
    return plan


def _check_simulation_memory(plan: _Plan) -> None:
    """Refuse a simulation that would not fit in memory: per concurrent run the (K+M) x N
    weights, the N x r rotation and its QR workspace (full engine); the test set; the recorded
    overlaps (:func:`tsode._common.simulation_memory`); and the plan of kernel calls, one
    ~120-byte entry per ``_PIECE_WORK`` flops of the whole run (:func:`_segments`), which is
    what bounds the number of steps (N = 1e15 at alpha_max = 100: 1e17 steps)."""
    K, M, N, r = plan.state0.K, plan.state0.M, plan.N, plan.F.shape[1]
    n_bytes = simulation_memory(K, M, N, plan.n_runs, plan.steps.size, plan.engine, plan.workers,
                                plan.test_set, r)
    steps = float(plan.steps[-1])
    lanes = max(count for _, count in _tasks(plan))
    cost = (K + M) * N if plan.engine == "full" else (K + M) ** 3 * lanes
    n_bytes += 120.0 * (steps / max(1, int(_PIECE_WORK / cost)) + plan.steps.size)
    check_memory(n_bytes, f"simulate(engine={plan.engine!r}, N={N}, n_runs={plan.n_runs}, "
                 f"workers={plan.workers}, test_set={plan.test_set}) of {steps:.3g} steps per "
                 "run", "use engine='reduced' (same law, memory independent of N), fewer workers, "
                 "a smaller test_set, or fewer steps (alpha_max N)")


def _segments(steps, cost_per_step):
    """(steps to advance, output index to record afterwards or -1) pieces of at most
    ``_PIECE_WORK / cost_per_step`` steps, so that control returns to Python regularly."""
    piece = max(1, int(_PIECE_WORK / cost_per_step))
    segments = []
    prev = 0
    for t, s in enumerate(steps):
        gap = int(s - prev)
        while gap > piece:
            segments.append((piece, -1))
            gap -= piece
        segments.append((gap, t))
        prev = int(s)
    return segments


class _Recorder:
    """Output arrays of all runs (n_runs, T, ...) and the step loop of one run."""

    def __init__(self, plan: _Plan, bar, with_chi2: bool = True):
        K, M, T = plan.state0.K, plan.state0.M, plan.steps.size
        self.plan, self.bar, self.with_chi2 = plan, bar, with_chi2
        self.Q = np.empty((plan.n_runs, T, K, K))
        self.R = np.empty((plan.n_runs, T, K, M))
        self.v = np.empty((plan.n_runs, T, K))
        self.eg_test = np.empty((plan.n_runs, T)) if plan.test_set else None
        self.X_test = None
        if plan.test_set:
            test_rng = np.random.Generator(
                np.random.PCG64(np.random.SeedSequence(plan.seed, spawn_key=(2**32, 0))))
            self.X_test = test_rng.standard_normal((plan.test_set, plan.N))
        self.tasks = _tasks(plan)
        lanes = max(count for _, count in self.tasks)
        cost = (K + M) * plan.N if plan.engine == "full" else (K + M) ** 3 * lanes
        self.segments = _segments(plan.steps, cost)
        self.lock, self.stop = threading.Lock(), threading.Event()

    def _new_task(self, first, count):
        p, s = self.plan, self.plan.setup
        rngs = [_streams(p.seed, i) for i in range(first, first + count)]
        pars = (s.act.code, s.eta, s.eta_v, s.sigma, s.weight_decay)
        if p.engine == "full":
            return _FullRun(p.state0, p.F, p.N, *rngs[0], pars)
        return _ReducedRuns(p.state0, p.N, [r[0] for r in rngs], pars + (p.max_norm,),
                            RANK_RTOL, self.with_chi2)

    def one_task(self, first, count):
        """Runs first, ..., first + count - 1 to the last output time, recording their overlaps."""
        p = self.plan
        run = self._new_task(first, count)
        done = 0
        for n_steps, t in self.segments:
            if self.stop.is_set():
                return
            if n_steps:
                completed = run.advance(n_steps)
                if completed < n_steps:
                    lane = 0 if p.engine == "full" else int(run.failed[0])
                    raise _diverged(first + lane, done + completed + 1, p, "at")
                done += n_steps
                if self.bar is not None:
                    with self.lock:
                        self.bar.update(n_steps * count)
            if t >= 0:
                self._record(run, first, count, t, done)

    def _record(self, run, first, count, t, done):
        K, M = self.plan.state0.K, self.plan.state0.M
        Q, R, v = run.observe()
        Q, R, v = Q.reshape(count, K, K), R.reshape(count, K, M), v.reshape(count, K)
        m = self.plan.max_norm
        bad = ~(np.isfinite(Q).all(axis=(1, 2)) & np.isfinite(v).all(axis=1)
                & (np.abs(np.diagonal(Q, axis1=1, axis2=2)).max(axis=1) <= m)
                & (np.abs(v).max(axis=1) <= m))
        if bad.any():
            raise _diverged(first + int(np.argmax(bad)), done, self.plan, "before")
        runs = slice(first, first + count)
        self.Q[runs, t], self.R[runs, t], self.v[runs, t] = Q, R, v
        if self.eg_test is not None:
            self.eg_test[first, t] = run.test_error(self.X_test, self.plan.setup.act.g)


def _tasks(plan: _Plan):
    """(first run, number of runs) of each task: single runs for the full engine; for the
    reduced engine groups of up to _LANES runs advanced in lockstep (a run's trajectory does not
    depend on its group)."""
    n_runs = plan.n_runs
    lanes = min(_LANES, -(-n_runs // plan.workers)) if plan.engine == "reduced" else 1
    lanes = lanes if lanes >= _MIN_LANES else 1
    return [(i, min(lanes, n_runs - i)) for i in range(0, n_runs, lanes)]


def _run_all(rec: _Recorder, workers: int) -> None:
    """Run every task, in ``workers`` threads; the first error stops the others."""
    if workers == 1 or len(rec.tasks) == 1:
        for task in rec.tasks:
            rec.one_task(*task)
        return
    with ThreadPoolExecutor(max_workers=min(workers, len(rec.tasks))) as pool:
        futures = [pool.submit(rec.one_task, *task) for task in rec.tasks]
        try:
            wait(futures, return_when=FIRST_EXCEPTION)
            for f in futures:
                f.result()
        except BaseException:  # a divergence, or KeyboardInterrupt: stop the others
            rec.stop.set()
            raise


def _progress_bar(plan: _Plan, progress):
    """A tqdm bar (``progress``, or None on a terminal), or off a terminal (batch logs) a
    :class:`tsode._common.ProgressLog`: one line every 10 s with the run-steps done of
    ``n_runs x steps`` and the time left."""
    if log_progress(progress):
        return ProgressLog(f"simulate ({plan.engine}, N={plan.N})",
                           int(plan.steps[-1]) * plan.n_runs, unit="run-steps")
    if not _auto_progress(progress):
        return None
    from tqdm import tqdm

    return tqdm(total=int(plan.steps[-1]) * plan.n_runs, unit="step", unit_scale=True,
                delay=0 if progress else 2.0, desc=f"simulate ({plan.engine}, N={plan.N})",
                file=sys.stderr)


def _assemble(plan: _Plan, rec: _Recorder, seconds: float) -> Trajectory:
    """The Trajectory of the recorded overlaps (run axis dropped when n_runs == 1)."""
    T_teacher = np.array(plan.state0.T, dtype=float)
    v_star = np.array(plan.state0.v_star, dtype=float)
    eg = eg_from_covariance(covariance(rec.Q, rec.R, T_teacher), rec.v, v_star, plan.setup.act)
    total = int(plan.steps[-1])
    info = dict(
        engine=plan.engine, N=plan.N, seed=plan.seed, n_runs=plan.n_runs, steps=total,
        workers=plan.workers, seconds=seconds,
        run_steps_per_second=total * plan.n_runs / max(seconds, 1e-12),
    )
    Qs, Rs, vs, eg_test = rec.Q, rec.R, rec.v, rec.eg_test
    if plan.n_runs == 1:
        Qs, Rs, vs, eg = Qs[0], Rs[0], vs[0], eg[0]
        eg_test = None if eg_test is None else eg_test[0]
    if eg_test is not None:
        info.update(eg_test=eg_test, test_set=plan.test_set)
    return Trajectory(alpha=plan.steps / plan.N, eg=eg, Q=Qs, R=Rs, v=vs, T_teacher=T_teacher,
                      v_star=v_star, setup=plan.setup, info=info)


def _diverged(run: int, step: int, plan: _Plan, when: str) -> DivergenceError:
    """The error of a run that blew up, naming the parameter whose term dominates the mean
    (ODE) drift at the initial state."""
    f = Drift.from_state(plan.state0, plan.setup)
    return DivergenceError(
        f"run {run} diverged {when} alpha = {step / plan.N:.6g} (step {step}): the weights blew "
        f"up; {f.culprit(f.pack_state(plan.state0))} is probably too large for this network"
    )
