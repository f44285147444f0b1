"""Aggregate statistics across seeds: interquartile mean and stratified bootstrap CIs.

Few seeds and outlier runs make the mean fragile and the median wasteful;
rliable (Agarwal et al. 2021) recommends the interquartile mean (IQM, the
mean of the middle 50%) with percentile confidence intervals from a
stratified bootstrap (runs resampled with replacement within each task).
``rliable`` itself does not import here (its ``arch`` dependency fails), so
these follow its definitions with numpy/scipy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.stats import trim_mean


def iqm(scores: np.ndarray) -> float:
    """Interquartile mean over all entries (rliable: ``trim_mean(x, 0.25, axis=None)``)."""
    x = np.asarray(scores, dtype=np.float64).ravel()
    if x.size == 0:
        raise ValueError("iqm of no scores")
    return float(trim_mean(x, 0.25, axis=None))


def stratified_bootstrap(
    scores: np.ndarray,
    statistic: Callable[[np.ndarray], float] = iqm,
    reps: int = 2000,
    seed: int = 0,
) -> np.ndarray:
    """``reps`` values of ``statistic`` on ``(runs, tasks)`` scores resampled within each task."""
    x = np.asarray(scores, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"scores must be (runs, tasks) with at least one run, got shape {x.shape}")
    if isinstance(reps, bool) or not isinstance(reps, int) or reps < 1:
        raise ValueError(f"reps must be a positive integer, got {reps!r}")
    n_runs, n_tasks = x.shape
    gen = np.random.default_rng(seed)
    columns = np.arange(n_tasks)[None, :]
    out = np.empty(reps)
    for i in range(reps):
        rows = gen.integers(0, n_runs, size=(n_runs, n_tasks))
        out[i] = statistic(x[rows, columns])
    return out


@dataclass(frozen=True)
class Interval:
    """A point estimate with its percentile bootstrap confidence interval."""

    estimate: float
    low: float
    high: float
    n: int

    def to_dict(self) -> dict:
        return {"estimate": self.estimate, "low": self.low, "high": self.high, "n": self.n}


def iqm_ci(scores: np.ndarray, confidence: float = 0.95, reps: int = 2000, seed: int = 0) -> Interval:
    """IQM and its stratified-bootstrap percentile CI; NaN scores (degenerate runs) are dropped."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    x = np.asarray(scores, dtype=np.float64)
    if x.ndim == 1:
        x = x[~np.isnan(x)][:, None]
    elif np.isnan(x).any():
        raise ValueError("iqm_ci: NaN scores in a (runs, tasks) table; drop degenerate runs first")
    if x.size == 0:
        return Interval(float("nan"), float("nan"), float("nan"), 0)
    boot = stratified_bootstrap(x, iqm, reps, seed)
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(boot, [tail, 100 - tail])
    return Interval(iqm(x), float(low), float(high), int(x.shape[0]))
