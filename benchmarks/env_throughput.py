"""Env-steps/s of the batched core against a per-environment Python loop.

Prints steps/s for the CoinRun analog's batched VectorEnv at N = 1, 64, 1024,
for gymnasium's SyncVectorEnv over N single envs (the per-env loop we replace)
and, when installed (``pip install -e '.[bench]'``), Minigrid's single env.
The last line gives the ratios, all measured in this run.

    python benchmarks/env_throughput.py [--env GMSuite/CoinRun-v0] [--seconds 2]
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np

import envs  # noqa: F401  (registers GMSuite/*)


def steps_per_second(env, num_envs: int, seconds: float, seed: int = 0) -> float:
    """Random actions (drawn beforehand) for about ``seconds``; autoreset inside ``step``."""
    env.reset(seed=seed)
    actions = np.random.default_rng(seed).integers(0, 4, size=(256, num_envs))
    steps, start = 0, time.perf_counter()
    while True:
        for k in range(32):
            env.step(actions[(steps // num_envs + k) % 256])
        steps += 32 * num_envs
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return steps / elapsed


def single_env_steps_per_second(env, seconds: float, seed: int = 0) -> float:
    env.reset(seed=seed)
    n_actions = env.action_space.n
    actions = np.random.default_rng(seed).integers(0, n_actions, size=4096)
    steps, start = 0, time.perf_counter()
    while True:
        for _ in range(256):
            _, _, terminated, truncated, _ = env.step(actions[steps % 4096])
            steps += 1
            if terminated or truncated:
                env.reset()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return steps / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="GMSuite/CoinRun-v0")
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()

    batched = {}
    for n in (1, 64, 1024):
        vec = gym.make_vec(args.env, num_envs=n, vectorization_mode="vector_entry_point")
        batched[n] = steps_per_second(vec, n, args.seconds)
        print(f"batched core     N={n:5d}: {batched[n]:>12,.0f} steps/s")

    loop = {}
    for n in (64, 1024):
        vec = gym.make_vec(args.env, num_envs=n, vectorization_mode="sync")
        loop[n] = steps_per_second(vec, n, args.seconds)
        print(f"per-env loop     N={n:5d}: {loop[n]:>12,.0f} steps/s")

    single = single_env_steps_per_second(gym.make(args.env), args.seconds)
    print(f"single env (gymnasium.make):  {single:>12,.0f} steps/s")

    minigrid_rate = None
    try:
        import minigrid  # noqa: F401

        minigrid_rate = single_env_steps_per_second(gym.make("MiniGrid-Empty-8x8-v0"), args.seconds)
        print(f"Minigrid Empty-8x8 single env: {minigrid_rate:>12,.0f} steps/s")
    except ImportError:
        print("Minigrid not installed (pip install -e '.[bench]'): skipped")

    ratios = [
        f"batched/loop N=64: {batched[64] / loop[64]:.1f}x",
        f"batched/loop N=1024: {batched[1024] / loop[1024]:.1f}x",
        f"batched N=1024 / single env: {batched[1024] / single:.1f}x",
    ]
    if minigrid_rate:
        ratios.append(f"batched N=1024 / Minigrid: {batched[1024] / minigrid_rate:.1f}x")
    print(f"target >=1,000,000 steps/s at N=1024: {'met' if batched[1024] >= 1e6 else 'NOT met'}")
    print("ratios: " + "; ".join(ratios))


if __name__ == "__main__":
    main()
