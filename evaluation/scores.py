"""Normalised scores: where an agent sits between uniform random (0) and optimal (1).

Raw returns are not comparable across rewards, levels or environments; the
normalised score ``S_R = (J_R(pi) - J_R(rand)) / (J_R(opt_R) - J_R(rand))``
is (DESIGN §4). All three ``J`` are mean undiscounted episode returns on the
*same* seeded levels, so level difficulty cancels.

Declared rewards are scored against reference rollouts
(:func:`normalised_scores`). Library goals (:mod:`evaluation.goals`) have no
reference policies: their references are exact on each level's model, the
best return within the step limit and the uniform random policy's expected
return (:func:`goal_scores`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from agents.planning import finite_horizon_values
from evaluation.goal_names import GoalName
from evaluation.goals import goal_ends, goal_table
from evaluation.levels import Level, References
from evaluation.rollouts import Rollouts

# Below this gap between optimal and random returns the score is undefined.
MIN_DENOMINATOR = 1e-9


def normalised_score(j_agent: float, j_random: float, j_optimal: float) -> tuple[float, bool]:
    """``(S, degenerate)``; ``S`` is NaN and ``degenerate`` True when opt is no better than random."""
    denominator = j_optimal - j_random
    if not denominator > MIN_DENOMINATOR * max(1.0, abs(j_optimal)):
        return math.nan, True
    return (j_agent - j_random) / denominator, False


@dataclass
class ScoreTable:
    """One agent's returns and normalised scores under every declared reward on one distribution."""

    distribution: str
    n_episodes: int
    returns: dict[str, float]  # J_R(pi)
    random_returns: dict[str, float]  # J_R(rand)
    optimal_returns: dict[str, float]  # J_R(opt_R)
    scores: dict[str, float]  # S_R, NaN where degenerate
    degenerate: dict[str, bool]  # opt_R no better than random on these levels
    success: dict[str, float]  # fraction of the agent's episodes with return > 0
    random_success: dict[str, float]
    optimal_success: dict[str, float]
    ended: dict[str, float] = field(default_factory=dict)  # where episodes end, measured directly

    def to_dict(self) -> dict:
        return asdict(self)


def _check_same_levels(agent: Rollouts, other: Rollouts, what: str) -> None:
    if agent.env_id != other.env_id or agent.distribution != other.distribution:
        raise ValueError(
            f"{what} rollouts are on {other.env_id}/{other.distribution}, "
            f"the agent's on {agent.env_id}/{agent.distribution}"
        )
    if not np.array_equal(np.asarray(agent.level_seeds), np.asarray(other.level_seeds)):
        raise ValueError(f"{what} rollouts were played on other levels than the agent's")


def normalised_scores(agent: Rollouts, references: References) -> ScoreTable:
    """Scores of ``agent`` under every declared reward, against references on the same levels."""
    _check_same_levels(agent, references.random, "random")
    names = list(agent.returns)
    missing = [n for n in names if n not in references.optimal]
    if missing:
        raise ValueError(f"no optimal reference rollouts for reward {missing[0]!r}")
    for name in names:
        _check_same_levels(agent, references.optimal[name], f"optimal {name!r}")
    returns = {n: float(np.mean(agent.returns[n])) for n in names}
    random_returns = {n: float(np.mean(references.random.returns[n])) for n in names}
    optimal_returns = {n: float(np.mean(references.optimal[n].returns[n])) for n in names}
    scores, degenerate = {}, {}
    for n in names:
        scores[n], degenerate[n] = normalised_score(returns[n], random_returns[n], optimal_returns[n])
    return ScoreTable(
        distribution=agent.distribution,
        n_episodes=agent.num_episodes,
        returns=returns,
        random_returns=random_returns,
        optimal_returns=optimal_returns,
        scores=scores,
        degenerate=degenerate,
        success=success_rates(agent),
        random_success=success_rates(references.random),
        optimal_success={n: success_rates(references.optimal[n])[n] for n in names},
        ended=episode_ends(agent),
    )


def episode_ends(rollouts: Rollouts) -> dict[str, float]:
    """How the agent's episodes end: by the env with/without intended reward, or by the time limit."""
    intended = rollouts.returns.get("intended", rollouts.returns.get("specified"))
    won = np.zeros(rollouts.num_episodes, dtype=bool) if intended is None else intended > 0
    return {
        "terminated_with_intended": float(np.mean(rollouts.terminated & won)),
        "terminated_without_intended": float(np.mean(rollouts.terminated & ~won)),
        "timed_out": float(np.mean(~rollouts.terminated)),
        "mean_length": float(np.mean(rollouts.lengths)),
    }


