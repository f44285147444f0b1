"""Config-to-library wiring shared by the entry points (no logic a test would import)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

from hydra.core.hydra_config import HydraConfig
from hydra.errors import CompactHydraException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

import envs
from agents.external import policy_from_spec
from agents.training import AgentConfig, TrainConfig
from evaluation.sampled import REFERENCE_SEED, ReferenceTrainer, SampledReferences

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


def load_env_config(name: str, overrides: dict | None = None) -> DictConfig:
    """``env/<name>.yaml`` from the repo's configs or a ``hydra.searchpath`` entry, with
    ``overrides`` set before it is resolved (so its tag follows them).

    Its ``module`` (a user's package that registers the env) is imported.
    Fails naming the unknown env and where it looked.
    """
    dirs = config_dirs()
    path = next((d / "env" / f"{name}.yaml" for d in dirs if (d / "env" / f"{name}.yaml").is_file()), None)
    if path is None:
        known = sorted({p.stem for d in dirs for p in (d / "env").glob("*.yaml")})
        raise ValueError(f"unknown env {name!r}; known: {known} (searched {[str(d) for d in dirs]})")
    root = OmegaConf.create({"env": OmegaConf.load(path)})
    for key, value in (overrides or {}).items():
        root.env[key] = value
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
        distributions=list(cfg.train.get("distributions", ["train"])),
        eval_every=cfg.train.eval_every,
        eval_episodes=cfg.train.eval_episodes,
        checkpoint_every=cfg.train.checkpoint_every,
        torch_threads=cfg.train.torch_threads,
    )


class JobError(CompactHydraException):
    """A multirun job's failure, raised (never ``sys.exit``): every launcher then records it as the
    job's result and the sweep ends with this one message (Slurm jobs included)."""


def in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def job_label() -> str:
    """``job <id> (<overrides>), log: <path>``: which job of a sweep this is and where its log is."""
    hc = HydraConfig.get()
    label = f"job #{hc.job.num} ({' '.join(hc.overrides.task)})"
    if os.environ.get("SUBMITIT_EXECUTOR") or os.environ.get("SLURM_JOB_ID"):
        try:
            import submitit

            env = submitit.JobEnvironment()
            label = f"job {env.job_id} ({' '.join(hc.overrides.task)}), log {env.paths.stderr}"
        except Exception:  # noqa: BLE001 - naming the job must not hide its error
            pass
    return label


def fail(message: str, code: int = 2, prefix: str = "error: ") -> NoReturn:
    """One line and exit ``code``; inside a multirun job, raise :class:`JobError` naming the job."""
    if in_multirun():
        line = f"{job_label()} FAILED: {message}"
        listing = _record_failure(line)
        raise JobError(line + (f"\n(every failed job of this sweep: {listing})" if listing else ""))
    _remove_stub_output_dir()
    print(f"{prefix}{message}", file=sys.stderr)
    sys.exit(code)


def _record_failure(line: str) -> Path | None:
    """Append a failed job's line to ``<sweep dir>/failed_jobs.txt``: the sweep names only its first."""
    try:
        path = Path(HydraConfig.get().sweep.dir) / "failed_jobs.txt"
        with open(path, "a") as f:  # one short O_APPEND write per job
            f.write(line + "\n")
        return path
    except OSError:
        return None


def _remove_stub_output_dir() -> None:
    """A command refused before any work leaves no folder: drop Hydra's output dir if it holds only Hydra's files."""
    if not HydraConfig.initialized():
        return
    hc = HydraConfig.get()
    out = Path(hc.runtime.output_dir)
    if not out.is_dir() or out.resolve() == Path.cwd().resolve():
        return
    own = {hc.output_subdir, f"{hc.job.name}.log"} - {None}
    entries = list(out.iterdir())
    if (
        entries
        and all(p.name in own for p in entries)
        and all(p.is_dir() or p.stat().st_size == 0 for p in entries)
    ):
        shutil.rmtree(out, ignore_errors=True)
    elif not entries:
        out.rmdir()
    else:
        return
    for parent in out.parents:  # empty folders Hydra made above it, up to the working directory
        if parent.resolve() == Path.cwd().resolve() or Path.cwd().resolve() not in parent.resolve().parents:
            break
        try:
            parent.rmdir()
        except OSError:
            break


@contextmanager
def clear_errors():
    """Bad input ends the program with its one-line message and exit code 2, no traceback
    (in a multirun job it raises :class:`JobError` instead: a job never exits)."""
    try:
        yield
    except (ValueError, FileNotFoundError) as err:
        fail(str(err), 2)


def env_config_of(env_id: str) -> DictConfig | None:
    """The env config (``env/<name>.yaml`` in any config folder) whose ``id`` is ``env_id``, if one is."""
    for d in config_dirs():
        for path in sorted((d / "env").glob("*.yaml")):
            raw = OmegaConf.load(path)
            if raw.get("id") == env_id:
                return load_env_config(path.stem)
    return None


def reference_sources(cfg: DictConfig, env_ids: Sequence[str]) -> SampledReferences:
    """The sampled path's reference policies from ``cfg.references`` (see configs/evaluate.yaml).

    Given specs (``reward`` or ``reward@distribution`` -> policy spec) come
    first; the others are trained once by the suite's trainer with
    ``references.agent`` for the env config's ``total_timesteps`` (or
    ``references.total_timesteps``) and cached under ``references.runs_dir``.
    """
    ref = cfg.get("references") or {}
    given = {
        str(key): policy_from_spec(str(spec), name=f"reference[{key}]")
        for key, spec in (ref.get("policies") or {}).items()
    }
    if ref.get("planners", False):
        return SampledReferences(given, planners=True)
    if not ref.get("train", True):
        return SampledReferences(given)
    budgets = {}
    for env_id in env_ids:
        if ref.get("total_timesteps") is not None:
            budgets[env_id] = int(ref.total_timesteps)
            continue
        env_cfg = env_config_of(env_id)
        if env_cfg is not None and env_cfg.get("total_timesteps") is not None:
            budgets[env_id] = int(env_cfg.total_timesteps)
    agent_name = ref.get("agent", "ppo")
    path = next(
        (
            d / "agent" / f"{agent_name}.yaml"
            for d in config_dirs()
            if (d / "agent" / f"{agent_name}.yaml").is_file()
        ),
        None,
    )
    if path is None:
        raise ValueError(f"references.agent={agent_name!r}: no configs/agent/{agent_name}.yaml")
    agent = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    agent.pop("name", None)
    trainer = ReferenceTrainer(
        Path(ref.get("runs_dir", "runs")),
        AgentConfig(**agent),
        budgets,
        seed=int(ref.get("seed", REFERENCE_SEED)),
    )
    return SampledReferences(given, trainer)
