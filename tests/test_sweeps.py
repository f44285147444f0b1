"""Multirun sweeps: locally in parallel (joblib) and through submitit (the Slurm path)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import TINY_PPO, TINY_RUN

ROOT = Path(__file__).resolve().parents[1]
TINY = [*TINY_RUN, *TINY_PPO]


def multirun(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    run_root = tmp_path / "runs"
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "experiments.train",
            "-m",
            *TINY,
            f"run_dir={run_root}/${{env.name}}/${{env.tag}}-seed${{seed}}",
            f"hydra.sweep.dir={run_root}",
            "hydra.sweep.subdir=${env.name}/${env.tag}-seed${seed}",
            *overrides,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "WANDB_MODE": "disabled"},
    )


def finished(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def test_joblib_sweep_runs_every_combination(tmp_path):
    result = multirun(tmp_path, "seed=1,2", "env.coin_random_prob=0,0.1")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Joblib.Parallel(n_jobs=2" in result.stdout + result.stderr
    for tag in ("crp0", "crp0.1"):
        for seed in (1, 2):
            metrics = finished(tmp_path / "runs" / "coinrun" / f"{tag}-seed{seed}")
            assert metrics["status"] == "done" and metrics["seed"] == seed
    # the sweep's runs got the train distribution they asked for
    config = json.loads((tmp_path / "runs" / "coinrun" / "crp0.1-seed2" / "train_config.json").read_text())
    assert config["env_params"]["coin_random_prob"] == 0.1


def test_submitit_local_launcher_runs_the_slurm_path(tmp_path):
    result = multirun(tmp_path, "hydra/launcher=local", "seed=3")
    assert result.returncode == 0, result.stderr[-2000:]
    assert finished(tmp_path / "runs" / "coinrun" / "crp0.0-seed3")["status"] == "done"
    assert list((tmp_path / "runs" / ".submitit").glob("*/*_log.out"))
