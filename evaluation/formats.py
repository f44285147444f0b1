"""How results are written, the same in every report: JSON, CSV, PNG, interval cells and verdict names.

The judge report (:mod:`evaluation.report`), the suite's table
(:mod:`evaluation.suite`), the validations (:mod:`evaluation.validation`), the
study (:mod:`evaluation.study`) and W&B (:mod:`evaluation.wandb_log`) write
their values through these, so one value reads the same wherever it appears.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence

import numpy as np

from evaluation.stats import MIN_RUNS_FOR_CI, Interval, interval_label

GM = "goal_misgeneralization"
CAPABILITY = "capability_misgeneralization"
# Verdicts in the suite's and the study's tables, explained by SHORT_NOTE under them.
SHORT_VERDICTS = {GM: "GM", CAPABILITY: "capability"}
SHORT_NOTE = "GM = goal misgeneralization, capability = capability misgeneralization."
# Verdicts in the validations' per-seed cells, where every seed's verdict of a row shares one cell.
SEED_VERDICTS = {**SHORT_VERDICTS, "misspecification": "misspec"}
VERDICT_COLOURS = {
    "untrained": "tab:gray",
    "misspecification": "tab:orange",
    "robust": "tab:green",
    GM: "tab:red",
    CAPABILITY: "tab:blue",
}


def json_safe(value):
    """JSON-safe: NaN/inf -> None, numpy scalars -> Python, tuples -> lists, keys -> str."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, (np.floating, float)):
        return None if not math.isfinite(float(value)) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def csv_bytes(rows: Sequence[dict]) -> bytes:
    """Rows as CSV: every key of any row a column (first seen first), missing and None cells empty."""
    fields = list(dict.fromkeys(k for row in rows for k in row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, restval="")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in json_safe(row).items()})
    return buf.getvalue().encode()


def figure_bytes(fig) -> bytes:
    """A matplotlib figure as PNG."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return buf.getvalue()


def interval_cell(x: Interval | dict | None, n: int | None = None) -> str:
    """An interval's cell: ``0.52 [0.40, 0.61]`` (CI) or ``0.52 (min 0.40, max 0.61)``; its n if not ``n``."""
    if x is None:
        return "–"
    return (x if isinstance(x, Interval) else Interval.from_dict(x)).format(n=n)


def interval_note(intervals) -> str:
    """The sentence under a table: what its intervals are and over how many seeds."""
    return (
        f"{interval_label(intervals)}. `x [a, b]`: IQM with its 95% stratified-bootstrap CI "
        f"({MIN_RUNS_FOR_CI} or more seeds); `x (min a, max b)`: IQM with the smallest and largest "
        f"seed (fewer than {MIN_RUNS_FOR_CI} seeds: too few for a CI); `n=k` where a cell has fewer seeds "
        "than its row (degenerate seeds dropped)."
    )


def reason_number(x: float | None) -> str:
    """A number in a verdict's reason: three decimals, ``nan`` when undefined."""
    return "nan" if x is None or math.isnan(x) else f"{x:.3f}"


def table_number(x: float | None) -> str:
    """A score in a validation table's cell: two decimals, ``–`` when undefined."""
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.2f}"
