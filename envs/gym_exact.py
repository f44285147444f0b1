"""Exact access to a :class:`~envs.gym_adapter.GymTask`: state vectors, restoring, the model, the probe.

The planners and the judge's exact path see a level as integer state vectors
that can be read, set and stepped (:class:`envs.task.ExactAccess`). A generic
Gymnasium env offers that in one of three ways, first that applies:

1. the unwrapped env has ``get_state()`` / ``set_state(state)``: used as is. A
   state that is a tuple of ints is the state vector; any other hashable is
   interned to an integer id (the object kept per id, handed back to
   ``set_state``).
2. a ``state_codec`` with ``get(env) -> tuple[int, ...]`` and ``set(env, state)``.
3. the deepcopy fallback: a ``state_key(env) -> hashable``. The first time a
   state is read, a deepcopy of the unwrapped env is stored under ``(params,
   level seed, key)``; restoring deep-copies it back. A key that is a tuple of
   ints is the state vector itself; any other key is interned to an integer id.

Interned ids and snapshots live in one :class:`ExactModel` per task, so they
hold within one process only.

**The model.** Enumerating a level steps hundreds of copies of it. Instead of
one env per copy, a *model batch* (:meth:`envs.gym_batch.GymBatch.replicate`)
steps exact states through a memo of transitions ``(level, state, action) ->
(successor, rewards, terminated)``, each computed once on a scratch env of its
level; the cost is one env step per distinct transition.

**The determinism probe.** The model is exact only if the env is
deterministic and its state is all of it. Before the exact path is used, a
probe runs once per resolved params: from the start state of a probe level
and a few states along a fixed walk, every action is taken from a fresh
reset, from a restored state, and from a restored state with the env's
``np_random`` reseeded. Successor states, every declared reward and
``terminated`` must agree, and setting then reading a state must give it
back; otherwise the problem names the action and what differed.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from envs.gym_batch import GymBatch
from envs.gym_types import Transition, fold_seed, is_int_tuple

PROBE_SEED = 0  # level seed of the determinism probe (and of the env that tells a task's facts)
PROBE_DEPTH = 4  # states probed: the start state and this many more along a fixed walk
SCRATCH_ENVS = 32  # scratch envs kept per task (one per recently solved level)
MEMO_LIMIT = 500_000  # memoised transitions per task before the memo is cleared (bounds memory)


class ExactModel:
    """The exact path of one task: its state vectors, restoring, memoised transitions and probe.

    Every table is keyed by the resolved params' key (``GymTask.params_key``) and,
    where it depends on the level, by the level seed.
    """

    def __init__(self, task):
        self.task = task
        self.probe_results: dict[str, str | None] = {}  # params key -> exact problem or None
        self.interned_access: dict[str, bool] = {}  # params key -> env states are interned ids
        self.interned: dict[Any, int] = {}  # non-vector states/keys -> id
        self.interned_objects: list[Any] = []
        self.snapshots: dict[tuple, Any] = {}  # (params key, level seed, state) -> deepcopy of env
        self.raw_obs: dict[tuple, Any] = {}  # (params key, level seed, state) -> env observation
        self.memo: dict[tuple, tuple] = {}  # (params key, level seed, state, action) -> transition
        self.starts: dict[tuple, tuple] = {}  # (params key, level seed) -> start state, planes
        self.scratch: dict[tuple, Any] = {}  # (params key, level seed) -> env (LRU)

    # ----------------------------------------------------------- states
    def describe(self, env, access: str, pkey: str) -> dict:
        """``state_dim`` of the env made for params key ``pkey`` (recording how its states are held)."""
        raw = env.get_state() if access == "env" else None
        if isinstance(raw, np.ndarray) and np.issubdtype(raw.dtype, np.integer):
            raw = tuple(raw.ravel().tolist())
        self.interned_access[pkey] = access == "env" and not is_int_tuple(raw)
        return {"state_dim": len(self.state_vector(env, access, pkey, PROBE_SEED))}

    def intern(self, obj) -> int:
        try:
            hash(obj)
        except TypeError:
            raise ValueError(
                f"{self.task.env_id}: state {obj[1]!r} is not hashable; get_state()/state_key must "
                "return a tuple of ints or another hashable value"
            ) from None
        if obj not in self.interned:
            self.interned[obj] = len(self.interned_objects)
            self.interned_objects.append(obj)
        return self.interned[obj]

    def state_vector(self, env, access: str, pkey: str, seed: int) -> tuple[int, ...]:
        """The state vector of ``env`` (a row of level ``seed``)."""
        task = self.task
        if access == "env":
            state = env.get_state()
            if isinstance(state, np.ndarray) and np.issubdtype(state.dtype, np.integer):
                state = tuple(int(v) for v in state.ravel())
            if is_int_tuple(state):
                return tuple(int(v) for v in state)
            return (self.intern(("env", state)),)
        if access == "codec":
            state = tuple(task.state_codec.get(env))
            if not is_int_tuple(state):
                raise ValueError(f"{task.env_id}: state_codec.get returned {state!r}, not a tuple of ints")
            return tuple(int(v) for v in state)
        key = task.state_key(env)
        vector = tuple(int(v) for v in key) if is_int_tuple(key) else (self.intern(("key", key)),)
        snapshot_key = (pkey, seed, vector)
        if snapshot_key not in self.snapshots:
            self.snapshots[snapshot_key] = copy.deepcopy(env)
        return vector

    def restore(self, env, access: str, pkey: str, seed: int, vector: tuple[int, ...]):
        """Put ``env`` in state ``vector``; returns the env to keep (a new one for the deepcopy fallback)."""
        if access == "env":
            if self.interned_access[pkey]:
                env.set_state(self.interned_objects[vector[0]][1])
            else:
                env.set_state(vector)
            return env
        if access == "codec":
            self.task.state_codec.set(env, vector)
            return env
        snapshot = self.snapshots.get((pkey, seed, vector))
        if snapshot is None:
            raise ValueError(
                f"{self.task.env_id}: state {list(vector)} of level seed {seed} was never read in this "
                "process; the deepcopy fallback can only restore states it has seen (get_states) first"
            )
        return copy.deepcopy(snapshot)

    # ----------------------------------------------------------- the model (model batches)
    def scratch_env(self, params: dict, pkey: str, seed: int):
        """An env of ``params`` reset to level ``seed``, kept for computing that level's transitions."""
        task = self.task
        key = (pkey, seed)
        env = self.scratch.pop(key, None)
        if env is None:
            env = task.make_env(params)
            obs = task.reset_env(env, seed)
            if key not in self.starts:
                facts = task.facts(params)
                vector = self.state_vector(env, facts["access"], pkey, seed)
                if task.observation is None:
                    self.raw_obs.setdefault((pkey, seed, vector), obs)
                planes = (None, None)
                if task.feature_planes_of is not None:
                    names, values = task.feature_planes_of(env)
                    planes = (tuple(names), np.asarray(values))
                self.starts[key] = (vector, *planes)
        self.scratch[key] = env  # most recently used last
        while len(self.scratch) > SCRATCH_ENVS:
            self.scratch.pop(next(iter(self.scratch))).close()
        return env

    def start(self, params: dict, pkey: str, seed: int):
        """``(start state, plane names, planes)`` of level ``seed``."""
        key = (pkey, seed)
        if key not in self.starts:
            self.scratch_env(params, pkey, seed)
        return self.starts[key]

    def transition(self, params: dict, pkey: str, seed: int, state: tuple[int, ...], action: int):
        """``(successor, rewards in reward_names order, terminated)`` of one exact transition, memoised."""
        key = (pkey, seed, state, action)
        hit = self.memo.get(key)
        if hit is not None:
            return hit
        task = self.task
        access = task.facts(params)["access"]
        env = self.restore(self.scratch_env(params, pkey, seed), access, pkey, seed, state)
        self.scratch[(pkey, seed)] = env
        obs = self.raw_obs.get((pkey, seed, state))
        next_obs, reward, term, trunc, info = task.step_env(env, action)
        transition = Transition(env, obs, action, float(reward), next_obs, bool(term), bool(trunc), info)
        values = tuple(float(read(transition)) for read in task.readers.values())
        succ = self.state_vector(env, access, pkey, seed)
        if task.observation is None:
            self.raw_obs.setdefault((pkey, seed, succ), next_obs)
        if len(self.memo) >= MEMO_LIMIT:
            self.memo.clear()
        result = (succ, values, bool(term))
        self.memo[key] = result
        return result

    # ----------------------------------------------------------- the determinism probe
    def problem(self, distribution: str, resolved: dict) -> str | None:
        """Why the exact path is unavailable for resolved params (None when it is); probes once."""
        key = self.task.params_key(resolved)
        if key not in self.probe_results:
            self.probe_results[key] = self.probe(distribution, resolved)
        return self.probe_results[key]

    def probe(self, distribution: str, params: dict) -> str | None:
        task = self.task
        facts = task.facts(params)
        if facts["access"] is None:
            return (
                f"{task.env_id}: the exact path (planners, normalised scores, goal inference) needs state "
                f"access, and {facts['gym_id']} has none: give its env get_state()/set_state(), or give "
                "GymTask a state_codec (get(env) -> tuple of ints, set(env, state)) or a state_key(env) -> "
                "hashable for the deepcopy fallback"
            )
        n_actions = len(facts["actions"])
        probe = GymBatch(task, 3 * n_actions, distribution, params)
        rows = np.arange(probe.num_envs)
        probe.reset_levels(rows, np.full(probe.num_envs, PROBE_SEED, dtype=np.uint64))
        start = probe.get_states()
        if not (start == start[0]).all():
            return (
                f"{task.env_id}: reset(seed={fold_seed(PROBE_SEED)}) gave different start states "
                f"{start[0].tolist()} and {start[(start != start[0]).any(axis=1)][0].tolist()}: a level "
                "is not a function of its seed, so the exact path cannot rebuild it"
            )
        state = start[0]
        names = task.action_names or tuple(str(a) for a in facts["actions"])
        for depth in range(PROBE_DEPTH + 1):
            where = "the start state" if depth == 0 else f"state {state.tolist()} (after {depth} steps)"
            # Rows 3a (fresh: reset and replay the walk), 3a+1 (restored), 3a+2 (restored, RNG reseeded).
            restored = np.concatenate([rows[1::3], rows[2::3]])
            probe.set_states(restored, np.repeat(state[None], len(restored), axis=0))
            back = probe.get_states()[restored]
            if not (back == state).all():
                return (
                    f"{task.env_id}: set_state({state.tolist()}) then get_state() gave "
                    f"{back[(back != state).any(axis=1)][0].tolist()}: the state does not round-trip"
                )
            for r in rows[2::3]:
                probe.envs[r].np_random = np.random.default_rng(7919 * (int(r) + 1) + depth)
            actions = np.repeat(np.arange(n_actions), 3)
            rewards, terminated, _ = probe.step(actions)
            succ = probe.get_states()
            for a in range(n_actions):
                trio = [3 * a, 3 * a + 1, 3 * a + 2]
                what = None
                if not (succ[trio] == succ[trio[0]]).all():
                    what = "successor states " + " vs ".join(str(succ[r].tolist()) for r in trio)
                elif len(set(terminated[trio].tolist())) > 1:
                    what = "terminated " + " vs ".join(str(bool(terminated[r])) for r in trio)
                else:
                    for name, values in rewards.items():
                        if not np.allclose(values[trio], values[trio[0]]):
                            what = f"reward {name!r} " + " vs ".join(f"{values[r]:g}" for r in trio)
                            break
                if what is not None:
                    return (
                        f"{task.env_id}: {facts['gym_id']} is stochastic: action {a} ({names[a]}) from "
                        f"{where} of level seed {PROBE_SEED} gave {what} (fresh, restored, restored with "
                        "the env's RNG reseeded); the exact path needs a deterministic env"
                    )
            walk = depth % n_actions
            if terminated[3 * walk]:
                break
            state = succ[3 * walk]
            # The fresh rows replay the walk from a reset, so they reach `state` without set_state.
            probe.reset_levels(rows[0::3], np.full(n_actions, PROBE_SEED, dtype=np.uint64))
            for step in range(depth + 1):
                probe.step_rows(rows[0::3], np.full(n_actions, step % n_actions))
        return None
