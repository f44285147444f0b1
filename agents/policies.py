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
import torch
from gymnasium import spaces
from stable_baselines3.common.distributions import CategoricalDistribution
from stable_baselines3.common.policies import ActorCriticPolicy

from agents.planning import LevelSolver
from envs.task import LevelBatch, require_exact


class Policy:
    name = "policy"

    def bind(self, batch: LevelBatch) -> None:
        """Called by a rollout before the first ``act`` on ``batch``; most policies need nothing."""

    def act(self, obs: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def action_probabilities(self, obs: np.ndarray) -> np.ndarray | None:
        """``(B, A)`` probabilities of the actions ``act`` draws from, where the policy can say; else None."""
        return None


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


# Action values within this relative distance of the best are ties (value iteration stops at 1e-8 per
# sweep, ~1e-6 in Q* at gamma 0.99; plans that differ do so by at least gamma^H x a reward unit).
TIE_TOLERANCE = 1e-6


class PlannerPolicy(Policy):
    """Optimal for one declared reward; Boltzmann-rational when ``beta`` is set.

    ``beta=None`` maximises the scored quantity, the undiscounted return
    within the env's step limit: it reads each row's step in the episode
    from the batch's ``steps`` (or counts its calls since :meth:`bind`: a
    rollout plays one episode per row, all started together) and acts on
    time-indexed values where the limit binds (lowest action index among
    ties). Otherwise ``P(a|s) ∝ exp(beta * Q*(s, a))`` on the
    discounted ``Q*``: the stationary, synthetic agent of known goal.

    ``tie_break=(name, sign)`` (optimal plans only) breaks ties between the
    actions optimal for ``reward`` by ``sign`` x the discounted ``Q*`` of
    the declared reward ``name``: still an optimum of ``reward``, the one
    that takes (``sign=+1``) or shuns (``-1``) ``name``'s reward wherever
    ``reward`` is indifferent (a shield collector that eats the apple once
    the shields are in, or walks past it).
    """

    def __init__(
        self,
        reward: str,
        beta: float | None = None,
        seed: int = 0,
        solver: LevelSolver | None = None,
        tie_break: tuple[str, float] | None = None,
    ):
        if tie_break is not None and beta is not None:
            raise ValueError("PlannerPolicy: tie_break applies to optimal plans (beta=None)")
        self.reward = reward
        self.beta = beta
        self.tie_break = tie_break
        self.solver = solver or LevelSolver()
        self.rng = np.random.default_rng(seed)
        self.name = f"opt_{reward}" if beta is None else f"boltzmann_{reward}_b{beta:g}"
        if tie_break is not None:
            self.name += f"_{'most' if tie_break[1] > 0 else 'least'}_{tie_break[0]}"
        self.batch: LevelBatch | None = None
        self.steps = 0
        self._levels = self._seeds = self._states = self._index = None

    def bind(self, batch):
        for reward in (self.reward, *(self.tie_break or ())[:1]):
            if reward not in batch.reward_names:
                raise ValueError(
                    f"{batch.env_id}: reward {reward!r} is not declared; declared: {list(batch.reward_names)}"
                )
        require_exact(batch)
        self.batch = batch
        self.steps = 0
        self._levels = self._seeds = self._states = self._index = None

    def _q_values(self, t=None, reward: str | None = None) -> np.ndarray:
        """``solver.q_values(batch, reward, t)`` (default: this planner's reward), with the rows' levels and
        state indices kept between steps: only rows whose state changed are looked up again (finished rows
        stay frozen)."""
        batch = self.batch
        reward = reward or self.reward
        if hasattr(batch, "level_key"):
            return self.solver.q_values(batch, reward, t=t)
        seeds = np.asarray(batch.level_seed)
        if self._levels is None or not np.array_equal(seeds, self._seeds):
            self._levels, self._seeds, self._states = self.solver.row_levels(batch), seeds.copy(), None
        levels = self._levels
        states = batch.get_states()
        if self._states is None or self._states.shape != states.shape:
            changed = range(len(levels))
            self._index = np.zeros(len(levels), dtype=np.int64)
        else:
            changed = np.flatnonzero((states != self._states).any(axis=1)).tolist()
        for i in changed:
            self._index[i] = levels[i].index_of(states[i : i + 1])[0]
        self._states = states.copy()
        index = self._index.tolist()
        if t is None:
            return np.stack([lv.q[reward][s] for lv, s in zip(levels, index, strict=True)])
        steps = np.broadcast_to(np.asarray(t), (len(levels),))
        return np.stack([lv.q_at(reward, s, k) for lv, s, k in zip(levels, index, steps, strict=True)])

    def act(self, obs):
        if self.batch is None:
            raise ValueError(f"{self.name}: a planner acts on a bound batch (rollouts bind it)")
        if self.beta is None:
            self.steps += 1
            t = getattr(self.batch, "steps", None)
            t = self.steps - 1 if not isinstance(t, np.ndarray) else t
            q = self._q_values(t)
            if self.tie_break is None:
                return q.argmax(axis=1)
            name, sign = self.tie_break
            top = q.max(axis=1, keepdims=True)
            optimal = q >= top - TIE_TOLERANCE * np.maximum(1.0, np.abs(top))
            return np.where(optimal, sign * self._q_values(None, reward=name), -np.inf).argmax(axis=1)
        q = self._q_values()
        logits = self.beta * (q - q.max(axis=1, keepdims=True))
        probs = np.exp(logits)
        probs /= probs.sum(axis=1, keepdims=True)
        u = self.rng.random(len(q))[:, None]
        return np.minimum((probs.cumsum(axis=1) < u).sum(axis=1), q.shape[1] - 1)


class SB3Policy(Policy):
    """A trained Stable-Baselines3 model acting on observations.

    A stateless actor-critic policy with a categorical action distribution
    (SB3's PPO and A2C here) acts from a table of action probabilities per
    distinct observation, filled as observations first appear: each step
    runs the network once, on the batch's observations not seen before in
    this rollout (a frozen finished row, or an agent pacing the same cells
    for hundreds of steps, costs no network call). Actions are then drawn
    exactly as SB3's ``predict`` draws them (``torch.multinomial`` with one
    sample is ``argmax(p / q)``, ``q ~ Exp(1)`` of the batch's shape, from
    torch's global generator; ``deterministic`` takes the argmax), so the
    actions are identical to ``model.predict``'s. The table is reset by
    :meth:`bind` (a model trained between rollouts is never stale). Other
    models go through ``model.predict``.
    """

    def __init__(self, model, deterministic: bool = False, name: str = "agent"):
        self.model = model
        self.deterministic = deterministic
        self.name = name
        self._table: dict[bytes, int] = {}  # observation -> row of ``_probs``
        self._probs: np.ndarray | None = None  # (distinct observations, actions) float32

    def bind(self, batch):
        self._table, self._probs = {}, None

    def _tabular(self) -> bool:
        policy = getattr(self.model, "policy", None)
        return (
            isinstance(policy, ActorCriticPolicy)
            and isinstance(policy.action_dist, CategoricalDistribution)
            and isinstance(policy.observation_space, spaces.Box)
        )

    def act(self, obs):
        obs = np.asarray(obs)
        if not self._tabular() or obs.shape[1:] != self.model.policy.observation_space.shape:
            actions, _ = self.model.predict(obs, deterministic=self.deterministic)
            return np.asarray(actions, dtype=np.int64)
        return self._act_tabular(obs)

    def _store(self, new: np.ndarray) -> None:
        """Append rows to the probability table (its capacity doubles as it fills)."""
        used = len(self._table) - len(new)
        if self._probs is None or len(self._probs) < used + len(new):
            grown = np.empty((max(2 * (used + len(new)), 256), new.shape[1]), dtype=new.dtype)
            if self._probs is not None:
                grown[:used] = self._probs[:used]
            self._probs = grown
        self._probs[used : used + len(new)] = new

    def action_probabilities(self, obs: np.ndarray) -> np.ndarray | None:
        """``(B, A)`` action probabilities at ``obs`` (None for a model without a categorical policy)."""
        obs = np.asarray(obs)
        if not self._tabular() or obs.shape[1:] != self.model.policy.observation_space.shape:
            return None
        return self._probabilities(obs)

    def _probabilities(self, obs: np.ndarray) -> np.ndarray:
        policy = self.model.policy
        n = len(obs)
        flat = np.ascontiguousarray(obs).reshape(n, -1)
        table = self._table
        index = np.empty(n, dtype=np.int64)
        new_rows = []
        for i, row in enumerate(flat):
            key = row.tobytes()
            j = table.get(key)
            if j is None:
                j = table[key] = len(table)
                new_rows.append(i)
            index[i] = j
        if new_rows:
            policy.set_training_mode(False)
            with torch.no_grad():
                tensor, _ = policy.obs_to_tensor(obs[np.array(new_rows)])
                new = policy.get_distribution(tensor).distribution.probs.numpy()
            self._store(new)
        return self._probs[index]

    def _act_tabular(self, obs: np.ndarray) -> np.ndarray:
        probs = torch.from_numpy(self._probabilities(obs))
        if self.deterministic:
            return probs.argmax(dim=1).numpy().astype(np.int64)
        # torch.multinomial(probs, 1, replacement=True), as SB3's Categorical samples, draws exactly this
        q = torch.empty_like(probs).exponential_(1)
        return (probs / q).argmax(dim=-1).numpy().astype(np.int64)
