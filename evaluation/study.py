"""Seed-distribution studies: how often does a training-distribution shift cause goal misgeneralization?

Goal misgeneralization is a property of a distribution of training runs, not
of one agent: which goal an agent learns can vary by seed (Ramanauskas &
Şimşek 2023). A study trains N seeds at each value (a *point*) of one
training-distribution parameter and judges every agent; this module turns the
judgements into one row per (point, seed, shifted distribution) and, per
point, the fraction of seeds per verdict, per GM goal and per inferred goal,
key scores as IQM with their interval (:func:`evaluation.stats.iqm_ci`), and
the **outlier seeds**: a seed whose verdict differs from the point's majority,
or, within a goal-misgeneralization majority, whose goal differs from the
majority goal. A tie has no majority, so it names no outliers (it is reported
as a tie). Seeds may be *planted* (their agent replaced by any policy,
e.g. ``planner:<reward>``) to check this logic; every report names them.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import envs
from agents.external import policy_from_spec
from agents.files import atomic_write
from agents.loading import TrainedAgent, agent_name, load_agents
from agents.policies import PlannerPolicy, Policy
from envs.task import VERDICTS
from evaluation.formats import GM, SHORT_VERDICTS, VERDICT_COLOURS, csv_bytes, figure_bytes, json_safe
from evaluation.judge import Judgement
from evaluation.parallel import judge_in_processes
from evaluation.progress import log_progress
from evaluation.stats import Interval, interval_label, iqm_ci
from evaluation.wandb_log import log_study_wandb  # noqa: F401  (re-exported)

PLANNER = "planner:"
FILES = ("study.csv", "study.json", "study.png", "study.md")
STRIP_SCORES = ("S_spec", "S_int")  # plotted per seed beside each proxy's posterior


def planted_policy(spec: str, reward_names: Sequence[str]) -> Policy:
    """A planted agent: ``planner:<reward>`` (the exact planner of a declared reward) or an
    :mod:`agents.external` spec (``python:module:attr``, ``sb3:path``, ``torch:...``)."""
    if isinstance(spec, str) and spec.startswith(PLANNER):
        reward = spec[len(PLANNER) :]
        if reward not in reward_names:
            raise ValueError(
                f"planted policy {spec!r}: {reward!r} is not a declared reward; declared: {list(reward_names)}"
            )
        return PlannerPolicy(reward)
    return policy_from_spec(spec)


def same_value(a, b) -> bool:
    """Parameter values compared as run folder names compare them: numbers by value (0 == 0.0 == "0")."""
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return str(a) == str(b)


def check_study(
    env_id: str, param: str, values: Sequence, n_seeds, env_params: Mapping | None = None
) -> None:
    """Name bad study input before any work: a parameter that is not a training-distribution
    parameter, an empty or repeated value list, a seed count below 1, a value the env rejects."""
    task = envs.task(env_id)
    if param not in task.distribution_params:
        raise ValueError(
            f"study: {param!r} is not a training-distribution parameter of {env_id}; "
            f"known: {list(task.distribution_params)}"
        )
    if len(values) == 0:
        raise ValueError(f"study: the value list of {param} is empty; give at least one shift point")
    for i, v in enumerate(values):
        if any(same_value(v, w) for w in values[:i]):
            raise ValueError(f"study: {param}={v!r} is given twice")
    if isinstance(n_seeds, bool) or not isinstance(n_seeds, int) or n_seeds < 1:
        raise ValueError(f"study: n_seeds must be a positive integer, got {n_seeds!r}")
    for v in values:
        try:
            task.resolve_params("train", {**(env_params or {}), param: v})
        except ValueError as err:
            raise ValueError(f"study: {param}={v!r} is not a valid training value: {err}") from None


def parse_replacements(replace: Mapping | None, values: Sequence, seeds: Sequence[int], env_id: str) -> dict:
    """``{point value: {seed: policy spec}}`` checked against the study -> ``{(point index, seed): spec}``.

    Each spec is built once here, so a bad one is named before any training.
    """
    reward_names = envs.task(env_id).reward_names
    planted = {}
    for key, per_seed in (replace or {}).items():
        index = next((i for i, v in enumerate(values) if same_value(key, v)), None)
        if index is None:
            raise ValueError(f"study: replace: {key!r} is not one of the values {list(values)}")
        for seed, spec in (per_seed or {}).items():
            try:
                seed = int(seed)
            except (TypeError, ValueError):
                raise ValueError(f"study: replace.{key}: seed {seed!r} is not an integer") from None
            if seed not in seeds:
                raise ValueError(f"study: replace.{key}: seed {seed} is not one of the seeds {list(seeds)}")
            planted_policy(str(spec), reward_names)
            planted[(index, seed)] = str(spec)
    return planted


@dataclass
class StudyPoint:
    """One shift point: its training parameters, its trained run folders and its planted seeds."""

    value: object
    train_params: dict
    run_dirs: dict[int, Path] = field(default_factory=dict)
    planted: dict[int, str] = field(default_factory=dict)

    @property
    def seeds(self) -> list[int]:
        return sorted({*self.run_dirs, *self.planted})


def _study_agents(
    env_id: str, algo: str, points: list[StudyPoint], indices: list[int], seeds: list[int]
) -> list[TrainedAgent]:
    """The agents of ``seeds`` at the points at ``indices``, one per point, trained and planted seeds
    together: judged in one process with one level bank, since each seed's shifted levels and their
    references are the same at every point."""
    reward_names = envs.task(env_id).reward_names
    agents = []
    for index in indices:
        point = points[index]
        trained = [point.run_dirs[s] for s in seeds if s in point.run_dirs]
        policies, run_dirs = {}, {}
        for agent in load_agents(trained) if trained else []:
            policies.update(agent.policies)
            run_dirs.update(agent.run_dirs)
        for seed in seeds:
            if seed in point.planted:
                policies[seed] = planted_policy(point.planted[seed], reward_names)
        if policies:
            name = agent_name(env_id, algo, point.train_params)
            agents.append(
                TrainedAgent(name, env_id, dict(point.train_params), dict(sorted(policies.items())), run_dirs)
            )
    return agents


def judge_study(
    env_id: str,
    algo: str,
    points: Sequence[StudyPoint],
    n_jobs: int = 2,
    progress=log_progress,
    **judge_kwargs,
) -> list[tuple[int, Judgement]]:
    """``(point index, judgement)`` for every (point, seed, shifted distribution), judged by
    :func:`evaluation.judge.judge_each` in ``n_jobs`` processes (:mod:`evaluation.parallel`): split by
    seed (levels shared across points), or by point when there are fewer seeds than processes.

    MaxEnt IRL enters no verdict, goal, score or posterior, which is all a study reports: it is skipped
    unless ``irl=True`` is passed. The judgements come back without their rollouts.
    """
    points = list(points)
    seeds = sorted({s for p in points for s in p.seeds})
    indices = list(range(len(points)))
    if len(seeds) >= n_jobs or len(points) < 2:
        work = [
            (indices, [int(s) for s in c]) for c in np.array_split(seeds, min(n_jobs, max(len(seeds), 1)))
        ]
    else:
        work = [([int(i) for i in c], seeds) for c in np.array_split(indices, min(n_jobs, len(points)))]
    per_chunk = judge_in_processes(
        _study_agents,
        [(env_id, algo, points, i, s) for i, s in work if len(i) and len(s)],
        n_jobs=n_jobs,
        keep_rollouts=False,
        **{"irl": False, **judge_kwargs, "progress": progress},
    )
    index_of = {agent_name(env_id, algo, p.train_params): i for i, p in enumerate(points)}
    return sorted(
        ((index_of[j.agent], j) for chunk in per_chunk for j in chunk),
        key=lambda p: (p[0], p[1].seed, p[1].distribution),
    )


def run_video(run_dir: Path | None) -> str | None:
    """The run folder's video (``metrics.json``'s ``video``, else ``video/*``), if it has one."""
    if run_dir is None:
        return None
    try:
        video = json.loads((Path(run_dir) / "metrics.json").read_text()).get("video")
    except (OSError, ValueError):
        video = None
    if video and Path(video).exists():
        return str(video)
    found = (
        sorted(p for p in (Path(run_dir) / "video").glob("*") if p.is_file())
        if (Path(run_dir) / "video").is_dir()
        else []
    )
    return str(found[0]) if found else None


def seed_row(param: str, point: StudyPoint, j: Judgement) -> dict:
    """One (point, seed, shifted distribution): verdict, goals, key scores, posteriors, where the agent lives."""
    shifted = j.shifted
    run_dir = point.run_dirs.get(j.seed)
    row = {
        "param": param,
        "value": point.value,
        "distribution": j.distribution,
        "seed": j.seed,
        "verdict": j.verdict,
        "goal": j.goal,
        "inferred_goal": j.inference.inferred_goal,
        "S_spec_train": j.scores["train"].scores.get("specified", math.nan),
        "success_specified_train": j.scores["train"].success.get("specified", math.nan),
        "S_spec": shifted.scores.get("specified", math.nan),
        "S_int": shifted.scores.get("intended", math.nan),
        "success_intended": shifted.success.get("intended", math.nan),
        "preferred_goal": preferred_goal(shifted.success),
    }
    row.update({f"success_{r}": v for r, v in shifted.success.items() if r not in ("specified", "intended")})
    row.update({f"posterior_{h}": p for h, p in j.inference.posterior.items()})
    row.update(
        {
            "policy": j.policy,
            "planted": point.planted.get(j.seed),
            "run_dir": None if run_dir is None else str(run_dir),
            "video": run_video(run_dir),
        }
    )
    return row


def preferred_goal(success: dict) -> str:
    """The goal (``intended`` or a proxy) the agent's shifted episodes reached most often: its
    revealed preference where the goals sit on different cells ("none" if no episode reached any,
    "tie: a / b" when several share the top rate)."""
    rates = {r: v for r, v in success.items() if r != "specified"}
    top = max(rates.values(), default=0.0)
    if not top > 0:
        return "none"
    best = [r for r, v in rates.items() if v == top]
    return best[0] if len(best) == 1 else "tie: " + " / ".join(best)


def majority(counts: Counter) -> tuple[object | None, list]:
    """The most frequent key, or ``None`` and the tied keys when several share the largest count."""
    if not counts:
        return None, []
    top = max(counts.values())
    tied = [k for k, c in counts.items() if c == top]
    return (tied[0], []) if len(tied) == 1 else (None, tied)


def find_outliers(rows: Sequence[dict]) -> tuple[dict, list[dict]]:
    """The majority of one point's rows (one shifted distribution) and its outlier seeds.

    An outlier's verdict differs from the majority verdict or, when the
    majority is goal misgeneralization, its GM goal differs from the majority
    goal. A tie (of verdicts, or of GM goals) names no outliers of that kind.
    """
    verdict, tied = majority(Counter(r["verdict"] for r in rows))
    gm_goal, goal_tied = (
        majority(Counter(r["goal"] for r in rows if r["verdict"] == GM)) if verdict == GM else (None, [])
    )
    out = []
    for r in rows:
        if verdict is not None and r["verdict"] != verdict:
            why = f"verdict {r['verdict']} (majority {verdict})"
        elif gm_goal is not None and r["goal"] != gm_goal:
            why = f"goal {r['goal']} (majority goal {gm_goal})"
        else:
            continue
        out.append(
            {
                "value": r["value"],
                "distribution": r["distribution"],
                "seed": r["seed"],
                "verdict": r["verdict"],
                "goal": r["goal"],
                "inferred_goal": r["inferred_goal"],
                "why": why,
                "run_dir": r.get("run_dir"),
                "video": r.get("video"),
                "planted": r.get("planted"),
            }
        )
    found = {
        "majority_verdict": verdict,
        "tied_verdicts": sorted(tied, key=VERDICTS.index) if tied else [],
        "majority_gm_goal": gm_goal,
        "tied_gm_goals": sorted(map(str, goal_tied)),
    }
    return found, out


def _fractions(values: Sequence, order: Sequence = ()) -> dict:
    counts = Counter(values)
    keys = [k for k in order if k in counts] + sorted((k for k in counts if k not in order), key=str)
    return {str(k): counts[k] / len(values) for k in keys}


def score_columns(rows: Sequence[dict]) -> list[str]:
    """The summarised scores: S_spec and success on train; S_spec, S_int, the success rate of
    ``intended`` and of every proxy, and every posterior on the shifted distribution."""
    posteriors = list(dict.fromkeys(k for r in rows for k in r if k.startswith("posterior_")))
    successes = list(
        dict.fromkeys(k for r in rows for k in r if k.startswith("success_") and not k.endswith("_train"))
    )
    return ["S_spec_train", "success_specified_train", "S_spec", "S_int", *successes, *posteriors]


def point_summary(rows: Sequence[dict], reps: int = 2000) -> dict:
    """One point on one shifted distribution: verdict, GM-goal and inferred-goal fractions over seeds,
    IQM with interval of each score, the majority and the outliers."""
    first = rows[0]
    found, outliers = find_outliers(rows)
    gm_goals = [r["goal"] for r in rows if r["verdict"] == GM]
    return json_safe(
        {
            "value": first["value"],
            "distribution": first["distribution"],
            "n_seeds": len(rows),
            "seeds": [r["seed"] for r in rows],
            "verdicts": {str(r["seed"]): r["verdict"] for r in rows},
            "verdict_fractions": {v: sum(r["verdict"] == v for r in rows) / len(rows) for v in VERDICTS},
            "gm_goal_fractions": _fractions(gm_goals) if gm_goals else {},
            "inferred_goal_fractions": _fractions([r["inferred_goal"] for r in rows]),
            "preferred_goal_fractions": _fractions([r.get("preferred_goal", "none") for r in rows]),
            **found,
            "scores": {
                k: iqm_ci(np.array([r.get(k, math.nan) for r in rows], dtype=np.float64), reps=reps).to_dict()
                for k in score_columns(rows)
            },
            "planted": {str(r["seed"]): r["planted"] for r in rows if r.get("planted")},
            "outliers": outliers,
        }
    )


def summarise(rows: Sequence[dict], values: Sequence, reps: int = 2000) -> list[dict]:
    """Per (point, shifted distribution), in the order of ``values``: :func:`point_summary`."""
    groups: dict[tuple[int, str], list[dict]] = defaultdict(list)
    for r in rows:
        index = next(i for i, v in enumerate(values) if same_value(r["value"], v))
        groups[(index, r["distribution"])].append(r)
    return [point_summary(sorted(groups[key], key=lambda r: r["seed"]), reps) for key in sorted(groups)]


def study_figure(rows: Sequence[dict], points: Sequence[dict], param: str, proxies: Sequence[str]):
    """Per shifted distribution (a column): one strip panel per key score (S_spec, S_int, each
    proxy's posterior) against the parameter value, a marker per seed coloured by its verdict,
    outliers ringed and labelled, the IQM as a bar with its interval; below, the stacked fraction
    of seeds per verdict."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    distributions = list(dict.fromkeys(p["distribution"] for p in points))
    metrics = [*STRIP_SCORES, *(f"success_{p}" for p in proxies), *(f"posterior_{p}" for p in proxies)]
    n_values = max(len([p for p in points if p["distribution"] == d]) for d in distributions)
    fig, axes = plt.subplots(
        len(metrics) + 1,
        len(distributions),
        figsize=(max(5.0, 0.9 * n_values + 2.5) * len(distributions), 2.1 * (len(metrics) + 1) + 0.6),
        squeeze=False,
        sharex="col",
    )
    for col, d in enumerate(distributions):
        own = [p for p in points if p["distribution"] == d]
        xs = np.arange(len(own))
        for m, metric in enumerate(metrics):
            ax = axes[m][col]
            low = -0.1
            for x, p in zip(xs, own, strict=True):
                seeds = [r for r in rows if r["distribution"] == d and same_value(r["value"], p["value"])]
                outlying = {o["seed"] for o in p["outliers"]}
                jitter = np.linspace(-0.25, 0.25, len(seeds)) if len(seeds) > 1 else np.zeros(1)
                for dx, r in zip(jitter, seeds, strict=False):
                    y = r.get(metric, math.nan)
                    if y is None or not np.isfinite(y):
                        continue
                    low = min(low, y - 0.1)
                    ring = r["seed"] in outlying
                    ax.scatter(
                        x + dx,
                        y,
                        s=20,
                        color=VERDICT_COLOURS.get(r["verdict"], "black"),
                        edgecolor="black" if ring else "none",
                        linewidth=1.2 if ring else 0,
                        zorder=3,
                    )
                    if ring:
                        ax.annotate(
                            str(r["seed"]), (x + dx, y), fontsize=6, xytext=(2, 2), textcoords="offset points"
                        )
                score = p["scores"].get(metric)
                if score and score.get("estimate") is not None:
                    ax.hlines(
                        score["estimate"], x - 0.35, x + 0.35, color="black", lw=1.5, alpha=0.6, zorder=2
                    )
                    if score.get("low") is not None and score.get("high") is not None:
                        ax.vlines(x + 0.35, score["low"], score["high"], color="black", lw=1, alpha=0.6)
            ax.set_ylim(low, 1.1)
            ax.axhline(0, color="grey", lw=0.5)
            ax.axhline(1, color="grey", lw=0.5, ls="--")
            name = metric.replace("posterior_", "posterior of ")
            ax.set_ylabel(name, fontsize=8)
            if m == 0:
                label = interval_label([p["scores"][k] for p in own for k in metrics if k in p["scores"]])
                ax.set_title(
                    f"shifted: {d}. Dots: seeds (colour: verdict; ringed: outlier). Bar: {label.split(' (')[0]}",
                    fontsize=8,
                )
        bars = axes[-1][col]
        bottom = np.zeros(len(own))
        for v in VERDICTS:
            share = np.array([p["verdict_fractions"].get(v, 0.0) for p in own])
            if share.any():
                bars.bar(xs, share, bottom=bottom, color=VERDICT_COLOURS.get(v, "black"), width=0.6)
                bottom += share
        bars.set_xticks(xs, [str(p["value"]) for p in own])
        bars.set_xlabel(f"{param} (training distribution)")
        n = "/".join(sorted({str(p["n_seeds"]) for p in own}))
        bars.set_ylabel(f"fraction of seeds\n(n={n} per point)", fontsize=8)
        bars.set_ylim(0, 1)
    handles = [Line2D([], [], marker="o", ls="", color=VERDICT_COLOURS[v], label=v) for v in VERDICTS]
    fig.legend(handles=handles, fontsize=7, loc="lower center", ncol=len(VERDICTS), bbox_to_anchor=(0.5, 0.0))
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return fig


def _cell(fractions: Mapping[str, float], short: bool = True) -> str:
    shown = [(SHORT_VERDICTS.get(k, k) if short else k, f) for k, f in fractions.items() if f > 0]
    return ", ".join(f"{k} {f:.0%}" for k, f in shown) or "–"


def study_markdown(study: dict) -> str:
    """The study's tables: per point the verdict, GM-goal and inferred-goal fractions, key scores, outliers."""
    points, param = study["points"], study["param"]
    proxies = study.get("proxies", [])
    keys = [
        "S_spec_train",
        "S_spec",
        "S_int",
        "success_intended",
        *(f"success_{p}" for p in proxies),
        *(f"posterior_{p}" for p in proxies),
    ]
    intervals = [p["scores"][k] for p in points for k in keys if k in p["scores"]]
    lines = [
        f"# Study: {param} on {study['env_id']}",
        "",
        f"{study.get('n_seeds')} seeds per point; scores are {interval_label(intervals)} "
        "(S_spec_train on train, the rest on the shifted distribution). "
        "success_X: the fraction of shifted episodes that reached goal X; most reached: the goal each "
        "seed reached most often. "
        "Outliers: seeds whose verdict, or whose goal in a goal-misgeneralization majority, "
        "differs from the point's majority; a tie names none. GM = goal misgeneralization.",
        "",
    ]
    if study.get("command"):
        lines += [
            f"Command: `{study['command']}`; date {study.get('date')}; git {study.get('git_commit')}"
            f"{' (uncommitted changes)' if study.get('git_dirty') else ''}; wall time {study.get('wall_seconds', 0):.0f} s.",
            "",
        ]
    header = [
        param,
        "shifted",
        "n",
        "verdicts",
        "majority",
        "GM goals",
        "inferred goals",
        "most reached",
        *keys,
        "outliers",
    ]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for p in points:
        majority_text = p["majority_verdict"] or "tie: " + " / ".join(p["tied_verdicts"])
        if p["majority_gm_goal"]:
            majority_text += f" → {p['majority_gm_goal']}"
        cells = [
            str(p["value"]),
            p["distribution"],
            str(p["n_seeds"]),
            _cell(p["verdict_fractions"]),
            majority_text,
            _cell(p["gm_goal_fractions"]),
            _cell(p["inferred_goal_fractions"]),
            _cell(p.get("preferred_goal_fractions", {})),
            *(Interval.from_dict(p["scores"][k]).format() if k in p["scores"] else "–" for k in keys),
            ", ".join(str(o["seed"]) for o in p["outliers"]) or "none",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    outliers = [o for p in points for o in p["outliers"]]
    lines += ["", "## Outlier seeds", ""]
    if not outliers:
        lines.append("None.")
    for o in outliers:
        where = o["run_dir"] or "no run folder"
        if o.get("planted"):
            where = f"planted: {o['planted']}"
        video = f", video `{o['video']}`" if o.get("video") else ""
        lines.append(
            f"- {param}={o['value']}, seed {o['seed']} ({o['distribution']}): {o['why']}; `{where}`{video}"
        )
    planted = [(p["value"], s, spec) for p in points for s, spec in p["planted"].items()]
    if planted:
        lines += ["", "## Planted seeds (not trained: their agent was replaced)", ""]
        lines += [f"- {param}={v}, seed {s}: `{spec}`" for v, s, spec in dict.fromkeys(planted)]
    return "\n".join(lines) + "\n"


def write_study(study: dict, rows: Sequence[dict], folder: str | Path) -> dict[str, Path]:
    """``study.csv`` (one row per point × seed × shifted distribution), ``study.json``, ``study.png``, ``study.md``."""
    import matplotlib.pyplot as plt

    folder = Path(folder)
    paths = {name: folder / name for name in FILES}
    atomic_write(paths["study.csv"], csv_bytes(rows))
    atomic_write(paths["study.json"], json.dumps(json_safe(study), indent=1, allow_nan=False).encode())
    fig = study_figure(rows, study["points"], study["param"], study.get("proxies", []))
    atomic_write(paths["study.png"], figure_bytes(fig))
    plt.close(fig)
    atomic_write(paths["study.md"], study_markdown(study).encode())
    return paths
