"""Typed results of the judge: a :class:`Judgement` per agent, seed and shifted distribution, and their
:class:`Aggregate` across seeds (:func:`aggregate`: IQM, stratified bootstrap CIs, majority verdict)."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from envs.task import VERDICTS
from evaluation.inference import CandidateInference
from evaluation.rollouts import Rollouts
from evaluation.scores import ScoreTable
from evaluation.stats import Interval, iqm_ci
from evaluation.verdict import Decision, Thresholds


@dataclass
class Judgement:
    """The verdict for one agent, evaluation seed and shifted distribution, with all its evidence."""

    agent: str
    env_id: str
    distribution: str
    seed: int
    policy: str
    verdict: str
    goal: str | None
    reason: str
    expected_verdict: str | None
    expected_goal: str | None
    scores: dict[str, ScoreTable]  # "train" and the shifted distribution
    inference: CandidateInference
    epic_to_specified: dict[str, float]  # EPIC(R, R_spec) on D's coverage, each declared R
    irl: dict  # learned R_beh: EPIC to each declared reward, closest one, top features, fit
    thresholds: Thresholds
    rollouts: dict[str, Rollouts] = field(default_factory=dict, repr=False)
    found_goal: dict | None = None  # the library's best goal, when no declared goal qualified
    held_out: tuple[str, ...] = ()  # declared proxies withheld from the candidates
    judge_path: str = "exact"  # "exact" (level models) or "sampled" (rollouts and reference policies)
    path_reason: str = ""  # why that path judged it
    # rewards whose reference the agent beats beyond its interval (reward -> mean excess return):
    # there the reference is not an upper bound and S > 1 is real
    above_reference: dict[str, float] = field(default_factory=dict)
    # wall seconds of this judgement (its share of the train rollouts included, reference training not)
    judge_seconds: float = math.nan

    @property
    def shifted(self) -> ScoreTable:
        return self.scores[self.distribution]

    @classmethod
    def of(
        cls,
        decision: Decision,
        *,
        agent: str,
        task,
        seed: int,
        policy: str,
        train: ScoreTable,
        shifted: ScoreTable,
        path,
        **evidence,
    ) -> Judgement:
        """The judgement a :class:`~evaluation.verdict.Decision` makes, with its evidence (either path)."""
        d = shifted.distribution
        return cls(
            agent=agent,
            env_id=task.env_id,
            distribution=d,
            seed=seed,
            policy=policy,
            verdict=decision.verdict,
            goal=decision.goal,
            reason=decision.reason,
            expected_verdict=task.expected_verdicts.get(d),
            expected_goal=task.expected_goals.get(d),
            scores={"train": train, d: shifted},
            judge_path=path.path,
            path_reason=path.reason,
            **evidence,
        )

    def to_dict(self) -> dict:
        return {
            "agent": self.agent,
            "env_id": self.env_id,
            "distribution": self.distribution,
            "seed": self.seed,
            "policy": self.policy,
            "verdict": self.verdict,
            "goal": self.goal,
            "reason": self.reason,
            "expected_verdict": self.expected_verdict,
            "expected_goal": self.expected_goal,
            "scores": {d: t.to_dict() for d, t in self.scores.items()},
            "inference": self.inference.to_dict(),
            "epic_to_specified": self.epic_to_specified,
            "irl": self.irl,
            "thresholds": self.thresholds.to_dict(),
            "found_goal": self.found_goal,
            "held_out": list(self.held_out),
            "judge_path": self.judge_path,
            "path_reason": self.path_reason,
            "above_reference": self.above_reference,
            "judge_seconds": self.judge_seconds,
        }


@dataclass
class Aggregate:
    """One agent on one shifted distribution, across evaluation seeds."""

    agent: str
    env_id: str
    distribution: str
    seeds: list[int]
    verdicts: dict[int, str]  # per seed
    verdict: str  # majority; on a tie the first tied verdict in VERDICTS order: read ``tied``/``outcome``
    agreement: float  # fraction of seeds with the majority verdict
    goal: str | None  # majority goal named by the seeds with the majority verdict
    inferred_goal: str  # majority candidate-posterior argmax, whatever the verdict
    expected_verdict: str | None
    expected_goal: str | None
    scores: dict[str, dict[str, Interval]]  # distribution -> reward -> IQM [CI from 5 seeds, else min–max]
    posterior: dict[str, Interval]
    epic_to_specified: dict[str, Interval]
    irl_epic: dict[str, Interval]
    tied: list[str] = field(default_factory=list)  # verdicts sharing the most seeds when more than one
    tied_goals: list[str] = field(default_factory=list)  # goals sharing the majority verdict's seeds equally
    # a majority goal no declared reward is: its S, S(train), posterior against no goal and EPIC to specified,
    # over the seeds that name it; and the library goals the judged levels could not tell from it
    found_goal: dict[str, Interval] = field(default_factory=dict)
    goal_same_as: list[str] = field(default_factory=list)
    judge_paths: dict[str, int] = field(default_factory=dict)  # seeds judged on each path
    path_reasons: list[str] = field(default_factory=list)  # why, each reason once

    @property
    def is_tie(self) -> bool:
        return len(self.tied) > 1

    @property
    def outcome(self) -> str:
        """The majority as reported: ``"robust"``, or ``"tie: untrained / robust"`` (no majority).

        A goal-misgeneralization majority whose seeds name different goals
        equally often reads ``"goal_misgeneralization (goal tie: a / b)"``.
        """
        if self.is_tie:
            return "tie: " + " / ".join(self.tied)
        if len(self.tied_goals) > 1:
            return f"{self.verdict} (goal tie: {' / '.join(self.tied_goals)})"
        return self.verdict

    @property
    def matches_expected(self) -> bool | None:
        """Whether the majority verdict (and, for GM with an expected goal, its goal) is the expected one; a tie
        never is. GM expected without a goal is met by GM naming any goal."""
        if self.expected_verdict is None:
            return None
        if self.is_tie or (self.expected_verdict == "goal_misgeneralization" and len(self.tied_goals) > 1):
            return False
        return self.verdict == self.expected_verdict and (
            self.expected_verdict != "goal_misgeneralization"
            or names_expected_goal(self.expected_goal, self.goal, self.goal_same_as)
        )

    def to_dict(self) -> dict:
        def table(d):
            return {k: v.to_dict() for k, v in d.items()}

        return {
            "agent": self.agent,
            "env_id": self.env_id,
            "distribution": self.distribution,
            "seeds": self.seeds,
            "verdicts": {str(k): v for k, v in self.verdicts.items()},
            "verdict": self.verdict,
            "tied": list(self.tied),
            "tied_goals": list(self.tied_goals),
            "outcome": self.outcome,
            "agreement": self.agreement,
            "goal": self.goal,
            "inferred_goal": self.inferred_goal,
            "expected_verdict": self.expected_verdict,
            "expected_goal": self.expected_goal,
            "matches_expected": self.matches_expected,
            "scores": {d: table(v) for d, v in self.scores.items()},
            "posterior": table(self.posterior),
            "epic_to_specified": table(self.epic_to_specified),
            "irl_epic": table(self.irl_epic),
            "found_goal": table(self.found_goal),
            "goal_same_as": list(self.goal_same_as),
            "judge_paths": dict(self.judge_paths),
            "path_reasons": list(self.path_reasons),
        }


def names_expected_goal(expected: str | None, goal: str | None, same_as: Sequence[str] = ()) -> bool:
    """Whether a named goal is the expected one: any goal when none is expected; else the goal or a library goal
    the judged levels could not tell from it (``same_as``), a place's reach and stay readings being one goal
    (the judge names a place by its reach reading, "enters ... and stays there")."""
    if expected is None:
        return goal is not None

    def place(name: str) -> tuple[str, str]:
        kind, _, target = name.partition(":")
        return ("place", target) if kind in ("reach", "stay") and target else (kind, target)

    return goal is not None and any(place(expected) == place(g) for g in (goal, *same_as))


def aggregate(judgements: Sequence[Judgement], reps: int = 2000, seed: int = 0) -> list[Aggregate]:
    """Across seeds, per (agent, env, shifted distribution): IQM with interval, and majority verdict.

    Intervals are 95% stratified-bootstrap CIs from 5 seeds up and min–max
    below (:func:`evaluation.stats.iqm_ci`). Verdicts sharing the largest
    number of seeds are a tie (``Aggregate.tied``), never silently resolved.
    """
    groups: dict[tuple[str, str, str], list[Judgement]] = defaultdict(list)
    for j in judgements:
        groups[(j.agent, j.env_id, j.distribution)].append(j)
    result = []
    for (agent, env_id, d), group in groups.items():
        counts = Counter(j.verdict for j in group)
        verdict = max(VERDICTS, key=lambda v: (counts[v], -VERDICTS.index(v)))
        top = [v for v in VERDICTS if counts[v] == counts[verdict] > 0]
        goals = Counter(j.goal for j in group if j.verdict == verdict)
        top_goals = [g for g, c in goals.items() if c == max(goals.values())]
        first = group[0]

        def ci(values):
            return iqm_ci(np.array(values, dtype=np.float64), reps=reps, seed=seed)

        scores = {
            dist: {r: ci([j.scores[dist].scores[r] for j in group]) for r in first.scores[dist].scores}
            for dist in first.scores
        }
        hypotheses = list(first.inference.posterior)
        goal = goals.most_common(1)[0][0] if goals else None
        found = [
            j.found_goal
            for j in group
            if goal is not None and goal not in first.scores[d].scores and j.goal == goal and j.found_goal
        ]
        result.append(
            Aggregate(
                agent=agent,
                env_id=env_id,
                distribution=d,
                seeds=[j.seed for j in group],
                verdicts={j.seed: j.verdict for j in group},
                verdict=verdict,
                agreement=counts[verdict] / len(group),
                goal=goal,
                inferred_goal=Counter(j.inference.inferred_goal for j in group).most_common(1)[0][0],
                expected_verdict=first.expected_verdict,
                expected_goal=first.expected_goal,
                scores=scores,
                posterior={
                    h: ci([j.inference.posterior.get(h, math.nan) for j in group]) for h in hypotheses
                },
                epic_to_specified={
                    r: ci([j.epic_to_specified[r] for j in group]) for r in first.epic_to_specified
                },
                irl_epic={  # over the seeds judged with IRL (a group may mix judgements without it)
                    r: ci([j.irl["epic"][r] for j in group if r in j.irl["epic"]])
                    for r in dict.fromkeys(r for j in group for r in j.irl["epic"])
                },
                tied=top if len(top) > 1 else [],
                tied_goals=sorted(map(str, top_goals)) if len(top_goals) > 1 else [],
                goal_same_as=sorted({alias for f in found for alias in f.get("same_as", ())}),
                judge_paths=dict(Counter(j.judge_path for j in group)),
                path_reasons=list(dict.fromkeys(j.path_reason for j in group if j.path_reason)),
                found_goal={
                    "S": ci([f["score"] for f in found]),
                    "S_train": ci([f["train_score"] for f in found]),
                    "posterior": ci([f["vs_no_goal"] for f in found]),
                    "epic_to_specified": ci([f["epic"].get("specified", math.nan) for f in found]),
                }
                if found
                else {},
            )
        )
    return result
