"""Time to 95% training success on the CoinRun analog: the default agent against the one it replaced.

Both agents are composed from the project's Hydra configs (``configs/agent/<name>.yaml``) and
built by ``agents.training`` exactly as ``experiments.train`` builds them; they train side by side
in this process, alternating per seed so that both see the same machine load. Every
``--eval-every`` env-steps the policy (sampling, as trained) plays 200 ``train`` levels; the
time to 95% is the training wall time (evaluations excluded) at the first evaluation with >=95%
coin success. Also printed: training FLOPs per env-step (one rollout forward plus ``n_epochs``
forward+backward passes per sample, counted by ``torch.utils.flop_counter``) and the load.
Last line: the ratio new/old of the median time to 95% (target <= 1/3) and of the FLOPs.

    python benchmarks/train_speed.py [--old ppo_cnn] [--new ppo] [--seeds 1 2 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from stable_baselines3.common.callbacks import BaseCallback
from torch.utils.flop_counter import FlopCounterMode

from agents.policies import SB3Policy
from agents.training import TrainConfig, build_model, make_training_env
from evaluation.rollouts import rollout
from experiments.common import train_config

CONFIGS = str(Path(__file__).resolve().parents[1] / "configs")
ENV = "coinrun"
TARGET = 0.95
EVAL_LEVELS = 200
EVAL_SEED = 10_000


def compose_config(agent: str, seed: int, budget: int) -> TrainConfig:
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        cfg = compose(
            "train", overrides=[f"env={ENV}", f"agent={agent}", f"seed={seed}", f"total_timesteps={budget}"]
        )
    return train_config(cfg)


def flops_per_env_step(config: TrainConfig) -> float:
    """Rollout forward + ``n_epochs`` x (forward + backward), per sample."""
    model = build_model(config.agent, make_training_env(config), config.seed)
    obs = torch.as_tensor(model.env.reset()).float()
    with FlopCounterMode(display=False) as counter:
        model.policy.evaluate_actions(obs, torch.zeros(len(obs), dtype=torch.long))
    forward = counter.get_total_flops() / len(obs)
    with FlopCounterMode(display=False) as counter:
        values, log_prob, entropy = model.policy.evaluate_actions(
            obs, torch.zeros(len(obs), dtype=torch.long)
        )
        (values.sum() + log_prob.sum() + entropy.sum()).backward()
    forward_backward = counter.get_total_flops() / len(obs)
    return forward + config.agent.hyperparams.get("n_epochs", 10) * forward_backward


class SuccessClock(BaseCallback):
    """Stops training at the first evaluation with >= TARGET train success; times training only."""

    def __init__(self, config: TrainConfig, every: int):
        super().__init__()
        self.config, self.every = config, every
        self.next_eval, self.seconds, self.reached = every, 0.0, None
        self.history: list[tuple[int, float, float]] = []
        self._start = None

    def _on_training_start(self) -> None:
        self._start = time.perf_counter()

    def _on_step(self) -> bool:
        if self.num_timesteps < self.next_eval:
            return True
        self.seconds += time.perf_counter() - self._start
        self.next_eval += self.every
        result = rollout(
            SB3Policy(self.model), self.config.env_id, "train", self.config.env_params, EVAL_LEVELS, EVAL_SEED
        )
        success = float((result.returns["specified"] > 0).mean())
        self.history.append((self.num_timesteps, self.seconds, success))
        self._start = time.perf_counter()
        if success >= TARGET:
            self.reached = (self.num_timesteps, self.seconds)
            return False
        return True


def time_to_target(config: TrainConfig, every: int) -> tuple[int, float] | None:
    torch.set_num_threads(config.torch_threads)
    model = build_model(config.agent, make_training_env(config), config.seed)
    clock = SuccessClock(config, every)
    model.learn(config.total_timesteps, callback=clock)
    return clock.reached


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", default="ppo_cnn", help="configs/agent/<old>.yaml (the previous default)")
    parser.add_argument("--new", default="ppo", help="configs/agent/<new>.yaml (the default)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--eval-every", type=int, default=8192)
    parser.add_argument("--budget", type=int, default=300_000, help="env-steps before giving up on a run")
    args = parser.parse_args()

    agents = {"old": args.old, "new": args.new}
    flops = {k: flops_per_env_step(compose_config(a, 1, args.budget)) for k, a in agents.items()}
    for key, name in agents.items():
        print(f"{key} = agent={name}: {flops[key] / 1e6:.2f} MFLOP per env-step")
    times: dict[str, list[float]] = {"old": [], "new": []}
    for seed in args.seeds:
        for key, name in agents.items():
            load = os.getloadavg()[0]
            reached = time_to_target(compose_config(name, seed, args.budget), args.eval_every)
            if reached is None:
                print(f"seed {seed} {key}: {TARGET:.0%} not reached in {args.budget} steps (load {load:.1f})")
                times[key].append(float("inf"))
                continue
            steps, seconds = reached
            times[key].append(seconds)
            print(
                f"seed {seed} {key}: {TARGET:.0%} train success at {steps} steps, {seconds:.1f} s (load {load:.1f})"
            )
    median = {k: statistics.median(v) for k, v in times.items()}
    print(
        f"median time to {TARGET:.0%}: old {median['old']:.1f} s, new {median['new']:.1f} s "
        f"over seeds {args.seeds}; load now {os.getloadavg()[0]:.1f}"
    )
    print(
        f"time-to-95% new/old {median['new'] / median['old']:.3f} (target <= 0.333); "
        f"FLOPs per env-step new/old {flops['new'] / flops['old']:.3f}"
    )


if __name__ == "__main__":
    main()
