"""The declarations of a :class:`GymTask`: distributions, rewards, actions, observations, envs.

A task names its distributions (each a mapping of ``gymnasium.make``
parameters with an optional ``id``) and its declared rewards (each
``"reward"``, ``"info:a.b"`` or a function of a :class:`~envs.gym_types.Transition`),
is checked once at construction, and makes the unwrapped envs its batches
step. The facts a batch needs (spaces, step limit, which state access applies)
are read off one env per resolved params and kept. The exact path is
:mod:`envs.gym_exact`; the batch is :mod:`envs.gym_batch`; the overview for
users is :mod:`envs.gym_adapter`.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gymnasium
import numpy as np

from envs.gym_batch import GymBatch
from envs.gym_exact import PROBE_SEED, ExactModel
from envs.gym_types import RewardSpec, StateCodec, Transition, fold_seed
from envs.task import VERDICTS, check_declarations


def reward_reader(env_id: str, name: str, spec: RewardSpec) -> Callable[[Transition], float]:
    """The function that values declared reward ``name`` on a transition, from its definition ``spec``."""
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
        reads objects off it (evaluation.goals: a partner that walks, a key that vanishes). See
        :mod:`envs.gym_adapter` for everything else."""
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
        self.readers = {name: reward_reader(env_id, name, spec) for name, spec in rewards.items()}
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
        self.feature_planes_of = feature_planes
        self.flag_names = tuple(flag_names)
        self.channel_names = tuple(channel_names)
        self.render = render
        self.prepare_env = prepare_env
        self.on_reset = on_reset
        self.on_step = on_step
        self._check()
        # Per-process tables shared by every batch of this task.
        self._made: dict[str, dict] = {}  # params key -> facts of a probe env (spaces, limits, access)
        self._creators: dict[str, tuple] = {}  # params key -> (env creator, kwargs, spec)
        self.exact = ExactModel(self)

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
        self.facts(merged)
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

    def facts(self, params: dict) -> dict:
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
            facts.update(self.exact.describe(env, access, key))
        self._made[key] = facts
        env.close()
        return facts

    def check_exact(self, distribution: str = "train", **params) -> str | None:
        """Why the exact path is unavailable for ``distribution`` (None when it is), probing determinism."""
        resolved = self.resolve_params(distribution, params)
        return self.exact.problem(distribution, resolved)
