"""Every shift environment, every seed: ``python -m experiments.suite`` (see configs/suite.yaml).

The suite stands behind its table: it writes ``suite_results.json`` (per env
the expected and obtained majority verdict, per-seed verdicts, key scores
with their intervals, and the command, date, git commit and wall time) and
``suite.md`` made from it (:func:`evaluation.report.suite_markdown`, also
``python docs/suite_table.py <suite_results.json>``), and exits 1 when any
majority verdict is not the expected one or is a tie (``check_expected``).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

import envs
from agents.files import atomic_write
from agents.run_logging import start_wandb
from agents.training import run_name, validate
from evaluation.judge import Aggregate, judge_run_groups
from evaluation.progress import log_progress
from evaluation.report import log_wandb, suite_markdown, suite_results, write_report
from evaluation.sampled import check_judgeable
from evaluation.verdict import Thresholds
from experiments.common import CONFIGS, clear_errors, load_env_config, reference_sources, train_config
from experiments.pipeline import train_runs

REPO = Path(__file__).resolve().parents[1]


def git_commit() -> tuple[str | None, bool | None]:
    """The repo's HEAD and whether it has uncommitted changes (None, None without git)."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=REPO, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, cwd=REPO
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None, None
    return commit, bool(dirty)


def expectations(cfg_expect, env_cfgs: dict) -> dict[str, dict[str, tuple[str, str | None]]]:
    """``expect.<env>.<distribution>: <verdict>`` (or ``goal_misgeneralization:<goal>``) overrides, checked.

    For re-checking an env against another expectation without editing it
    (and for testing that a wrong one fails the suite).
    """
    out: dict[str, dict[str, tuple[str, str | None]]] = {}
    for name, per_dist in (cfg_expect or {}).items():
        if name not in env_cfgs:
            raise ValueError(f"suite: expect.{name}: {name!r} is not in envs {list(env_cfgs)}")
        task = envs.task(env_cfgs[name].id)
        for dist, value in (per_dist or {}).items():
            if dist not in task.distributions or dist == "train":
                known = [d for d in task.distributions if d != "train"]
                raise ValueError(f"suite: expect.{name}.{dist}: unknown shifted distribution; known: {known}")
            verdict, _, goal = str(value).partition(":")
            if verdict not in envs.VERDICTS:
                raise ValueError(
                    f"suite: expect.{name}.{dist}: unknown verdict {verdict!r}; known: {envs.VERDICTS}"
                )
            if goal and goal not in task.reward_names:
                raise ValueError(
                    f"suite: expect.{name}.{dist}: unknown goal {goal!r}; known: {task.reward_names}"
                )
            out.setdefault(env_cfgs[name].id, {})[dist] = (verdict, goal or None)
    return out


def apply_expectations(aggregates: list[Aggregate], overrides: dict) -> list[Aggregate]:
    return [
        dataclasses.replace(
            a,
            expected_verdict=overrides[a.env_id][a.distribution][0],
            expected_goal=overrides[a.env_id][a.distribution][1],
        )
        if a.distribution in overrides.get(a.env_id, {})
        else a
        for a in aggregates
    ]


def env_seed_jobs(cfg: DictConfig, env_cfgs: dict) -> tuple[list, list[list[Path]]]:
    """Training jobs ``(config, run_dir)`` for every env x seed (longest first), and the run folders per env.

    Every config is checked before the first run starts.
    """
    jobs, groups = [], []
    for name, env_cfg in env_cfgs.items():
        steps = env_cfg.total_timesteps if cfg.total_timesteps is None else cfg.total_timesteps
        run_cfg = OmegaConf.create(
            {"env": env_cfg, "agent": cfg.agent, "train": cfg.train, "seed": 0, "total_timesteps": steps}
        )
        groups.append([])
        for seed in cfg.seeds:
            config = train_config(run_cfg, seed=int(seed))
            validate(config)
            jobs.append((config, Path(cfg.runs_dir) / name / run_name(str(env_cfg.tag), config)))
            groups[-1].append(jobs[-1][1])
    jobs.sort(key=lambda job: -job[0].total_timesteps)
    return jobs, groups


