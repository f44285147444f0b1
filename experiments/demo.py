"""The one-command demo: train two CoinRun-analog agents, judge them, print the verdicts.

``python -m experiments.demo`` trains ``coin_random_prob`` = 0 and 0.2 agents
on two seeds each (finished runs are reused, interrupted ones resume), judges
them on ``train`` and ``test`` and prints the verdict table and wall time.
"""

from __future__ import annotations

import time
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from agents.loading import load_agents
from agents.training import run_name
from evaluation.judge import judge_agents
from evaluation.progress import reporter
from evaluation.report import verdict_table, write_report
from evaluation.verdict import Thresholds
from experiments.common import clear_errors, train_config
from experiments.pipeline import train_runs


def run(cfg: DictConfig) -> dict:
    started = time.perf_counter()
    thresholds = Thresholds(**cfg.thresholds)
    out_dir = Path(cfg.out_dir)
    jobs = []
    for seed in cfg.seeds:
        for prob, steps in cfg.agents.items():
            config = train_config(cfg, seed=seed, env_overrides={"coin_random_prob": float(prob)})
            config.total_timesteps = int(steps)
            jobs.append((config, out_dir / "runs" / run_name(f"crp{float(prob)}", config)))
    if not jobs:
        raise ValueError("demo: no runs (agents or seeds is empty)")
    jobs.sort(key=lambda job: -job[0].total_timesteps)  # longest first: the parallel workers finish together
    total = sum(config.total_timesteps for config, _ in jobs)
    print(f"training {len(jobs)} runs ({total} steps in all, {cfg.n_jobs} at a time)...", flush=True)
    for result in train_runs(jobs, n_jobs=cfg.n_jobs):
        train_success = next(
            (
                r["success_rate"]
                for r in result["final_eval"]
                if r["distribution"] == "train" and r["reward"] == "specified"
            ),
            float("nan"),
        )
        print(f"  {result['run_dir']}: train coin success {train_success:.2f}", flush=True)
    trained = time.perf_counter()
    print("judging...", flush=True)
    agents = load_agents([run_dir for _, run_dir in jobs])
    with reporter() as progress:  # per agent, seed and distribution: a bar on a terminal, else lines
        judgements, aggregates = judge_agents(
            agents, n_episodes=cfg.n_episodes, thresholds=thresholds, out_dir=out_dir, progress=progress
        )
    paths = write_report(
        judgements, aggregates, out_dir, meta={"config": OmegaConf.to_container(cfg, resolve=True)}
    )
    print(verdict_table(aggregates))
    wall = time.perf_counter() - started
    print(f"report: {paths['verdicts.md']}")
    print(
        f"wall time: {wall:.0f} s (training {trained - started:.0f} s, judging {wall - (trained - started):.0f} s)"
    )
    return {"aggregates": [a.to_dict() for a in aggregates], "wall_seconds": wall}


@hydra.main(config_path="../configs", config_name="demo", version_base="1.3")
def main(cfg: DictConfig) -> None:
    with clear_errors():
        run(cfg)


if __name__ == "__main__":
    main()
