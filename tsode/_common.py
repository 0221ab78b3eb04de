r"""Private plumbing shared by the engines (like scipy's ``integrate/_ivp/common.py``).

* :func:`check_number`, :func:`check_int` — the one validator of scalar arguments: bools,
  strings, complex numbers, NaN and inf are refused with a ValueError naming the parameter and
  its allowed range;
* :func:`check_alphas` — the output times of ``integrate`` / ``simulate``;
* :func:`covariance` — the field covariance :math:`C = [[Q, R], [R^\top, T]]`, vectorised;
* :func:`psd_violation` / :func:`is_psd` — the one positive semi-definiteness test (relative);
* :func:`fd_steps`, :func:`fd_jacobian` — the finite-difference Jacobian of a batched map;
* :func:`check_memory` — refuse an allocation that would not fit in memory.
"""

from __future__ import annotations

import numbers
import os

import numpy as np

#: Relative tolerance on the smallest eigenvalue of the Jacobi-scaled covariance.
PSD_RTOL = 1e-8
#: Variances below this fraction of the largest one are scaled as if they were equal to it
#: (dead units: their tiny overlaps carry the solver's absolute error, not geometry).
PSD_FLOOR = 1e-12


def _is_real_scalar(x) -> bool:
    if isinstance(x, (bool, np.bool_)):
        return False
    if isinstance(x, np.ndarray):
        return x.ndim == 0 and x.dtype.kind in "iuf"
    return isinstance(x, numbers.Real)


def check_number(x, name, *, lower=0.0, strict=False, upper=None) -> float:
    """``x`` as a finite float > lower (strict) or >= lower (None: no bound), and <= upper.

    Only real numbers (int, float, numpy integer/floating scalars) are accepted: bools, strings
    and complex numbers are refused, as are NaN and inf. Raises ValueError naming ``name`` and
    the allowed range.
    """
    rng = "" if lower is None else f" {'>' if strict else '>='} {lower:g}"
    if upper is not None:
        rng += f"{' and' if rng else ''} <= {upper:g}"
    if not _is_real_scalar(x):
        raise ValueError(f"{name} must be a real number (finite and{rng}), got {x!r}")
    try:
        value = float(x)
    except OverflowError:  # a huge Python int
        value = float("inf")
    bad = not np.isfinite(value)
    if lower is not None:
        bad = bad or (value <= lower if strict else value < lower)
    if upper is not None:
        bad = bad or value > upper
    if bad:
        raise ValueError(f"{name} must be finite and{rng}, got {value}")
    return value


def check_int(x, name, lower, *, integral_float=False, upper=None) -> int:
    """``x`` as an int >= lower (and <= upper); else ValueError naming ``name``.

    Bools are refused; floats only when ``integral_float`` and they are finite whole numbers
    (``N=1e5``).
    """
    rng = f">= {lower}" + ("" if upper is None else f" and <= {upper}")
    value = None
    if isinstance(x, (bool, np.bool_)):
        pass
    elif isinstance(x, (int, np.integer)):
        value = int(x)
    elif (integral_float and isinstance(x, (float, np.floating)) and np.isfinite(x)
          and float(x).is_integer()):
        value = int(x)
    if value is None or value < lower or (upper is not None and value > upper):
        whole = " (or a whole float such as 1e5)" if integral_float else ""
        raise ValueError(f"{name} must be an integer {rng}{whole}, got {x!r}")
    return value


def default_alphas(alpha_max: float, n: int = 200) -> np.ndarray:
    """Output times: 0 followed by n log-spaced times from min(1e-2, alpha_max/10) to alpha_max."""
    start = min(1e-2, alpha_max / 10)
    return np.concatenate([[0.0], np.geomspace(start, alpha_max, n)])


