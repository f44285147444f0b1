"""PPO env-steps/s on the CoinRun analog against a no-op env of the same shape.

The no-op env has the same observation and action spaces and returns zeros
at once, so the ratio says how much of PPO's time the environment costs.
Target: ratio >= 0.8. Both are measured in this run, same config and seed.

    python benchmarks/train_throughput.py [--steps 60000]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_dir
from stable_baselines3.common.vec_env.base_vec_env import VecEnv

from agents.training import build_model, make_training_env
from experiments.common import train_config

CONFIGS = str(Path(__file__).resolve().parents[1] / "configs")


class NoOpVecEnv(VecEnv):
    """Zeros of the right shape; episodes end every 30 steps."""

    def __init__(self, like: VecEnv):
        super().__init__(like.num_envs, like.observation_space, like.action_space)
        self._obs = np.zeros(
            (like.num_envs, *like.observation_space.shape), dtype=like.observation_space.dtype
        )
        self._t = 0

    def reset(self):
        return self._obs.copy()

    def step_async(self, actions):
        self._t += 1

    def step_wait(self):
        done = np.full(self.num_envs, self._t % 30 == 0)
        infos = [{"terminal_observation": self._obs[0]} if d else {} for d in done]
        return self._obs.copy(), np.zeros(self.num_envs, dtype=np.float32), done, infos

    def close(self):
        pass

    def get_attr(self, attr_name, indices=None):
        return [None] * self.num_envs

    def set_attr(self, attr_name, value, indices=None):
        pass

    def env_method(self, method_name, *args, indices=None, **kwargs):
        return [None] * self.num_envs

    def env_is_wrapped(self, wrapper_class, indices=None):
        return [False] * self.num_envs


def steps_per_second(model, steps: int) -> float:
    model.learn(model.n_steps * model.n_envs)  # warm-up: first allocation and JIT-free paths
    start = time.perf_counter()
    model.learn(steps, reset_num_timesteps=False)
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60_000)
    args = parser.parse_args()
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        config = train_config(compose("train", overrides=["env=coinrun"]))
    torch.set_num_threads(config.torch_threads)
    venv = make_training_env(config)
    real = steps_per_second(build_model(config.agent, venv, config.seed), args.steps)
    print(f"PPO on CoinRun analog: {real:,.0f} env-steps/s")
    noop = steps_per_second(build_model(config.agent, NoOpVecEnv(venv), config.seed), args.steps)
    print(f"PPO on no-op env:      {noop:,.0f} env-steps/s")
    print(f"ratio CoinRun/no-op: {real / noop:.2f} (target >= 0.8)")


if __name__ == "__main__":
    main()