def run(cfg: DictConfig, command: str | None = None) -> dict:
    """Train, judge, report; the result's ``exit_code`` is 1 when an expectation failed (``main`` exits with it)."""
    started = time.perf_counter()
    date = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")  # when it started, UTC
    thresholds = Thresholds(**cfg.thresholds)
    names = list(cfg.envs)
    if not names:
        raise ValueError("suite: the env list is empty")
    if len(cfg.seeds) == 0:
        raise ValueError("suite: seeds is empty; give at least one seed")
    env_cfgs = {name: load_env_config(name) for name in names}
    overrides = expectations(cfg.get("expect"), env_cfgs)
    jobs, groups = env_seed_jobs(cfg, env_cfgs)
    references = reference_sources(cfg, [env_cfg.id for env_cfg in env_cfgs.values()])
    for config in {c.env_id: c for c, _ in jobs}.values():  # refuse before any training
        check_judgeable(config.env_id, config.env_params, cfg.judge_path, references)
    total = sum(config.total_timesteps for config, _ in jobs)
    print(
        f"training {len(jobs)} runs ({total} steps in all, {cfg.n_jobs} at a time; finished runs are reused)",
        flush=True,  # at once, also when stdout is a pipe or a log file
    )
    train_runs(jobs, n_jobs=cfg.n_jobs)
    trained = time.perf_counter()
    print("judging...", flush=True)
    out_dir = Path(cfg.out_dir)
    judgements, aggregates = judge_run_groups(  # parallel workers: a progress line per step on stderr
        groups,
        n_jobs=cfg.n_jobs,
        n_episodes=cfg.n_episodes,
        thresholds=thresholds,
        out_dir=out_dir,
        progress=log_progress,
        irl=cfg.irl,
        judge_path=cfg.judge_path,
        references=references,
    )
    aggregates = apply_expectations(aggregates, overrides)
    meta = {"config": OmegaConf.to_container(cfg, resolve=True), "configs": str(CONFIGS)}
    paths = write_report(judgements, aggregates, out_dir, meta=meta)
    wall = time.perf_counter() - started
    commit, dirty = git_commit()
    results = suite_results(
        aggregates,
        {env_cfg.id: name for name, env_cfg in env_cfgs.items()},
        command=command or "experiments.suite.run(cfg) (from Python; the config is under 'config')",
        date=date,
        git_commit=commit,
        git_dirty=dirty,
        wall_seconds=wall,
        train_seconds=trained - started,
        judge_seconds=wall - (trained - started),
        envs=names,
        seeds=[int(s) for s in cfg.seeds],
        total_timesteps=cfg.total_timesteps,
        n_episodes=cfg.n_episodes,
        thresholds=thresholds.to_dict(),
        expectation_overrides=OmegaConf.to_container(cfg.expect) if cfg.get("expect") else {},
        config=meta["config"],
    )
    atomic_write(out_dir / "suite_results.json", json.dumps(results, indent=1, allow_nan=False).encode())
    table = suite_markdown(results)
    atomic_write(out_dir / "suite.md", f"# Suite\n\n{table}".encode())
    wandb_run = start_wandb(
        out_dir, project=cfg.logger.project, mode=cfg.logger.mode, config=meta["config"], name=out_dir.name
    )
    if wandb_run is not None:
        log_wandb(judgements, aggregates, wandb_run)
        wandb_run.summary.update(
            {
                "suite/wall_seconds": wall,
                "suite/envs": len(names),
                "suite/agreed": results["agreed"],
                "suite/checked": results["checked"],
                "suite/exit_code": results["exit_code"],
            }
        )
        wandb_run.finish()
    print(table)
    print(f"report: {out_dir / 'suite.md'}, {out_dir / 'suite_results.json'} and {paths['verdicts.md']}")
    print(
        f"wall time: {wall:.0f} s (training {trained - started:.0f} s, judging {wall - (trained - started):.0f} s)"
    )
    print(f"expected verdict obtained (majority of seeds): {results['agreed']}/{results['checked']}")
    for line in results["failures"]:
        print(f"EXPECTATION FAILED: {line}", file=sys.stderr)
    exit_code = results["exit_code"] if cfg.get("check_expected", True) else 0
    if results["failures"]:
        print(
            f"{len(results['failures'])} expectation(s) failed; "
            + ("exit code 1" if exit_code else "check_expected=false: exit code 0"),
            file=sys.stderr,
        )
    return {
        "aggregates": [a.to_dict() for a in aggregates],
        "wall_seconds": wall,
        "results": results,
        "exit_code": exit_code,
    }


def command_line(app: str = "experiments.suite") -> str:
    """How this run was started: ``python -m <app>`` and its overrides."""
    try:
        from hydra.core.hydra_config import HydraConfig

        overrides = list(HydraConfig.get().overrides.task)
    except (ImportError, ValueError):
        overrides = sys.argv[1:]
    return " ".join([f"python -m {app}", shlex.join(overrides)]).strip()


@hydra.main(config_path="../configs", config_name="suite", version_base="1.3")
def main(cfg: DictConfig) -> None:
    with clear_errors():
        result = run(cfg, command=command_line())
    if result["exit_code"]:
        sys.exit(result["exit_code"])


if __name__ == "__main__":
    main()