def check_times(alphas, name: str = "alphas") -> np.ndarray:
    """``alphas`` as a float array, checked: a non-empty, finite, strictly increasing 1-D array
    of times >= 0; ValueError naming ``name`` otherwise."""
    try:
        alphas = np.array(alphas, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a 1-D array of real output times, got {alphas!r}") \
            from None
    if alphas.ndim != 1 or alphas.size < 1:
        raise ValueError(f"{name} must be a non-empty 1-D array of output times, got shape "
                         f"{alphas.shape}")
    if not np.all(np.isfinite(alphas)):
        raise ValueError(f"{name} must be finite, got {alphas[~np.isfinite(alphas)][:3]} among "
                         "them")
    if np.any(np.diff(alphas) <= 0) or alphas[0] < 0:
        raise ValueError(f"{name} must be strictly increasing times >= 0, got {alphas[:5]}...")
    return alphas


def check_alphas(alpha_max, alphas):
    """(alpha_max, alphas) checked: alpha_max finite > 0, alphas a non-empty, finite, strictly
    increasing 1-D array within [0, alpha_max] (:func:`check_times`; default
    :func:`default_alphas`). A last time a rounding error (1e-12 relative) above alpha_max is set
    to alpha_max."""
    alpha_max = check_number(alpha_max, "alpha_max", strict=True)
    if alphas is None:
        return alpha_max, default_alphas(alpha_max)
    alphas = check_times(alphas)
    if alphas[-1] > alpha_max * (1 + 1e-12):
        raise ValueError(f"alphas must be strictly increasing within [0, alpha_max={alpha_max}]")
    alphas[-1] = min(alphas[-1], alpha_max)
    if alphas.size > 1 and alphas[-1] <= alphas[-2]:
        raise ValueError("alphas must be strictly increasing within [0, alpha_max]")
    return alpha_max, alphas


def covariance(Q, R, T) -> np.ndarray:
    """Field covariance [[Q, R], [R^T, T]] of shape (..., K+M, K+M).

    Q (..., K, K), R (..., K, M), T (M, M) or (..., M, M); leading axes broadcast.
    """
    Q, R, T = (np.asarray(a, dtype=float) for a in (Q, R, T))
    K, M = Q.shape[-1], T.shape[-1]
    lead = np.broadcast_shapes(Q.shape[:-2], R.shape[:-2], T.shape[:-2])
    C = np.empty(lead + (K + M, K + M))
    C[..., :K, :K] = Q
    C[..., :K, K:] = R
    C[..., K:, :K] = np.swapaxes(R, -1, -2)
    C[..., K:, K:] = T
    return C


def psd_violation(C) -> np.ndarray:
    r"""Minus the smallest eigenvalue of the Jacobi-scaled covariance :math:`D^{-1/2} C D^{-1/2}`
    (D: the diagonal, floored at ``PSD_FLOOR`` times its largest entry), shape (...).

    Scaling makes the test relative: Q = 1e-12 [[1, 2], [2, 1]] violates it by 1 whatever the
    other blocks, and round-off of a valid covariance by ~1e-16. C is PSD when the result is
    <= ``PSD_RTOL``.
    """
    C = np.asarray(C, dtype=float)
    d = np.einsum("...ii->...i", C)
    if np.any(d < 0):
        out = np.zeros(C.shape[:-2])
        return np.where(np.min(d, axis=-1) < 0, np.inf, out)
    top = np.max(d, axis=-1, keepdims=True)
    s = np.sqrt(np.maximum(d, np.maximum(PSD_FLOOR * top, np.finfo(float).tiny)))
    S = C / s[..., :, None] / s[..., None, :]
    if not np.all(np.isfinite(S)):
        return np.full(C.shape[:-2], np.inf)
    return -np.linalg.eigvalsh(S)[..., 0]


def is_psd(C) -> bool:
    """True when every covariance in C (..., n, n) passes :func:`psd_violation`."""
    return bool(np.all(psd_violation(C) <= PSD_RTOL))


def fd_steps(y, rel_step):
    """Finite-difference steps h_j = rel_step * max(|y_j|, 1e-3), shape (n,)."""
    return rel_step * np.maximum(np.abs(np.asarray(y, dtype=float)), 1e-3)


def fd_jacobian(F, y, rel_step=1e-7, *, central=True, f0=None, block=64):
    """Finite-difference Jacobian dF/dy (m, n) of a batched map F: (B, n) -> (B, m) at y (n,).

    Columns are evaluated ``block`` at a time (so memory grows with the block, not with n):
    central differences by default, forward ones with ``central=False`` (``f0`` = F(y) may be
    passed to save one evaluation).
    """
    y = np.asarray(y, dtype=float)
    h = fd_steps(y, rel_step)
    n = y.size
    if not central and f0 is None:
        f0 = F(y[None])[0]
    cols = []
    for start in range(0, n, block):
        j = np.arange(start, min(n, start + block))
        E = np.zeros((j.size, n))
        E[np.arange(j.size), j] = h[j]
        if central:
            Fs = F(np.concatenate([y + E, y - E]))
            cols.append((Fs[: j.size] - Fs[j.size:]) / (2 * h[j, None]))
        else:
            cols.append((F(y + E) - f0[None]) / h[j, None])
    return np.concatenate(cols).T


def available_memory() -> float:
    """Bytes of memory available now (MemAvailable of /proc/meminfo; inf if unknown)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return float("inf")


def check_memory(n_bytes: float, what: str, hint: str) -> None:
    """Raise MemoryError (with ``what`` and ``hint``) when ``n_bytes`` exceed 80 % of the
    memory available now."""
    avail = available_memory()
    if n_bytes > 0.8 * avail:
        raise MemoryError(
            f"{what} needs about {n_bytes / 2**30:.3g} GiB but only {avail / 2**30:.3g} GiB of "
            f"memory is available; {hint}"
        )


#: Bytes held per I4 integral by the ODE drift and its Jacobian: index tuples (32), values and
#: coefficients (3 x 8), column hit lists (~10 x 4), scratch.
BYTES_PER_I4 = 112


#: integrate() hands the per-integral FD Jacobian (its I4 index sets, ``BYTES_PER_I4`` each) to
#: the implicit solvers while it fits in this many bytes (K <~ 60 at M = 4); beyond, they
#: difference the drift themselves.
JACOBIAN_BUDGET = 2**30


def ode_memory(K: int, M: int, n_times: int = 201) -> float:
    r"""Estimated bytes of one ODE integration (:func:`tsode.integrate`) at K, M: the I4 index
    sets of the per-integral Jacobian (:math:`K(K+1)/2 \cdot n(n+1)/2` integrals, n = K + M, at
    ``BYTES_PER_I4`` each) when they fit in ``JACOBIAN_BUDGET`` (the drift itself sums the
    integrals on the fly, memory O(K²)), the solver's dense Jacobian (size², size = K(K+1)/2 +
    KM + K) and the recorded trajectory (``n_times`` states)."""
    n, n_q = K + M, K * (K + 1) / 2
    size = n_q + K * M + K
    tables = BYTES_PER_I4 * n_q * n * (n + 1) / 2
    return (tables if tables <= JACOBIAN_BUDGET else 0.0) + 8.0 * size * (3 * size + n_times)


def simulation_memory(K: int, M: int, N: int, n_runs: int, n_times: int, engine: str,
                      workers: int = 1, test_set: int = 0, rank: int | None = None) -> float:
    """Estimated bytes of one :func:`tsode.simulate` call: the recorded overlaps of every run
    (n_runs x n_times x (K² + KM + K + 1) floats) and, for ``engine="full"``, per concurrent run
    the (K+M) x N weights, the N x rank rotation and its QR workspace (rank <= K + M), plus the
    test set (test_set x N)."""
    rank = K + M if rank is None else rank
    n_bytes = 8.0 * n_runs * n_times * (K * K + K * M + K + 1)
    if engine == "full":
        n_bytes += 8.0 * (min(workers, n_runs) * (K + M + 3 * rank + 1) * N + test_set * N)
    return n_bytes


def sampled_state_memory(K: int, M: int, N: int) -> float:
    """Bytes of sampling a "random"/"small" initial state in N dimensions: the (K + M) x N
    Gaussian weights and a QR workspace (:func:`tsode.initial_state`)."""
    return 2.0 * (K + M) * N * 8


def format_bytes(n_bytes: float) -> str:
    """``n_bytes`` in B, kB, MB, GB or TB (powers of 1000, 3 significant digits)."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.3g} {unit}"
    return f"{n_bytes:.3g} B"


