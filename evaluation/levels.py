"""Exact level models and reference rollouts, computed once and shared by every agent.

The judge needs, for each evaluation level, the level's tabular model and
``Q*`` of every declared reward (reference planners, candidate inference, IRL,
EPIC coverage), and the uniform-random and optimal rollouts that normalise
scores. All of that depends on the env, its resolved parameters and the level
seeds only, never on the agent, so :class:`LevelBank` computes it once.

A level is ``(env, resolved params, seed)``: the same seed under other
parameters is another level (CoinRun ``train`` and ``test`` share a seed's
lava and differ in the coin), so every cache here is keyed by all three.
:class:`ParamsKeyedSolver` is a :class:`agents.policies.LevelSolver` that
keeps each level as a :class:`Level` (a 1-row core for features and EPIC,
and a vectorised state index) so the judge and planner agents can share it.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from dataclasses import dataclass

import numpy as np

import envs
from agents.planning import DEFAULT_GAMMA, TabularModel, enumerate_level, value_iteration
from agents.policies import LevelSolver, PlannerPolicy, UniformRandomPolicy
from envs import rng
from envs.core import GridCore
from evaluation.rollouts import EVAL_SEED_OFFSET, Rollouts, rollout


def params_key(env_id: str, params: dict) -> str:
    """A stable text key for an env's resolved parameters."""
    return env_id + json.dumps(params, sort_keys=True, default=str)


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
class Level:
    """One solved level: a 1-row core holding it, its model, ``Q*`` per reward, a state index."""

    core: GridCore
    model: TabularModel
    q: dict[str, np.ndarray]  # reward -> (S, A)
    codes: np.ndarray  # sorted mixed-radix codes of model states
    order: np.ndarray  # model index of each sorted code
    radix: np.ndarray
    low: np.ndarray

    def index_of(self, states: np.ndarray) -> np.ndarray:
        """Model indices of ``states`` (n, state_dim), vectorised; every state must be in the model."""
        states = np.asarray(states, dtype=np.int64).reshape(-1, self.model.states.shape[1])
        codes = (states - self.low) @ self.radix
        pos = np.clip(np.searchsorted(self.codes, codes), 0, len(self.codes) - 1)
        idx = self.order[pos]
        bad = (self.model.states[idx] != states).any(axis=1)
        if bad.any():
            raise ValueError(f"state {states[bad][0].tolist()} is not in the level model")
        return idx


def solve_level(core: GridCore, row: int, gamma: float) -> Level:
    single = core.replicate(row, 1)
    single.reset_levels(np.array([0]), core.level_seed[row : row + 1])
    model = enumerate_level(single)
    names = list(model.rewards)
    q = value_iteration(model, np.stack([model.rewards[n] for n in names]), gamma)
    low = model.states.min(axis=0)
    span = model.states.max(axis=0) - low + 1
    radix = np.concatenate([np.cumprod(span[::-1])[::-1][1:], [1]]).astype(np.int64)
    codes = (model.states - low) @ radix
    order = np.argsort(codes)
    return Level(single, model, dict(zip(names, q, strict=True)), codes[order], order, radix, low)


class ParamsKeyedSolver(LevelSolver):
    """A :class:`LevelSolver` keeping solved :class:`Level` objects, keyed by ``(env, params, seed)``."""

    def __init__(self, gamma: float = DEFAULT_GAMMA):
        super().__init__(gamma)
        self.levels: dict[tuple[str, int], Level] = {}

    def level(self, core: GridCore, row: int, key: str | None = None) -> Level:
        key = params_key(core.env_id, core.params) if key is None else key
        seed = int(core.level_seed[row])
        if (key, seed) not in self.levels:
            self.levels[(key, seed)] = solve_level(core, row, self.gamma)
        return self.levels[(key, seed)]

    def solve(self, core: GridCore, row: int):
        level = self.level(core, row)
        return level.model, level.q, _LookupView(level)

    def _row_levels(self, core: GridCore) -> list[Level]:
        key = params_key(core.env_id, core.params)
        return [self.level(core, i, key) for i in range(core.num_envs)]

    def state_indices(self, core: GridCore) -> np.ndarray:
        states = core.get_states()
        return np.array([lv.index_of(states[i : i + 1])[0] for i, lv in enumerate(self._row_levels(core))])

    def q_values(self, core: GridCore, reward: str) -> np.ndarray:
        states = core.get_states()
        levels = self._row_levels(core)
        return np.stack([lv.q[reward][lv.index_of(states[i : i + 1])[0]] for i, lv in enumerate(levels)])


class _LookupView:
    """``lookup[tuple(state)]`` over a :class:`Level`, for code written against ``LevelSolver``."""

    def __init__(self, level: Level):
        self.level = level

    def __getitem__(self, state) -> int:
        try:
            return int(self.level.index_of(np.array([state]))[0])
        except ValueError:
            raise KeyError(state) from None


@dataclass
class References:
    """Uniform-random and per-reward optimal rollouts on the same levels as the agent's."""

    random: Rollouts
    optimal: dict[str, Rollouts]


class LevelBank:
    """Solved levels and reference rollouts per ``(env, params, levels)``; share one across agents."""

    def __init__(self, gamma: float = DEFAULT_GAMMA):
        self.gamma = gamma
        self.solver = ParamsKeyedSolver(gamma)
        self._references: dict[tuple, References] = {}

    def levels(self, env_id: str, distribution: str, params: dict, level_seeds) -> list[Level]:
        level_seeds = np.asarray(level_seeds, dtype=np.uint64)
        core = envs.core_class(env_id)(len(level_seeds), distribution, **params)
        core.reset_levels(np.arange(len(level_seeds)), level_seeds)
        return [self.solver.level(core, i) for i in range(len(level_seeds))]

    def levels_of(self, rollouts: Rollouts) -> list[Level]:
        return self.levels(rollouts.env_id, rollouts.distribution, rollouts.params, rollouts.level_seeds)

    def references(self, env_id: str, distribution: str, params: dict, level_seeds) -> References:
        level_seeds = np.asarray(level_seeds, dtype=np.int64)
        resolved = envs.core_class(env_id).resolve_params(distribution, params)
        digest = hashlib.sha1(level_seeds.tobytes()).hexdigest()
        key = (params_key(env_id, resolved), digest)
        if key not in self._references:
            reward_names = envs.core_class(env_id).reward_names
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
