"""Typed results of the judge: one :class:`Judgement` per agent, seed and shifted distribution."""

from __future__ import annotations

from dataclasses import dataclass, field

from evaluation.inference import CandidateInference
from evaluation.rollouts import Rollouts
from evaluation.scores import ScoreTable
from evaluation.verdict import Thresholds


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

    @property
    def shifted(self) -> ScoreTable:
        return self.scores[self.distribution]

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
        }
