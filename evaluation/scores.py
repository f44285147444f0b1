"""Normalised scores: where an agent sits between uniform random (0) and optimal (1).

Raw returns are not comparable across rewards, levels or environments; the
normalised score ``S_R = (J_R(pi) - J_R(rand)) / (J_R(opt_R) - J_R(rand))``
is (DESIGN §4). All three ``J`` are mean undiscounted episode returns on the
*same* seeded levels, so level difficulty cancels.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from evaluation.levels import References
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
