"""Stable-Baselines3 ``VecEnv`` over a batched shift environment.

SB3 steps environments through ``step_async``/``step_wait``; this adapter
forwards both to the numpy core in one call, so a rollout of ``N`` levels costs
one batched step, not ``N`` Python ``step`` calls. The training reward is any
declared reward (``specified`` by default); every declared reward's episode
return is reported in ``info["episode_rewards"]`` when an episode ends.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import VecEnv

from envs.core import ShiftVectorEnv


class ShiftSB3VecEnv(VecEnv):
    def __init__(self, env: ShiftVectorEnv, reward: str = "specified"):
        if reward not in env.core.reward_names:
            raise ValueError(
                f"{env.core.env_id}: reward {reward!r} is not declared; "
                f"declared: {list(env.core.reward_names)}"
            )
        self.env = env
        self.reward = reward
        self.render_mode = env.render_mode
        super().__init__(env.num_envs, env.single_observation_space, env.single_action_space)
        self._actions: np.ndarray | None = None
        self._returns = {name: np.zeros(self.num_envs) for name in env.core.reward_names}
        self._lengths = np.zeros(self.num_envs, dtype=np.int64)

    def reset(self) -> np.ndarray:
        seeds = self._seeds if self._seeds[0] is not None else None
        options = None
        if any("level_seed" in o for o in self._options):
            if not all("level_seed" in o for o in self._options):
                raise ValueError("reset options: give a level_seed to every env or to none")
            options = {"level_seeds": [o["level_seed"] for o in self._options]}
        obs, info = self.env.reset(seed=seeds, options=options)
        self._reset_seeds()
        self._reset_options()
        for returns in self._returns.values():
            returns[:] = 0.0
        self._lengths[:] = 0
        self.reset_infos = [{"level_seed": int(s)} for s in info["level_seed"]]
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions).reshape(self.num_envs)

    def step_wait(self):
        obs, _, terminated, truncated, info = self.env.step(self._actions)
        rewards = info["rewards"]
        for name, returns in self._returns.items():
            returns += rewards[name]
        self._lengths += 1
        dones = terminated | truncated
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        for i in np.flatnonzero(dones):
            infos[i] = {
                "terminal_observation": info["final_obs"][i],
                "TimeLimit.truncated": bool(truncated[i] and not terminated[i]),
                "episode_rewards": {k: float(v[i]) for k, v in self._returns.items()},
                "episode_length": int(self._lengths[i]),
            }
        for returns in self._returns.values():
            returns[dones] = 0.0
        self._lengths[dones] = 0
        return obs, rewards[self.reward].astype(np.float32), dones, infos

    def snapshot(self) -> dict[str, np.ndarray]:
        """The batch state plus the running episode returns (for exact resumption)."""
        state = self.env.snapshot()
        state.update(
            {f"return_{k}": v.copy() for k, v in self._returns.items()}, lengths=self._lengths.copy()
        )
        return state

    def restore(self, state: dict[str, np.ndarray]) -> None:
        self.env.restore(state)
        for name, returns in self._returns.items():
            returns[:] = state[f"return_{name}"]
        self._lengths[:] = state["lengths"]

    def close(self) -> None:
        self.env.close()

    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        return [getattr(self.env, attr_name)] * len(self._get_indices(indices))

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        setattr(self.env, attr_name, value)

    def env_method(self, method_name: str, *args, indices=None, **kwargs) -> list[Any]:
        result = getattr(self.env, method_name)(*args, **kwargs)
        return [result] * len(self._get_indices(indices))

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [False] * len(self._get_indices(indices))

    def get_images(self):
        return [self.env.core.render_rgb(i) for i in range(self.num_envs)]


class MixtureVectorEnv:
    """Several distributions' batches side by side as one batch (rows of ``parts[0]`` first).

    For agents of known goal: trained on a mixture of the train and shifted
    distributions, their goal is the training reward on both by
    construction. Offers what :class:`ShiftSB3VecEnv` uses of a
    :class:`~envs.core.ShiftVectorEnv`.
    """

    def __init__(self, parts: list[ShiftVectorEnv]):
        spaces = {str(p.single_observation_space) for p in parts}
        if len(spaces) > 1:
            names = [p.distribution for p in parts]
            raise ValueError(
                f"{parts[0].core.env_id}: distributions {names} have different observation spaces {spaces}"
            )
        self.parts = parts
        self.sizes = [p.num_envs for p in parts]
        self.offsets = np.cumsum([0, *self.sizes])
        self.num_envs = int(self.offsets[-1])
        self.render_mode = parts[0].render_mode
        self.single_observation_space = parts[0].single_observation_space
        self.single_action_space = parts[0].single_action_space
        self.core = _MixedCores(self)

    def _split(self, values):
        return [values[a:b] for a, b in zip(self.offsets[:-1], self.offsets[1:], strict=True)]

    def reset(self, *, seed=None, options: dict | None = None):
        seeds = [None] * len(self.parts)
        if isinstance(seed, (int, np.integer)):
            seeds = [int(seed) + int(a) for a in self.offsets[:-1]]
        elif seed is not None:
            seeds = [list(s) for s in self._split(list(seed))]
        part_options = [None] * len(self.parts)
        if options and "level_seeds" in options:
            part_options = [{"level_seeds": s} for s in self._split(list(options["level_seeds"]))]
        results = [
            p.reset(seed=s, options=o) for p, s, o in zip(self.parts, seeds, part_options, strict=True)
        ]
        return np.concatenate([obs for obs, _ in results]), {
            "level_seed": np.concatenate([info["level_seed"] for _, info in results])
        }

    def step(self, actions):
        results = [p.step(a) for p, a in zip(self.parts, self._split(np.asarray(actions)), strict=True)]
        obs = np.concatenate([r[0] for r in results])
        terminated = np.concatenate([r[2] for r in results])
        truncated = np.concatenate([r[3] for r in results])
        infos = [r[4] for r in results]
        rewards = {name: np.concatenate([i["rewards"][name] for i in infos]) for name in infos[0]["rewards"]}
        info: dict[str, Any] = {"rewards": rewards}
        if any("final_obs" in i for i in infos):
            info["final_obs"] = np.concatenate(
                [i.get("final_obs", np.zeros_like(r[0])) for i, r in zip(infos, results, strict=True)]
            )
            info["_final_obs"] = terminated | truncated
        return obs, rewards["specified"].astype(np.float32), terminated, truncated, info

    def snapshot(self) -> dict[str, np.ndarray]:
        return {f"part{k}_{name}": v for k, p in enumerate(self.parts) for name, v in p.snapshot().items()}

    def restore(self, state: dict[str, np.ndarray]) -> None:
        for k, p in enumerate(self.parts):
            prefix = f"part{k}_"
            p.restore({name[len(prefix) :]: v for name, v in state.items() if name.startswith(prefix)})

    def close(self) -> None:
        for p in self.parts:
            p.close()


class _MixedCores:
    """The few core attributes a training run reads, answered across a mixture's parts."""

    def __init__(self, mixture: MixtureVectorEnv):
        self.mixture = mixture
        self.env_id = mixture.parts[0].core.env_id
        self.reward_names = mixture.parts[0].core.reward_names

    def _row(self, i: int):
        k = int(np.searchsorted(self.mixture.offsets, i, side="right") - 1)
        return self.mixture.parts[k].core, i - int(self.mixture.offsets[k])

    def render_rgb(self, i: int, *args, **kwargs):
        core, row = self._row(i)
        return core.render_rgb(row, *args, **kwargs)

    def render_ansi(self, i: int):
        core, row = self._row(i)
        return core.render_ansi(row)
