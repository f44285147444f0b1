"""Seed-distribution studies: ``python -m experiments.study study=coin`` (see configs/study.yaml).

Wires the config to :mod:`evaluation.study`: every input is checked before
the first run trains, every (point, seed) is trained by
:func:`experiments.pipeline.train_runs` (finished runs reused) unless it is
planted, and the judgements become ``study.csv``, ``study.json``,
``study.png`` and ``study.md`` (and W&B tables with ``logger=wandb``).
"""

from __future__ import annotations

import datetime
import shlex
import sys
import time
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

import envs
from agents.run_logging import start_wandb
from agents.training import run_name, validate
from evaluation.sampled import check_judgeable
from evaluation.study import (
    StudyPoint,
    check_study,
    judge_study,
    log_study_wandb,
    parse_replacements,
    seed_row,
    summarise,
    write_study,
)
from evaluation.verdict import Thresholds
from experiments.common import (
    CONFIGS,
    clear_errors,
    env_params,
    load_env_config,
    reference_sources,
    train_config,
)
from experiments.pipeline import require_slurm, train_runs, train_runs_slurm
from experiments.suite import git_commit


def study_env_config(spec: DictConfig) -> DictConfig:
    """``configs/env/<env>.yaml`` with the study's fixed ``env_params`` (e.g. a maze size) applied."""
    fixed = OmegaConf.to_container(spec.env_params, resolve=True) if spec.get("env_params") else {}
    known = env_params(load_env_config(spec.env))
    for key in fixed:
        if key not in known:
            raise ValueError(
                f"study: env_params.{key}: {spec.env} has no such parameter; known: {sorted(known)}"
            )
        if key == spec.param:
            raise ValueError(f"study: env_params.{key} is the study's parameter; give its values in 'values'")
    return load_env_config(spec.env, overrides=fixed)


def study_launcher(cfg: DictConfig) -> dict | None:
    """The submitit parameters of ``launcher=slurm``, or None for ``launcher=local``; checked before work."""
    launcher = (
        OmegaConf.to_container(cfg.launcher, resolve=True) if cfg.get("launcher") else {"name": "local"}
    )
    name = launcher.pop("name", None)
    if name == "local":
        return None
    if name != "slurm":
        raise ValueError(f"launcher.name must be 'local' or 'slurm', got {name!r}")
    require_slurm()
    return launcher


