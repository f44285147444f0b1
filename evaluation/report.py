"""Judge results as files (JSON, CSV, Markdown, PNG) and, optionally, W&B.

Files come first and are written atomically (a temporary file renamed into
place), so an interrupted run never leaves a half-written table. W&B logging
is a no-op without an active run and never needs the network.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from evaluation.judge import Aggregate, Judgement
from evaluation.stats import Interval

FILES = ("results.json", "results.csv", "verdicts.md", "scores.png", "posterior.png")


def _clean(value):
    """JSON-safe: NaN/inf -> None, numpy scalars -> Python, tuples -> lists."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return _clean(value.tolist())
    if isinstance(value, (np.floating, float)):
        return None if not math.isfinite(float(value)) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def judgement_row(j: Judgement) -> dict:
    """One flat CSV row: identity, verdict, then every score, posterior, beta and distance."""
    row = {
        "agent": j.agent,
        "env_id": j.env_id,
        "distribution": j.distribution,
        "seed": j.seed,
        "policy": j.policy,
        "verdict": j.verdict,
        "goal": j.goal or "",
        "inferred_goal": j.inference.inferred_goal,
        "expected_verdict": j.expected_verdict or "",
        "expected_goal": j.expected_goal or "",
    }
    for dist, table in j.scores.items():
        tag = "train" if dist == "train" else "shifted"
        for r, s in table.scores.items():
            row[f"S_{r}_{tag}"] = s
            row[f"success_{r}_{tag}"] = table.success[r]
    for h, p in j.inference.posterior.items():
        row[f"posterior_{h}"] = p
        row[f"beta_{h}"] = j.inference.beta[h]
    for r, d in j.epic_to_specified.items():
        row[f"epic_{r}_to_specified"] = d
    for r, d in j.irl["epic"].items():
        row[f"irl_epic_{r}"] = d
    row["irl_closest"] = j.irl["closest"] or ""
    return row


def _ci(x: Interval | None) -> str:
    if x is None or x.n == 0 or math.isnan(x.estimate):
        return "–"
    return f"{x.estimate:.2f} [{x.low:.2f}, {x.high:.2f}]"


def verdict_table(aggregates: Sequence[Aggregate]) -> str:
    """Markdown: one row per (agent, env, shifted distribution), IQM [95% CI] across seeds.

    "inferred goal" is the candidate posterior's argmax (``no_goal`` included)
    and ``S_beh`` the score under it; a ``goal_misgeneralization`` verdict names
    its goal in the verdict column.
    """
    head = (
        "| agent | env | distribution | verdict (seeds) | inferred goal | S_spec | S_int | S_beh "
        "| posterior(goal) | EPIC(goal, spec) | IRL closest (EPIC) | expected |"
    )
    lines = [head, "|" + "---|" * 12]
    for a in aggregates:
        shifted = a.scores[a.distribution]
        goal = a.inferred_goal  # the candidate posterior's majority argmax, shown whatever the verdict
        s_beh = shifted.get(goal)
        posterior = a.posterior.get(goal)
        epic = a.epic_to_specified.get(goal)
        preference = sorted(a.irl_epic, key=lambda r: r != "specified")  # ties: intended == specified
        irl_closest = min(preference, key=lambda r: a.irl_epic[r].estimate) if a.irl_epic else None
        expected = a.expected_verdict or "–"
        if a.expected_verdict == "goal_misgeneralization" and a.expected_goal:
            expected += f" ({a.expected_goal})"
        if a.matches_expected is not None:
            expected += " ✓" if a.matches_expected else " ✗"
        n_agree = round(a.agreement * len(a.seeds))
        verdict = a.verdict + (f": {a.goal}" if a.goal else "")
        lines.append(
            f"| {a.agent} | {a.env_id} | {a.distribution} | {verdict} ({n_agree}/{len(a.seeds)}) "
            f"| {goal} | {_ci(shifted.get('specified'))} | {_ci(shifted.get('intended'))} "
            f"| {_ci(s_beh)} | {_ci(posterior)} | {_ci(epic)} "
            f"| {irl_closest or '–'} ({_ci(a.irl_epic.get(irl_closest))}) | {expected} |"
        )
    return "\n".join(lines) + "\n"


