"""Execution of one sweep task, in whatever process or machine the executor picks.

:func:`run_task` takes and returns plain data only (dicts of numbers, strings and numpy
arrays), so any ``concurrent.futures.Executor`` or Dask can ship it. Its result depends only
on the payload (settings, output times, seeds): bitwise the same wherever it runs.
"""

from __future__ import annotations

import os
import socket
import time

import numpy as np

__all__ = ["run_task", "limit_threads", "cpu_signature"]

_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                "NUMBA_NUM_THREADS")


def limit_threads() -> None:
    """Process-pool initializer: one BLAS/OpenMP thread per worker process (tasks run side by
    side; ``threads`` in the spec sets the simulator's threads per task). Workers ignore
    SIGINT: on Ctrl-C the driver stores what has arrived and terminates them."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for var in _THREAD_VARS:
        os.environ.setdefault(var, "1")


def cpu_signature() -> str:
    """LLVM's name of this CPU and a hash of its features, e.g. "znver5+3cc6f2b4a321": the
    compiled kernels (and so the last bits of a result) can differ between signatures."""
    import hashlib

    import llvmlite.binding as llvm

    features = llvm.get_host_cpu_features().flatten()
    return f"{llvm.get_host_cpu_name()}+{hashlib.sha256(features.encode()).hexdigest()[:12]}"


def _state0(s: dict, init_seed: int):
    from .. import initial_state

    kwargs = dict(v=s["v"], v_star=s["v_star"], orthogonal_teacher=s["orthogonal_teacher"])
    if s["init_std"] is not None:
        kwargs["init_std"] = s["init_std"]
    state = initial_state(s["K"], s["M"], s["init"], N=s["N"], seed=init_seed, **kwargs)
    if s["v_scale"] != 1.0:  # e.g. v = "normal", v_scale = 1e-3: v at the first layer's scale
        state = state.replace(v=s["v_scale"] * np.asarray(state.v))
    return state


def _with_run_axis(traj, runs: int) -> dict:
    """Trajectory arrays with a leading run axis: eg (runs, T), Q (runs, T, K, K), ..."""
    arrays = dict(eg=traj.eg, Q=traj.Q, R=traj.R, v=traj.v)
    if traj.eg.ndim == 1:
        arrays = {k: a[None] for k, a in arrays.items()}
    assert arrays["eg"].shape[0] == runs
    return arrays


def _fixed_point(traj, setup) -> dict:
    from .. import fixed_point

    fp = fixed_point(traj.final, setup, raise_on_failure=False)
    re = np.real(fp.eigenvalues)
    return dict(
        eg_star=np.float64(fp.eg), Q_star=np.asarray(fp.state.Q, float),
        R_star=np.asarray(fp.state.R, float), v_fp=np.asarray(fp.state.v, float),
        max_re_eig=np.float64(re.max() if re.size else np.nan),
        fp_converged=np.int8(fp.converged), fp_residual=np.float64(fp.residual),
    )


def run_task(payload: dict) -> dict:
    """Run one task; return its arrays and provenance.

    Parameters
    ----------
    payload : ``Task.payload()``: ``settings`` (one value per setting), ``alphas`` (T,) output
        times, ``init_seed`` (initial state), ``sim_seed`` (SGD noise of all runs).

    Returns
    -------
    dict with eg (runs, T), Q (runs, T, K, K), R (runs, T, K, M), v (runs, T, K),
    T_teacher (M, M), v_star (M,), alpha_recorded (T,) (= steps/N for SGD), seconds, host,
    cpu (:func:`cpu_signature`), error ("" or the divergence message; the arrays are NaN then) and, for the fixed_point
    engine, eg_star, Q_star, R_star, v_fp, max_re_eig, fp_converged, fp_residual.
    """
    from .. import DivergenceError, Setup, integrate, simulate

    t0 = time.perf_counter()
    s = payload["settings"]
    alphas = np.asarray(payload["alphas"], dtype=float)
    setup = Setup(s["activation"], s["eta"], s["eta_v"], s["sigma"], s["weight_decay"])
    state0 = _state0(s, payload["init_seed"])
    out = dict(T_teacher=np.asarray(state0.T, float), v_star=np.asarray(state0.v_star, float))
    engine, runs = s["engine"], s["runs"]
    try:
        if engine in ("full", "reduced"):
            traj = simulate(state0, setup, s["N"], alphas[-1], engine=engine,
                            seed=payload["sim_seed"], n_runs=runs, alphas=alphas,
                            progress=False, workers=min(s["threads"], runs))
        else:
            traj = integrate(state0, setup, alphas[-1], alphas=alphas, rtol=s["rtol"],
                             atol=s["atol"])
        out.update(_with_run_axis(traj, runs), alpha_recorded=np.asarray(traj.alpha, float),
                   error="")
        if engine == "fixed_point":
            out.update(_fixed_point(traj, setup))
    except DivergenceError as e:
        K, M, T = s["K"], s["M"], alphas.size
        nan = np.full
        out.update(eg=nan((runs, T), np.nan), Q=nan((runs, T, K, K), np.nan),
                   R=nan((runs, T, K, M), np.nan), v=nan((runs, T, K), np.nan),
                   alpha_recorded=alphas, error=str(e))
    out.update(seconds=time.perf_counter() - t0, host=f"{socket.gethostname()}:{os.getpid()}",
               cpu=cpu_signature())
    return out
