"""Shift curves: ``python -m experiments.curves`` (see configs/curves.yaml); each curve is a small
seed-distribution study (:mod:`evaluation.study`) over every env listed."""

from __future__ import annotations

import time
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

import envs
from agents.training import run_name, validate
from evaluation.curves import curve_points, write_curves
from evaluation.stats import Interval, interval_label
from evaluation.study import StudyPoint, judge_study, seed_row
from evaluation.verdict import Thresholds
from experiments.common import clear_errors, load_env_config, train_config
from experiments.pipeline import train_runs


def run(cfg: DictConfig) -> dict:
    started = time.perf_counter()
    thresholds = Thresholds(**cfg.thresholds)
    if len(cfg.seeds) == 0:
        raise ValueError("curves: seeds is empty; give at least one seed")
    jobs, runs_by_env = [], {}
    for name, spec in cfg.curves.items():
        env_cfg = load_env_config(name)
        if spec.param not in env_cfg:
            raise ValueError(f"curves: {name} has no parameter {spec.param!r}")
        steps = env_cfg.total_timesteps if cfg.total_timesteps is None else cfg.total_timesteps
        base = OmegaConf.create(
            {"env": env_cfg, "agent": cfg.agent, "train": cfg.train, "seed": 0, "total_timesteps": steps}
        )
        runs_by_env[name] = (env_cfg.id, spec.param, [])
        for value in spec["values"]:
            point = None
            for seed in cfg.seeds:
                config = train_config(base, seed=int(seed), env_overrides={spec.param: value})
                validate(config)  # every run checked before the first one starts
                run_dir = Path(cfg.runs_dir) / name / run_name(f"{spec.param}{value}", config)
                jobs.append((config, run_dir))
                point = point or StudyPoint(value, dict(config.env_params))
                point.run_dirs[int(seed)] = run_dir
            runs_by_env[name][2].append(point)
    print(f"training {len(jobs)} runs ({cfg.n_jobs} at a time; finished runs are reused)", flush=True)
    train_runs(jobs, n_jobs=cfg.n_jobs)
    out_dir = Path(cfg.out_dir)
    curves = {}
    for name, (env_id, param, points) in runs_by_env.items():
        print(f"judging {name}...", flush=True)
        judged = judge_study(
            env_id,
            cfg.agent.algo,
            points,
            n_jobs=cfg.n_jobs,
            n_episodes=cfg.n_episodes,
            thresholds=thresholds,
        )
        rows = [seed_row(param, points[index], j) for index, j in judged]
        proxy = envs.task(env_id).proxy_rewards[0]
        curves[name] = (param, proxy, curve_points(rows, param, proxy))
    write_curves(curves, out_dir)
    for name, (param, proxy, points) in curves.items():
        shown = [p[m] for p in points for m in ("test_intended_success", f"posterior_{proxy}")]
        print(f"{name}: {param} -> test intended success / posterior({proxy}), {interval_label(shown)}")
        for p in points:
            s = Interval.from_dict(p["test_intended_success"])
            q = Interval.from_dict(p[f"posterior_{proxy}"])
            print(f"  {p[param]!s:>6}: {s.format()}   {q.format()}")
    print(f"curves: {out_dir / 'curves.png'}; wall time {time.perf_counter() - started:.0f} s")
    return {"curves": curves}


@hydra.main(config_path="../configs", config_name="curves", version_base="1.3")
def main(cfg: DictConfig) -> None:
    with clear_errors():
        run(cfg)


if __name__ == "__main__":
    main()
