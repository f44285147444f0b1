"""Judge results as files (JSON, CSV, Markdown, PNG) and, optionally, W&B.

Files come first and are written atomically (:func:`agents.files.atomic_write`),
so an interrupted run never leaves a half-written table. W&B logging
is a no-op without an active run and never needs the network.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from agents.files import atomic_write, current_umask  # noqa: F401  (re-exported)
from envs.task import VERDICTS
from evaluation.judge import Aggregate, Judgement
from evaluation.stats import MIN_RUNS_FOR_CI, Interval, interval_label

FILES = ("results.json", "results.csv", "verdicts.md", "scores.png", "posterior.png", "seeds.png")
VERDICT_COLOURS = {
    "untrained": "tab:gray",
    "misspecification": "tab:orange",
    "robust": "tab:green",
    "goal_misgeneralization": "tab:red",
    "capability_misgeneralization": "tab:blue",
}


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


def _ci(x: Interval | dict | None, n: int | None = None) -> str:
    """An interval's cell: ``0.52 [0.40, 0.61]`` (CI) or ``0.52 (min 0.40, max 0.61)``; its n if not ``n``."""
    if x is None:
        return "–"
    return (x if isinstance(x, Interval) else Interval.from_dict(x)).format(n=n)


def _intervals(aggregates: Sequence[Aggregate]) -> list[Interval]:
    out = []
    for a in aggregates:
        for table in a.scores.values():
            out += table.values()
        out += [*a.posterior.values(), *a.epic_to_specified.values(), *a.irl_epic.values()]
    return out


