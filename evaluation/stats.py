"""Aggregate statistics across seeds: interquartile mean and stratified bootstrap CIs.

Few seeds and outlier runs make the mean fragile and the median wasteful;
rliable (Agarwal et al. 2021) recommends the interquartile mean (IQM, the
mean of the middle 50%) with percentile confidence intervals from a
stratified bootstrap (runs resampled with replacement within each task).
``rliable`` itself does not import here (its ``arch`` dependency fails), so
these follow its definitions with numpy/scipy.

A bootstrap over fewer than :data:`MIN_RUNS_FOR_CI` runs is not a confidence
interval worth the name: with 2 or 3 runs its percentiles are the smallest
and largest run. Below that many runs :func:`iqm_ci` therefore gives the
min–max and says so (``Interval.kind == "min-max"``); every printed interval
names its kind and the number of runs (:meth:`Interval.format`,
:func:`interval_label`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.stats import trim_mean

MIN_RUNS_FOR_CI = 5  # rliable's advice: fewer runs give a min–max, not a confidence interval
CI, MIN_MAX = "ci", "min-max"


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
    # one draw per resample, as always: the same resamples whatever the statistic
    rows = [gen.integers(0, n_runs, size=(n_runs, n_tasks)) for _ in range(reps)]
    if statistic is iqm:
        return iqm_rows(x[np.stack(rows), columns].reshape(reps, -1))
    out = np.empty(reps)
    for i in range(reps):
        out[i] = statistic(x[rows[i], columns])
    return out


def iqm_rows(samples: np.ndarray) -> np.ndarray:
    """:func:`iqm` of each row of ``(reps, m)``, vectorised: the same numbers as a loop of ``iqm``.

    It does what scipy's ``trim_mean(row, 0.25)`` does to each row (partition
    at the same two cut points, mean of the middle), in one call.
    """
    samples = np.asarray(samples, dtype=np.float64)
    m = samples.shape[1]
    low = int(0.25 * m)
    high = m - low
    middle = np.partition(samples, (low, high - 1), axis=1)[:, low:high]
    return np.mean(middle, axis=1)


@dataclass(frozen=True)
class Interval:
    """A point estimate (IQM over ``n`` runs) with its interval.

    ``kind`` is ``"ci"`` (percentile stratified-bootstrap CI at ``confidence``,
    from :data:`MIN_RUNS_FOR_CI` runs up) or ``"min-max"`` (the smallest and
    largest run: too few runs for a CI).
    """

    estimate: float
    low: float
    high: float
    n: int
    kind: str = CI
    confidence: float = 0.95

    def to_dict(self) -> dict:
        return {
            "estimate": self.estimate,
            "low": self.low,
            "high": self.high,
            "n": self.n,
            "kind": self.kind,
            "confidence": self.confidence if self.kind == CI else None,
        }

    @classmethod
    def from_dict(cls, d: dict) -> Interval:
        """Inverse of :meth:`to_dict`; ``None`` (JSON for NaN) reads as NaN, a missing kind as a CI."""

        def num(v):
            return float("nan") if v is None else float(v)

        return cls(
            num(d.get("estimate")),
            num(d.get("low")),
            num(d.get("high")),
            int(d.get("n") or 0),
            d.get("kind") or CI,
            float(d.get("confidence") or 0.95),
        )

    @property
    def empty(self) -> bool:
        return self.n == 0 or not np.isfinite(self.estimate)

    def describe(self) -> str:
        """What the interval is: ``"95% CI, n=5"`` or ``"min–max, n=3"``."""
        what = f"{100 * self.confidence:g}% CI" if self.kind == CI else "min–max"
        return f"{what}, n={self.n}"

    def format(self, digits: int = 2, n: int | None = None) -> str:
        """``0.52 [0.40, 0.61]`` for a CI, ``0.52 (min 0.40, max 0.61)`` for a min–max; ``–`` if empty.

        ``n``: the number of runs the reader is told elsewhere (a table's
        caption); when this interval has a different number (NaN runs
        dropped) it says its own.
        """
        if self.empty:
            return "–"
        f = f".{digits}f"
        if self.kind == CI:
            text = f"{self.estimate:{f}} [{self.low:{f}}, {self.high:{f}}]"
        else:
            text = f"{self.estimate:{f}} (min {self.low:{f}}, max {self.high:{f}})"
        return text if n is None or n == self.n else f"{text} n={self.n}"

    def __str__(self) -> str:
        return "–" if self.empty else f"{self.format()} ({self.describe()})"


def interval_label(intervals, statistic: str = "IQM") -> str:
    """Say what a set of intervals is, for a caption or an axis: ``"IQM, 95% CI over 5 seeds"``.

    Mixed kinds or run counts are said as such (``"IQM, min–max or 95% CI over 3–5 seeds"``).
    """
    items = [x if isinstance(x, Interval) else Interval.from_dict(x) for x in intervals]
    items = [x for x in items if not x.empty]
    if not items:
        return f"{statistic} (no runs)"
    kinds = []
    for x in items:
        what = f"{100 * x.confidence:g}% CI" if x.kind == CI else "min–max"
        if what not in kinds:
            kinds.append(what)
    ns = sorted({x.n for x in items})
    runs = f"{ns[0]}" if len(ns) == 1 else f"{ns[0]}–{ns[-1]}"
    plural = "" if ns == [1] else "s"
    label = (
        f"{statistic}, {' or '.join(sorted(kinds, key=lambda k: k != 'min–max'))} over {runs} seed{plural}"
    )
    if any(x.kind == MIN_MAX for x in items):
        label += f" (min–max below {MIN_RUNS_FOR_CI} seeds: no CI)"
    return label


def iqm_ci(
    scores: np.ndarray,
    confidence: float = 0.95,
    reps: int = 2000,
    seed: int = 0,
    min_runs: int = MIN_RUNS_FOR_CI,
) -> Interval:
    """IQM and its stratified-bootstrap percentile CI; NaN scores (degenerate runs) are dropped.

    With fewer than ``min_runs`` runs the interval is the min–max over runs
    (of each run's IQM across tasks, for a ``(runs, tasks)`` table) instead,
    marked ``kind="min-max"``.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    if isinstance(min_runs, bool) or not isinstance(min_runs, int) or min_runs < 1:
        raise ValueError(f"min_runs must be a positive integer, got {min_runs!r}")
    if isinstance(reps, bool) or not isinstance(reps, int) or reps < 1:
        raise ValueError(f"reps must be a positive integer, got {reps!r}")
    x = np.asarray(scores, dtype=np.float64)
    if x.ndim == 1:
        x = x[~np.isnan(x)][:, None]
    elif np.isnan(x).any():
        raise ValueError("iqm_ci: NaN scores in a (runs, tasks) table; drop degenerate runs first")
    if x.size == 0:
        return Interval(float("nan"), float("nan"), float("nan"), 0, CI, confidence)
    n = int(x.shape[0])
    if n < min_runs:
        per_run = [iqm(row) for row in x]
        return Interval(iqm(x), float(min(per_run)), float(max(per_run)), n, MIN_MAX, confidence)
    boot = stratified_bootstrap(x, iqm, reps, seed)
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(boot, [tail, 100 - tail])
    return Interval(iqm(x), float(low), float(high), n, CI, confidence)
