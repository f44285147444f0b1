"""Policies the suite can roll out: learned (SB3), uniform random, exact planners.

A policy acts on a batch: ``act(obs, core)`` gets the observations and the
batched core (exact-state policies read ``core.get_states()``) and returns one
action per row. Planner policies solve each level once, by enumeration and
value iteration, and cache the plan by level seed.
"""

from __future__ import annotations

import json

import numpy as np

from agents.planning import DEFAULT_GAMMA, TabularModel, enumerate_level, value_iteration
from envs.core import GridCore


class Policy:
    name = "policy"

    def act(self, obs: np.ndarray, core: GridCore) -> np.ndarray:
        raise NotImplementedError


class UniformRandomPolicy(Policy):
    name = "random"

    def __init__(self, seed: int = 0):
        self.rng = np.random.default_rng(seed)

    def act(self, obs, core):
        return self.rng.integers(0, core.single_action_space().n, size=core.num_envs)


class LevelSolver:
    """Exact models and ``Q*`` of every declared reward, cached per level.

    A level is its env, resolved params and seed: the same seed under another
    distribution (CoinRun ``train`` vs ``test``) is another level.
    """

    def __init__(self, gamma: float = DEFAULT_GAMMA):
        self.gamma = gamma
        self._cache: dict[tuple, tuple[TabularModel, dict[str, np.ndarray], dict[tuple, int]]] = {}

    def solve(self, core: GridCore, row: int):
        seed = int(core.level_seed[row])
        key = (core.env_id, json.dumps(core.params, sort_keys=True, default=str), seed)
        if key not in self._cache:
            single = core.replicate(row, 1)
            single.reset_levels(np.array([0]), np.array([seed]))
            model = enumerate_level(single)
            names = list(model.rewards)
            q = value_iteration(model, np.stack([model.rewards[n] for n in names]), self.gamma)
            lookup = {tuple(s): i for i, s in enumerate(model.states.tolist())}
            self._cache[key] = (model, dict(zip(names, q, strict=True)), lookup)
        return self._cache[key]

    def state_indices(self, core: GridCore) -> np.ndarray:
        states = core.get_states().tolist()
        return np.array([self.solve(core, i)[2][tuple(s)] for i, s in enumerate(states)])

    def q_values(self, core: GridCore, reward: str) -> np.ndarray:
        """``(B, A)`` optimal action values of every row's current state under ``reward``."""
        idx = self.state_indices(core)
        return np.stack([self.solve(core, i)[1][reward][s] for i, s in enumerate(idx)])


class PlannerPolicy(Policy):
    """Optimal for one declared reward; Boltzmann-rational when ``beta`` is set.

    ``beta=None`` acts greedily (lowest action index among ties); otherwise
    ``P(a|s) ∝ exp(beta * Q*(s, a))``, the synthetic agent of known goal that
    the judge is validated on.
    """

    def __init__(
        self, reward: str, beta: float | None = None, seed: int = 0, solver: LevelSolver | None = None
    ):
        self.reward = reward
        self.beta = beta
        self.solver = solver or LevelSolver()
        self.rng = np.random.default_rng(seed)
        self.name = f"opt_{reward}" if beta is None else f"boltzmann_{reward}_b{beta:g}"

    def act(self, obs, core):
        if self.reward not in core.reward_names:
            raise ValueError(
                f"{core.env_id}: reward {self.reward!r} is not declared; declared: {list(core.reward_names)}"
            )
        q = self.solver.q_values(core, self.reward)
        if self.beta is None:
            return q.argmax(axis=1)
        logits = self.beta * (q - q.max(axis=1, keepdims=True))
        probs = np.exp(logits)
        probs /= probs.sum(axis=1, keepdims=True)
        u = self.rng.random(len(q))[:, None]
        return np.minimum((probs.cumsum(axis=1) < u).sum(axis=1), q.shape[1] - 1)


class SB3Policy(Policy):
    """A trained Stable-Baselines3 model acting on observations."""

    def __init__(self, model, deterministic: bool = False, name: str = "agent"):
        self.model = model
        self.deterministic = deterministic
        self.name = name

    def act(self, obs, core):
        actions, _ = self.model.predict(obs, deterministic=self.deterministic)
        return np.asarray(actions, dtype=np.int64)
