"""The suite's results: expected against obtained verdicts per env, as a results file and a Markdown table.

:func:`suite_results` turns the judge's aggregates into the suite's results
file (``suite_results.json``, which ``experiments.suite`` writes) and
:func:`suite_markdown` that file into the README's table
(``python docs/suite_table.py reports/suite/<time>/suite_results.json``).
"""

from __future__ import annotations

from collections.abc import Sequence

from evaluation.formats import GM, SHORT_NOTE, SHORT_VERDICTS, interval_cell, interval_note, json_safe
from evaluation.judge import Aggregate


def irl_closest(a: Aggregate) -> str | None:
    """The declared reward closest (EPIC, IQM) to the learned IRL reward; ``specified`` first on ties."""
    preference = sorted(a.irl_epic, key=lambda r: r != "specified")  # ties: intended == specified
    return min(preference, key=lambda r: a.irl_epic[r].estimate) if a.irl_epic else None


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
    closest = irl_closest(a)
    keys = {
        "S_spec_train": a.scores.get("train", {}).get("specified"),
        "S_spec": shifted.get("specified"),
        "S_int": shifted.get("intended"),
        "S_goal": shifted.get(goal),
        "posterior_goal": a.posterior.get(goal),
        "epic_goal_to_specified": a.epic_to_specified.get(goal),
        "irl_epic_closest": a.irl_epic.get(closest),
    }
    return json_safe(
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
            "irl_closest": closest,
            "seeds": list(a.seeds),
            "verdicts": {str(k): v for k, v in sorted(a.verdicts.items())},
            "matches_expected": a.matches_expected,
            "scores": {k: (None if v is None else v.to_dict()) for k, v in keys.items()},
            "found_goal": {k: v.to_dict() for k, v in a.found_goal.items()},
            "judge_paths": dict(a.judge_paths),
            "path_reasons": list(a.path_reasons),
        }
    )


def _name(verdict: str | None, short: bool) -> str:
    return (SHORT_VERDICTS.get(verdict, verdict) if short else verdict) or "–"


def _expected_text(e: dict, short: bool = False) -> str:
    expected = _name(e.get("expected_verdict"), short)
    if e.get("expected_verdict") == GM and e.get("expected_goal"):
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
    return json_safe(
        {
            **meta,
            "agreed": sum(bool(e["matches_expected"]) for e in checked),
            "checked": len(checked),
            "failures": failures,
            "exit_code": 1 if failures else 0,
            "entries": entries,
        }
    )


SCORE_COLUMNS = ("S_spec_train", "S_spec", "S_int", "S_goal")  # the table's score columns, in order


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
        goal_cell = f"`{goal}`: {interval_cell(posterior, n)}" if posterior else f"`{goal}`"
        irl = e.get("irl_closest")
        irl_cell = f"`{irl}`: {interval_cell(sc.get('irl_epic_closest'), n)}" if irl else "–"
        lines.append(
            f"| {e['env_id']} | {e['distribution']} | {_expected_text(e, True)} | {_obtained_text(e, True)} "
            f"| {per_seed} | {goal_cell} | {' | '.join(interval_cell(sc.get(k), n) for k in SCORE_COLUMNS)} "
            f"| {irl_cell} | {agrees} |"
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
