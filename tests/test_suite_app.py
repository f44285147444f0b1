"""``experiments.suite``: one report over env x seed; bad lists stopped before any work."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from experiments import suite as suite_app

ROOT = Path(__file__).resolve().parents[1]


def test_tiny_suite_writes_one_report_with_every_seed(tmp_path):
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = compose(
            "suite",
            overrides=[
                "envs=[coinrun]",
                "seeds=[1,2]",
                "total_timesteps=512",
                "n_episodes=10",
                "train.eval_episodes=4",
                "agent.num_envs=8",
                "agent.hyperparams.n_steps=64",
                "agent.hyperparams.batch_size=128",
                f"runs_dir={tmp_path / 'runs'}",
                f"out_dir={tmp_path / 'report'}",
                "logger=wandb",
                "logger.mode=offline",
            ],
        )
    result = suite_app.run(cfg)
    assert list((tmp_path / "report" / "wandb").glob("offline-run-*/run-*.wandb"))
    (aggregate,) = result["aggregates"]
    assert sorted(aggregate["verdicts"]) == ["1", "2"]
    table = (tmp_path / "report" / "suite.md").read_text()
    assert "GMSuite/CoinRun-v0" in table and "1: untrained, 2: untrained" in table
    assert (tmp_path / "runs" / "coinrun" / "crp0.0-seed2" / "metrics.json").is_file()


@pytest.mark.parametrize(("override", "needle"), [("envs=[coinrun,nope]", "'nope'"), ("seeds=[]", "seeds")])
def test_bad_suite_lists_are_named(tmp_path, override, needle):
    result = subprocess.run(
        [sys.executable, "-m", "experiments.suite", override, f"out_dir={tmp_path}", f"runs_dir={tmp_path}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "WANDB_MODE": "disabled"},
    )
    assert result.returncode != 0 and needle in result.stderr and "Traceback" not in result.stderr
    assert not list(tmp_path.glob("*/*/metrics.json"))


def test_tiny_curves_write_points_per_value_with_every_seed(tmp_path):
    import json

    from experiments import curves as curves_app

    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = compose(
            "curves",
            overrides=[
                "~curves.maze",
                "curves.coinrun.values=[0.0,0.5]",
                "seeds=[1,2]",
                "total_timesteps=512",
                "n_episodes=10",
                "train.eval_episodes=4",
                "agent.num_envs=8",
                "agent.hyperparams.n_steps=64",
                "agent.hyperparams.batch_size=128",
                f"runs_dir={tmp_path / 'runs'}",
                f"out_dir={tmp_path / 'out'}",
            ],
        )
    curves_app.run(cfg)
    curves = json.loads((tmp_path / "out" / "curves.json").read_text())
    assert list(curves) == ["coinrun"]
    param, proxy, points = curves["coinrun"]
    assert (param, proxy) == ("coin_random_prob", "reach_right_end")
    assert [p[param] for p in points] == [0.0, 0.5]
    assert all(p["test_intended_success"]["n"] == 2 and sorted(p["seeds"]) == [1, 2] for p in points)
    assert (tmp_path / "out" / "curves.png").stat().st_size > 0
    assert "coin_random_prob" in (tmp_path / "out" / "curves.csv").read_text()
