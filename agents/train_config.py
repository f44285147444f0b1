"""The training config: what one run is, checked before any work, and its identity.

:class:`TrainConfig` (with its learner, :class:`AgentConfig`) is everything
that changes a run's result: env and its train-distribution params, the
learner and its hyper-parameters, budget, reward, seed. :func:`validate`
raises ``ValueError`` naming the first bad value, before any folder is made
or any env stepped: unknown env, distribution or reward, an impossible level
size, a bad hyper-parameter, or a network that cannot take the env's
observation (convolutions need a ``(C, H, W)`` grid).

A run's identity is its config: :func:`run_name` is a readable tag plus a
digest of the whole training config but the seed, with numbers compared by
value (``0`` and ``0.0`` are one run), so a different budget or
hyper-parameter is a different run folder. Keys added to the config later
are left out of the digest at the value older configs meant
(:data:`LATER_DEFAULTS`), so older run folders keep their names.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import numbers
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3 import A2C, PPO

import envs
from agents.networks import is_grid

ALGORITHMS = {"ppo": PPO, "a2c": A2C}


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
    distributions: list[str] = field(default_factory=lambda: ["train"])
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
    distributions = list(config.distributions)
    if not distributions or len(set(distributions)) != len(distributions):
        raise ValueError(
            f"distributions must name at least one distribution, none twice; got {distributions!r}"
        )
    for d in distributions:
        if d == "train":
            continue
        if d not in core_cls.distributions:
            raise ValueError(
                f"{config.env_id}: unknown distribution {d!r}; known: {list(core_cls.distributions)}"
            )
        core_cls.resolve_params(d, core_cls.shared_params(config.env_params))
    if config.agent.num_envs < len(distributions):
        raise ValueError(
            f"agent.num_envs={config.agent.num_envs} is fewer than the {len(distributions)} distributions"
        )
    for name in ("total_timesteps", "eval_every", "eval_episodes", "checkpoint_every", "torch_threads"):
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if not isinstance(config.agent.num_envs, int) or config.agent.num_envs <= 0:
        raise ValueError(f"agent.num_envs must be a positive integer, got {config.agent.num_envs!r}")
    if not isinstance(config.seed, int) or config.seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {config.seed!r}")
    validate_agent(config.agent)
    validate_learner(config)


# Hyper-parameters of the SB3 algorithms, checked before any work: (kind, lower bound, upper bound).
# "int"/"number" bounds are inclusive; "positive" means > 0; None: no bound.
HYPERPARAM_RULES: dict[str, tuple] = {
    "learning_rate": ("number", "positive", None),
    "n_steps": ("int", 1, None),
    "batch_size": ("int", 1, None),
    "n_epochs": ("int", 1, None),
    "gamma": ("number", 0, 1),
    "gae_lambda": ("number", 0, 1),
    "clip_range": ("number", "positive", None),
    "clip_range_vf": ("number?", "positive", None),
    "normalize_advantage": ("bool", None, None),
    "ent_coef": ("number", 0, None),
    "vf_coef": ("number", 0, None),
    "max_grad_norm": ("number", "positive", None),
    "use_sde": ("bool", None, None),
    "sde_sample_freq": ("int", -1, None),
    "target_kl": ("number?", "positive", None),
    "stats_window_size": ("int", 1, None),
    "rms_prop_eps": ("number", "positive", None),
    "use_rms_prop": ("bool", None, None),
}
# Arguments the suite sets itself (network, env, seed, device) or that a config cannot express.
RESERVED_ARGS = {
    "self",
    "policy",
    "env",
    "policy_kwargs",
    "seed",
    "verbose",
    "device",
    "tensorboard_log",
    "_init_setup_model",
    "rollout_buffer_class",
    "rollout_buffer_kwargs",
}


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and np.isfinite(value)


def _check_hyperparam(name: str, value) -> str | None:
    kind, low, high = HYPERPARAM_RULES[name]
    if kind == "number?" and value is None:
        return None
    if kind == "bool":
        return None if isinstance(value, bool) else "must be true or false"
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            return f"must be an integer >= {low}"
    elif not _is_number(value):
        return "must be a number" + (" > 0" if low == "positive" else "")
    if low == "positive" and not value > 0:
        return "must be > 0"
    if isinstance(low, (int, float)) and value < low:
        return f"must be >= {low}" if high is None else f"must be in [{low}, {high}]"
    if high is not None and value > high:
        return f"must be in [{low}, {high}]"
    return None


def validate_agent(agent: AgentConfig) -> None:
    """Raise ``ValueError`` naming the first bad network setting or hyper-parameter of ``agent``."""
    if agent.algo not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {agent.algo!r}; known: {sorted(ALGORITHMS)}")
    if (
        isinstance(agent.features_dim, bool)
        or not isinstance(agent.features_dim, int)
        or agent.features_dim <= 0
    ):
        raise ValueError(f"agent.features_dim must be a positive integer, got {agent.features_dim!r}")
    for name in ("channels", "strides"):
        value = getattr(agent, name)
        if name == "strides" and value is None:
            continue
        if not isinstance(value, (list, tuple)) or any(
            isinstance(v, bool) or not isinstance(v, int) or v <= 0 for v in value
        ):
            raise ValueError(
                f"agent.{name} must be a list of positive integers (empty: no convolutions), got {value!r}"
            )
    if agent.strides is not None and len(agent.strides) != len(agent.channels):
        raise ValueError(
            f"agent.strides {list(agent.strides)} must have one entry per layer of agent.channels {list(agent.channels)}"
        )
    if not isinstance(agent.egocentric, bool):
        raise ValueError(f"agent.egocentric must be true or false, got {agent.egocentric!r}")
    if not isinstance(agent.hyperparams, dict):
        raise ValueError(f"agent.hyperparams must be a mapping, got {agent.hyperparams!r}")
    accepted = set(inspect.signature(ALGORITHMS[agent.algo].__init__).parameters) - RESERVED_ARGS
    for name, value in agent.hyperparams.items():
        if name in RESERVED_ARGS:
            raise ValueError(f"agent.hyperparams.{name} is set by the suite and cannot be given")
        if name not in accepted:
            raise ValueError(
                f"agent.hyperparams.{name}={value!r}: {agent.algo} has no such hyper-parameter; "
                f"known: {sorted(accepted)}"
            )
        problem = _check_hyperparam(name, value) if name in HYPERPARAM_RULES else None
        if problem:
            raise ValueError(f"agent.hyperparams.{name} {problem}, got {value!r}")


def observation_space(config: TrainConfig) -> gym.Space:
    """The observation space of one training-distribution level of ``config``'s env."""
    return envs.task(config.env_id)(1, "train", **config.env_params).single_observation_space()


