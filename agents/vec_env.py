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
