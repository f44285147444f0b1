"""Any registered Gymnasium env as a shift task: :class:`GymTask` and its batch :class:`GymBatch`.

A Gymnasium env becomes a task (:mod:`envs.task`) once it names its
distributions and its declared rewards::

    task = GymTask(
        "MyOrg/DistShift-v0",
        distributions={"train": {"id": "MiniGrid-DistShift1-v0"}, "test": {"id": "MiniGrid-DistShift2-v0"}},
        rewards={"intended": reached_goal, "specified": reached_goal, "proxy": "info:rewards.proxy"},
        proxy_rewards=("proxy",),
        state_codec=MyCodec(),
    )
    envs.register_task(task)

**Distributions.** Each distribution is a mapping of parameters: an optional
``id`` (the Gymnasium env id; default: the task's ``env``) and keyword
arguments for ``gymnasium.make``. A user's params overlay the distribution's
(:meth:`GymTask.resolve_params`); the keys any distribution sets are the
``distribution_params`` that :meth:`GymTask.shared_params` drops.

**Rewards.** Each declared reward is ``"reward"`` (the env's own reward),
``"info:a.b"`` (``info["a"]["b"]`` of the step; a missing key is an error
naming it) or a function of a :class:`Transition`. ``intended`` and
``specified`` must be declared explicitly: the env's own reward is used only
where the user writes ``"reward"``.

**Levels.** Row ``i`` holds one env instance (the *unwrapped* env: the batch
keeps its own step limit ``max_steps`` instead of the registration's
``TimeLimit``; envs registered with other wrappers are refused, naming them).
``reset_levels`` resets row ``i`` with ``env.reset(seed=fold_seed(level_seed))``
(the 64-bit level seed folded to 31 bits), so a level is a function of its
seed as far as the env's own seeding goes. Envs are stepped one by one in a
Python loop: unavoidable for a generic env. A row whose episode has ended is
*frozen* until ``reset_levels`` or ``set_states``: ``step`` leaves it alone and
reports zero rewards, ``terminated`` and ``truncated`` False.

**Observations.** ``observation(env, obs) -> np.ndarray`` (``env`` is the
unwrapped env, ``obs`` the env's own observation) or, without it, the env's
observation when it is already an array.

**Snapshots.** ``arrays()`` holds ``level_seed`` and ``steps`` only; a batch
restored from it (``load_arrays``, e.g. a resumed training run) resets every
row to its level: episodes in progress restart from their first step, so a
resumed gym-task training is not bit-identical to an uninterrupted one.

**Exact access** (planners, normalised scores, goal inference), first that applies:

1. the unwrapped env has ``get_state()`` / ``set_state(state)``: used as is. A
   state that is a tuple of ints is the state vector; any other hashable is
   interned to an integer id (the object kept per id, handed back to
   ``set_state``).
2. a ``state_codec`` with ``get(env) -> tuple[int, ...]`` and ``set(env, state)``.
3. the deepcopy fallback: a ``state_key(env) -> hashable``. The first time a
   state is read, a deepcopy of the unwrapped env is stored under ``(params,
   level seed, key)``; ``set_states`` restores a row by deep-copying it back.
   A key that is a tuple of ints is the state vector itself (put the agent's
   ``(row, col)`` first so IRL sees a position); any other key is interned to
   an integer id. Snapshots and interned ids live in the task object, so they
   hold within one process only.

Convention: ``state[:2]`` is the agent's ``(row, col)`` cell when there is one.
``replicate`` returns a *model* batch: rows are exact states stepped through a
per-task memo of transitions, each computed once on a scratch env of its level
(:class:`GymBatch`), so enumerating a level costs one env step per distinct
transition, not one per search row.
Time is not part of the state: ``set_states`` leaves the step counter as it
is and un-freezes the row (an explicit state is a new starting point).

Before the exact path is used, a determinism probe runs once per ``(task,
resolved params)`` (lazily, when :attr:`GymBatch.exact_unavailable` is first
read: :func:`envs.task.exact_problem` reads it; or explicitly with
:meth:`GymBatch.check_exact`). From the start state of a probe level and a few
states along a fixed walk, every action is taken from a fresh reset, from a
restored state, and from a restored state with the env's ``np_random``
reseeded; successor states, every declared reward and ``terminated`` must agree,
and ``set_state`` then ``get_state`` must give the state back. Otherwise
``exact_unavailable`` names the action and what differed. An env with no state
access gets a message naming what to add.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import gymnasium
import numpy as np

from envs import rng
from envs.task import VERDICTS, check_declarations

PROBE_SEED = 0  # level seed of the determinism probe
PROBE_DEPTH = 4  # states probed: the start state and this many more along a fixed walk
SEED_BITS = 31
SCRATCH_ENVS = 32  # scratch envs kept per task (one per recently solved level)
MEMO_LIMIT = 500_000  # memoised transitions per task (~150 MB) before the memo is cleared


def fold_seed(seed: int | np.integer) -> int:
    """A 64-bit level seed folded to ``SEED_BITS`` bits for ``env.reset(seed=...)``."""
    s = int(seed)
    return (s ^ (s >> 31) ^ (s >> 62)) & ((1 << SEED_BITS) - 1)


@dataclass(frozen=True)
class Transition:
    """One step of one env, as reward functions see it (``env`` is the unwrapped env after the step)."""

    env: Any
    obs: Any
    action: int
    reward: float
    next_obs: Any
    terminated: bool
    truncated: bool
    info: dict


class StateCodec(Protocol):
    """Exact state of an env as a tuple of ints, and back."""

    def get(self, env) -> tuple[int, ...]: ...

    def set(self, env, state: Sequence[int]) -> None: ...


RewardSpec = str | Callable[[Transition], float]


def _is_int_tuple(value) -> bool:
    return isinstance(value, tuple) and all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value
    )


def _reward_reader(env_id: str, name: str, spec: RewardSpec) -> Callable[[Transition], float]:
    if callable(spec):
        return spec
    if spec == "reward":
        return lambda t: t.reward
    if isinstance(spec, str) and spec.startswith("info:") and len(spec) > len("info:"):
        path = spec[len("info:") :].split(".")

        def read(t: Transition) -> float:
            value: Any = t.info
            for key in path:
                if not isinstance(value, Mapping) or key not in value:
                    raise ValueError(
                        f"{env_id}: reward {name!r} reads info[{']['.join(repr(k) for k in path)}], "
                        f"but the step's info has no {key!r} (info keys: {sorted(t.info)})"
                    )
                value = value[key]
            return value

        return read
    raise ValueError(
        f"{env_id}: reward {name!r} must be 'reward' (the env's own), 'info:<key>[.<key>...]' or a "
        f"function of envs.gym_adapter.Transition; got {spec!r}"
    )


class GymTask:
    """A Gymnasium env with named distributions and declared rewards (an :class:`envs.task.Task`)."""

    def __init__(
        self,
        env_id: str,
        distributions: Mapping[str, Mapping[str, Any]],
        rewards: Mapping[str, RewardSpec],
        *,
        env: str | None = None,
        proxy_rewards: Sequence[str] = (),
        expected_verdicts: Mapping[str, str] | None = None,
        expected_goals: Mapping[str, str] | None = None,
        observation: Callable[[Any, Any], np.ndarray] | None = None,
        observation_space: gymnasium.spaces.Box | None = None,
        actions: Sequence[int] | None = None,
        action_names: Sequence[str] | None = None,
        state_codec: StateCodec | None = None,
        state_key: Callable[[Any], Any] | None = None,
        max_steps: int | None = None,
        feature_planes: Callable[[Any], tuple[Sequence[str], np.ndarray]] | None = None,
        flag_names: Sequence[str] = (),
        channel_names: Sequence[str] = (),
        render: Callable[[Any], np.ndarray] | None = None,
        prepare_env: Callable[[Any], None] | None = None,
        on_reset: Callable[[Any], None] | None = None,
        on_step: Callable[[Any], None] | None = None,
    ):
        """``env``: default Gymnasium id for distributions that name none. ``actions``: the env
        actions exposed, in order (action ``k`` of the task is env action ``actions[k]``).
        ``prepare_env(env)`` is called once on each new unwrapped env (e.g. to switch off work
        the task does not need); ``on_reset(env)`` and ``on_step(env)`` after every reset and
        step (e.g. to keep task-defined flags on the env, which the state codec then reads).
        ``channel_names``: one name per channel of an observation that is
        a ``(C, H, W)`` grid indexed like the state's ``(row, col)``; the judge's goal library then
        reads objects off it (evaluation.goals: a partner that walks, a key that vanishes). See the
        module docstring for everything else."""
        self.env_id = env_id
        self.default_id = env
        if not isinstance(distributions, Mapping) or not all(
            isinstance(d, Mapping) for d in distributions.values()
        ):
            raise ValueError(f"{env_id}: distributions must map names to parameter mappings")
        self.distributions = {name: dict(params) for name, params in distributions.items()}
        keys: list[str] = []
        for params in self.distributions.values():
            keys += [k for k in params if k not in keys]
        self.distribution_params = tuple(keys)
        if not isinstance(rewards, Mapping) or not rewards:
            raise ValueError(f"{env_id}: rewards must map each declared reward name to its definition")
        self.reward_specs = dict(rewards)
        self.reward_names = tuple(rewards)
        self._readers = {name: _reward_reader(env_id, name, spec) for name, spec in rewards.items()}
        self.proxy_rewards = tuple(proxy_rewards)
        self.expected_verdicts = dict(expected_verdicts or {})
        self.expected_goals = dict(expected_goals or {})
        self.observation = observation
        self._observation_space = observation_space
        self.actions = None if actions is None else tuple(int(a) for a in actions)
        self.action_names = None if action_names is None else tuple(action_names)
        self.state_codec = state_codec
        self.state_key = state_key
        self.max_steps_override = max_steps
        self._feature_planes = feature_planes
        self.flag_names = tuple(flag_names)
        self.channel_names = tuple(channel_names)
        self.render = render
        self.prepare_env = prepare_env
        self.on_reset = on_reset
        self.on_step = on_step
        self._check()
        # Per-process tables shared by every batch of this task.
        self._probe_results: dict[str, str | None] = {}
        self._made: dict[str, dict] = {}
        self._creators: dict[
            str, tuple
        ] = {}  # params key -> (env creator, kwargs, spec)  # params key -> facts of a probe env (spaces, limits, access)
        self._interned: dict[Any, int] = {}  # non-vector states/keys -> id
        self._interned_objects: list[Any] = []
        self._snapshots: dict[tuple, Any] = {}  # (params key, level seed, state) -> deepcopy of env
        self._raw_obs: dict[tuple, Any] = {}  # (params key, level seed, state) -> env observation
        self._memo: dict[tuple, tuple] = {}  # (params key, level seed, state, action) -> transition
        self._starts: dict[tuple, tuple] = {}  # (params key, level seed) -> start state, planes
        self._scratch: dict[tuple, Any] = {}  # (params key, level seed) -> env (LRU)

    # ----------------------------------------------------------- declarations
    def _check(self) -> None:
        check_declarations(self)
        unknown = [name for name in self.expected_verdicts if name not in self.distributions]
        unknown += [name for name in self.expected_goals if name not in self.distributions]
        if unknown:
            raise ValueError(
                f"{self.env_id}: expected verdict or goal for unknown distribution {unknown[0]!r}; "
                f"distributions: {sorted(self.distributions)}"
            )
        for name, verdict in self.expected_verdicts.items():
            if verdict not in VERDICTS:  # pragma: no cover - check_declarations says it first
                raise ValueError(f"{self.env_id}: expected verdict {verdict!r} for {name!r}")
        for name, params in self.distributions.items():
            gym_id = params.get("id", self.default_id)
            if gym_id is None:
                raise ValueError(
                    f"{self.env_id}: distribution {name!r} names no Gymnasium env id and the task has "
                    "no default (give 'id' in the distribution or env=...)"
                )
            if gym_id not in gymnasium.registry:
                raise ValueError(
                    f"{self.env_id}: distribution {name!r} names Gymnasium env {gym_id!r}, which is not "
                    "registered (import the package that registers it first)"
                )
        if self.actions is not None and (
            not self.actions
            or (self.action_names is not None and len(self.action_names) != len(self.actions))
        ):
            raise ValueError(f"{self.env_id}: actions must be non-empty, with one name per action")
        if self.max_steps_override is not None and (
            not isinstance(self.max_steps_override, int) or self.max_steps_override < 1
        ):
            raise ValueError(f"{self.env_id}: max_steps must be a positive integer")

    def resolve_params(self, distribution: str, params: dict) -> dict:
        """The distribution's parameters overlaid by ``params``; the env is made once to check them."""
        if distribution not in self.distributions:
            raise ValueError(
                f"{self.env_id}: unknown distribution {distribution!r}; known: {sorted(self.distributions)}"
            )
        merged = {**self.distributions[distribution], **params}
        merged.setdefault("id", self.default_id)
        if merged["id"] not in gymnasium.registry:
            raise ValueError(f"{self.env_id}: Gymnasium env {merged['id']!r} is not registered")
        self._facts(merged)
        return merged

    def shared_params(self, params: dict) -> dict:
        return {k: v for k, v in params.items() if k not in self.distribution_params and k != "id"}

    def __call__(self, num_envs: int, distribution: str = "train", **params) -> GymBatch:
        return GymBatch(self, num_envs, distribution, self.resolve_params(distribution, params))

    def __repr__(self) -> str:
        return f"GymTask({self.env_id!r}, distributions={sorted(self.distributions)})"

    # ----------------------------------------------------------- envs
    @staticmethod
    def params_key(params: dict) -> str:
        return json.dumps(params, sort_keys=True, default=str)

    def make_env(self, params: dict):
        """A new unwrapped env for resolved ``params`` (prepared by ``prepare_env``).

        Built like ``gymnasium.make`` (registered kwargs overlaid by ``params``, ``env.spec``
        set) but without its wrappers, which the batch replaces (step limit) or does not need.
        """
        key = self.params_key(params)
        if key not in self._creators:
            spec = gymnasium.spec(params["id"])
            wrappers = [w.name for w in (spec.additional_wrappers or ())]
            if wrappers:
                raise ValueError(
                    f"{self.env_id}: {params['id']} is registered with wrappers {wrappers}; GymBatch steps "
                    "the unwrapped env, so register an id without them (or wrap the env class itself)"
                )
            creator = spec.entry_point
            if isinstance(creator, str):
                creator = gymnasium.envs.registration.load_env_creator(creator)
            kwargs = {**spec.kwargs, **{k: v for k, v in params.items() if k != "id"}}
            if self.render is None and "rgb_array" in getattr(creator, "metadata", {}).get(
                "render_modes", ()
            ):
                kwargs.setdefault("render_mode", "rgb_array")
            made_spec = copy.deepcopy(spec)
            made_spec.kwargs = kwargs
            self._creators[key] = (creator, kwargs, made_spec)
        creator, kwargs, made_spec = self._creators[key]
        try:
            env = creator(**kwargs)
        except TypeError as err:
            raise ValueError(
                f"{self.env_id}: {params['id']} does not take parameters {kwargs}: {err}"
            ) from None
        env = env.unwrapped
        env.spec = made_spec
        if self.prepare_env is not None:
            self.prepare_env(env)
        return env

    def reset_env(self, env, seed: int):
        """``env.reset`` to level ``seed`` (folded), then ``on_reset``; returns the observation."""
        obs, _ = env.reset(seed=fold_seed(seed))
        if self.on_reset is not None:
            self.on_reset(env)
        return obs

    def step_env(self, env, action: int):
        """``env.step(action)``, then ``on_step``; returns Gymnasium's 5-tuple."""
        out = env.step(action)
        if self.on_step is not None:
            self.on_step(env)
        return out

    def _facts(self, params: dict) -> dict:
        """Facts about the env of ``params`` from one probe env: spaces, step limit, state access."""
        key = self.params_key(params)
        if key in self._made:
            return self._made[key]
        env = self.make_env(params)
        obs = self.reset_env(env, PROBE_SEED)
        if self.actions is None:
            if not isinstance(env.action_space, gymnasium.spaces.Discrete):
                raise ValueError(
                    f"{self.env_id}: {params['id']} has action space {env.action_space}; a task needs a "
                    "Discrete one (or give actions=[...] naming the env actions to expose)"
                )
            actions = tuple(
                range(int(env.action_space.start), int(env.action_space.start + env.action_space.n))
            )
        else:
            actions = self.actions
            if isinstance(env.action_space, gymnasium.spaces.Discrete):
                bad = [a for a in actions if not env.action_space.contains(a)]
                if bad:
                    raise ValueError(
                        f"{self.env_id}: action {bad[0]} is not in {params['id']}'s {env.action_space}"
                    )
        if self._observation_space is not None:
            space = self._observation_space
        elif self.observation is None:
            if not isinstance(env.observation_space, gymnasium.spaces.Box):
                raise ValueError(
                    f"{self.env_id}: {params['id']}'s observations are {env.observation_space}, not arrays; "
                    "give observation=(env, obs) -> np.ndarray"
                )
            space = env.observation_space
        else:
            first = np.asarray(self.observation(env, obs))
            if first.dtype == bool:
                first = first.astype(np.uint8)
            if np.issubdtype(first.dtype, np.integer):
                info = np.iinfo(first.dtype)
                space = gymnasium.spaces.Box(info.min, info.max, shape=first.shape, dtype=first.dtype)
            else:
                space = gymnasium.spaces.Box(-np.inf, np.inf, shape=first.shape, dtype=first.dtype)
        max_steps = self.max_steps_override
        if max_steps is None:
            spec = gymnasium.spec(params["id"])
            max_steps = spec.max_episode_steps or getattr(env, "max_steps", None)
        if not isinstance(max_steps, (int, np.integer)) or max_steps < 1:
            raise ValueError(
                f"{self.env_id}: {params['id']} declares no step limit (no max_episode_steps, no "
                "env.max_steps); give GymTask max_steps=..."
            )
        if callable(getattr(env, "get_state", None)) and callable(getattr(env, "set_state", None)):
            access = "env"
        elif self.state_codec is not None:
            access = "codec"
        elif self.state_key is not None:
            access = "key"
        else:
            access = None
        facts = {
            "actions": actions,
            "observation_space": space,
            "max_steps": int(max_steps),
            "access": access,
            "gym_id": params["id"],
        }
        if access is not None:
            facts["state_dim"] = len(self._state_vector(env, access, key, PROBE_SEED))
            raw = env.get_state() if access == "env" else None
            if isinstance(raw, np.ndarray) and np.issubdtype(raw.dtype, np.integer):
                raw = tuple(raw.ravel().tolist())
            facts["interned"] = access == "env" and not _is_int_tuple(raw)
        self._made[key] = facts
        env.close()
        return facts

    # ----------------------------------------------------------- states
    def _intern(self, obj) -> int:
        try:
            hash(obj)
        except TypeError:
            raise ValueError(
                f"{self.env_id}: state {obj[1]!r} is not hashable; get_state()/state_key must return "
                "a tuple of ints or another hashable value"
            ) from None
        if obj not in self._interned:
            self._interned[obj] = len(self._interned_objects)
            self._interned_objects.append(obj)
        return self._interned[obj]

    def _state_vector(self, env, access: str, pkey: str, seed: int) -> tuple[int, ...]:
        if access == "env":
            state = env.get_state()
            if isinstance(state, np.ndarray) and np.issubdtype(state.dtype, np.integer):
                state = tuple(int(v) for v in state.ravel())
            if _is_int_tuple(state):
                return tuple(int(v) for v in state)
            return (self._intern(("env", state)),)
        if access == "codec":
            state = tuple(self.state_codec.get(env))
            if not _is_int_tuple(state):
                raise ValueError(f"{self.env_id}: state_codec.get returned {state!r}, not a tuple of ints")
            return tuple(int(v) for v in state)
        key = self.state_key(env)
        vector = tuple(int(v) for v in key) if _is_int_tuple(key) else (self._intern(("key", key)),)
        snapshot_key = (pkey, seed, vector)
        if snapshot_key not in self._snapshots:
            self._snapshots[snapshot_key] = copy.deepcopy(env)
        return vector

    def _restore(self, env, access: str, pkey: str, seed: int, vector: tuple[int, ...]):
        """Put ``env`` in state ``vector``; returns the env to keep (a new one for the deepcopy fallback)."""
        if access == "env":
            if self._made[pkey]["interned"]:
                env.set_state(self._interned_objects[vector[0]][1])
            else:
                env.set_state(vector)
            return env
        if access == "codec":
            self.state_codec.set(env, vector)
            return env
        snapshot = self._snapshots.get((pkey, seed, vector))
        if snapshot is None:
            raise ValueError(
                f"{self.env_id}: state {list(vector)} of level seed {seed} was never read in this process; "
                "the deepcopy fallback can only restore states it has seen (get_states) first"
            )
        return copy.deepcopy(snapshot)

    # ----------------------------------------------------------- the exact model (model batches)
    def _scratch_env(self, params: dict, pkey: str, seed: int):
        """An env of ``params`` reset to level ``seed``, kept for computing that level's transitions."""
        key = (pkey, seed)
        env = self._scratch.pop(key, None)
        if env is None:
            env = self.make_env(params)
            obs = self.reset_env(env, seed)
            if key not in self._starts:
                facts = self._facts(params)
                vector = self._state_vector(env, facts["access"], key[0], seed)
                if self.observation is None:
                    self._raw_obs.setdefault((key[0], seed, vector), obs)
                planes = (None, None)
                if self._feature_planes is not None:
                    names, values = self._feature_planes(env)
                    planes = (tuple(names), np.asarray(values))
                self._starts[key] = (vector, *planes)
        self._scratch[key] = env  # most recently used last
        while len(self._scratch) > SCRATCH_ENVS:
            self._scratch.pop(next(iter(self._scratch))).close()
        return env

    def _start(self, params: dict, pkey: str, seed: int):
        """``(start state, plane names, planes)`` of level ``seed``."""
        key = (pkey, seed)
        if key not in self._starts:
            self._scratch_env(params, pkey, seed)
        return self._starts[key]

    def _transition(self, params: dict, pkey: str, seed: int, state: tuple[int, ...], action: int):
        """``(successor, rewards in reward_names order, terminated)`` of one exact transition, memoised."""
        key = (pkey, seed, state, action)
        hit = self._memo.get(key)
        if hit is not None:
            return hit
        access = self._facts(params)["access"]
        env = self._restore(self._scratch_env(params, pkey, seed), access, pkey, seed, state)
        self._scratch[(pkey, seed)] = env
        obs = self._raw_obs.get((pkey, seed, state))
        next_obs, reward, term, trunc, info = self.step_env(env, action)
        transition = Transition(env, obs, action, float(reward), next_obs, bool(term), bool(trunc), info)
        values = tuple(float(read(transition)) for read in self._readers.values())
        succ = self._state_vector(env, access, pkey, seed)
        if self.observation is None:
            self._raw_obs.setdefault((pkey, seed, succ), next_obs)
        if len(self._memo) >= MEMO_LIMIT:
            self._memo.clear()
        result = (succ, values, bool(term))
        self._memo[key] = result
        return result

    def check_exact(self, distribution: str = "train", **params) -> str | None:
        """Why the exact path is unavailable for ``distribution`` (None when it is), probing determinism."""
        resolved = self.resolve_params(distribution, params)
        return self._exact_problem(distribution, resolved)

    def _exact_problem(self, distribution: str, resolved: dict) -> str | None:
        key = self.params_key(resolved)
        if key not in self._probe_results:
            self._probe_results[key] = self._probe(distribution, resolved)
        return self._probe_results[key]

    def _probe(self, distribution: str, params: dict) -> str | None:
        facts = self._facts(params)
        if facts["access"] is None:
            return (
                f"{self.env_id}: the exact path (planners, normalised scores, goal inference) needs state "
                f"access, and {facts['gym_id']} has none: give its env get_state()/set_state(), or give "
                "GymTask a state_codec (get(env) -> tuple of ints, set(env, state)) or a state_key(env) -> "
                "hashable for the deepcopy fallback"
            )
        n_actions = len(facts["actions"])
        probe = GymBatch(self, 3 * n_actions, distribution, params)
        rows = np.arange(probe.num_envs)
        probe.reset_levels(rows, np.full(probe.num_envs, PROBE_SEED, dtype=np.uint64))
        start = probe.get_states()
        if not (start == start[0]).all():
            return (
                f"{self.env_id}: reset(seed={fold_seed(PROBE_SEED)}) gave different start states "
                f"{start[0].tolist()} and {start[(start != start[0]).any(axis=1)][0].tolist()}: a level "
                "is not a function of its seed, so the exact path cannot rebuild it"
            )
        state = start[0]
        names = self.action_names or tuple(str(a) for a in facts["actions"])
        for depth in range(PROBE_DEPTH + 1):
            where = "the start state" if depth == 0 else f"state {state.tolist()} (after {depth} steps)"
            # Rows 3a (fresh: reset and replay the walk), 3a+1 (restored), 3a+2 (restored, RNG reseeded).
            restored = np.concatenate([rows[1::3], rows[2::3]])
            probe.set_states(restored, np.repeat(state[None], len(restored), axis=0))
            back = probe.get_states()[restored]
            if not (back == state).all():
                return (
                    f"{self.env_id}: set_state({state.tolist()}) then get_state() gave "
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
                        f"{self.env_id}: {facts['gym_id']} is stochastic: action {a} ({names[a]}) from "
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


class GymBatch:
    """``num_envs`` Gymnasium envs of one task's distribution, stepped in a loop (a :class:`LevelBatch`).

    A batch made by :meth:`replicate` is a *model* batch (``model=True``): its rows are exact
    states, stepped through the task's memo of transitions (``(level, state, action) ->
    (successor, rewards, terminated)``, each computed once on a scratch env of that level).
    The exact path (level enumeration) steps hundreds of copies of one level; a model batch
    makes that cost one env step per distinct transition instead of one per row and search
    step. A model row gets a real env only when it is observed or rendered. Model batches
    rely on what the determinism probe checks: the env is deterministic and its state is
    all of it.
    """

    def __init__(self, task: GymTask, num_envs: int, distribution: str, params: dict, model: bool = False):
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ValueError(f"{task.env_id}: num_envs must be a positive integer, got {num_envs!r}")
        self.task = task
        self.env_id = task.env_id
        self.distribution = distribution
        self.params = dict(params)
        self.num_envs = int(num_envs)
        self.reward_names = task.reward_names
        self.flag_names = task.flag_names
        self.model = model
        self._pkey = task.params_key(self.params)
        facts = task._facts(self.params)
        self._actions = np.array(facts["actions"], dtype=np.int64)
        self._access = facts["access"]
        self.max_steps = facts["max_steps"]
        n = self.num_envs
        self.envs = [None] * n if model else [task.make_env(self.params) for _ in range(n)]
        self.level_seed = np.zeros(n, dtype=np.uint64)
        self.steps = np.zeros(n, dtype=np.int64)
        self.frozen = np.zeros(n, dtype=bool)
        self._ready = np.zeros(n, dtype=bool)
        self._obs: list[Any] = [None] * n
        self._obs_known = np.ones(n, dtype=bool)
        self._planes: list[np.ndarray | None] = [None] * n
        self._plane_names: tuple[str, ...] = ()
        if model:
            self._states = np.zeros((n, facts["state_dim"]), dtype=np.int64)
            self._synced = np.zeros(n, dtype=bool)  # the row's env holds its state
            self._env_seed: list[int | None] = [None] * n
        if task._feature_planes is not None:
            self.feature_planes = self._stacked_feature_planes

    # ----------------------------------------------------------- protocol
    @property
    def exact_unavailable(self) -> str | None:
        """Why this batch cannot take the exact path (runs the determinism probe once per params)."""
        return self.task._exact_problem(self.distribution, self.params)

    def check_exact(self) -> str | None:
        """Same as :attr:`exact_unavailable`: None, or what stops the exact path."""
        return self.exact_unavailable

    @property
    def state_dim(self) -> int:
        return self.task._facts(self.params).get("state_dim", 0)

    def single_observation_space(self) -> gymnasium.spaces.Box:
        return self.task._facts(self.params)["observation_space"]

    def single_action_space(self) -> gymnasium.spaces.Discrete:
        return gymnasium.spaces.Discrete(len(self._actions))

    def reset_levels(self, idx: np.ndarray, seeds: np.ndarray, _planes: bool = True) -> None:
        idx = np.asarray(idx, dtype=np.int64).reshape(-1)
        seeds = rng.as_seed_array(seeds).reshape(-1)
        if len(seeds) != len(idx):
            raise ValueError(f"{self.env_id}: {len(seeds)} seeds for {len(idx)} rows")
        task = self.task
        for i, seed in zip(idx.tolist(), seeds.tolist(), strict=True):
            self.level_seed[i] = seed
            if self.model:
                start, names, planes = task._start(self.params, self._pkey, seed)
                self._states[i] = start
                self._synced[i] = False
            else:
                env = self.envs[i]
                self._obs[i] = task.reset_env(env, seed)
                if _planes and task._feature_planes is not None:
                    names, planes = task._feature_planes(env)
            if _planes and task._feature_planes is not None:
                self._plane_names = tuple(names)
                self._planes[i] = np.asarray(planes)
        self.steps[idx] = 0
        self.frozen[idx] = False
        self._ready[idx] = True
        self._obs_known[idx] = True

    def _require_ready(self, what: str) -> None:
        if not self._ready.all():
            raise ValueError(
                f"{self.env_id}: {what} before reset_levels on row {int(np.flatnonzero(~self._ready)[0])}"
            )

    def _materialize(self, i: int) -> None:
        """Model batches: give row ``i`` a real env in its state (for observing and rendering)."""
        if not self.model or self._synced[i]:
            return
        task, seed = self.task, int(self.level_seed[i])
        env = self.envs[i]
        if env is None or self._env_seed[i] != seed:
            env = task.make_env(self.params)
            task.reset_env(env, seed)
        vector = tuple(self._states[i].tolist())
        self.envs[i] = task._restore(env, self._access, self._pkey, seed, vector)
        self._env_seed[i] = seed
        self._obs[i] = task._raw_obs.get((self._pkey, seed, vector))
        self._obs_known[i] = task.observation is not None or self._obs[i] is not None
        self._synced[i] = True

    def observe(self) -> np.ndarray:
        self._require_ready("observe")
        for i in range(self.num_envs):
            self._materialize(i)
        if not self._obs_known.all():
            row = int(np.flatnonzero(~self._obs_known)[0])
            raise ValueError(
                f"{self.env_id}: row {row}'s observation is unknown after set_states (the env's own "
                "observation of that state was never seen); give GymTask observation=(env, obs) that "
                "reads the env"
            )
        observation = self.task.observation
        if observation is None:
            obs = np.stack([np.asarray(o) for o in self._obs])
        else:
            obs = np.stack([np.asarray(observation(e, o)) for e, o in zip(self.envs, self._obs, strict=True)])
        return obs.astype(np.uint8) if obs.dtype == bool else obs  # as the inferred space says

    def step(self, actions: np.ndarray):
        """Advance every live row by one action; frozen rows stay put with zero rewards."""
        actions = np.asarray(actions).reshape(-1)
        if actions.shape != (self.num_envs,):
            raise ValueError(f"{self.env_id}: {actions.shape[0]} actions for {self.num_envs} envs")
        return self.step_rows(np.arange(self.num_envs), actions)

    def step_rows(self, idx: np.ndarray, actions: np.ndarray):
        """:meth:`step` for rows ``idx`` only (the others are untouched); arrays are full-batch."""
        self._require_ready("step")
        rewards = {name: np.zeros(self.num_envs) for name in self.reward_names}
        terminated = np.zeros(self.num_envs, dtype=bool)
        truncated = np.zeros(self.num_envs, dtype=bool)
        n = len(self._actions)
        task = self.task
        readers = task._readers
        for i, a in zip(np.asarray(idx).tolist(), np.asarray(actions).tolist(), strict=True):
            if self.frozen[i]:
                continue
            if not 0 <= a < n:
                raise ValueError(f"{self.env_id}: action {a} outside Discrete({n})")
            env_action = int(self._actions[a])
            if self.model:
                seed = int(self.level_seed[i])
                succ, values, term = task._transition(
                    self.params, self._pkey, seed, tuple(self._states[i].tolist()), env_action
                )
                self._states[i] = succ
                self._synced[i] = False
                for name, value in zip(self.reward_names, values, strict=True):
                    rewards[name][i] = value
                trunc = False  # the model is time-free: only the batch's step limit truncates
            else:
                env = self.envs[i]
                obs = self._obs[i]
                next_obs, reward, term, trunc, info = task.step_env(env, env_action)
                transition = Transition(
                    env, obs, env_action, float(reward), next_obs, bool(term), bool(trunc), info
                )
                for name, read in readers.items():
                    rewards[name][i] = float(read(transition))
                self._obs[i] = next_obs
            self.steps[i] += 1
            terminated[i] = bool(term)
            truncated[i] = (bool(trunc) or self.steps[i] >= self.max_steps) and not term
            if terminated[i] or truncated[i]:
                self.frozen[i] = True
        return rewards, terminated, truncated

    def render_rgb(self, i: int) -> np.ndarray:
        self._materialize(i)
        env = self.envs[i]
        image = self.task.render(env) if self.task.render is not None else env.render()
        if image is None:
            raise ValueError(
                f"{self.env_id}: {self.params['id']} renders no rgb_array; give GymTask render=(env) -> image"
            )
        return np.asarray(image, dtype=np.uint8)

    # ----------------------------------------------------------- snapshots
    def arrays(self) -> dict[str, np.ndarray]:
        """``level_seed`` and ``steps``: restoring them restarts every row's episode (module docstring)."""
        return {"level_seed": self.level_seed, "steps": self.steps}

    def load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        for name, current in self.arrays().items():
            if name not in arrays or np.shape(arrays[name]) != current.shape:
                raise ValueError(f"{self.env_id}: snapshot array {name!r} is missing or has the wrong shape")
        self.reset_levels(np.arange(self.num_envs), np.asarray(arrays["level_seed"], dtype=np.uint64))

    def close(self) -> None:
        for env in self.envs:
            if env is not None:
                env.close()

    # ----------------------------------------------------------- exact access
    def _require_access(self) -> None:
        if self._access is None:
            raise ValueError(self.task._probe(self.distribution, self.params))

    def level_key(self, row: int):
        """The level's identity for the planners' caches.

        Its start state when the task says its states identify levels
        (``states_identify_levels``: the Minigrid codec holds the whole grid),
        so levels that differ only in their seed are solved once; else the seed.
        """
        seed = int(self.level_seed[row])
        if not getattr(self.task, "states_identify_levels", False):
            return seed
        return tuple(int(v) for v in self.task._start(self.params, self._pkey, seed)[0])

    def get_states(self) -> np.ndarray:
        self._require_access()
        self._require_ready("get_states")
        if self.model:
            return self._states.copy()
        task = self.task
        vectors = []
        for i, env in enumerate(self.envs):
            seed = int(self.level_seed[i])
            vector = task._state_vector(env, self._access, self._pkey, seed)
            if task.observation is None and self._obs_known[i]:
                task._raw_obs.setdefault((self._pkey, seed, vector), self._obs[i])
            vectors.append(vector)
        lengths = {len(v) for v in vectors}
        if len(lengths) > 1:
            raise ValueError(f"{self.env_id}: states of different lengths {sorted(lengths)} in one batch")
        return np.array(vectors, dtype=np.int64).reshape(self.num_envs, -1)

    def set_states(self, idx: np.ndarray, states: np.ndarray) -> None:
        """Put rows ``idx`` in ``states`` (live again: an explicit state is a new starting point)."""
        self._require_access()
        idx = np.asarray(idx, dtype=np.int64).reshape(-1)
        states = np.asarray(states, dtype=np.int64).reshape(len(idx), self.state_dim)
        if self.model:
            self._states[idx] = states
            self._synced[idx] = False
        else:
            task = self.task
            for i, state in zip(idx.tolist(), states.tolist(), strict=True):
                seed = int(self.level_seed[i])
                vector = tuple(state)
                self.envs[i] = task._restore(self.envs[i], self._access, self._pkey, seed, vector)
                if task.observation is None:
                    obs = task._raw_obs.get((self._pkey, seed, vector))
                    self._obs[i] = obs
                    self._obs_known[i] = obs is not None
        self.frozen[idx] = False

    def replicate(self, row: int, n: int) -> GymBatch:
        """A model batch of ``n`` copies of ``row``'s level in its current state (see the class doc)."""
        self._require_access()
        self._require_ready("replicate")
        state = self.get_states()[row]
        clone = GymBatch(self.task, n, self.distribution, self.params, model=True)
        clone.level_seed[:] = self.level_seed[row]
        clone._states[:] = state
        clone.steps[:] = self.steps[row]
        clone.frozen[:] = self.frozen[row]
        clone._ready[:] = True
        if self.task._feature_planes is not None:  # the same level: its planes are the row's
            clone._plane_names = self._plane_names
            clone._planes = [self._planes[row]] * n
        return clone

    def _stacked_feature_planes(self) -> tuple[tuple[str, ...], np.ndarray]:
        """Named static planes of every row's level, from its first state: ``(B, C, H, W)``."""
        self._require_ready("feature_planes")
        return self._plane_names, np.stack(self._planes)