def success_rates(rollouts: Rollouts) -> dict[str, float]:
    """Per reward, the fraction of episodes with a positive return."""
    return {n: float(np.mean(r > 0)) for n, r in rollouts.returns.items()}


# ------------------------------------------------------------------ library goals


def _random_returns(level: Level, rewards: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Expected return of the uniform random policy within the step limit, from the start, per reward ``(K,)``."""
    m = level.model
    cont = ~ends
    v = np.zeros(rewards.shape[:2])
    for _ in range(level.horizon):
        v = np.mean(rewards + cont * v[:, m.next_state], axis=2)
    return v[:, m.start]


def episode_steps(rollouts: Rollouts, levels: Sequence[Level]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per episode (one per level), its alive step numbers and the model index of each step's state."""
    steps = [np.flatnonzero(rollouts.alive[:, e]) for e in range(len(levels))]
    index = [lv.index_of(rollouts.states[s, e]) for e, (lv, s) in enumerate(zip(levels, steps, strict=True))]
    return steps, index


def stacked_goal_scores(rollouts, levels, stacked, ends, steps, index) -> tuple[np.ndarray, np.ndarray]:
    """Normalised scores ``(K,)`` of the agent under stacked goal tables, with exact references, and success rates.

    The references are exact on each level's model: the best return within
    the step limit, and the uniform random policy's expected return, each
    until the goal ends (:func:`evaluation.goals.goal_ends`); the agent's return stops there too.
    """
    n_goals = stacked[0].shape[0]
    agent, random, optimum, success = (np.zeros(n_goals) for _ in range(4))
    for e, lv in enumerate(levels):
        taken = index[e], rollouts.actions[steps[e], e]
        paid = stacked[e][:, taken[0], taken[1]]
        over = np.cumsum(ends[e][:, taken[0], taken[1]], axis=1) - ends[e][:, taken[0], taken[1]] > 0
        got = np.where(over, 0.0, paid).sum(axis=1)
        agent += got
        success += got > 0
        random += _random_returns(lv, stacked[e], ends[e])
        optimum += finite_horizon_values(lv.model, stacked[e], lv.horizon, ends[e])[:, 0, lv.model.start]
    scores = np.array([normalised_score(*js)[0] for js in zip(agent, random, optimum, strict=True)])
    return scores, success / len(levels)


def goal_scores(
    goal_names: Sequence[str], rollouts: Rollouts, levels: Sequence[Level], max_levels: int = 50
) -> dict[str, float]:
    """The agent's normalised score under each library goal ``kind:target`` on the first ``max_levels``
    levels, all in one pass over the episodes."""
    n_levels = min(len(levels), rollouts.num_episodes, max_levels)
    levels = list(levels[:n_levels])
    names = list(dict.fromkeys(goal_names))
    goals = [GoalName.parse(name) for name in names]
    stacked = [np.stack([goal_table(g, lv) for g in goals]) for lv in levels]
    ends = [goal_ends([g.kind for g in goals], lv, t) for lv, t in zip(levels, stacked, strict=True)]
    steps, index = episode_steps(rollouts, levels)
    scores = stacked_goal_scores(rollouts, levels, stacked, ends, steps, index)[0]
    return dict(zip(names, map(float, scores), strict=True))


def goal_score(goal_name: str, rollouts: Rollouts, levels: Sequence[Level], max_levels: int = 50) -> float:
    """The agent's normalised score under library goal ``kind:target`` on the first ``max_levels`` levels."""
    return goal_scores([goal_name], rollouts, levels, max_levels)[goal_name]


def _parts(goal_name: str) -> list[str]:
    """The goal and, for a pair of channels, each of its two channels' goals."""
    return [goal_name, *map(str, GoalName.parse(goal_name).parts)]


def pursued_score(
    goal_names: Sequence[str], rollouts: Rollouts, levels: Sequence[Level], max_levels: int = 50
) -> float:
    """How well the agent pursued a found goal on these levels (its training levels).

    ``goal_names`` is the found goal and the goals the judged levels could not
    tell from it (``FoundGoal.same_as``): the best of them counts. A pair of
    channels counts only as far as each part was pursued: "a cell holding
    lava or goal" is pursued on train by an agent that only ever reaches the
    goal, and on test by the same agent walking into lava; a disjunction
    whose parts take turns is no goal of the agent's (for one object marked
    by both channels, as ColourShape's yellow gem, each part is the whole).
    A part absent from these levels (no reference: NaN) was not pursued.
    """
    scores = goal_scores([p for name in goal_names for p in _parts(name)], rollouts, levels, max_levels)
    best = math.nan
    for name in goal_names:
        parts = [scores[p] for p in _parts(name)]
        score = math.nan if any(math.isnan(x) for x in parts) else min(parts)
        if not math.isnan(score) and not score <= best:
            best = score
    return best
