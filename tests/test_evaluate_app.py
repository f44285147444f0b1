"""``experiments.evaluate`` on trained run folders: the report, and bad input stopped early."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from experiments import evaluate as evaluate_app
from experiments import train as train_app
from tests.conftest import TINY_PPO, TINY_RUN

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = str(ROOT / "configs")
TINY = [*TINY_RUN, *TINY_PPO]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("runs")
    dirs = []
    for seed in (1, 2):
        with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
            cfg = compose("train", overrides=[*TINY, f"seed={seed}", f"run_dir={root / f's{seed}'}"])
        train_app.run(cfg)
        dirs.append(root / f"s{seed}")
    return dirs


def evaluate_cfg(runs, out_dir, *overrides):
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        return compose(
            "evaluate",
            overrides=[
                f"runs=[{','.join(map(str, runs))}]",
                f"out_dir={out_dir}",
                "n_episodes=20",
                *overrides,
            ],
        )


def test_evaluate_groups_seeds_into_one_agent_and_writes_the_report(runs, tmp_path):
    result = evaluate_app.run(evaluate_cfg(runs, tmp_path))
    for name in ("results.json", "results.csv", "verdicts.md", "scores.png", "posterior.png"):
        assert (tmp_path / name).is_file(), name
    (aggregate,) = result["aggregates"]
    assert aggregate["seeds"] == [1, 2] and aggregate["distribution"] == "test"
    assert aggregate["agent"] == "ppo[coin_random_prob=0.0]"
    # an agent trained for 1024 steps has not learned its training objective
    assert aggregate["verdict"] == "untrained"
    payload = json.loads((tmp_path / "results.json").read_text())
    assert len(payload["judgements"]) == 2
    assert list((tmp_path / "rollouts").glob("*.npz"))


def _cli(*overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "experiments.evaluate", *overrides],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "WANDB_MODE": "disabled"},
    )


def test_run_folder_without_checkpoint_is_refused(tmp_path):
    empty = tmp_path / "empty_run"
    empty.mkdir()
    result = _cli(f"runs=[{empty}]", f"out_dir={tmp_path / 'out'}")
    assert result.returncode != 0 and str(empty) in result.stderr and "Traceback" not in result.stderr


def test_checkpoint_for_another_observation_shape_is_refused(runs, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(runs[0] / "final", copy)
    meta = json.loads((copy / "model.json").read_text())
    meta["env_params"]["width"] = 15
    (copy / "model.json").write_text(json.dumps(meta))
    result = _cli(f"runs=[{copy}]", f"out_dir={tmp_path / 'out'}")
    assert result.returncode != 0 and "shape" in result.stderr


@pytest.mark.parametrize(
    ("override", "needle"),
    [("distributions=[nope]", "'nope'"), ("thresholds.high=1.5", "high=1.5"), ("n_episodes=0", "n_episodes")],
)
def test_bad_judge_input_is_named(runs, tmp_path, override, needle):
    result = _cli(f"runs=[{runs[0]}]", f"out_dir={tmp_path / 'out'}", override)
    assert result.returncode != 0 and needle in result.stderr and "Traceback" not in result.stderr


def test_expected_verdict_only_for_the_declared_training_distribution():
    from envs.coinrun import CoinRunCore
    from evaluation.judge import trained_on_declared_distribution

    assert trained_on_declared_distribution(CoinRunCore, {})
    assert trained_on_declared_distribution(CoinRunCore, {"coin_random_prob": 0.0, "width": 15})
    assert not trained_on_declared_distribution(CoinRunCore, {"coin_random_prob": 0.2})


def test_judging_a_sampling_policy_does_not_depend_on_what_ran_before(runs):
    import torch

    from agents.loading import load_agents
    from evaluation.judge import judge

    (agent,) = load_agents(runs[:1])
    first = judge(agent.policies, agent.env_id, agent.train_params, n_episodes=20)
    torch.rand(1000)  # move the global generator on
    second = judge(agent.policies, agent.env_id, agent.train_params, n_episodes=20)
    assert [j.shifted.returns for j in first] == [j.shifted.returns for j in second]
    assert [j.inference.posterior for j in first] == [j.inference.posterior for j in second]
