"""Exact level models and reference rollouts, computed once and shared by every agent.

The judge needs, for each evaluation level, the level's tabular model and
``Q*`` of every declared reward (reference planners, candidate inference, IRL,
EPIC coverage), and the uniform-random and optimal rollouts that normalise
scores. All of that depends on the env, its resolved parameters and the level
seeds only, never on the agent, so :class:`LevelBank` computes it once.

A level is ``(env, resolved params, seed)``: the same seed under other
parameters is another level (CoinRun ``train`` and ``test`` share a seed's
lava and differ in the coin), so every cache here is keyed by all three.
The exact models themselves live in :mod:`agents.planning` (one
:class:`~agents.planning.LevelSolver` shared by the judge and planner agents).
Everything here goes through the task protocol (:func:`envs.task`).
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass

import numpy as np

import envs
from agents.planning import DEFAULT_GAMMA, Level, LevelSolver, ParamsKeyedSolver, params_key, solve_level
from agents.policies import PlannerPolicy, UniformRandomPolicy
from envs import rng
from evaluation.rollouts import EVAL_SEED_OFFSET, Rollouts, rollout

__all__ = [
    "DEFAULT_BANK",
    "Level",
    "LevelBank",
    "LevelSolver",
    "ParamsKeyedSolver",
    "References",
    "distribution_level_seeds",
    "params_key",
    "solve_level",
]


def distribution_level_seeds(n_episodes: int, seed: int, distribution: str) -> np.ndarray:
    """Evaluation level seeds of one run on one distribution, disjoint across distributions.

    ``train`` keeps :func:`evaluation.rollouts.evaluation_level_seeds`; other
    distributions shift the episode counter by ``crc32(name) << 32`` so that a
    policy caching plans by level seed never sees the same seed on two
    distributions.
    """
    if isinstance(n_episodes, bool) or not isinstance(n_episodes, (int, np.integer)) or n_episodes < 1:
        raise ValueError(f"n_episodes must be a positive integer, got {n_episodes!r}")
    offset = 0 if distribution == "train" else zlib.crc32(distribution.encode()) << 32
    episodes = np.arange(n_episodes, dtype=np.uint64) + np.uint64(offset)
    return rng.level_seeds(np.full(n_episodes, seed + EVAL_SEED_OFFSET), episodes).astype(np.int64)


@dataclass
class References:
    """Uniform-random and per-reward optimal rollouts on the same levels as the agent's."""

    random: Rollouts
    optimal: dict[str, Rollouts]


class LevelBank:
    """Solved levels and reference rollouts per ``(env, params, levels)``; share one across agents."""

    def __init__(self, gamma: float = DEFAULT_GAMMA):
        self.gamma = gamma
        self.solver = LevelSolver(gamma)
        self._references: dict[tuple, References] = {}

    def levels(self, env_id: str, distribution: str, params: dict, level_seeds) -> list[Level]:
        level_seeds = np.asarray(level_seeds, dtype=np.uint64)
        core = envs.task(env_id)(len(level_seeds), distribution, **params)
        core.reset_levels(np.arange(len(level_seeds)), level_seeds)
        return [self.solver.level(core, i) for i in range(len(level_seeds))]

    def levels_of(self, rollouts: Rollouts) -> list[Level]:
        return self.levels(rollouts.env_id, rollouts.distribution, rollouts.params, rollouts.level_seeds)

    def references(self, env_id: str, distribution: str, params: dict, level_seeds) -> References:
        level_seeds = np.asarray(level_seeds, dtype=np.int64)
        resolved = envs.task(env_id).resolve_params(distribution, params)
        digest = hashlib.sha1(level_seeds.tobytes()).hexdigest()
        key = (params_key(env_id, resolved), digest)
        if key not in self._references:
            reward_names = envs.task(env_id).reward_names
            random_seed = int(level_seeds[0] % (2**31)) if len(level_seeds) else 0
            common = dict(env_id=env_id, distribution=distribution, params=resolved, level_seeds=level_seeds)
            self._references[key] = References(
                random=rollout(UniformRandomPolicy(random_seed), **common),
                optimal={
                    name: rollout(PlannerPolicy(name, solver=self.solver), **common) for name in reward_names
                },
            )
        return self._references[key]


DEFAULT_BANK = LevelBank()