def validate_learner(config: TrainConfig, space: gym.Space | None = None) -> None:
    """Raise ``ValueError`` when the agent's network cannot take the env's observations.

    A ``(C, H, W)`` grid takes any network; any other Box gets SB3's MlpPolicy,
    so convolutions (``agent.channels``) asked for on it are refused rather
    than silently dropped. ``egocentric`` and ``features_dim`` do not apply to
    the MLP; every shipped agent sets them, so they are ignored, not refused.
    """
    space = observation_space(config) if space is None else space
    if not isinstance(space, gym.spaces.Box):
        raise ValueError(f"{config.env_id}: observations are {space}; the learners take a Box of numbers")
    if not is_grid(space) and config.agent.channels:
        raise ValueError(
            f"agent.channels={list(config.agent.channels)}: convolutions need a (C, H, W) grid, but "
            f"{config.env_id} observes shape {tuple(space.shape)}; use a learner without convolutions "
            "(agent=ppo, or agent.channels=[]), which trains SB3's MlpPolicy on it"
        )


def canonical(value):
    """``value`` with numbers by value: integral floats become ints (``0.0 -> 0``), recursively."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {str(k): canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    return value


def canonical_json(value) -> str:
    return json.dumps(canonical(value), sort_keys=True, separators=(",", ":"))


# Keys added to TrainConfig later, with the value a config saved before them meant.
LATER_DEFAULTS = {"distributions": ["train"]}


# Not part of a run's identity: checkpoints are exact, so how often they are taken changes no result.
FREE_KEYS = ("checkpoint_every",)


def config_digest(config: TrainConfig) -> str:
    """8 hex digits of the training config but the seed and :data:`FREE_KEYS`, numbers by value."""
    data = config.to_dict()
    for key in ("seed", *FREE_KEYS):
        data.pop(key)
    for key, default in LATER_DEFAULTS.items():  # run names from before the key stay valid
        if data[key] == default:
            data.pop(key)
    return hashlib.sha256(canonical_json(data).encode()).hexdigest()[:8]


def run_name(tag: str, config: TrainConfig) -> str:
    """``<tag>-<digest>-seed<seed>``: runs of one config differ only in the seed."""
    return f"{tag}-{config_digest(config)}-seed{config.seed}"
