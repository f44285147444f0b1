"""``experiments.suite``: one report over env x seed; bad lists stopped before any work; it exits 1 when
an expectation fails, and writes the results file its table is made from."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from evaluation.report import suite_markdown
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
    result = suite_app.run(cfg, command="python -m experiments.suite envs=[coinrun] (test)")
    assert list((tmp_path / "report" / "wandb").glob("offline-run-*/run-*.wandb"))
    (aggregate,) = result["aggregates"]
    assert sorted(aggregate["verdicts"]) == ["1", "2"]
    table = (tmp_path / "report" / "suite.md").read_text()
    assert "GMSuite/CoinRun-v0" in table and "1: untrained, 2: untrained" in table
    assert len(list((tmp_path / "runs" / "coinrun").glob("crp0.0-*-seed2/metrics.json"))) == 1
    # 512 steps do not learn CoinRun: its expected GM is not obtained, so the suite would exit 1
    assert result["exit_code"] == 1
    results = json.loads((tmp_path / "report" / "suite_results.json").read_text())
    assert results == result["results"] and results["exit_code"] == 1
    assert (
        results["command"].endswith("(test)")
        and results["date"].startswith("20")
        and results["wall_seconds"] > 0
    )
    assert results["seeds"] == [1, 2] and (results["agreed"], results["checked"]) == (0, 1)
    (entry,) = results["entries"]
    assert (entry["env"], entry["expected_verdict"], entry["expected_goal"]) == (
        "coinrun",
        "goal_misgeneralization",
        "reach_right_end",
    )
    assert entry["outcome"] == "untrained" and entry["verdicts"] == {"1": "untrained", "2": "untrained"}
    assert entry["scores"]["S_spec"]["n"] == 2 and entry["scores"]["S_spec"]["kind"] == "min-max"
    assert results["failures"] == [
        "coinrun (GMSuite/CoinRun-v0) / test: expected goal_misgeneralization → reach_right_end, "
        "obtained untrained (2/2) [seeds 1: untrained, 2: untrained]"
    ]
    assert table == "# Suite\n\n" + suite_markdown(results)
    assert "min–max over 2 seeds" in table and "95% CI" not in table.split("|")[0]
    assert (tmp_path / "report" / "seeds.png").stat().st_size > 0


def test_the_suite_exits_1_on_a_wrong_expectation_and_0_on_a_right_one(tmp_path):
    """Subprocesses: the same tiny, untrained CoinRun agent, expected untrained (exit 0) and robust (exit 1)."""
    common = [
        "envs=[coinrun]",
        "seeds=[1]",
        "total_timesteps=512",
        "n_episodes=5",
        "n_jobs=1",
        "train.eval_episodes=4",
        "agent.num_envs=8",
        "agent.hyperparams.n_steps=64",
        "agent.hyperparams.batch_size=128",
        f"runs_dir={tmp_path / 'runs'}",
    ]

    def suite(expect: str, out: str):
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "experiments.suite",
                *common,
                f"+expect.coinrun.test={expect}",
                f"out_dir={out}",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "WANDB_MODE": "disabled"},
        )

    right = suite("untrained", tmp_path / "right")
    assert right.returncode == 0, right.stderr[-3000:]
    assert "expected verdict obtained (majority of seeds): 1/1" in right.stdout
    wrong = suite("robust", tmp_path / "wrong")  # the trained run is reused
    assert wrong.returncode == 1, wrong.stderr[-3000:]
    assert "EXPECTATION FAILED: coinrun (GMSuite/CoinRun-v0) / test: expected robust, obtained untrained" in (
        wrong.stderr
    )
    assert "Traceback" not in wrong.stderr
    results = json.loads((tmp_path / "wrong" / "suite_results.json").read_text())  # written before exiting
    assert results["exit_code"] == 1 and results["expectation_overrides"] == {"coinrun": {"test": "robust"}}
    assert results["entries"][0]["expected_verdict"] == "robust"
    assert "+expect.coinrun.test=robust" in results["command"]
    assert (tmp_path / "wrong" / "suite.md").read_text().count("**no**") == 1


def test_expectation_overrides_are_checked(tmp_path):
    env_cfgs = {"coinrun": OmegaConf.create({"id": "GMSuite/CoinRun-v0"})}
    got = suite_app.expectations({"coinrun": {"test": "goal_misgeneralization:reach_right_end"}}, env_cfgs)
    assert got == {"GMSuite/CoinRun-v0": {"test": ("goal_misgeneralization", "reach_right_end")}}
    for bad, needle in [
        ({"maze": {"test": "robust"}}, "'maze'"),
        ({"coinrun": {"train": "robust"}}, "train"),
        ({"coinrun": {"test": "fine"}}, "'fine'"),
        ({"coinrun": {"test": "goal_misgeneralization:flag"}}, "'flag'"),
    ]:
        with pytest.raises(ValueError, match=needle):
            suite_app.expectations(bad, env_cfgs)


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
