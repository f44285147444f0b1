"""Every shift environment, every seed: ``python -m experiments.suite`` (see configs/suite.yaml)."""

from __future__ import annotations

import time
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from agents.run_logging import start_wandb
from agents.training import validate
from evaluation.judge import judge_run_groups
from evaluation.report import atomic_write, log_wandb, suite_table, write_report
from evaluation.verdict import Thresholds
from experiments.common import CONFIGS, clear_errors, load_env_config, train_config
from experiments.pipeline import train_runs


def run(cfg: DictConfig) -> dict:
    started = time.perf_counter()
    thresholds = Thresholds(**cfg.thresholds)
    names = list(cfg.envs)
    if not names:
        raise ValueError("suite: the env list is empty")
    if len(cfg.seeds) == 0:
        raise ValueError("suite: seeds is empty; give at least one seed")
    env_cfgs = {name: load_env_config(name) for name in names}
    jobs, groups = [], []
    for name, env_cfg in env_cfgs.items():
        steps = env_cfg.total_timesteps if cfg.total_timesteps is None else cfg.total_timesteps
        run_cfg = OmegaConf.create(
            {"env": env_cfg, "agent": cfg.agent, "train": cfg.train, "seed": 0, "total_timesteps": steps}
        )
        groups.append([])
        for seed in cfg.seeds:
            config = train_config(run_cfg, seed=int(seed))
            validate(config)  # every run checked before the first one starts
            jobs.append((config, Path(cfg.runs_dir) / name / f"{env_cfg.tag}-seed{seed}"))
            groups[-1].append(jobs[-1][1])
    jobs.sort(key=lambda job: -job[0].total_timesteps)
    total = sum(config.total_timesteps for config, _ in jobs)
    print(
        f"training {len(jobs)} runs ({total} steps in all, {cfg.n_jobs} at a time; finished runs are reused)"
    )
    train_runs(jobs, n_jobs=cfg.n_jobs)
    trained = time.perf_counter()
    print("judging...", flush=True)
    out_dir = Path(cfg.out_dir)
    judgements, aggregates = judge_run_groups(
        groups, n_jobs=cfg.n_jobs, n_episodes=cfg.n_episodes, thresholds=thresholds, out_dir=out_dir
    )
    meta = {"config": OmegaConf.to_container(cfg, resolve=True), "configs": str(CONFIGS)}
    paths = write_report(judgements, aggregates, out_dir, meta=meta)
    wall = time.perf_counter() - started
    table = suite_table(aggregates)
    atomic_write(
        out_dir / "suite.md",
        (
            f"# Suite\n\n`python -m experiments.suite` ({len(names)} envs x {len(cfg.seeds)} seeds), "
            f"wall time {wall:.0f} s. Thresholds: {thresholds.to_dict()}\n\n{table}"
        ).encode(),
    )
    wandb_run = start_wandb(
        out_dir, project=cfg.logger.project, mode=cfg.logger.mode, config=meta["config"], name=out_dir.name
    )
    if wandb_run is not None:
        log_wandb(judgements, aggregates, wandb_run)
        wandb_run.summary.update({"suite/wall_seconds": wall, "suite/envs": len(names)})
        wandb_run.finish()
    print(table)
    print(f"report: {out_dir / 'suite.md'} and {paths['verdicts.md']}")
    print(
        f"wall time: {wall:.0f} s (training {trained - started:.0f} s, judging {wall - (trained - started):.0f} s)"
    )
    agree = [a.matches_expected for a in aggregates if a.matches_expected is not None]
    print(f"expected verdict obtained (majority of seeds): {sum(agree)}/{len(agree)}")
    return {"aggregates": [a.to_dict() for a in aggregates], "wall_seconds": wall}


@hydra.main(config_path="../configs", config_name="suite", version_base="1.3")
def main(cfg: DictConfig) -> None:
    with clear_errors():
        run(cfg)


if __name__ == "__main__":
    main()