def interval_note(intervals) -> str:
    """The sentence under a table: what its intervals are and over how many seeds."""
    return (
        f"{interval_label(intervals)}. `x [a, b]`: IQM with its 95% stratified-bootstrap CI "
        f"({MIN_RUNS_FOR_CI} or more seeds); `x (min a, max b)`: IQM with the smallest and largest "
        f"seed (fewer than {MIN_RUNS_FOR_CI} seeds: too few for a CI); `n=k` where a cell has fewer seeds "
        "than its row (degenerate seeds dropped)."
    )


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
    Intervals: see :func:`interval_note`.
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
        preference = sorted(a.irl_epic, key=lambda r: r != "specified")  # ties: intended == specified
        irl_closest = min(preference, key=lambda r: a.irl_epic[r].estimate) if a.irl_epic else None
        expected = a.expected_verdict or "–"
        if a.expected_verdict == "goal_misgeneralization" and a.expected_goal:
            expected += f" ({a.expected_goal})"
        if a.matches_expected is not None:
            expected += " ✓" if a.matches_expected else " ✗"
        n = len(a.seeds)
        lines.append(
            f"| {a.agent} | {a.env_id} | {a.distribution} | {_verdict_cell(a)} "
            f"| {goal} | {_ci(shifted.get('specified'), n)} | {_ci(shifted.get('intended'), n)} "
            f"| {_ci(s_beh, n)} | {_ci(posterior, n)} | {_ci(epic, n)} "
            f"| {irl_closest or '–'} ({_ci(a.irl_epic.get(irl_closest), n)}) | {expected} |"
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
        if a.expected_verdict == "goal_misgeneralization" and a.expected_goal:
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
    markdown = "# Verdicts\n\n" + (
        interval_note(_intervals(aggregates))
        + " Thresholds: "
        + ", ".join(f"{k}={v}" for k, v in thresholds.items())
        + "\n\n"
        + verdict_table(aggregates)
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


def suite_entry(a: Aggregate, name: str | None = None) -> dict:
    """One row of the suite's results: expected vs obtained, per-seed verdicts, key scores with n.

    Scores are interval dicts (:meth:`evaluation.stats.Interval.to_dict`):
    ``S_spec_train`` on train; ``S_spec``, ``S_int``, ``S_goal`` (the
    inferred goal's score), ``posterior_goal``, ``epic_goal_to_specified``
    and ``irl_epic_closest`` (EPIC from the learned IRL reward to the
    declared reward closest to it, ``irl_closest``) on the shifted distribution;
    ``found_goal``: :attr:`Aggregate.found_goal`.
    """
    shifted = a.scores[a.distribution]
    goal = a.inferred_goal
    preference = sorted(a.irl_epic, key=lambda r: r != "specified")  # ties: intended == specified
    irl_closest = min(preference, key=lambda r: a.irl_epic[r].estimate) if a.irl_epic else None
    keys = {
        "S_spec_train": a.scores.get("train", {}).get("specified"),
        "S_spec": shifted.get("specified"),
        "S_int": shifted.get("intended"),
        "S_goal": shifted.get(goal),
        "posterior_goal": a.posterior.get(goal),
        "epic_goal_to_specified": a.epic_to_specified.get(goal),
        "irl_epic_closest": a.irl_epic.get(irl_closest),
    }
    return _clean(
        {
            "env": name,
            "env_id": a.env_id,
            "agent": a.agent,
            "distribution": a.distribution,
            "expected_verdict": a.expected_verdict,
            "expected_goal": a.expected_goal,
            "verdict": a.verdict,
            "tied": list(a.tied),
            "tied_goals": list(a.tied_goals),
            "outcome": a.outcome,
            "goal": a.goal,
            "agreement": a.agreement,
            "inferred_goal": goal,
            "irl_closest": irl_closest,
            "seeds": list(a.seeds),
            "verdicts": {str(k): v for k, v in sorted(a.verdicts.items())},
            "matches_expected": a.matches_expected,
            "scores": {k: (None if v is None else v.to_dict()) for k, v in keys.items()},
            "found_goal": {k: v.to_dict() for k, v in a.found_goal.items()},
        }
    )


SHORT = {"goal_misgeneralization": "GM", "capability_misgeneralization": "capability"}
SHORT_NOTE = "GM = goal misgeneralization, capability = capability misgeneralization."


def _name(verdict: str | None, short: bool) -> str:
    return (SHORT.get(verdict, verdict) if short else verdict) or "–"


def _expected_text(e: dict, short: bool = False) -> str:
    expected = _name(e.get("expected_verdict"), short)
    if e.get("expected_verdict") == "goal_misgeneralization" and e.get("expected_goal"):
        expected += f" → `{e['expected_goal']}`"
    return expected


def _obtained_text(e: dict, short: bool = False) -> str:
    n = len(e["seeds"])
    k = round(e["agreement"] * n)
    if len(e.get("tied") or []) > 1:
        return f"**tie: {' / '.join(_name(v, short) for v in e['tied'])}** ({k}/{n} each)"
    if len(e.get("tied_goals") or []) > 1:
        goals = " / ".join(f"`{g}`" for g in e["tied_goals"])
        return f"{_name(e['verdict'], short)} → **goal tie: {goals}** ({k}/{n})"
    return _name(e["verdict"], short) + (f" → `{e['goal']}`" if e.get("goal") else "") + f" ({k}/{n})"


def suite_failures(results: dict | Sequence[dict]) -> list[str]:
    """One line per env/distribution whose majority verdict (or GM goal) is not the expected one, ties included.

    ``results``: :func:`suite_results`' dict or its ``entries``. Entries with
    no expectation are not failures.
    """
    entries = results["entries"] if isinstance(results, dict) else results
    lines = []
    for e in entries:
        if e.get("matches_expected") is not False:
            continue
        per_seed = ", ".join(f"{s}: {v}" for s, v in e["verdicts"].items())
        name = f"{e['env']} ({e['env_id']})" if e.get("env") else e["env_id"]
        lines.append(
            f"{name} / {e['distribution']}: expected {_expected_text(e).replace('`', '')}, "
            f"obtained {_obtained_text(e).replace('`', '').replace('*', '')} [seeds {per_seed}]"
        )
    return lines


def suite_results(
    aggregates: Sequence[Aggregate],
    names: dict[str, str] | None = None,
    **meta,
) -> dict:
    """The suite's results file: ``meta`` (command, date, git commit, wall time, ...) and one entry per aggregate.

    ``names`` maps env ids to the suite's env config names. ``exit_code`` is 1
    when any expectation failed (:func:`suite_failures`), else 0.
    """
    names = names or {}
    entries = [suite_entry(a, names.get(a.env_id)) for a in aggregates]
    checked = [e for e in entries if e["matches_expected"] is not None]
    failures = suite_failures(entries)
    return _clean(
        {
            **meta,
            "agreed": sum(bool(e["matches_expected"]) for e in checked),
            "checked": len(checked),
            "failures": failures,
            "exit_code": 1 if failures else 0,
            "entries": entries,
        }
    )


def _suite_rows(entries: Sequence[dict]) -> str:
    lines = [
        "| env | distribution | expected | obtained (seeds) | per seed | inferred goal: posterior "
        "| S_spec train | S_spec | S_int | S_goal | IRL closest: EPIC | agrees |",
        "|" + "---|" * 12,
    ]
    for e in entries:
        n = len(e["seeds"])
        sc = e["scores"]
        per_seed = ", ".join(f"{s}: {_name(v, True)}" for s, v in e["verdicts"].items())
        agrees = {None: "–", True: "yes", False: "**no**"}[e.get("matches_expected")]
        goal = e.get("inferred_goal") or "–"
        posterior = sc.get("posterior_goal")
        goal_cell = f"`{goal}`: {_ci(posterior, n)}" if posterior else f"`{goal}`"
        irl = e.get("irl_closest")
        irl_cell = f"`{irl}`: {_ci(sc.get('irl_epic_closest'), n)}" if irl else "–"
        lines.append(
            f"| {e['env_id']} | {e['distribution']} | {_expected_text(e, True)} | {_obtained_text(e, True)} "
            f"| {per_seed} | {goal_cell} | {_ci(sc.get('S_spec_train'), n)} | {_ci(sc.get('S_spec'), n)} "
            f"| {_ci(sc.get('S_int'), n)} | {_ci(sc.get('S_goal'), n)} | {irl_cell} | {agrees} |"
        )
    return "\n".join(lines) + "\n"


def suite_table(aggregates: Sequence[Aggregate]) -> str:
    """Markdown: expected vs obtained verdict per (env, shifted distribution), every seed shown."""
    return _suite_rows([suite_entry(a) for a in aggregates])


def suite_markdown(results: dict) -> str:
    """The suite's table, from its results file (:func:`suite_results`): what the README's table is made from.

    ``python docs/suite_table.py reports/suite/<time>/suite_results.json``
    prints it. Above the table: the command, date, commit, wall time,
    thresholds, how many expectations held, and what the intervals are.
    """
    entries = results.get("entries", [])
    commit = results.get("git_commit") or "unknown"
    if results.get("git_dirty"):
        commit += " (with uncommitted changes)"
    wall = results.get("wall_seconds")
    head = [
        f"`{results.get('command', 'python -m experiments.suite')}` on {results.get('date', '?')}, "
        f"commit {commit}, wall time {'?' if wall is None else f'{wall:.0f} s'}"
        + (
            f" (training {results['train_seconds']:.0f} s, judging {results['judge_seconds']:.0f} s)"
            if results.get("train_seconds") is not None and results.get("judge_seconds") is not None
            else ""
        )
        + "."
    ]
    if results.get("thresholds"):
        head.append("Thresholds: " + ", ".join(f"{k}={v}" for k, v in results["thresholds"].items()) + ".")
    if results.get("expectation_overrides"):
        head.append(f"Expectations overridden from the command line: {results['expectation_overrides']}.")
    head.append(
        f"Expected verdict obtained by the majority of seeds: {results.get('agreed', 0)}/{results.get('checked', 0)}"
        + (" (a tie is no majority)." if any(len(e.get("tied") or []) > 1 for e in entries) else ".")
    )
    intervals = [x for e in entries for x in e["scores"].values() if x]
    head.append(interval_note(intervals) + " " + SHORT_NOTE)
    failures = results.get("failures") or []
    body = "\n\n".join(head) + "\n\n" + _suite_rows(entries)
    if failures:
        body += "\nDisagreements (each makes `experiments.suite` exit 1):\n\n" + "".join(
            f"- {f}\n" for f in failures
        )
    return body
