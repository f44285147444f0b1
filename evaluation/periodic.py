"""Evaluation during training: every distribution, every declared reward, and a video.

Used by ``agents.training.train`` through injected functions, so training
does not depend on the judge. Evaluation draws its own fixed levels and runs
under a forked torch RNG: it never perturbs the training random stream, so a
run's result does not depend on how often it was evaluated.
"""

from __future__ import annotations

from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import torch

import envs
from agents.files import replacing
from agents.policies import SB3Policy
from evaluation.rollouts import rollout

EVAL_TORCH_SEED = 12345


def distribution_params(env_id: str, train_params: dict, distribution: str) -> dict:
    """Params for ``distribution``: the train params, minus those each distribution defines."""
    if distribution == "train":
        return dict(train_params)
    return envs.task(env_id).shared_params(train_params)


def make_evaluator(
    env_id: str, train_params: dict, n_episodes: int, seed: int = 0, deterministic: bool = False
):
    """``evaluate(model, timesteps) -> rows`` of mean return and success per (distribution, reward)."""
    distributions = list(envs.task(env_id).distributions)

    def evaluate(model, timesteps: int) -> list[dict]:
        rows = []
        with torch.random.fork_rng():
            torch.manual_seed(EVAL_TORCH_SEED + seed)
            for dist in distributions:
                policy = SB3Policy(model, deterministic=deterministic)
                result = rollout(
                    policy, env_id, dist, distribution_params(env_id, train_params, dist), n_episodes, seed
                )
                for reward, returns in result.returns.items():
                    rows.append(
                        {
                            "timesteps": int(timesteps),
                            "distribution": dist,
                            "reward": reward,
                            "mean_return": float(returns.mean()),
                            "success_rate": float((returns > 0).mean()),
                            "episodes": int(result.num_episodes),
                            "mean_length": float(result.lengths.mean()),
                        }
                    )
        return rows

    return evaluate


def make_video_recorder(env_id: str, train_params: dict, distribution: str | None = None, seed: int = 0):
    """``record(model, folder) -> path``: one episode on a shifted distribution as a GIF."""
    core_cls = envs.task(env_id)
    if distribution is None:
        distribution = next(d for d in core_cls.distributions if d != "train")

    def record(model, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        core = core_cls(1, distribution, **distribution_params(env_id, train_params, distribution))
        core.reset_levels(np.array([0]), np.array([seed + 7]))
        frames = [core.render_rgb(0)]
        with torch.random.fork_rng():
            torch.manual_seed(EVAL_TORCH_SEED + seed)
            policy = SB3Policy(model)
            for _ in range(core.max_steps):
                _, terminated, truncated = core.step(policy.act(core.observe()))
                frames.append(core.render_rgb(0))
                if terminated[0] or truncated[0]:
                    break
        path = folder / f"{distribution}.gif"
        with replacing(path, suffix=".tmp.gif") as tmp:  # imageio picks the format by extension
            imageio.mimsave(tmp, frames, duration=0.15, loop=0)
        return path

    return record
