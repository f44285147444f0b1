"""Shift curves (Langosco et al. 2022): how generalization varies with a training parameter.

A curve is a small seed-distribution study (:mod:`evaluation.study`) drawn
as two lines; its points are made from the study's per-seed rows.

For each value of a training-distribution parameter (CoinRun
``coin_random_prob``, Maze ``cheese_region``) the judged agents give, on the
shifted distribution, the intended-reward success rate and the posterior of
the proxy goal, each as IQM across seeds with its interval: a 95%
stratified-bootstrap CI from 5 seeds up, the min–max below (each interval
records its kind and n; the figure's axis and the CSV say which).
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from evaluation.report import _figure_bytes, atomic_write
from evaluation.stats import interval_label, iqm_ci


def curve_points(rows: Sequence[dict], param: str, proxy: str) -> list[dict]:
    """One point per parameter value from a study's per-seed rows (:func:`evaluation.study.seed_row`):
    intended success and proxy posterior on the shifted distribution, train success, verdicts."""
    by_value: dict[object, list[dict]] = defaultdict(list)
    for r in rows:
        by_value[r["value"]].append(r)
    points = []
    for value in sorted(by_value, key=lambda v: (v is None, v)):
        group = by_value[value]

        def interval(key, group=group):
            return iqm_ci(np.array([r.get(key, np.nan) for r in group], dtype=np.float64)).to_dict()

        points.append(
            {
                param: value,
                "seeds": [r["seed"] for r in group],
                "test_intended_success": interval("success_intended"),
                f"posterior_{proxy}": interval(f"posterior_{proxy}"),
                "train_specified_success": interval("success_specified_train"),
                "verdicts": {str(r["seed"]): r["verdict"] for r in group},
            }
        )
    return points


def write_curves(curves: dict[str, tuple[str, str, list[dict]]], folder: Path) -> None:
    """``curves.json``, ``curves.csv`` and ``curves.png`` (one panel per env) into ``folder``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / "curves.json", json.dumps(curves, indent=1, default=str).encode())
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["env", "param", "value", "metric", "iqm", "low", "high", "seeds", "interval"])
    for env, (param, proxy, points) in curves.items():
        for point in points:
            for metric in ("test_intended_success", f"posterior_{proxy}", "train_specified_success"):
                c = point[metric]
                kind = c.get("kind", "ci")
                interval = f"{100 * (c.get('confidence') or 0.95):g}% CI" if kind == "ci" else "min-max"
                writer.writerow(
                    [env, param, point[param], metric, c["estimate"], c["low"], c["high"], c["n"], interval]
                )
    atomic_write(folder / "curves.csv", buf.getvalue().encode())

    fig, axes = plt.subplots(1, len(curves), figsize=(5.5 * len(curves), 4), squeeze=False)
    for ax, (env, (param, proxy, points)) in zip(axes[0], curves.items(), strict=True):
        xs = np.arange(len(points))
        for metric, label in (
            ("test_intended_success", "test: intended success"),
            (f"posterior_{proxy}", f"posterior of {proxy}"),
        ):
            est = np.array([p[metric]["estimate"] for p in points])
            low = np.array([p[metric]["low"] for p in points])
            high = np.array([p[metric]["high"] for p in points])
            ax.plot(xs, est, marker="o", label=label)
            ax.fill_between(xs, low, high, alpha=0.2)
        ax.set_xticks(xs, [str(p[param]) for p in points])
        ax.set_xlabel(param)
        ax.set_ylim(-0.05, 1.05)
        shown = [p[m] for p in points for m in ("test_intended_success", f"posterior_{proxy}")]
        ax.set_ylabel(interval_label(shown).split(" (")[0], fontsize=8)
        ax.set_title(env)
        ax.legend(loc="best", fontsize=8)
    atomic_write(folder / "curves.png", _figure_bytes(fig))
    plt.close(fig)