#: Seconds between two :class:`ProgressLog` lines.
PROGRESS_EVERY = 10.0


class ProgressLog:
    """A tqdm-like ``update(n)`` / ``close()`` that writes one line to stderr every
    ``every`` seconds (default ``PROGRESS_EVERY``; the first after that long): progress of a
    long computation when stderr is not a terminal (logs of batch jobs), where a bar would be
    noise.

    Lines read ``<what>: 12.3% (1.2e+09 of 1e+10 steps), 30 s elapsed, about 214 s left``.
    """

    def __init__(self, what: str, total: float, unit: str = "steps", every: float | None = None,
                 stream=None, clock=None):
        import sys
        import time

        self.what, self.total, self.unit = what, float(total), unit
        self.every = PROGRESS_EVERY if every is None else every
        self.stream = sys.stderr if stream is None else stream
        self._clock = time.monotonic if clock is None else clock
        self.t0 = self.last = self._clock()
        self.n = 0.0

    def update(self, n: float = 1) -> None:
        self.n += n
        now = self._clock()
        if now - self.last >= self.every:
            self.last = now
            self.stream.write(self.line(now - self.t0) + "\n")
            self.stream.flush()

    def set(self, n: float) -> None:
        """Progress to ``n`` done (for computations that report where they are)."""
        self.update(n - self.n)

    def line(self, elapsed: float) -> str:
        frac = self.n / self.total if self.total > 0 else 1.0
        left = elapsed * (1 - frac) / frac if frac > 0 else float("inf")
        return (f"{self.what}: {100 * frac:.1f}% ({self.n:.3g} of {self.total:.3g} "
                f"{self.unit}), {elapsed:.0f} s elapsed, about {left:.0f} s left")

    def close(self) -> None:
        pass


def log_progress(progress) -> bool:
    """True when a long computation should write :class:`ProgressLog` lines: ``progress`` is
    None (automatic), stderr is not a terminal and this is not a Jupyter kernel (whose
    outputs are part of a notebook)."""
    import sys

    if progress is not None or "ipykernel" in sys.modules:
        return False
    try:
        return not sys.stderr.isatty()
    except (AttributeError, ValueError):
        return True
