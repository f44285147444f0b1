"""Train an SB3 agent on a shift environment, resumably, into one run folder.

``train(config, run_dir)`` is the whole path: validate everything first (bad
input stops before any work), resume from the folder's latest checkpoint if
there is one, learn with periodic shift evaluation and checkpoints, then save
the final policy and metrics. Evaluation and videos are injected as functions
so this layer does not depend on the judge.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import shutil
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.callbacks import CallbackList
from stable_baselines3.common.logger import HumanOutputFormat, Logger

import envs
from agents.callbacks import Checkpointing, EpisodeRewardStats, PeriodicEvaluation
from agents.checkpoints import (
    CheckpointError,
    latest_checkpoint,
    load_training_checkpoint,
    read_policy,
    save_policy,
    write_json_atomic,
)
from agents.networks import GridCNN
from agents.run_logging import JsonlWriter, WandbWriter, jsonl_to_csv, truncate_jsonl
from agents.vec_env import ShiftSB3VecEnv
from envs.core import ShiftVectorEnv

ALGORITHMS = {"ppo": PPO, "a2c": A2C}
PACKAGES = ("numpy", "torch", "gymnasium", "stable-baselines3", "hydra-core", "wandb")


@dataclass
class AgentConfig:
    """The learner: an SB3 algorithm, its network and its hyperparameters."""

    algo: str = "ppo"
    num_envs: int = 32
    features_dim: int = 128
    channels: list[int] = field(default_factory=lambda: [16, 32])
    strides: list[int] | None = None
    egocentric: bool = False
    hyperparams: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainConfig:
    """One training run: env and its train-distribution params, learner, budget, seed."""

    env_id: str
    env_params: dict[str, Any] = field(default_factory=dict)
    agent: AgentConfig = field(default_factory=AgentConfig)
    seed: int = 1
    total_timesteps: int = 200_000
    reward: str = "specified"
    eval_every: int = 50_000
    eval_episodes: int = 200
    checkpoint_every: int = 25_000
    torch_threads: int = 1

    def to_dict(self) -> dict:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        data = dict(data)
        data["agent"] = AgentConfig(**data.get("agent", {}))
        return cls(**data)


def validate(config: TrainConfig) -> None:
    """Raise ``ValueError`` naming the first bad value, before any long work."""
    core_cls = envs.task(config.env_id)
    core_cls.resolve_params("train", config.env_params)
    if config.reward not in core_cls.reward_names:
        raise ValueError(
            f"{config.env_id}: reward {config.reward!r} is not declared; declared: {list(core_cls.reward_names)}"
        )
    if config.agent.algo not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {config.agent.algo!r}; known: {sorted(ALGORITHMS)}")
    for name in ("total_timesteps", "eval_every", "eval_episodes", "checkpoint_every", "torch_threads"):
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if not isinstance(config.agent.num_envs, int) or config.agent.num_envs <= 0:
        raise ValueError(f"agent.num_envs must be a positive integer, got {config.agent.num_envs!r}")
    if not isinstance(config.seed, int) or config.seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {config.seed!r}")


def make_training_env(config: TrainConfig) -> ShiftSB3VecEnv:
    vec = ShiftVectorEnv(config.agent.num_envs, "train", task=envs.task(config.env_id), **config.env_params)
    venv = ShiftSB3VecEnv(vec, reward=config.reward)
    venv.seed(config.seed)
    return venv


def build_model(agent: AgentConfig, venv, seed: int, verbose: int = 0):
    policy_kwargs = {
        "features_extractor_class": GridCNN,
        "features_extractor_kwargs": {
            "features_dim": agent.features_dim,
            "channels": tuple(agent.channels),
            "strides": tuple(agent.strides) if agent.strides else None,
            "egocentric": agent.egocentric,
        },
        "normalize_images": False,
    }
    return ALGORITHMS[agent.algo](
        "CnnPolicy",
        venv,
        policy_kwargs=policy_kwargs,
        seed=seed,
        verbose=verbose,
        device="cpu",
        **agent.hyperparams,
    )


def policy_meta(config: TrainConfig, obs_shape) -> dict:
    """What a policy file must match to be loaded: env, params, shapes, network."""
    return {
        "env_id": config.env_id,
        "env_params": config.env_params,
        "obs_shape": list(obs_shape),
        "algo": config.agent.algo,
        "network": {
            "features_dim": config.agent.features_dim,
            "channels": list(config.agent.channels),
            "strides": config.agent.strides,
            "egocentric": config.agent.egocentric,
        },
        "hyperparams": config.agent.hyperparams,
        "seed": config.seed,
        "reward": config.reward,
    }


def load_trained_policy(path: str | Path):
    """Rebuild an SB3 model from a policy file (or run folder) without unpickling code."""
    path = Path(path)
    if (path / "final").is_dir():
        path = path / "final"
    state_dict, meta = read_policy(path)
    try:
        config = TrainConfig(
            env_id=meta["env_id"],
            env_params=meta["env_params"],
            agent=AgentConfig(
                algo=meta["algo"],
                num_envs=1,
                features_dim=meta["network"]["features_dim"],
                channels=meta["network"]["channels"],
                strides=meta["network"].get("strides"),
                egocentric=meta["network"].get("egocentric", False),
                hyperparams=meta.get("hyperparams", {}),
            ),
            seed=meta.get("seed", 0),
        )
    except KeyError as err:
        raise CheckpointError(f"{path}: model.json lacks {err}") from None
    validate(config)
    venv = make_training_env(config)
    if list(venv.observation_space.shape) != list(meta["obs_shape"]):
        raise CheckpointError(
            f"{path} expects observations of shape {meta['obs_shape']}, "
            f"but {config.env_id} with {config.env_params} gives {list(venv.observation_space.shape)}"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # batch-size advice is about training, not loading
        model = build_model(config.agent, venv, config.seed)
    try:
        model.policy.load_state_dict(state_dict)
    except RuntimeError as err:
        raise CheckpointError(f"{path} does not fit its declared network: {err}") from None
    return model, meta


def run_info(config: TrainConfig) -> dict:
    """Seed, package versions and git commit: what reproducing this run needs."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
            check=True,
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain"], capture_output=True, text=True, cwd=Path(__file__).parent
            ).stdout.strip()
        )
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = None, None
    return {
        "seed": config.seed,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": versions,
        "git_commit": commit,
        "git_dirty": dirty,
        "command": " ".join(sys.argv),
    }


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint folder, or the latest one of a run folder; fails naming the path."""
    path = Path(path)
    if (path / "checkpoints").is_dir():
        found = latest_checkpoint(path / "checkpoints")
        if found is not None:
            return found
    if (path / "state.pt").is_file():
        return path
    raise CheckpointError(f"no checkpoint to resume from at {path}")


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line] if path.exists() else []


def train(
    config: TrainConfig,
    run_dir: str | Path,
    evaluate: Callable | None = None,
    record_video: Callable | None = None,
    wandb_run=None,
    fresh: bool = False,
    progress_bar: bool = True,
    verbose: int = 0,
    resume_from: str | Path | None = None,
) -> dict:
    """Train (or resume, or skip if finished) and return the final metrics.

    ``evaluate(model, timesteps) -> rows`` scores the policy on every
    distribution under every declared reward; ``record_video(model, path)``
    writes a shifted-distribution episode.
    """
    validate(config)
    explicit_checkpoint = resolve_checkpoint(resume_from) if resume_from is not None else None
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    config_path, metrics_path = run_dir / "train_config.json", run_dir / "metrics.json"
    if fresh:
        for stale in ("checkpoints", "final", "progress.jsonl", "eval.jsonl", "metrics.json"):
            target = run_dir / stale
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    if config_path.exists():
        previous = json.loads(config_path.read_text())
        if previous != config.to_dict():
            changed = sorted(
                k for k in set(previous) | set(config.to_dict()) if previous.get(k) != config.to_dict().get(k)
            )
            raise ValueError(
                f"{run_dir} holds a run with a different config (changed: {changed}); "
                "use another run folder or fresh=true to start over"
            )
    if metrics_path.exists() and (run_dir / "final" / "model.pt").exists():
        metrics = json.loads(metrics_path.read_text())
        if metrics.get("status") == "done":
            return metrics
    write_json_atomic(config_path, config.to_dict())
    write_json_atomic(run_dir / "run_info.json", run_info(config))

    torch.set_num_threads(config.torch_threads)
    venv = make_training_env(config)
    model = build_model(config.agent, venv, config.seed, verbose)
    meta = policy_meta(config, venv.observation_space.shape)
    checkpoints = run_dir / "checkpoints"
    progress_path, eval_path = run_dir / "progress.jsonl", run_dir / "eval.jsonl"
    last_eval = -1
    resumed_from = None
    checkpoint = explicit_checkpoint or latest_checkpoint(checkpoints)
    if checkpoint is not None:
        ckpt_meta = load_training_checkpoint(checkpoint, model, venv, meta)
        last_eval = ckpt_meta.get("last_eval", -1)
        resumed_from = model.num_timesteps
        truncate_jsonl(progress_path, model.num_timesteps)
        truncate_jsonl(eval_path, model.num_timesteps, key="timesteps")
    else:
        for stale in (progress_path, eval_path):
            stale.unlink(missing_ok=True)

    formats = [JsonlWriter(progress_path)]
    if verbose:
        formats.append(HumanOutputFormat(sys.stdout))
    if wandb_run is not None:
        formats.append(WandbWriter(wandb_run))
    model.set_logger(Logger(folder=str(run_dir), output_formats=formats))

    callbacks = [EpisodeRewardStats(venv.env.core.reward_names)]
    evaluation = None
    if evaluate is not None:
        evaluation = PeriodicEvaluation(evaluate, config.eval_every, eval_path, last_step=last_eval)
        callbacks.append(evaluation)
    callbacks.append(
        Checkpointing(
            checkpoints,
            venv,
            config.checkpoint_every,
            meta,
            state=lambda: {"last_eval": evaluation.last_step if evaluation else -1},
        )
    )

    start = time.perf_counter()
    remaining = config.total_timesteps - model.num_timesteps
    if remaining > 0:
        model.learn(
            remaining,
            callback=CallbackList(callbacks),
            reset_num_timesteps=resumed_from is None,
            progress_bar=progress_bar,
        )
    wall = time.perf_counter() - start
    final_eval = []
    if evaluation is not None:
        if evaluation.last_step != model.num_timesteps:
            evaluation.run(model.num_timesteps)
            model.logger.dump(model.num_timesteps)
        final_eval = [r for r in _read_jsonl(eval_path) if r["timesteps"] == model.num_timesteps]
    save_policy(run_dir / "final", model, meta)
    video = None
    if record_video is not None:
        video = str(record_video(model, run_dir / "video"))
    jsonl_to_csv(progress_path, run_dir / "progress.csv")
    jsonl_to_csv(eval_path, run_dir / "eval.csv")
    metrics = {
        "status": "done",
        "env_id": config.env_id,
        "seed": config.seed,
        "total_timesteps": int(model.num_timesteps),
        "resumed_from": resumed_from,
        "wall_seconds_this_session": wall,
        "steps_per_second_this_session": (model.num_timesteps - (resumed_from or 0)) / max(wall, 1e-9),
        "final_eval": final_eval,
        "video": video,
    }
    write_json_atomic(metrics_path, metrics)
    model.logger.close()
    venv.close()
    return metrics
