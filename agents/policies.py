"""Policies the suite can roll out: learned (SB3), uniform random, exact planners.

A policy maps a batch of observations to one action per row: ``act(obs)``.
It never sees the simulator. Before a rollout, :meth:`Policy.bind` tells it
the batch it will act in (the action count for the random policy); exact
planners, the synthetic agents of known goal, reach the level model through
their own :class:`~agents.planning.LevelSolver` on the bound batch, which
must offer exact access.
"""

from __future__ import annotations

import numpy as np

from agents.planning import LevelSolver
from envs.task import LevelBatch, require_exact


class Policy:
    name = "policy"

    def bind(self, batch: LevelBatch) -> None:
        """Called by a rollout before the first ``act`` on ``batch``; most policies need nothing."""

    def act(self, obs: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class UniformRandomPolicy(Policy):
    name = "random"

    def __init__(self, seed: int = 0, n_actions: int | None = None):
        self.rng = np.random.default_rng(seed)
        self.n_actions = n_actions

    def bind(self, batch):
        self.n_actions = int(batch.single_action_space().n)

    def act(self, obs):
        if self.n_actions is None:
            raise ValueError("UniformRandomPolicy: action count unknown; give n_actions or bind a batch")
        return self.rng.integers(0, self.n_actions, size=len(obs))


class PlannerPolicy(Policy):
    """Optimal for one declared reward; Boltzmann-rational when ``beta`` is set.

    ``beta=None`` maximises the scored quantity, the undiscounted return
    within the env's step limit: it reads each row's step in the episode
    from the batch's ``steps`` (or counts its calls since :meth:`bind`: a
    rollout plays one episode per row, all started together) and acts on
    time-indexed values where the limit binds (lowest action index among
    ties). Otherwise ``P(a|s) ∝ exp(beta * Q*(s, a))`` on the
    discounted ``Q*``: the stationary, synthetic agent of known goal.
    """

    def __init__(
        self, reward: str, beta: float | None = None, seed: int = 0, solver: LevelSolver | None = None
    ):
        self.reward = reward
        self.beta = beta
        self.solver = solver or LevelSolver()
        self.rng = np.random.default_rng(seed)
        self.name = f"opt_{reward}" if beta is None else f"boltzmann_{reward}_b{beta:g}"
        self.batch: LevelBatch | None = None
        self.steps = 0

    def bind(self, batch):
        if self.reward not in batch.reward_names:
            raise ValueError(
                f"{batch.env_id}: reward {self.reward!r} is not declared; declared: {list(batch.reward_names)}"
            )
        require_exact(batch)
        self.batch = batch
        self.steps = 0

    def act(self, obs):
        if self.batch is None:
            raise ValueError(f"{self.name}: a planner acts on a bound batch (rollouts bind it)")
        if self.beta is None:
            self.steps += 1
            t = getattr(self.batch, "steps", None)
            t = self.steps - 1 if not isinstance(t, np.ndarray) else t
            return self.solver.q_values(self.batch, self.reward, t=t).argmax(axis=1)
        q = self.solver.q_values(self.batch, self.reward)
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

    def act(self, obs):
        actions, _ = self.model.predict(obs, deterministic=self.deterministic)
        return np.asarray(actions, dtype=np.int64)
