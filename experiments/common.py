"""Config-to-library wiring shared by the entry points (no logic a test would import)."""

from __future__ import annotations

import importlib.util
import sys
from contextlib import contextmanager
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

import envs
from agents.training import AgentConfig, TrainConfig

ENV_META_KEYS = ("name", "id", "tag", "total_timesteps", "module")
CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def config_dirs() -> list[Path]:
    """The repo's ``configs/`` and every ``hydra.searchpath`` entry of the running app (users' configs)."""
    dirs = [CONFIGS]
    try:
        from hydra.core.hydra_config import HydraConfig

        searchpath = list(HydraConfig.get().searchpath) if HydraConfig.initialized() else []
    except ValueError:
        searchpath = []
    for entry in searchpath:
        entry = str(entry)
        if entry.startswith("file://"):
            dirs.append(Path(entry[len("file://") :]))
        elif entry.startswith("pkg://"):
            spec = importlib.util.find_spec(entry[len("pkg://") :].replace("/", "."))
            if spec is not None and spec.submodule_search_locations:
                dirs.extend(Path(p) for p in spec.submodule_search_locations)
        else:
            dirs.append(Path(entry))
    return dirs


def load_env_config(name: str) -> DictConfig:
    """``env/<name>.yaml`` from the repo's configs or a ``hydra.searchpath`` entry, resolved.

    Its ``module`` (a user's package that registers the env) is imported.
    Fails naming the unknown env and where it looked.
    """
    dirs = config_dirs()
    path = next((d / "env" / f"{name}.yaml" for d in dirs if (d / "env" / f"{name}.yaml").is_file()), None)
    if path is None:
        known = sorted({p.stem for d in dirs for p in (d / "env").glob("*.yaml")})
        raise ValueError(f"unknown env {name!r}; known: {known} (searched {[str(d) for d in dirs]})")
    root = OmegaConf.create({"env": OmegaConf.load(path)})
    env_cfg = OmegaConf.create(OmegaConf.to_container(root, resolve=True)["env"])
    import_env_modules(env_cfg)
    return env_cfg


def import_env_modules(cfg: DictConfig) -> None:
    """Import the env config's ``module`` and the app's ``env_modules`` (users' packages)."""
    env_cfg = cfg.get("env") if "id" not in cfg else cfg
    if env_cfg is not None and env_cfg.get("module"):
        envs.import_env_module(env_cfg.module)
    for module in cfg.get("env_modules", None) or []:
        envs.import_env_module(module)


def env_params(env_cfg: DictConfig) -> dict:
    """The env config minus its meta keys: the training distribution's parameters."""
    return {k: v for k, v in OmegaConf.to_container(env_cfg, resolve=True).items() if k not in ENV_META_KEYS}


def train_config(cfg: DictConfig, seed: int | None = None, env_overrides: dict | None = None) -> TrainConfig:
    """A TrainConfig from a config holding ``env``, ``agent``, ``train``, ``seed``, ``total_timesteps``."""
    import_env_modules(cfg)
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
