"""Batched rollouts of a policy on a named distribution, kept raw.

One episode per level, all levels stepped together on the numpy core; a row
that has finished is frozen (its later steps are masked out). Everything the
judge computes downstream comes from these arrays, so each number is traceable
to the levels and actions that produced it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

import envs
from agents.files import replacing
from agents.policies import Policy
from envs import rng
from envs.task import exact_problem

EVAL_SEED_OFFSET = 1_000_003  # evaluation levels are drawn apart from training base seeds


@dataclass
class Rollouts:
    env_id: str
    distribution: str
    params: dict
    policy: str
    level_seeds: np.ndarray  # (E,)
    returns: dict[str, np.ndarray]  # reward name -> (E,) undiscounted episode return
    lengths: np.ndarray  # (E,)
    terminated: np.ndarray  # (E,) ended by the env, not by the time limit
    states: np.ndarray  # (T, E, state_dim) state before each action (state_dim 0 off the exact path)
    actions: np.ndarray  # (T, E)
    alive: np.ndarray  # (T, E) step t belongs to episode e
    extra: dict = field(default_factory=dict)

    @property
    def num_episodes(self) -> int:
        return len(self.level_seeds)

    def episodes(self, idx: np.ndarray) -> Rollouts:
        """The same rollouts restricted to episodes ``idx`` (in that order)."""
        idx = np.asarray(idx, dtype=np.int64)
        return dataclasses.replace(
            self,
            level_seeds=self.level_seeds[idx],
            returns={n: r[idx] for n, r in self.returns.items()},
            lengths=self.lengths[idx],
            terminated=self.terminated[idx],
            states=self.states[:, idx],
            actions=self.actions[:, idx],
            alive=self.alive[:, idx],
            extra={k: _episode_columns(v, idx) for k, v in self.extra.items()},
        )

    def mean_returns(self) -> dict[str, float]:
        return {name: float(v.mean()) for name, v in self.returns.items()}

    def save(self, path: str | Path) -> None:
        path = Path(path)
        arrays = {f"return_{k}": v for k, v in self.returns.items()}
        meta = {
            "env_id": self.env_id,
            "distribution": self.distribution,
            "params": self.params,
            "policy": self.policy,
        }
        with replacing(path, suffix=".tmp.npz") as tmp:  # np.savez adds .npz to any other name
            np.savez_compressed(
                tmp,
                meta=json.dumps(meta),
                level_seeds=self.level_seeds,
                lengths=self.lengths,
                terminated=self.terminated,
                states=self.states,
                actions=self.actions,
                alive=self.alive,
                **arrays,
            )

    @classmethod
    def load(cls, path: str | Path) -> Rollouts:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            returns = {k[len("return_") :]: data[k] for k in data.files if k.startswith("return_")}
            return cls(
                level_seeds=data["level_seeds"],
                lengths=data["lengths"],
                terminated=data["terminated"],
                states=data["states"],
                actions=data["actions"],
                alive=data["alive"],
                returns=returns,
                **meta,
            )


def _episode_columns(value, idx: np.ndarray):
    """``value``'s episode axis (axis 1 of every array in it) restricted to ``idx``."""
    if isinstance(value, dict):
        return {k: _episode_columns(v, idx) for k, v in value.items()}
    if isinstance(value, np.ndarray) and value.ndim >= 2:
        return value[:, idx]
    return value


def evaluation_level_seeds(n_episodes: int, seed: int) -> np.ndarray:
    return rng.level_seeds(np.full(n_episodes, seed + EVAL_SEED_OFFSET), np.arange(n_episodes))


def check_actions(actions, batch, policy) -> np.ndarray:
    """The policy's actions as ``(B,)`` ints, or one message naming the bad action and the space."""
    space = batch.single_action_space()
    arr = np.asarray(actions)
    if arr.shape != (batch.num_envs,):
        arr = arr.reshape(-1) if arr.size == batch.num_envs else arr
    if arr.shape != (batch.num_envs,):
        raise ValueError(
            f"policy {policy.name!r} returned actions of shape {np.shape(actions)} for "
            f"{batch.num_envs} observations; expected one action per observation in {space}"
        )
    if not np.issubdtype(arr.dtype, np.integer):
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            bad = arr[~(np.isfinite(arr) & (arr == np.round(arr)))][0]
            raise ValueError(f"policy {policy.name!r} returned action {bad!r}, not an action of {space}")
    arr = arr.astype(np.int64)
    outside = (arr < 0) | (arr >= space.n)
    if outside.any():
        raise ValueError(f"policy {policy.name!r} returned action {int(arr[outside][0])}, outside {space}")
    return arr


# An observation of at most this many floats is kept whole for the sampled path's state bins;
# larger or integer observations are kept as a 64-bit digest (a grid's exact identity).
RAW_OBSERVATION_SIZE = 64
MIN_PREFERENCE = 1e-6  # floor of a watched policy's action probability before its logarithm


def observation_keys(obs: np.ndarray) -> np.ndarray:
    """``(B,)`` 64-bit digests of each row's bytes: the same observation gives the same key in any rollout."""
    flat = np.ascontiguousarray(obs).reshape(len(obs), -1)
    return np.array(
        [
            int.from_bytes(hashlib.blake2b(row.tobytes(), digest_size=8).digest(), "little", signed=True)
            for row in flat
        ],
        dtype=np.int64,
    )


def keeps_raw_observations(obs: np.ndarray) -> bool:
    return np.issubdtype(obs.dtype, np.floating) and obs[0].size <= RAW_OBSERVATION_SIZE


