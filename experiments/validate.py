"""The judge's validations on trained agents (see configs/validate.yaml): held-out proxies, agents of known goal, capability failure by construction.

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
from agents.files import atomic_write
from agents.training import run_name, validate
from evaluation.judge import judge_run_groups
from evaluation.sampled import check_judgeable
from evaluation.validation import (
    capability_markdown,
    capability_rows,
    capability_run_groups,
    held_out_markdown,
    held_out_rows,
    held_out_run_groups,
    known_goal_markdown,
    known_goal_rows,
    validation_results,
)
from evaluation.verdict import Thresholds
from experiments.common import clear_errors, env_params, load_env_config, reference_sources, train_config
from experiments.pipeline import train_runs
from experiments.suite import command_line, env_seed_jobs, git_commit


def known_goal_jobs(cfg: DictConfig, env_cfgs: dict) -> tuple[list, list[list[Path]]]:
    """Per env, one PPO run per goal reward (intended, each proxy) and seed, trained over every distribution.

    Each distribution of the mixture gets the env's budget (``total_timesteps``
    x the number of distributions): the env's budget is what one distribution
    needs to be learned, and the agent must learn its goal on all of them.
    An explicit ``total_timesteps`` is the whole run's budget.
    """
    jobs, groups = [], []
    for name, env_cfg in env_cfgs.items():
        task = envs.task(env_cfg.id)
        rewards = list(cfg.known_goal.rewards or ["intended", *task.proxy_rewards])
        mixture = ["train", *(d for d in task.distributions if d != "train")]
        steps = env_cfg.total_timesteps * len(mixture) if cfg.total_timesteps is None else cfg.total_timesteps
        groups.append([])
        for reward in rewards:
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


def trained_reward(agent: str) -> str:
    """The training reward in an agent name of :func:`agents.loading.load_agents` (``ppo@reach_right_end on ...``)."""
    match = re.search(r"@(\S+)", agent)
    return match.group(1) if match else "specified"


MODES = {  # mode -> (results file stem, report title)
    "held_out": ("validation", "Held-out-proxy validation"),
    "known_goal": ("known_goal", "Agents of known goal"),
    "capability": ("capability", "Capability failure by construction (channels permuted after the shift)"),
}


def run(cfg: DictConfig, command: str | None = None) -> dict:
    """Train what is missing, judge, check; the result's ``exit_code`` is 1 when an expectation failed."""
    if cfg.mode not in MODES:
        raise ValueError(f"validate: mode must be one of {list(MODES)}, got {cfg.mode!r}")
    if not list(cfg.envs):
        raise ValueError("validate: the env list is empty")
    if len(cfg.seeds) == 0 or len(cfg.known_goal.seeds) == 0:
        raise ValueError("validate: seeds is empty; give at least one seed")
    started = time.perf_counter()
    date = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    thresholds = Thresholds(**cfg.thresholds)
    env_cfgs = {name: load_env_config(name) for name in cfg.envs}
    jobs, groups = (known_goal_jobs if cfg.mode == "known_goal" else env_seed_jobs)(cfg, env_cfgs)
    for env_cfg in env_cfgs.values():  # refuse before any training
        check_judgeable(env_cfg.id, env_params(env_cfg), cfg.judge_path, reference_sources(cfg, [env_cfg.id]))
    print(f"training {len(jobs)} runs if not trained yet ({cfg.n_jobs} at a time)", flush=True)
    train_runs(jobs, n_jobs=cfg.n_jobs)
    trained = time.perf_counter()
    run_groups = [[str(p) for p in g] for g in groups]
    references = reference_sources(cfg, [env_cfg.id for env_cfg in env_cfgs.values()])
    judged = dict(
        n_jobs=cfg.n_jobs,
        n_episodes=cfg.n_episodes,
        thresholds=thresholds,
        irl=cfg.irl,
        judge_path=cfg.judge_path,
        references=references,
    )
    if cfg.mode == "known_goal":
        judgements, _ = judge_run_groups(run_groups, **judged)
        rows = known_goal_rows(judgements, {j.agent: trained_reward(j.agent) for j in judgements})
        table = known_goal_markdown(rows)
    elif cfg.mode == "capability":
        judgements = capability_run_groups(
            run_groups, permutation_seed=cfg.capability.permutation_seed, **judged
        )
        rows = capability_rows(judgements)
        table = capability_markdown(rows)
    else:
        judgements = held_out_run_groups(run_groups, **judged)
        rows = held_out_rows(judgements, thresholds.epic)
        table = held_out_markdown(rows)
    wall = time.perf_counter() - started
    commit, dirty = git_commit()
    results = validation_results(
        rows,
        command=command or "experiments.validate.run(cfg)",
        date=date,
        git_commit=commit,
        git_dirty=dirty,
        wall_seconds=wall,
        train_seconds=trained - started,
        judge_seconds=wall - (trained - started),
        n_episodes=cfg.n_episodes,
        thresholds=thresholds.to_dict(),
        config=OmegaConf.to_container(cfg, resolve=True),
    )
    stem, title = MODES[cfg.mode]
    out_dir = Path(cfg.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(out_dir / f"{stem}_results.json", json.dumps(results, indent=1, allow_nan=False).encode())
    atomic_write(
        out_dir / "judgements.json",
        json.dumps([j.to_dict() for j in judgements], indent=1, default=str).encode(),
    )
    header = f"`{results['command']}` on {date}, commit {commit}, wall time {wall:.0f} s.\n\n"
    atomic_write(out_dir / f"{stem}.md", f"# {title}\n\n{header}{table}\n".encode())
    print(table)
    print(f"report: {out_dir / f'{stem}.md'}; wall time {wall:.0f} s")
    print(f"expectations met (majority of seeds): {results['agreed']}/{results['checked']}")
    for line in results["failures"]:
        print(f"EXPECTATION FAILED: {line}", file=sys.stderr)
    for line in results["unchecked"]:
        print(f"NOT CHECKED: {line}", file=sys.stderr)
    return {"results": results, "exit_code": results["exit_code"] if cfg.get("check_expected", True) else 0}


@hydra.main(config_path="../configs", config_name="validate", version_base="1.3")
def main(cfg: DictConfig) -> None:
    with clear_errors():
        result = run(cfg, command=command_line("experiments.validate"))
    if result["exit_code"]:
        sys.exit(result["exit_code"])


if __name__ == "__main__":
    main()