def behaviour_table(judgements: Sequence[Judgement]) -> str:
    """Markdown: what the agents did, measured directly (means over seeds), to check the verdicts against.

    Per (agent, env, distribution): the fraction of episodes with a positive
    return under each declared reward, and how episodes ended (by the env
    with or without the intended reward, or by the time limit).
    """
    groups: dict[tuple, list[Judgement]] = defaultdict(list)
    for j in judgements:
        groups[(j.agent, j.env_id, j.distribution)].append(j)
    rows, rewards = [], []
    for (agent, env_id, shifted), group in groups.items():
        for dist in ("train", shifted):
            tables = [j.scores[dist] for j in group]
            rewards = rewards or list(tables[0].success)
            success = {r: np.mean([t.success[r] for t in tables]) for r in tables[0].success}
            ended = {k: np.mean([t.ended.get(k, np.nan) for t in tables]) for k in tables[0].ended}
            rows.append((agent, env_id, dist, len(group), success, ended))
    if not rows:
        return ""
    head = "| agent | env | distribution | seeds | " + " | ".join(f"success({r})" for r in rewards)
    head += " | ended with intended | ended without | timed out | mean length |"
    lines = [head, "|" + "---|" * (8 + len(rewards))]
    for agent, env_id, dist, n, success, ended in rows:
        cells = " | ".join(f"{success.get(r, float('nan')):.2f}" for r in rewards)
        lines.append(
            f"| {agent} | {env_id} | {dist} | {n} | {cells} | {ended.get('terminated_with_intended', float('nan')):.2f} "
            f"| {ended.get('terminated_without_intended', float('nan')):.2f} | {ended.get('timed_out', float('nan')):.2f} "
            f"| {ended.get('mean_length', float('nan')):.1f} |"
        )
    return "\n".join(lines) + "\n"


