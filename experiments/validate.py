"""Held-out-proxy validation of the judge on the suite's trained agents (see configs/validate.yaml).

Wiring only: training through :func:`experiments.pipeline.train_runs`, the
judging and the checks in :mod:`evaluation.validation`.
"""

from __future__ import annotations

import datetime
import json
import sys
import time
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from evaluation.report import atomic_write
from evaluation.validation import held_out_markdown, held_out_results, held_out_rows, held_out_run_groups
from evaluation.verdict import Thresholds
from experiments.common import clear_errors, load_env_config
from experiments.pipeline import train_runs
from experiments.suite import command_line, env_seed_jobs, git_commit


def run(cfg: DictConfig, command: str | None = None) -> dict:
    started = time.perf_counter()
    date = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    thresholds = Thresholds(**cfg.thresholds)
    if not list(cfg.envs):
        raise ValueError("validate: the env list is empty")
    if len(cfg.seeds) == 0:
        raise ValueError("validate: seeds is empty; give at least one seed")
    env_cfgs = {name: load_env_config(name) for name in cfg.envs}
    jobs, groups = env_seed_jobs(cfg, env_cfgs)
    print(f"training {len(jobs)} runs if not trained yet ({cfg.n_jobs} at a time)", flush=True)
    train_runs(jobs, n_jobs=cfg.n_jobs)
    trained = time.perf_counter()
    print("judging with each proxy held out...", flush=True)
    judgements = held_out_run_groups(
        [[str(p) for p in g] for g in groups],
        n_jobs=cfg.n_jobs,
        n_episodes=cfg.n_episodes,
        thresholds=thresholds,
    )
    rows = held_out_rows(judgements, thresholds.epic)
    wall = time.perf_counter() - started
    commit, dirty = git_commit()
    results = held_out_results(
        rows,
        command=command or "experiments.validate.run(cfg)",
        date=date,
        git_commit=commit,
        git_dirty=dirty,
        wall_seconds=wall,
        train_seconds=trained - started,
        judge_seconds=wall - (trained - started),
        seeds=[int(s) for s in cfg.seeds],
        n_episodes=cfg.n_episodes,
        thresholds=thresholds.to_dict(),
        config=OmegaConf.to_container(cfg, resolve=True),
    )
    out_dir = Path(cfg.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(out_dir / "validation_results.json", json.dumps(results, indent=1, allow_nan=False).encode())
    atomic_write(
        out_dir / "judgements.json",
        json.dumps([j.to_dict() for j in judgements], indent=1, default=str).encode(),
    )
    table = held_out_markdown(rows)
    header = f"`{results['command']}` on {date}, commit {commit}, wall time {wall:.0f} s.\n\n"
    atomic_write(out_dir / "validation.md", f"# Held-out-proxy validation\n\n{header}{table}\n".encode())
    print(table)
    print(f"report: {out_dir / 'validation.md'}; wall time {wall:.0f} s")
    print(f"expectations met (majority of seeds): {results['agreed']}/{results['checked']}")
    for line in results["failures"]:
        print(f"EXPECTATION FAILED: {line}", file=sys.stderr)
    exit_code = results["exit_code"] if cfg.get("check_expected", True) else 0
    return {"results": results, "exit_code": exit_code}


@hydra.main(config_path="../configs", config_name="validate", version_base="1.3")
def main(cfg: DictConfig) -> None:
    with clear_errors():
        result = run(cfg, command=command_line("experiments.validate"))
    if result["exit_code"]:
        sys.exit(result["exit_code"])


if __name__ == "__main__":
    main()
