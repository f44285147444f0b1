"""Results to Weights & Biases: the judge's verdict table, per-seed rows and figures, and a study's tables.

Files come first (:mod:`evaluation.report`, :mod:`evaluation.study`); W&B is
a copy. Each logger is a no-op (False) without wandb or without an active
run, and never needs the network.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from evaluation.formats import json_safe
from evaluation.judge import Aggregate, Judgement
from evaluation.report import judgement_row, posterior_figure, score_figure, seeds_figure


def log_wandb(judgements: Sequence[Judgement], aggregates: Sequence[Aggregate], run=None) -> bool:
    """Log the verdict table, per-seed rows and plots to W&B; a no-op (False) with no active run."""
    try:
        import wandb
    except ImportError:
        return False
    run = run if run is not None else wandb.run
    if run is None or getattr(run, "disabled", False):
        return False
    import matplotlib.pyplot as plt

    rows = [judgement_row(j) for j in judgements]
    columns = list(dict.fromkeys(k for row in rows for k in row))
    per_seed = wandb.Table(columns=columns, data=[[json_safe(row.get(c)) for c in columns] for row in rows])
    summary_cols = [
        "agent",
        "env_id",
        "distribution",
        "verdict",
        "outcome",
        "tied",
        "agreement",
        "seeds",
        "goal",
        "expected_verdict",
        "matches",
    ]
    summary = wandb.Table(
        columns=summary_cols,
        data=[
            [
                a.agent,
                a.env_id,
                a.distribution,
                a.verdict,
                a.outcome,
                " / ".join(a.tied),
                a.agreement,
                len(a.seeds),
                a.goal,
                a.expected_verdict,
                a.matches_expected,
            ]
            for a in aggregates
        ],
    )
    figures = {
        "judge/scores": score_figure(aggregates),
        "judge/posterior": posterior_figure(aggregates),
        "judge/seeds": seeds_figure(judgements, aggregates),
    }
    run.log(
        {
            "judge/verdicts": summary,
            "judge/per_seed": per_seed,
            **{k: wandb.Image(fig) for k, fig in figures.items()},
        }
    )
    for fig in figures.values():
        plt.close(fig)
    return True


def log_study_wandb(
    study: dict, rows: Sequence[dict], judgements: Sequence[Judgement], run, png: Path
) -> bool:
    """Per-seed rows, per-point summaries, outliers, every judgement's row and the figure to W&B."""
    try:
        import wandb
    except ImportError:
        return False
    if run is None or getattr(run, "disabled", False):
        return False

    def table(records: Sequence[dict]):
        records = [json_safe(r) for r in records]
        columns = list(dict.fromkeys(k for r in records for k in r))
        data = [
            [r.get(c) if not isinstance(r.get(c), (dict, list)) else json.dumps(r.get(c)) for c in columns]
            for r in records
        ]
        return wandb.Table(columns=columns or ["none"], data=data)

    summaries = [
        {
            "value": str(p["value"]),
            "distribution": p["distribution"],
            "n_seeds": p["n_seeds"],
            "majority_verdict": p["majority_verdict"],
            "majority_gm_goal": p["majority_gm_goal"],
            **{f"fraction_{v}": f for v, f in p["verdict_fractions"].items()},
            **{f"{k}_iqm": s["estimate"] for k, s in p["scores"].items()},
            "outliers": ", ".join(str(o["seed"]) for o in p["outliers"]),
        }
        for p in study["points"]
    ]
    outliers = [{**o, "value": str(o["value"])} for p in study["points"] for o in p["outliers"]]
    run.log(
        {
            "study/per_seed": table([{**r, "value": str(r["value"])} for r in rows]),
            "study/points": table(summaries),
            "study/outliers": table(outliers),
            "study/judgements": table([judgement_row(j) for j in judgements]),
            "study/figure": wandb.Image(str(png)),
        }
    )
    return True
