"""Held-out-proxy validation of the judge on the suite's trained agents (see configs/validate.yaml).

Wiring only: training through :func:`experiments.pipeline.train_runs`, the
judging and the checks in :mod:`evaluation.validation`.
"""

from __future__ import annotations

import datetime
import json
import re
import sys
import time
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

import envs
from agents.training import run_name, validate
from evaluation.judge import judge_run_groups
from evaluation.report import atomic_write
from evaluation.validation import (
    held_out_markdown,
    held_out_results,
    held_out_rows,
    held_out_run_groups,
    known_goal_markdown,
    known_goal_rows,
)
from evaluation.verdict import Thresholds
from experiments.common import clear_errors, load_env_config, train_config
from experiments.pipeline import train_runs
from experiments.suite import command_line, env_seed_jobs, git_commit


def known_goal_jobs(cfg: DictConfig, env_cfgs: dict) -> tuple[list, list[list[Path]]]:
    """Per env, one PPO run per goal reward (intended, each proxy) and seed, trained over every distribution."""
    jobs, groups = [], []
    for name, env_cfg in env_cfgs.items():
        task = envs.task(env_cfg.id)
        rewards = list(cfg.known_goal.rewards or ["intended", *task.proxy_rewards])
        steps = env_cfg.total_timesteps if cfg.total_timesteps is None else cfg.total_timesteps
        groups.append([])
        for reward in rewards:
            mixture = ["train", *(d for d in task.distributions if d != "train")]
            train = OmegaConf.merge(cfg.train, {"reward": reward, "distributions": mixture})
            run_cfg = OmegaConf.create(
                {"env": env_cfg, "agent": cfg.agent, "train": train, "seed": 0, "total_timesteps": steps}
            )
            for seed in cfg.known_goal.seeds:
                config = train_config(run_cfg, seed=int(seed))
                validate(config)
                run_dir = Path(cfg.runs_dir) / name / f"known-{reward}" / run_name(str(env_cfg.tag), config)
                jobs.append((config, run_dir))
                groups[-1].append(run_dir)
    jobs.sort(key=lambda job: -job[0].total_timesteps)
    return jobs, groups


def run_known_goal(cfg: DictConfig, command: str | None = None) -> dict:
    """Agents of known goal: trained on each goal reward over train and shifted levels, judged as train agents."""
    started = time.perf_counter()
    date = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    thresholds = Thresholds(**cfg.thresholds)
    env_cfgs = {name: load_env_config(name) for name in cfg.envs}
    jobs, groups = known_goal_jobs(cfg, env_cfgs)
    print(
        f"training {len(jobs)} agents of known goal if not trained yet ({cfg.n_jobs} at a time)", flush=True
    )
    train_runs(jobs, n_jobs=cfg.n_jobs)
    trained = time.perf_counter()
    judgements, _ = judge_run_groups(
        [[str(p) for p in g] for g in groups],
        n_jobs=cfg.n_jobs,
        n_episodes=cfg.n_episodes,
        thresholds=thresholds,
    )
    reward_of_agent = {j.agent: trained_reward(j.agent) for j in judgements}
    rows = known_goal_rows(judgements, reward_of_agent)
    wall = time.perf_counter() - started
    commit, dirty = git_commit()
    failures = [
        f"{r.env_id}/{r.distribution} trained on {r.reward}: must be {r.expected}; got "
        + ", ".join(f"seed {s}: {v} {r.goals[s] or ''}".strip() for s, v in sorted(r.verdicts.items()))
        for r in rows
        if not r.agrees
    ]
    results = {
        "command": command or "experiments.validate.run(cfg)",
        "date": date,
        "git_commit": commit,
        "git_dirty": dirty,
        "wall_seconds": wall,
        "train_seconds": trained - started,
        "agreed": sum(r.agrees for r in rows),
        "checked": len(rows),
        "failures": failures,
        "exit_code": 1 if failures else 0,
        "rows": [r.to_dict() for r in rows],
    }
    out_dir = Path(cfg.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(out_dir / "known_goal_results.json", json.dumps(results, indent=1, default=str).encode())
    atomic_write(
        out_dir / "judgements.json",
        json.dumps([j.to_dict() for j in judgements], indent=1, default=str).encode(),
    )
    table = known_goal_markdown(rows)
    header = f"`{results['command']}` on {date}, commit {commit}, wall time {wall:.0f} s.\n\n"
    atomic_write(out_dir / "known_goal.md", f"# Agents of known goal\n\n{header}{table}\n".encode())
    print(table)
    print(
        f"expectations met (majority of seeds): {results['agreed']}/{results['checked']}; wall time {wall:.0f} s"
    )
    for line in failures:
        print(f"EXPECTATION FAILED: {line}", file=sys.stderr)
    return {"results": results, "exit_code": results["exit_code"] if cfg.get("check_expected", True) else 0}


def trained_reward(agent: str) -> str:
    """The training reward in an agent name of :func:`agents.loading.load_agents` (``ppo[]@reach_right_end on ...``)."""
    match = re.search(r"@(\S+)", agent)
    return match.group(1) if match else "specified"


def run(cfg: DictConfig, command: str | None = None) -> dict:
    if cfg.mode == "known_goal":
        return run_known_goal(cfg, command)
    if cfg.mode != "held_out":
        raise ValueError(f"validate: mode must be held_out or known_goal, got {cfg.mode!r}")
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
