"""The judge's report: results.json, results.csv, verdicts.md and its figures, written atomically.

Files come first and are written atomically (:func:`agents.files.atomic_write`),
so an interrupted run never leaves a half-written table. The suite's results
and table are :mod:`evaluation.suite`; W&B is :mod:`evaluation.wandb_log`
(both still importable from here, as are the shared formats of
:mod:`evaluation.formats` under their old names).
"""

from __future__ import annotations

import importlib
import json
import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from agents.files import atomic_write, current_umask  # noqa: F401  (re-exported)
from envs.task import VERDICTS
from evaluation.formats import (  # noqa: F401  (SHORT_NOTE and SHORT_VERDICTS re-exported)
    GM,
    SHORT_NOTE,
    SHORT_VERDICTS,
    VERDICT_COLOURS,
    csv_bytes,
    figure_bytes,
    interval_cell,
    interval_note,
    json_safe,
)
from evaluation.judge import Aggregate, Judgement
from evaluation.stats import Interval, interval_label
from evaluation.suite import (  # noqa: F401  (re-exported)
    irl_closest,
    suite_entry,
    suite_failures,
    suite_markdown,
    suite_results,
    suite_table,
)

FILES = ("results.json", "results.csv", "verdicts.md", "scores.png", "posterior.png", "seeds.png")
# Old private names of the shared formats, for code that imports them from here.
_clean, _figure_bytes, _ci, SHORT = json_safe, figure_bytes, interval_cell, SHORT_VERDICTS


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
    found = j.found_goal or {}
    row["found_goal"] = found.get("goal") or ""
    for key, column in (("score", "S"), ("train_score", "S_train"), ("vs_no_goal", "posterior_vs_no_goal")):
        row[f"found_goal_{column}"] = found.get(key, math.nan)
    row["found_goal_epic_to_specified"] = (found.get("epic") or {}).get("specified", math.nan)
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


def _intervals(aggregates: Sequence[Aggregate]) -> list[Interval]:
    out = []
    for a in aggregates:
        for table in a.scores.values():
            out += table.values()
        out += [*a.posterior.values(), *a.epic_to_specified.values(), *a.irl_epic.values()]
    return out


def _verdict_cell(a: Aggregate) -> str:
    """``robust (3/3)``, ``goal_misgeneralization: proxy (2/3)``, ``tie: untrained / robust (1/2 each)``."""
    n_agree = round(a.agreement * len(a.seeds))
    if a.is_tie:
        return f"{a.outcome} ({n_agree}/{len(a.seeds)} each)"
    if len(a.tied_goals) > 1:
        return f"{a.outcome} ({n_agree}/{len(a.seeds)})"
    return a.verdict + (f": {a.goal}" if a.goal else "") + f" ({n_agree}/{len(a.seeds)})"


