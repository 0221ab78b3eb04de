r"""Two-level (starts × runs) estimates for SGD ensembles over several macroscopic starts.

An ensemble of a sweep with a ``start`` dimension holds x_sr, run r = 1..R from start
s = 1..S. The one-way random-effects model x_sr = μ + b_s + e_sr (b_s ~ (0, σ_b²) the start's
offset, e_sr ~ (0, σ_w²) the SGD noise of a run) has, for a balanced design, the ANOVA
estimators (e.g. Searle, Casella & McCulloch, *Variance Components*, 1992, ch. 3)

    m_s = (1/R) Σ_r x_sr,   x̄ = (1/S) Σ_s m_s,
    MSB = R/(S − 1) Σ_s (m_s − x̄)²,   MSW = 1/(S(R − 1)) Σ_sr (x_sr − m_s)²,
    σ̂_w² = MSW,   σ̂_b² = max(0, (MSB − MSW)/R),

and the standard error of x̄ is sd(m_s)/√S (ddof = 1): the start means are i.i.d. with variance
σ_b² + σ_w²/R, so this is valid for any R ≥ 1 (R ≥ 2 is needed only to split σ_b from σ_w).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["TwoLevel", "two_level"]


@dataclass(frozen=True)
class TwoLevel:
    """Result of :func:`two_level`; every array has the leading shape (...) of the input.

    mean : grand mean x̄ over all S·R values.
    stderr : sd of the start means (ddof = 1) / √S, the standard error of ``mean``.
    start_sd : sd of the start means m_s (ddof = 1), estimating √(σ_b² + σ_w²/R).
    between_sd : σ̂_b, the between-start standard deviation (NaN when R = 1).
    within_sd : σ̂_w, the within-start (run-to-run) standard deviation (NaN when R = 1).
    starts, runs : S and R.
    """

    mean: np.ndarray
    stderr: np.ndarray
    start_sd: np.ndarray
    between_sd: np.ndarray
    within_sd: np.ndarray
    starts: int
    runs: int


def two_level(x) -> TwoLevel:
    """Two-level estimate of an array ``x`` of shape (..., S, R): S ≥ 2 starts (second-to-last
    axis), R ≥ 1 runs per start (last axis); vectorised over the leading axes. NaN entries
    propagate to the results of their leading index (drop diverged runs before).

    Raises ValueError when x has fewer than 2 dimensions or fewer than 2 starts.
    """
    x = np.asarray(x, dtype=float)
    if x.ndim < 2:
        raise ValueError(f"x must have shape (..., starts, runs), got shape {x.shape}")
    S, R = x.shape[-2:]
    if S < 2 or R < 1:
        raise ValueError(f"two_level needs starts >= 2 and runs >= 1, got starts = {S}, "
                         f"runs = {R} (x of shape {x.shape})")
    m = x.mean(-1)
    start_sd = m.std(-1, ddof=1)
    if R >= 2:
        msw = x.var(-1, ddof=1).mean(-1)
        msb = R * m.var(-1, ddof=1)
        within = np.sqrt(msw)
        between = np.sqrt(np.maximum(0.0, (msb - msw) / R))
    else:
        within = between = np.full(m.shape[:-1], np.nan)
    return TwoLevel(mean=m.mean(-1), stderr=start_sd / np.sqrt(S), start_sd=start_sd,
                    between_sd=between, within_sd=within, starts=S, runs=R)