def run(cfg: DictConfig, command: str | None = None) -> dict:
    started = time.perf_counter()
    date = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    thresholds = Thresholds(**cfg.thresholds)
    spec = cfg.study
    env_cfg = study_env_config(spec)
    values = list(OmegaConf.to_container(spec["values"], resolve=True))
    check_study(env_cfg.id, spec.param, values, spec.n_seeds, env_params(env_cfg))
    seeds = list(range(int(spec.get("first_seed", 1)), int(spec.get("first_seed", 1)) + spec.n_seeds))
    replace = OmegaConf.to_container(cfg.replace, resolve=True) if cfg.get("replace") else {}
    planted = parse_replacements(replace, values, seeds, env_cfg.id)
    if isinstance(cfg.n_jobs, bool) or not isinstance(cfg.n_jobs, int) or cfg.n_jobs < 1:
        raise ValueError(f"n_jobs must be a positive integer, got {cfg.n_jobs!r}")
    if isinstance(cfg.n_episodes, bool) or not isinstance(cfg.n_episodes, int) or cfg.n_episodes < 1:
        raise ValueError(f"n_episodes must be a positive integer, got {cfg.n_episodes!r}")
    launcher = study_launcher(cfg)
    steps = next(
        s
        for s in (cfg.total_timesteps, spec.get("total_timesteps"), env_cfg.total_timesteps)
        if s is not None
    )
    base = OmegaConf.create(
        {"env": env_cfg, "agent": cfg.agent, "train": cfg.train, "seed": 0, "total_timesteps": steps}
    )
    jobs, points = [], []
    for index, value in enumerate(values):
        point = None
        for seed in seeds:
            config = train_config(base, seed=seed, env_overrides={spec.param: value})
            validate(config)  # every run checked before the first one starts
            if point is None:
                point = StudyPoint(value, dict(config.env_params))
            if (index, seed) in planted:
                point.planted[seed] = planted[(index, seed)]
                continue
            run_dir = Path(cfg.runs_dir) / spec.env / run_name(f"{spec.param}{value}", config)
            jobs.append((config, run_dir))
            point.run_dirs[seed] = run_dir
        points.append(point)
    print(
        f"study {spec.name}: {spec.param} in {values} x {len(seeds)} seeds: training {len(jobs)} runs "
        f"({cfg.n_jobs} at a time; finished runs are reused; {len(planted)} planted)",
        flush=True,
    )
    references = reference_sources(cfg, [env_cfg.id])
    if jobs:  # refuse before any training
        check_judgeable(env_cfg.id, jobs[0][0].env_params, cfg.judge_path, references)
    out_dir = Path(cfg.out_dir)
    if launcher:
        train_runs_slurm(jobs, out_dir / ".submitit" / "%j", launcher)
    else:
        train_runs(jobs, n_jobs=cfg.n_jobs)
    trained = time.perf_counter()
    print("judging...", flush=True)
    judged = judge_study(
        env_cfg.id,
        cfg.agent.algo,
        points,
        n_jobs=cfg.n_jobs,
        n_episodes=cfg.n_episodes,
        thresholds=thresholds,
        out_dir=out_dir if cfg.get("save_rollouts") else None,
        irl=cfg.irl,
        judge_path=cfg.judge_path,
        references=references,
    )
    rows = [seed_row(spec.param, points[index], j) for index, j in judged]
    summaries = summarise(rows, values)
    wall = time.perf_counter() - started
    commit, dirty = git_commit()
    config = OmegaConf.to_container(cfg, resolve=True)
    study = {
        "study": spec.name,
        "env": spec.env,
        "env_id": env_cfg.id,
        "param": spec.param,
        "values": values,
        "env_params": env_params(env_cfg),
        "seeds": seeds,
        "n_seeds": len(seeds),
        "proxies": list(envs.task(env_cfg.id).proxy_rewards),
        "total_timesteps": steps,
        "n_episodes": cfg.n_episodes,
        "thresholds": thresholds.to_dict(),
        "points": summaries,
        "outliers": [o for p in summaries for o in p["outliers"]],
        "planted": [
            {"value": points[i].value, "seed": s, "policy": p} for (i, s), p in sorted(planted.items())
        ],
        "command": command or "experiments.study.run(cfg) (from Python; the config is under 'config')",
        "date": date,
        "git_commit": commit,
        "git_dirty": dirty,
        "wall_seconds": wall,
        "train_seconds": trained - started,
        "judge_seconds": wall - (trained - started),
        "config": config,
        "configs": str(CONFIGS),
    }
    paths = write_study(study, rows, out_dir)
    wandb_run = start_wandb(
        out_dir, project=cfg.logger.project, mode=cfg.logger.mode, config=config, name=out_dir.name
    )
    if wandb_run is not None:
        log_study_wandb(study, rows, [j for _, j in judged], wandb_run, paths["study.png"])
        wandb_run.summary.update(
            {
                "study/wall_seconds": wall,
                "study/points": len(values),
                "study/outliers": len(study["outliers"]),
            }
        )
        wandb_run.finish()
    print(paths["study.md"].read_text())
    print(f"study: {', '.join(str(p) for p in paths.values())}")
    print(
        f"wall time: {wall:.0f} s (training {trained - started:.0f} s, judging {wall - (trained - started):.0f} s)"
    )
    return {"study": study, "rows": rows, "paths": paths}


def command_line() -> str:
    """How this run was started: ``python -m experiments.study`` and its overrides."""
    try:
        from hydra.core.hydra_config import HydraConfig

        overrides = list(HydraConfig.get().overrides.task)
    except (ImportError, ValueError):
        overrides = sys.argv[1:]
    return " ".join(["python -m experiments.study", shlex.join(overrides)]).strip()


@hydra.main(config_path="../configs", config_name="study", version_base="1.3")
def main(cfg: DictConfig) -> None:
    with clear_errors():
        run(cfg, command=command_line())


if __name__ == "__main__":
    main()
