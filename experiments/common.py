"""Config-to-library wiring shared by the entry points (no logic a test would import)."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from agents.training import AgentConfig, TrainConfig

ENV_META_KEYS = ("name", "id", "tag", "total_timesteps")
CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def load_env_config(name: str) -> DictConfig:
    """``configs/env/<name>.yaml``, resolved; fails naming the unknown env."""
    path = CONFIGS / "env" / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (CONFIGS / "env").glob("*.yaml"))
        raise ValueError(f"unknown env {name!r}; known: {known}")
    root = OmegaConf.create({"env": OmegaConf.load(path)})
    return OmegaConf.create(OmegaConf.to_container(root, resolve=True)["env"])


def env_params(env_cfg: DictConfig) -> dict:
    """The env config minus its meta keys: the training distribution's parameters."""
    return {k: v for k, v in OmegaConf.to_container(env_cfg, resolve=True).items() if k not in ENV_META_KEYS}


def train_config(cfg: DictConfig, seed: int | None = None, env_overrides: dict | None = None) -> TrainConfig:
    """A TrainConfig from a config holding ``env``, ``agent``, ``train``, ``seed``, ``total_timesteps``."""
    agent = OmegaConf.to_container(cfg.agent, resolve=True)
    agent.pop("name", None)
    return TrainConfig(
        env_id=cfg.env.id,
        env_params={**env_params(cfg.env), **(env_overrides or {})},
        agent=AgentConfig(**agent),
        seed=cfg.seed if seed is None else seed,
        total_timesteps=cfg.total_timesteps,
        reward=cfg.train.reward,
        eval_every=cfg.train.eval_every,
        eval_episodes=cfg.train.eval_episodes,
        checkpoint_every=cfg.train.checkpoint_every,
        torch_threads=cfg.train.torch_threads,
    )


@contextmanager
def clear_errors():
    """Bad input ends the program with its one-line message and exit code 2, no traceback."""
    try:
        yield
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
