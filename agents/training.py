"""Train an SB3 agent on a shift environment, resumably, into one run folder.

``train(config, run_dir)`` is the whole path: validate everything first (bad
input stops before any work), take the run folder's lock (one writer per
run), refuse a folder holding another config before writing anything, resume
from the folder's latest checkpoint if there is one, learn with periodic
shift evaluation and checkpoints, then save the final policy, a final
checkpoint (from which a longer budget continues) and metrics. Evaluation and
videos are injected as functions so this layer does not depend on the judge.

A run's identity is its config: :func:`run_name` is a readable tag plus a
digest of the whole training config but the seed, with numbers compared by
value (``0`` and ``0.0`` are one run), so a different budget or
hyper-parameter is a different run folder.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import numbers
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.callbacks import CallbackList
from stable_baselines3.common.logger import HumanOutputFormat, Logger

import envs
from agents.callbacks import Checkpointing, EpisodeRewardStats, PeriodicEvaluation, ProgressLog, StopRequest
from agents.checkpoints import (
    CheckpointError,
    latest_checkpoint,
    load_training_checkpoint,
    read_policy,
    save_policy,
    write_json_atomic,
    writing,
)
from agents.networks import GridCNN
from agents.run_logging import JsonlWriter, WandbWriter, jsonl_to_csv, truncate_jsonl
from agents.vec_env import MixtureVectorEnv, ShiftSB3VecEnv
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
    if not distributions or distributions[0] != "train" or len(set(distributions)) != len(distributions):
        raise ValueError(f"distributions must start with 'train' and not repeat, got {distributions!r}")
    for d in distributions[1:]:
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


def make_training_env(config: TrainConfig) -> ShiftSB3VecEnv:
    """The training batch; with several ``distributions``, the rows split evenly between them."""
    task = envs.task(config.env_id)
    if list(config.distributions) == ["train"]:
        vec = ShiftVectorEnv(config.agent.num_envs, "train", task=task, **config.env_params)
    else:
        k = len(config.distributions)
        sizes = [config.agent.num_envs // k + (i < config.agent.num_envs % k) for i in range(k)]
        vec = MixtureVectorEnv(
            [
                ShiftVectorEnv(
                    n,
                    d,
                    task=task,
                    **(config.env_params if d == "train" else task.shared_params(config.env_params)),
                )
                for n, d in zip(sizes, config.distributions, strict=True)
            ]
        )
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
    """What a policy file must match to be loaded: env, params, shapes, network (and a non-default mixture)."""
    meta = {
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
    if list(config.distributions) != LATER_DEFAULTS["distributions"]:
        meta["distributions"] = list(config.distributions)
    return meta


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


# ------------------------------------------------------------------ one writer per run
LOCK_FILE = "run.lock"
_HELD: dict[str, int] = {}  # locks this process holds (re-entrant), by resolved path


class RunBusyError(ValueError):
    """Another live process is training into this run folder."""


def _proc_start(pid: int) -> str | None:
    """The process's start time in clock ticks (tells a live process from a reused pid), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


def _alive(holder: dict) -> bool:
    pid = holder.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except (OSError, IndexError):
        state = ""
    if state in ("Z", "X"):
        return False
    started = holder.get("proc_start")
    return not (started and _proc_start(pid) not in (None, started))