def action_preferences(policy: Policy, obs: np.ndarray, n_actions: int) -> np.ndarray:
    """``(B, A)`` log-probabilities of ``policy``'s actions, or 0/-1 marking the action it takes.

    A policy that cannot give probabilities is read from one call of ``act``
    (under a forked torch generator, so watching it leaves the judged agent's
    draws alone): its chosen action scores 0, the others -1.
    """
    probs = policy.action_probabilities(obs)
    if probs is not None:
        return np.log(np.maximum(np.asarray(probs, dtype=np.float64), MIN_PREFERENCE)).astype(np.float32)
    with torch.random.fork_rng():
        chosen = np.asarray(policy.act(obs), dtype=np.int64).reshape(-1)
    prefs = np.full((len(obs), n_actions), -1.0, dtype=np.float32)
    prefs[np.arange(len(obs)), chosen] = 0.0
    return prefs


def rollout(
    policy: Policy,
    env_id: str,
    distribution: str,
    params: dict | None = None,
    n_episodes: int = 100,
    seed: int = 0,
    level_seeds: np.ndarray | None = None,
    *,
    record_steps: bool = False,
    watch: dict[str, Policy] | None = None,
) -> Rollouts:
    """Play one episode on each of ``n_episodes`` seeded levels of ``distribution``.

    ``record_steps`` keeps what the sampled path needs beyond states, in
    ``extra``: ``step_rewards`` (reward -> ``(T, E)``), ``obs_keys`` (``(T+1, E)``,
    the observation before each step and after the last) and, for small float
    observations, ``observations`` (``(T+1, E, D)``). ``watch`` (name ->
    policy) records in ``extra["preferences"][name]`` (``(T, E, A)``) what
    each watched policy would do at every observation the judged policy
    meets (:func:`action_preferences`), without letting it act.
    """
    params = dict(params or {})
    task = envs.task(env_id)
    if level_seeds is None:
        level_seeds = evaluation_level_seeds(n_episodes, seed)
    level_seeds = np.asarray(level_seeds, dtype=np.uint64)
    n = len(level_seeds)
    core = task(n, distribution, **params)
    core.reset_levels(np.arange(n), level_seeds)
    policy.bind(core)
    watch = dict(watch or {})
    for watched in watch.values():
        watched.bind(core)
    n_actions = int(core.single_action_space().n)
    step_rewards: dict[str, list[np.ndarray]] = {name: [] for name in core.reward_names}
    keys, raw, preferences = [], [], {name: [] for name in watch}
    returns = {name: np.zeros(n) for name in core.reward_names}
    lengths = np.zeros(n, dtype=np.int64)
    terminated = np.zeros(n, dtype=bool)
    alive = np.ones(n, dtype=bool)
    exact = exact_problem(core) is None  # states are recorded, and finished rows frozen, on the exact path
    final = core.get_states() if exact else None
    states, actions, alive_steps = [], [], []
    while alive.any():
        obs = core.observe()
        if record_steps:
            keys.append(observation_keys(obs))
            if keeps_raw_observations(obs):
                raw.append(obs.reshape(n, -1).astype(np.float32))
        for name, watched in watch.items():
            preferences[name].append(action_preferences(watched, obs, n_actions))
        states.append(core.get_states() if exact else np.zeros((n, 0), dtype=np.int64))
        act = check_actions(policy.act(obs), core, policy)
        actions.append(act)
        alive_steps.append(alive.copy())
        rewards, term, trunc = core.step(act)
        for name, value in rewards.items():
            returns[name] += np.where(alive, value, 0.0)
            if record_steps:
                step_rewards[name].append(np.where(alive, value, 0.0))
        lengths += alive
        terminated |= alive & term
        ended = alive & (term | trunc)
        alive &= ~ended
        if exact and ended.any():
            final[ended] = core.get_states()[ended]
        if exact and not alive.all():
            # Freeze finished rows in their final state: stepping them on would reach states
            # no level model holds (e.g. past a terminal cell), which exact-state policies look up.
            dead = np.flatnonzero(~alive)
            core.set_states(dead, final[dead])
    extra = {}
    if record_steps:
        last = core.observe()
        keys.append(observation_keys(last))
        if raw:
            raw.append(last.reshape(n, -1).astype(np.float32))
            extra["observations"] = np.stack(raw)
        extra["obs_keys"] = np.stack(keys)
        extra["step_rewards"] = {name: np.stack(v) for name, v in step_rewards.items()}
    if watch:
        extra["preferences"] = {name: np.stack(v) for name, v in preferences.items()}
    return Rollouts(
        env_id=env_id,
        distribution=distribution,
        params=core.params,
        policy=policy.name,
        level_seeds=level_seeds.astype(np.int64),
        returns=returns,
        lengths=lengths,
        terminated=terminated,
        states=np.stack(states),
        actions=np.stack(actions),
        alive=np.stack(alive_steps),
        extra=extra,
    )


def seeded_rollout(
    policy: Policy, env_id: str, distribution: str, params: dict, level_seeds, **kwargs
) -> Rollouts:
    """:func:`rollout` with torch's global generator seeded from the first level seed, restored after.

    A learned policy samples its actions from that generator: seeding it per
    level set makes a judgement independent of what ran before it.
    """
    with torch.random.fork_rng():
        torch.manual_seed(int(level_seeds[0]) % (2**63))
        return rollout(policy, env_id, distribution, params, level_seeds=level_seeds, **kwargs)
