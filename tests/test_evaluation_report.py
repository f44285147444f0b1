"""Honest statistics in the report: ties as ties, min–max under 5 seeds, the per-seed figure, the suite table.

Judgements are built by hand (no rollouts): the report only reads their fields.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from evaluation.inference import CandidateInference
from evaluation.judge import Judgement, aggregate
from evaluation.report import FILES, seed_scores, seeds_figure, verdict_table, write_report
from evaluation.scores import ScoreTable
from evaluation.suite import suite_failures, suite_markdown, suite_results, suite_table
from evaluation.verdict import Thresholds

ROOT = Path(__file__).resolve().parents[1]
REWARDS = ("intended", "specified", "proxy")


def table(dist: str, scores: dict[str, float]) -> ScoreTable:
    full = {r: scores.get(r, 0.0) for r in REWARDS}
    zeros = dict.fromkeys(REWARDS, 0.0)
    return ScoreTable(
        distribution=dist,
        n_episodes=10,
        returns=dict(full),
        random_returns=dict(zeros),
        optimal_returns=dict.fromkeys(REWARDS, 1.0),
        scores=full,
        degenerate=dict.fromkeys(REWARDS, False),
        success=dict(full),
        random_success=dict(zeros),
        optimal_success=dict.fromkeys(REWARDS, 1.0),
        ended={"terminated_with_intended": 0.5, "timed_out": 0.5, "mean_length": 9.0},
    )


# what each verdict looks like: train S_spec, shifted S_spec/S_int/S_proxy, inferred goal, named goal
SHAPES = {
    "untrained": (0.1, 0.1, 0.1, 0.0, "no_goal", None),
    "robust": (0.9, 0.9, 0.9, 0.1, "specified", None),
    "goal_misgeneralization": (0.9, 0.05, 0.05, 0.8, "proxy", "proxy"),
    "capability_misgeneralization": (0.9, 0.0, 0.0, 0.0, "no_goal", None),
}


def judgement(seed: int, verdict: str, expected: str = "goal_misgeneralization", jitter: float = 0.0):
    train, spec, intended, proxy, inferred, goal = SHAPES[verdict]
    hyps = ["specified", "proxy", "no_goal"]
    posterior = {h: float(h == inferred) for h in hyps}
    return Judgement(
        agent="fake",
        env_id="Fake/Env-v0",
        distribution="test",
        seed=seed,
        policy="fake",
        verdict=verdict,
        goal=goal,
        reason="by hand",
        expected_verdict=expected,
        expected_goal="proxy" if expected == "goal_misgeneralization" else None,
        scores={
            "train": table("train", {"specified": train + jitter, "intended": train, "proxy": 0.5}),
            "test": table(
                "test", {"specified": spec + jitter, "intended": intended, "proxy": proxy + jitter}
            ),
        },
        inference=CandidateInference(
            candidates=["specified", "proxy"],
            n_steps=100,
            log_likelihood=dict.fromkeys(hyps, -1.0),
            beta=dict.fromkeys(hyps, 1.0),
            lapse=dict.fromkeys(hyps, 0.0),
            posterior=posterior,
            inferred_goal=inferred,
        ),
        epic_to_specified={"intended": 0.0, "specified": 0.0, "proxy": 0.6},
        irl={"epic": {"intended": 0.5, "specified": 0.5, "proxy": 0.4}, "closest": "proxy"},
        thresholds=Thresholds(),
    )


def group(*verdicts: str, expected: str = "goal_misgeneralization"):
    return [judgement(i + 1, v, expected, jitter=0.01 * i) for i, v in enumerate(verdicts)]


@pytest.mark.parametrize(
    ("verdicts", "tied"),
    [
        (("untrained", "robust"), ["untrained", "robust"]),
        (
            ("goal_misgeneralization", "robust", "robust", "goal_misgeneralization", "untrained"),
            ["robust", "goal_misgeneralization"],
        ),
    ],
    ids=["1-1", "2-2-1"],
)
def test_a_tie_between_verdicts_is_reported_as_a_tie(verdicts, tied):
    (agg,) = aggregate(group(*verdicts), reps=50)
    assert agg.tied == tied and agg.is_tie
    assert agg.outcome == "tie: " + " / ".join(tied)
    assert agg.matches_expected is False  # GM is among the tied, but a tie is no majority
    assert agg.to_dict()["tied"] == tied and agg.to_dict()["outcome"] == agg.outcome
    k = verdicts.count(tied[0])
    assert f"tie: {' / '.join(tied)} ({k}/{len(verdicts)} each)" in verdict_table([agg])
    assert "tie: " in suite_table([agg]) and "**no**" in suite_table([agg])
    assert "0/1 (a tie is no majority)" in suite_markdown(suite_results([agg]))
    (failure,) = suite_failures([suite_results_entry(agg)])
    assert "Fake/Env-v0 / test" in failure and "expected goal_misgeneralization" in failure
    assert f"obtained tie: {' / '.join(tied)}" in failure


def suite_results_entry(agg):
    return suite_results([agg])["entries"][0]


def test_a_tie_between_named_goals_is_reported_and_never_matches():
    a, b, c = group(*["goal_misgeneralization"] * 3)
    (agg,) = aggregate([a, replace(b, goal="other")], reps=50)
    assert not agg.is_tie and agg.tied_goals == ["other", "proxy"]
    assert agg.outcome == "goal_misgeneralization (goal tie: other / proxy)"
    assert agg.matches_expected is False
    assert "goal_misgeneralization (goal tie: other / proxy) (2/2)" in verdict_table([agg])
    assert "GM → **goal tie: `other` / `proxy`** (2/2)" in suite_table([agg])
    (failure,) = suite_failures([suite_results_entry(agg)])
    assert "obtained goal_misgeneralization → goal tie: other / proxy (2/2)" in failure
    (two_to_one,) = aggregate([a, replace(b, goal="other"), c], reps=50)
    assert two_to_one.tied_goals == [] and two_to_one.goal == "proxy" and two_to_one.matches_expected


def test_a_plurality_is_not_a_tie():
    (agg,) = aggregate(group("goal_misgeneralization", "goal_misgeneralization", "robust"), reps=50)
    assert agg.tied == [] and not agg.is_tie and agg.outcome == "goal_misgeneralization"
    assert agg.matches_expected is True and agg.goal == "proxy"
    assert "goal_misgeneralization: proxy (2/3)" in verdict_table([agg])
    (one,) = aggregate(group("robust"), reps=50)
    assert one.tied == [] and one.outcome == "robust"


def test_under_five_seeds_the_tables_show_min_max_and_say_so_and_ci_from_five(tmp_path):
    (three,) = aggregate(group(*["goal_misgeneralization"] * 3), reps=50)
    (five,) = aggregate(group(*["goal_misgeneralization"] * 5), reps=50)
    assert (
        three.scores["test"]["specified"].kind == "min-max" and five.scores["test"]["specified"].kind == "ci"
    )
    small, large = verdict_table([three]), verdict_table([five])
    assert "(min 0.05, max 0.07)" in small and "[" not in small.split("\n")[2].split("|")[6]
    assert "(min " not in large and re.search(r"\| 0\.07 \[0\.05, 0\.0\d\] \|", large)
    write_report(group(*["goal_misgeneralization"] * 3), [three], tmp_path / "three")
    text = (tmp_path / "three" / "verdicts.md").read_text()
    assert "IQM, min–max over 3 seeds" in text and "95% CI over" not in text
    write_report(group(*["goal_misgeneralization"] * 5), [five], tmp_path / "five")
    text = (tmp_path / "five" / "verdicts.md").read_text()
    assert "IQM, 95% CI over 5 seeds" in text and "min–max over" not in text


def test_the_seeds_figure_is_written_with_every_report(tmp_path):
    judgements = group("goal_misgeneralization", "robust", "untrained")
    aggregates = aggregate(judgements, reps=50)
    assert "seeds.png" in FILES
    paths = write_report(judgements, aggregates, tmp_path)
    png = paths["seeds.png"].read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5000
    saved = json.loads(paths["results.json"].read_text())
    assert saved["aggregates"][0]["outcome"] == "tie: untrained / robust / goal_misgeneralization"
    scores = seed_scores(judgements[2])  # untrained: the inferred goal is no_goal, no score to plot
    assert scores["S_spec (train)"] == pytest.approx(0.12) and np.isnan(scores["S_goal"])
    assert seed_scores(judgements[0])["S_goal"] == pytest.approx(0.8)
    fig = seeds_figure(judgements, aggregates)
    (ax,) = [a for a in fig.axes if a.get_visible()]
    assert "tie" in ax.get_title() and "expected: goal_misgeneralization (proxy)" in ax.get_title()
    assert sorted(t.get_text() for t in ax.get_legend().get_texts()) == sorted(
        ["untrained", "robust", "goal_misgeneralization"]
    )


def test_suite_results_round_trip_to_the_markdown_table_and_the_script(tmp_path):
    agree = aggregate(group(*["goal_misgeneralization"] * 5), reps=50)
    wrong = aggregate(
        [
            *(judgement(s, "robust", expected="goal_misgeneralization") for s in (1, 2)),
        ],
        reps=50,
    )
    wrong = [type(wrong[0])(**{**wrong[0].__dict__, "env_id": "Fake/Other-v0"})]
    results = suite_results(
        [*agree, *wrong],
        {"Fake/Env-v0": "fake", "Fake/Other-v0": "other"},
        command="python -m experiments.suite envs=[fake,other]",
        date="2026-12-02T05:00:00+00:00",
        git_commit="abc123",
        git_dirty=False,
        wall_seconds=12.3,
        thresholds=Thresholds().to_dict(),
    )
    assert (results["agreed"], results["checked"], results["exit_code"]) == (1, 2, 1)
    (failure,) = results["failures"]
    assert failure.startswith("other (Fake/Other-v0) / test: expected goal_misgeneralization → proxy")
    assert "obtained robust (2/2)" in failure and "seeds 1: robust, 2: robust" in failure
    entry = results["entries"][0]
    assert entry["env"] == "fake" and entry["seeds"] == [1, 2, 3, 4, 5]
    assert entry["scores"]["S_spec"]["n"] == 5 and entry["scores"]["S_spec"]["kind"] == "ci"
    assert results["entries"][1]["scores"]["S_spec"]["kind"] == "min-max"
    path = tmp_path / "suite_results.json"
    path.write_text(json.dumps(results))
    markdown = suite_markdown(json.loads(path.read_text()))
    assert markdown == suite_markdown(results)
    assert (
        "`python -m experiments.suite envs=[fake,other]` on 2026-12-02T05:00:00+00:00, commit abc123"
        in markdown
    )
    assert "1/2" in markdown and "Disagreements (each makes `experiments.suite` exit 1)" in markdown
    assert entry["irl_closest"] == "proxy" and "`proxy`: 0.40 [0.40, 0.40]" in markdown
    assert "min–max or 95% CI over 2–5 seeds" in markdown
    printed = subprocess.run(
        [sys.executable, "docs/suite_table.py", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert printed.returncode == 0 and printed.stdout == markdown, printed.stderr
    bad = subprocess.run(
        [sys.executable, "docs/suite_table.py", str(tmp_path / "none.json")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "none.json" in bad.stderr