def _figure_bytes(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return buf.getvalue()


def _panels(plt, n: int, size: tuple[float, float], per_row: int = 3):
    """A grid of ``n`` panels, ``per_row`` wide; unused panels hidden."""
    cols = min(max(n, 1), per_row)
    rows = max(1, math.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(size[0] * cols, (size[1] + 0.6) * rows), squeeze=False)
    axes = list(axes.ravel())
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes


def score_figure(aggregates: Sequence[Aggregate]):
    """Normalised score per reward, train vs shifted, IQM with 95% CI, one panel per group."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = _panels(plt, len(aggregates), (4.5, 3.5))
    for ax, a in zip(axes, aggregates, strict=False):
        dists = list(a.scores)
        rewards = list(a.scores[dists[0]])
        width = 0.8 / len(dists)
        for k, d in enumerate(dists):
            est = np.array([a.scores[d][r].estimate for r in rewards])
            err = np.array(
                [[est[i] - a.scores[d][r].low, a.scores[d][r].high - est[i]] for i, r in enumerate(rewards)]
            ).T
            ax.bar(
                np.arange(len(rewards)) + k * width, est, width, yerr=np.nan_to_num(err), label=d, capsize=3
            )
        ax.set_xticks(np.arange(len(rewards)) + width * (len(dists) - 1) / 2, rewards, rotation=20)
        ax.axhline(0, color="grey", lw=0.5)
        ax.axhline(1, color="grey", lw=0.5, ls="--")
        ax.set_title(f"{a.agent}\n{a.env_id} / {a.distribution}: {a.verdict}", fontsize=8)
        ax.set_ylabel("normalised score (IQM, 95% CI)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def posterior_figure(aggregates: Sequence[Aggregate]):
    """Posterior over candidate goals and no-goal on the shifted distribution, IQM with 95% CI."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = _panels(plt, len(aggregates), (4.0, 3.2))
    for ax, a in zip(axes, aggregates, strict=False):
        hyps = list(a.posterior)
        est = np.array([a.posterior[h].estimate for h in hyps])
        err = np.array(
            [[est[i] - a.posterior[h].low, a.posterior[h].high - est[i]] for i, h in enumerate(hyps)]
        ).T
        ax.bar(hyps, est, yerr=np.nan_to_num(err), capsize=3, color="tab:purple")
        ax.set_ylim(0, 1.05)
        ax.set_title(f"{a.agent}\n{a.env_id} / {a.distribution}", fontsize=8)
        ax.set_ylabel("posterior")
        ax.tick_params(axis="x", rotation=20)
    fig.tight_layout()
    return fig


def write_report(
    judgements: Sequence[Judgement],
    aggregates: Sequence[Aggregate],
    folder: str | Path,
    meta: dict | None = None,
) -> dict[str, Path]:
    """Write results.json, results.csv, verdicts.md, scores.png and posterior.png into ``folder``."""
    import matplotlib.pyplot as plt

    folder = Path(folder)
    paths = {name: folder / name for name in FILES}
    payload = {
        "meta": meta or {},
        "aggregates": [a.to_dict() for a in aggregates],
        "judgements": [j.to_dict() for j in judgements],
    }
    atomic_write(paths["results.json"], json.dumps(_clean(payload), indent=1, allow_nan=False).encode())

    rows = [judgement_row(j) for j in judgements]
    fields = list(dict.fromkeys(k for row in rows for k in row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, restval="")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in _clean(row).items()})
    atomic_write(paths["results.csv"], buf.getvalue().encode())

    thresholds = judgements[0].thresholds.to_dict() if judgements else {}
    markdown = "# Verdicts\n\nIQM [95% stratified-bootstrap CI] across seeds. Thresholds: " + (
        ", ".join(f"{k}={v}" for k, v in thresholds.items())
        + "\n\n"
        + verdict_table(aggregates)
        + "\n## Behaviour, measured directly\n\n"
        + behaviour_table(judgements)
    )
    atomic_write(paths["verdicts.md"], markdown.encode())

    for name, make in (("scores.png", score_figure), ("posterior.png", posterior_figure)):
        fig = make(aggregates)
        atomic_write(paths[name], _figure_bytes(fig))
        plt.close(fig)
    return paths


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
    per_seed = wandb.Table(columns=columns, data=[[_clean(row.get(c)) for c in columns] for row in rows])
    summary_cols = [
        "agent",
        "env_id",
        "distribution",
        "verdict",
        "agreement",
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
                a.agreement,
                a.goal,
                a.expected_verdict,
                a.matches_expected,
            ]
            for a in aggregates
        ],
    )
    figures = {"judge/scores": score_figure(aggregates), "judge/posterior": posterior_figure(aggregates)}
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


def suite_table(aggregates: Sequence[Aggregate]) -> str:
    """Markdown: expected vs obtained verdict per (env, shifted distribution), every seed shown."""
    lines = [
        "| env | distribution | expected | obtained per seed | majority | inferred goal | S_spec | S_int | agrees |",
        "|" + "---|" * 9,
    ]
    for a in aggregates:
        shifted = a.scores[a.distribution]
        expected = a.expected_verdict or "–"
        if a.expected_verdict == "goal_misgeneralization" and a.expected_goal:
            expected += f" ({a.expected_goal})"
        per_seed = ", ".join(f"{s}: {v}" for s, v in sorted(a.verdicts.items()))
        agrees = "–" if a.matches_expected is None else ("yes" if a.matches_expected else "**no**")
        lines.append(
            f"| {a.env_id} | {a.distribution} | {expected} | {per_seed} | {a.verdict} | {a.goal or '–'} "
            f"| {_ci(shifted.get('specified'))} | {_ci(shifted.get('intended'))} | {agrees} |"
        )
    return "\n".join(lines) + "\n"