def verdict_table(aggregates: Sequence[Aggregate]) -> str:
    """Markdown: one row per (agent, env, shifted distribution), IQM and interval across seeds.

    "inferred goal" is the candidate posterior's argmax (``no_goal`` included)
    and ``S_beh`` the score under it; a ``goal_misgeneralization`` verdict names
    its goal in the verdict column; where that goal is one no declared reward
    is (found from behaviour), the goal columns are that goal's, marked
    ``(found)``, its posterior the one against no goal. A tie between verdicts
    reads ``tie: a / b``.
    Intervals: see :func:`evaluation.formats.interval_note`.
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
        if a.found_goal:
            goal = f"{a.goal} (found)"
            s_beh, posterior, epic = (a.found_goal[k] for k in ("S", "posterior", "epic_to_specified"))
        closest = irl_closest(a)
        expected = a.expected_verdict or "–"
        if a.expected_verdict == GM and a.expected_goal:
            expected += f" ({a.expected_goal})"
        if a.matches_expected is not None:
            expected += " ✓" if a.matches_expected else " ✗"
        n = len(a.seeds)
        s_spec, s_int = (interval_cell(shifted.get(r), n) for r in ("specified", "intended"))
        lines.append(
            f"| {a.agent} | {a.env_id} | {a.distribution} | {_verdict_cell(a)} "
            f"| {goal} | {s_spec} | {s_int} "
            f"| {interval_cell(s_beh, n)} | {interval_cell(posterior, n)} | {interval_cell(epic, n)} "
            f"| {closest or '–'} ({interval_cell(a.irl_epic.get(closest), n)}) | {expected} |"
        )
    return "\n".join(lines) + "\n"


def paths_table(aggregates: Sequence[Aggregate], judgements: Sequence[Judgement]) -> str:
    """Markdown: which path judged each row and why, and the references an agent beat beyond their interval.

    A reference beaten (``S > 1`` beyond a one-sided 97.5% bound) is not an
    upper bound on those levels: on the sampled path a weak reference, on the
    exact path a model that is wrong (e.g. a state key that merges states).
    """
    beaten: dict[tuple, dict[str, list[int]]] = {}
    for j in judgements:
        for reward in j.above_reference:
            beaten.setdefault((j.agent, j.env_id, j.distribution), {}).setdefault(reward, []).append(j.seed)
    lines = [
        "| agent | env | distribution | path (seeds) | why | reference beaten (seeds) |",
        "|" + "---|" * 6,
    ]
    for a in aggregates:
        paths = ", ".join(f"{p} ({n}/{len(a.seeds)})" for p, n in sorted(a.judge_paths.items())) or "–"
        why = "; ".join(a.path_reasons) or "–"
        flags = beaten.get((a.agent, a.env_id, a.distribution), {})
        flagged = (
            ", ".join(f"{r} ({', '.join(map(str, seeds))})" for r, seeds in sorted(flags.items())) or "–"
        )
        lines.append(f"| {a.agent} | {a.env_id} | {a.distribution} | {paths} | {why} | {flagged} |")
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
    """Normalised score per reward, train vs shifted, IQM with its interval, one panel per group."""
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
                np.arange(len(rewards)) + k * width,
                est,
                width,
                yerr=np.clip(np.nan_to_num(err), 0, None),
                label=d,
                capsize=3,
            )
        ax.set_xticks(np.arange(len(rewards)) + width * (len(dists) - 1) / 2, rewards, rotation=20)
        ax.axhline(0, color="grey", lw=0.5)
        ax.axhline(1, color="grey", lw=0.5, ls="--")
        ax.set_title(f"{a.agent}\n{a.env_id} / {a.distribution}: {a.outcome}", fontsize=8)
        label = interval_label([x for table in a.scores.values() for x in table.values()])
        ax.set_ylabel("normalised score\n" + label.split(" (")[0], fontsize=8)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def posterior_figure(aggregates: Sequence[Aggregate]):
    """Posterior over candidate goals and no-goal on the shifted distribution, IQM with its interval."""
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
        ax.bar(hyps, est, yerr=np.clip(np.nan_to_num(err), 0, None), capsize=3, color="tab:purple")
        ax.set_ylim(0, 1.05)
        ax.set_title(f"{a.agent}\n{a.env_id} / {a.distribution}", fontsize=8)
        ax.set_ylabel("posterior\n" + interval_label(a.posterior.values()).split(" (")[0], fontsize=8)
        ax.tick_params(axis="x", rotation=20)
    fig.tight_layout()
    return fig


SEED_SCORES = ("S_spec (train)", "S_spec", "S_int", "S_goal")


def seed_scores(j: Judgement) -> dict[str, float]:
    """One seed's scores for :func:`seeds_figure`: S_spec on train; S_spec, S_int and S of the inferred goal shifted.

    ``S_goal`` is the score under the candidate posterior's argmax; NaN when
    that is ``no_goal`` (no reward to score).
    """
    shifted = j.shifted.scores
    goal = j.inference.inferred_goal
    return dict(
        zip(
            SEED_SCORES,
            (
                j.scores["train"].scores.get("specified", math.nan),
                shifted.get("specified", math.nan),
                shifted.get("intended", math.nan),
                shifted.get(goal, math.nan),
            ),
            strict=True,
        )
    )


def seeds_figure(judgements: Sequence[Judgement], aggregates: Sequence[Aggregate]):
    """How the outcome varies by seed: per (agent, env, distribution), one marker per seed and score.

    Columns: S_spec on train, then S_spec, S_int and the inferred goal's S on
    the shifted distribution; each marker is coloured by that seed's verdict
    and labelled with its seed; a grey bar marks the IQM across seeds. The
    title gives the majority (or the tie) and the expected verdict.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    groups: dict[tuple, list[Judgement]] = defaultdict(list)
    for j in judgements:
        groups[(j.agent, j.env_id, j.distribution)].append(j)
    fig, axes = _panels(plt, len(aggregates), (4.5, 3.5))
    for ax, a in zip(axes, aggregates, strict=False):
        group = sorted(groups.get((a.agent, a.env_id, a.distribution), []), key=lambda j: j.seed)
        offsets = np.linspace(-0.3, 0.3, len(group)) if len(group) > 1 else np.zeros(len(group))
        table = np.array([[seed_scores(j)[k] for k in SEED_SCORES] for j in group]).reshape(len(group), -1)
        for i, j in enumerate(group):
            colour = VERDICT_COLOURS.get(j.verdict, "black")
            xs = np.arange(len(SEED_SCORES)) + offsets[i]
            ax.scatter(xs, table[i], color=colour, s=28, zorder=3, edgecolor="black", linewidth=0.4)
            for x, y in zip(xs, table[i], strict=True):
                if np.isfinite(y):
                    ax.annotate(str(j.seed), (x, y), fontsize=5, xytext=(2, 2), textcoords="offset points")
        for k in range(len(SEED_SCORES)):
            column = table[:, k] if len(group) else np.array([])
            column = column[np.isfinite(column)]
            if column.size:
                iqm_k = float(np.mean(np.sort(column)[len(column) // 4 : len(column) - len(column) // 4]))
                ax.hlines(iqm_k, k - 0.4, k + 0.4, color="grey", lw=2, alpha=0.6, zorder=2)
        ax.set_xticks(np.arange(len(SEED_SCORES)), SEED_SCORES, rotation=20, fontsize=7)
        ax.axhline(0, color="grey", lw=0.5)
        ax.axhline(1, color="grey", lw=0.5, ls="--")
        expected = a.expected_verdict or "none"
        if a.expected_verdict == GM and a.expected_goal:
            expected += f" ({a.expected_goal})"
        ax.set_title(
            f"{a.agent}\n{a.env_id} / {a.distribution}: {_verdict_cell(a)}\nexpected: {expected}", fontsize=7
        )
        ax.set_ylabel(f"normalised score, per seed (n={len(group)})", fontsize=8)
        present = [v for v in VERDICTS if any(j.verdict == v for j in group)]
        handles = [
            Line2D([], [], marker="o", ls="", color=VERDICT_COLOURS.get(v, "black"), label=v) for v in present
        ]
        ax.legend(handles=handles, fontsize=6, loc="best")
    fig.tight_layout()
    return fig


def write_report(
    judgements: Sequence[Judgement],
    aggregates: Sequence[Aggregate],
    folder: str | Path,
    meta: dict | None = None,
) -> dict[str, Path]:
    """Write results.json, results.csv, verdicts.md, scores.png, posterior.png and seeds.png into ``folder``."""
    import matplotlib.pyplot as plt

    folder = Path(folder)
    paths = {name: folder / name for name in FILES}
    payload = {
        "meta": meta or {},
        "aggregates": [a.to_dict() for a in aggregates],
        "judgements": [j.to_dict() for j in judgements],
    }
    atomic_write(paths["results.json"], json.dumps(json_safe(payload), indent=1, allow_nan=False).encode())

    atomic_write(paths["results.csv"], csv_bytes([judgement_row(j) for j in judgements]))

    thresholds = judgements[0].thresholds.to_dict() if judgements else {}
    markdown = "# Verdicts\n\n" + (
        interval_note(_intervals(aggregates))
        + " Thresholds: "
        + ", ".join(f"{k}={v}" for k, v in thresholds.items())
        + "\n\n"
        + verdict_table(aggregates)
        + "\n## How each was judged\n\n"
        + paths_table(aggregates, judgements)
        + "\n## Behaviour, measured directly\n\n"
        + behaviour_table(judgements)
    )
    atomic_write(paths["verdicts.md"], markdown.encode())

    figures = {
        "scores.png": lambda: score_figure(aggregates),
        "posterior.png": lambda: posterior_figure(aggregates),
        "seeds.png": lambda: seeds_figure(judgements, aggregates),
    }
    for name, make in figures.items():
        fig = make()
        atomic_write(paths[name], figure_bytes(fig))
        plt.close(fig)
    return paths


def __getattr__(name: str):
    """``log_wandb``, imported on first use: :mod:`evaluation.wandb_log` imports this module."""
    if name == "log_wandb":
        return getattr(importlib.import_module("evaluation.wandb_log"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