def _read_holder(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {"pid": None, "host": "?", "started": "?"}
    return data if isinstance(data, dict) else {"pid": None, "host": "?", "started": "?"}


def _slurm_job() -> str | None:
    """This process's Slurm job (``<array job>_<task>`` for an array task), or None outside Slurm."""
    env = os.environ
    if env.get("SLURM_ARRAY_JOB_ID") and env.get("SLURM_ARRAY_TASK_ID"):
        return f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    return env.get("SLURM_JOB_ID")


def _slurm_job_gone(job: str) -> bool:
    """True when Slurm says ``job`` is not running (finished, failed, cancelled, unknown)."""
    try:
        out = subprocess.run(
            ["squeue", "-h", "-j", job, "-o", "%T"], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.TimeoutExpired):
        return False  # cannot ask Slurm: assume it runs
    if out.returncode != 0:
        return "invalid job id" in out.stderr.lower()
    states = out.stdout.split()
    return not any(
        state in ("RUNNING", "PENDING", "COMPLETING", "CONFIGURING", "SUSPENDED") for state in states
    )


def _stale(holder: dict, host: str) -> str | None:
    """Why the lock ``holder`` is stale (its process is gone), or None when it may be alive."""
    who = f"pid {holder.get('pid')} on {holder.get('host')} (since {holder.get('started')})"
    if holder.get("host") == host:
        return None if _alive(holder) else f"{who} is gone"
    job = holder.get("slurm_job")
    if job and job == _slurm_job():
        return f"{who} was this Slurm job ({job}) before it was requeued"
    if job and _slurm_job_gone(str(job)):
        return f"{who} was Slurm job {job}, which is no longer running"
    return None


def _create_exclusive(source: Path, path: Path) -> None:
    """Create ``path`` with ``source``'s content, atomically; ``FileExistsError`` if it exists."""
    try:
        os.link(source, path)  # the content is there the moment the name is
    except FileExistsError:
        raise
    except OSError:  # a filesystem without hard links
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        with os.fdopen(fd, "w") as f:
            f.write(source.read_text())


@contextmanager
def run_lock(run_dir: str | Path, log: Callable[[str], None] | None = None) -> Iterator[Path]:
    """Hold ``run_dir/run.lock`` (pid, host, start time) while training into ``run_dir``.

    A second process exits at once with :class:`RunBusyError` naming the holder;
    a lock whose process is gone is taken over, and said so: on the same host
    by its pid, from another host when it was a Slurm job that is no longer
    running (or this very job, requeued). Re-entrant within one process.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_FILE
    key = str(path.resolve())
    if key in _HELD:
        _HELD[key] += 1
        try:
            yield path
        finally:
            _HELD[key] -= 1
        return
    host, pid = socket.gethostname(), os.getpid()
    me = {
        "pid": pid,
        "host": host,
        "started": datetime.now().isoformat(timespec="seconds"),
        "proc_start": _proc_start(pid),
        "slurm_job": _slurm_job(),
        "command": " ".join(sys.argv),
    }
    tmp = run_dir / f".{LOCK_FILE}.{host}.{pid}.tmp"
    with writing(path, tmp):
        tmp.write_text(json.dumps(me))
    try:
        for _ in range(20):
            try:
                _create_exclusive(tmp, path)
                break
            except FileExistsError:
                holder = _read_holder(path)
                if holder is None:
                    continue  # released meanwhile
                reason = _stale(holder, host)
                if reason:
                    stale = run_dir / f".{LOCK_FILE}.stale.{pid}"
                    try:
                        os.replace(path, stale)
                    except FileNotFoundError:
                        continue
                    if _read_holder(stale) != holder:  # another process took it over first: put it back
                        try:
                            os.link(stale, path)
                        except FileExistsError:
                            pass
                        stale.unlink(missing_ok=True)
                        continue
                    stale.unlink(missing_ok=True)
                    message = f"taking over the stale lock of {run_dir}: {reason}"
                    print(message, file=sys.stderr, flush=True)
                    if log is not None:
                        log(message)
                    continue
                where = (
                    f"pid {holder.get('pid')} on host {holder.get('host')} (since {holder.get('started')})"
                )
                if holder.get("slurm_job"):
                    where += f", Slurm job {holder['slurm_job']}"
                hint = "wait for it to finish or stop it; the same command then resumes"
                if holder.get("host") != host:
                    hint += f"; if that process is gone, delete {path}"
                raise RunBusyError(f"{run_dir} is being trained by {where}; {hint}") from None
        else:
            raise RunBusyError(f"{run_dir}: could not take the lock {path}")
    finally:
        tmp.unlink(missing_ok=True)
    _HELD[key] = 1
    try:
        yield path
    finally:
        del _HELD[key]
        holder = _read_holder(path)
        if holder is not None and holder.get("pid") == pid and holder.get("host") == host:
            path.unlink(missing_ok=True)


# ------------------------------------------------------------------ the run folder
RESULT_NAMES = (
    "checkpoints",
    "final",
    "progress.jsonl",
    "progress.csv",
    "eval.jsonl",
    "eval.csv",
    "metrics.json",
    "train_config.json",
    "run_info.json",
    "config.yaml",
    "train.log",
    "video",
    "wandb",
    "wandb_id.txt",
)


@dataclass
class RunStart:
    """What a run folder holds for a config: a finished run, or where training starts from."""

    finished: dict | None = None
    checkpoint: Path | None = None
    history_from: Path | None = None  # a shorter run whose curves the extended run continues


# Keys added to TrainConfig later, with the value a config saved before them meant.
LATER_DEFAULTS = {"distributions": ["train"]}


def _differences(previous: dict, current: dict) -> list[str]:
    def value(config, key):
        return config.get(key, LATER_DEFAULTS.get(key))

    return sorted(
        k
        for k in set(previous) | set(current)
        if k not in FREE_KEYS and canonical_json(value(previous, k)) != canonical_json(value(current, k))
    )


def finished_metrics(run_dir: Path) -> dict | None:
    """The metrics of a run folder whose training is done (final model saved), else None."""
    metrics_path = run_dir / "metrics.json"
    if metrics_path.exists() and (run_dir / "final" / "model.pt").exists():
        try:
            metrics = json.loads(metrics_path.read_text())
        except ValueError:
            return None
        if metrics.get("status") == "done":
            return metrics
    return None


def _shorter_runs(run_dir: Path, config: TrainConfig) -> list[tuple[int, Path]]:
    """Runs beside ``run_dir`` (and itself) of the same config and seed with a smaller budget."""
    found = []
    want = config.to_dict()
    candidates = (
        {run_dir, *run_dir.parent.glob(f"*-seed{config.seed}")} if run_dir.parent.is_dir() else {run_dir}
    )
    for folder in candidates:
        try:
            previous = json.loads((folder / "train_config.json").read_text())
        except (OSError, ValueError):
            continue
        if (
            _differences(previous, want) == ["total_timesteps"]
            and previous["total_timesteps"] < config.total_timesteps
        ):
            try:
                if latest_checkpoint(folder / "checkpoints") is not None:
                    found.append((int(previous["total_timesteps"]), folder))
            except CheckpointError:
                continue
    return sorted(found, key=lambda item: item[0])


def prepare_run(
    config: TrainConfig, run_dir: str | Path, fresh: bool = False, extend: bool = False
) -> RunStart:
    """Check what ``run_dir`` holds (under its lock); writes nothing but ``fresh``'s deletions.

    Refuses a folder holding another config, naming the changed keys and the
    way out; returns a finished run's metrics; with ``extend``, a run of the
    same config and a smaller budget (this folder or a sibling) is continued
    from its latest (final) checkpoint.
    """
    run_dir = Path(run_dir)
    if fresh:
        for name in RESULT_NAMES:
            target = run_dir / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
    config_path = run_dir / "train_config.json"
    own = None
    if config_path.exists():
        previous = json.loads(config_path.read_text())
        changed = _differences(previous, config.to_dict())
        budget_only = changed == ["total_timesteps"] and previous["total_timesteps"] < config.total_timesteps
        if changed and not (budget_only and extend):
            way_out = "use another run folder (run_dir=...) or train.fresh=true to delete it and start over"
            if budget_only:
                way_out = "train.extend=true continues it to the new budget; or " + way_out
            raise ValueError(f"{run_dir} holds a run with a different config (changed: {changed}); {way_out}")
        if not changed:
            finished = finished_metrics(run_dir)
            if finished is not None:
                return RunStart(finished=finished)
        own = latest_checkpoint(run_dir / "checkpoints")
        if own is not None:
            return RunStart(checkpoint=own)
    if extend:
        shorter = [item for item in _shorter_runs(run_dir, config) if item[1] != run_dir]
        if not shorter:
            raise ValueError(
                f"train.extend=true: no run of this config (seed {config.seed}) with a smaller budget "
                f"and a checkpoint in {run_dir} or beside it in {run_dir.parent}"
            )
        source = shorter[-1][1]
        return RunStart(checkpoint=latest_checkpoint(source / "checkpoints"), history_from=source)
    return RunStart()


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
    extend: bool = False,
    handle_signals: bool = False,
) -> dict:
    """Train (or resume, or skip if finished) and return the final metrics.

    ``evaluate(model, timesteps) -> rows`` scores the policy on every
    distribution under every declared reward; ``record_video(model, path)``
    writes a shifted-distribution episode. With ``handle_signals`` (the train
    app), Ctrl-C or SIGTERM saves a checkpoint at the next rollout start and
    raises :class:`TrainingInterrupted`; a second Ctrl-C stops at once.
    """
    validate(config)
    explicit_checkpoint = resolve_checkpoint(resume_from) if resume_from is not None else None
    run_dir = Path(run_dir)
    with run_lock(run_dir):
        start = prepare_run(config, run_dir, fresh=fresh, extend=extend and explicit_checkpoint is None)
        if start.finished is not None:
            return start.finished
        if explicit_checkpoint is not None and start.checkpoint is None:
            start.checkpoint = explicit_checkpoint
        return _train_locked(
            config, run_dir, start, evaluate, record_video, wandb_run, progress_bar, verbose, handle_signals
        )


class TrainingInterrupted(Exception):
    """Training stopped on a signal; ``step`` is where the same command resumes from."""

    def __init__(self, step: int, checkpoint_saved: bool = True):
        super().__init__(f"interrupted at step {step}; the same command resumes")
        self.step, self.checkpoint_saved = step, checkpoint_saved


@contextmanager
def _stop_on_signals(stop: StopRequest, enabled: bool) -> Iterator[None]:
    """First SIGINT/SIGTERM: request a stop at the next checkpoint; a second SIGINT: KeyboardInterrupt."""
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, _frame):
        if stop.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop.requested = True

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _train_locked(
    config: TrainConfig,
    run_dir: Path,
    start: RunStart,
    evaluate: Callable | None,
    record_video: Callable | None,
    wandb_run,
    progress_bar: bool,
    verbose: int,
    handle_signals: bool,
) -> dict:
    config_path, metrics_path = run_dir / "train_config.json", run_dir / "metrics.json"
    progress_path, eval_path = run_dir / "progress.jsonl", run_dir / "eval.jsonl"
    if start.history_from is not None and start.checkpoint is not None:
        for name in ("progress.jsonl", "eval.jsonl"):
            if (start.history_from / name).exists():
                shutil.copyfile(start.history_from / name, run_dir / name)
    metrics_path.unlink(missing_ok=True)  # an extended run is not done any more
    write_json_atomic(config_path, config.to_dict())
    write_json_atomic(run_dir / "run_info.json", run_info(config))

    torch.set_num_threads(config.torch_threads)
    venv = make_training_env(config)
    model = build_model(config.agent, venv, config.seed, verbose)
    meta = policy_meta(config, venv.observation_space.shape)
    checkpoints = run_dir / "checkpoints"
    last_eval = -1
    resumed_from = None
    progress = ProgressLog(run_dir / "train.log", config.total_timesteps, config.reward)
    if start.checkpoint is not None:
        ckpt_meta = load_training_checkpoint(start.checkpoint, model, venv, meta)
        last_eval = ckpt_meta.get("last_eval", -1)
        resumed_from = model.num_timesteps
        truncate_jsonl(progress_path, model.num_timesteps)
        truncate_jsonl(eval_path, model.num_timesteps, key="timesteps")
        if start.history_from is not None:
            progress.note(f"continuing {start.history_from} from its checkpoint at step {resumed_from}")
    else:
        for stale in (progress_path, eval_path):
            stale.unlink(missing_ok=True)

    formats = [JsonlWriter(progress_path)]
    if verbose:
        formats.append(HumanOutputFormat(sys.stdout))
    if wandb_run is not None:
        formats.append(WandbWriter(wandb_run))
    model.set_logger(Logger(folder=str(run_dir), output_formats=formats))

    stop = StopRequest()
    callbacks = [EpisodeRewardStats(venv.env.core.reward_names)]
    evaluation = None
    if evaluate is not None:
        evaluation = PeriodicEvaluation(
            evaluate, config.eval_every, eval_path, last_step=last_eval, stop=stop, note=progress.note
        )
        callbacks.append(evaluation)
    checkpointing = Checkpointing(
        checkpoints,
        venv,
        config.checkpoint_every,
        meta,
        state=lambda: {"last_eval": evaluation.last_step if evaluation else -1},
        stop=stop,
    )
    callbacks += [checkpointing, progress]

    started = time.perf_counter()
    remaining = config.total_timesteps - model.num_timesteps
    with _stop_on_signals(stop, handle_signals):
        try:
            if remaining > 0:
                model.learn(
                    remaining,
                    callback=CallbackList(callbacks),
                    reset_num_timesteps=resumed_from is None,
                    progress_bar=progress_bar,
                )
            wall = time.perf_counter() - started
            if evaluation is not None and not stop.requested and evaluation.last_step != model.num_timesteps:
                evaluation.run(model.num_timesteps)
                model.logger.dump(model.num_timesteps)
            if stop.saved_at is None and checkpointing.last_saved != model.num_timesteps:
                checkpointing.model = model
                checkpointing.save()  # the final state: a longer budget (train.extend) continues from here
        except KeyboardInterrupt:
            progress.note(f"interrupted at step {model.num_timesteps} (second Ctrl-C: no new checkpoint)")
            raise TrainingInterrupted(model.num_timesteps, checkpoint_saved=False) from None
        if stop.requested:
            step = stop.saved_at if stop.saved_at is not None else model.num_timesteps
            progress.note(f"interrupted at step {step}; checkpoint saved, the same command resumes")
            model.logger.close()
            venv.close()
            raise TrainingInterrupted(step)
    final_eval = (
        [r for r in _read_jsonl(eval_path) if r["timesteps"] == model.num_timesteps] if evaluation else []
    )
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
    progress.note(f"done at step {model.num_timesteps} ({wall:.0f} s this session)")
    model.logger.close()
    venv.close()
    return metrics
