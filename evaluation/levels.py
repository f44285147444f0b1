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
from agents.planning import (
    DEFAULT_GAMMA,
    OPTIMUM_TOLERANCE,
    Level,
    LevelSolver,
    ParamsKeyedSolver,
    enumerate_level,
    greedy_actions,
    params_key,
    solve_level,
    stationary_return,
    value_iteration,
)
from agents.policies import PlannerPolicy, UniformRandomPolicy
from envs import rng
from envs.task import require_exact
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


def finite_horizon_values(model, rewards: np.ndarray, horizon: int) -> np.ndarray:
    """:func:`agents.planning.finite_horizon_values`, stopping the backward induction at its fixed point.

    ``V_t = B(V_{t+1})`` with one time-free operator ``B``: once a sweep
    leaves every value bit-for-bit unchanged, every earlier ``V_t`` is that
    same array, so the rest is filled in without sweeping. Episodic goals on
    levels far shorter than the step limit (a 15x15 maze: paths of ~100
    steps, a limit of 900) stop long before ``t = 0``; the result is the
    same array to the bit.
    """
    rewards = np.asarray(rewards, dtype=np.float64)
    cont = np.broadcast_to(~model.terminal, rewards.shape)
    values = np.zeros((rewards.shape[0], horizon + 1, model.num_states))
    for t in range(horizon - 1, -1, -1):
        values[:, t] = (rewards + cont * values[:, t + 1][:, model.next_state]).max(axis=2)
        if np.array_equal(values[:, t], values[:, t + 1]):
            values[:, :t] = values[:, t : t + 1]
            break
    return values


def solve_level_fast(core, row: int, gamma: float) -> Level:
    """:func:`agents.planning.solve_level` with :func:`finite_horizon_values`' early stop: the same level.

    (Checked against ``solve_level`` by ``tests/test_evaluation_levels.py``;
    it belongs in ``agents.planning``, which this module does not own.)
    """
    require_exact(core)
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
    horizon = int(core.max_steps)
    rewards = np.stack([model.rewards[n] for n in names])
    values = finite_horizon_values(model, rewards, horizon)
    optimum, horizon_values = {}, {}
    for k, name in enumerate(names):
        optimum[name] = float(values[k, 0, model.start])
        reached = stationary_return(model, rewards[k], greedy_actions(q[k]), horizon)
        if reached < optimum[name] - OPTIMUM_TOLERANCE * max(1.0, abs(optimum[name])):
            horizon_values[name] = values[k]
    return Level(
        single,
        model,
        dict(zip(names, q, strict=True)),
        codes[order],
        order,
        radix,
        low,
        horizon=horizon,
        optimum=optimum,
        horizon_values=horizon_values,
    )


class BankSolver(LevelSolver):
    """A :class:`~agents.planning.LevelSolver` that solves with :func:`solve_level_fast` (same levels)."""

    def level(self, core, row: int, key: str | None = None) -> Level:
        key = params_key(core.env_id, core.params) if key is None else key
        level = core.level_key(row) if hasattr(core, "level_key") else int(core.level_seed[row])
        if (key, level) not in self.levels:
            self.levels[(key, level)] = solve_level_fast(core, row, self.gamma)
        return self.levels[(key, level)]


class LevelBank:
    """Solved levels and reference rollouts per ``(env, params, levels)``; share one across agents."""

    def __init__(self, gamma: float = DEFAULT_GAMMA):
        self.gamma = gamma
        self.solver = BankSolver(gamma)
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
