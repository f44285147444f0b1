"""The training path end to end: Hydra app, run folder, resume, determinism, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from agents.checkpoints import CheckpointError
from agents.training import load_trained_policy
from experiments import train as train_app
from tests.conftest import TINY_PPO

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = str(ROOT / "configs")
PPO_TINY = TINY_PPO
# 2048 steps with checkpoints every 512 and evaluations every 1024, video on
TINY = [
    "total_timesteps=2048",
    "agent.num_envs=8",
    "train.eval_every=1024",
    "train.checkpoint_every=512",
    "train.eval_episodes=16",
    "train.progress_bar=false",
]


def compose_cfg(run_dir: Path, *overrides: str, agent: list[str] = PPO_TINY):
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        return compose("train", overrides=[*TINY, *agent, f"run_dir={run_dir}", *overrides])


def final_numbers(metrics: dict) -> list[tuple]:
    return [
        (r["distribution"], r["reward"], r["mean_return"], r["success_rate"]) for r in metrics["final_eval"]
    ]


def test_tiny_run_writes_every_artifact_and_is_not_retrained(tmp_path):
    metrics = train_app.run(compose_cfg(tmp_path, "env.coin_random_prob=0.0"))
    for name in (
        "config.yaml",
        "train_config.json",
        "run_info.json",
        "progress.csv",
        "progress.jsonl",
        "eval.csv",
        "metrics.json",
        "final/model.pt",
        "final/model.json",
        "video/test.gif",
    ):
        assert (tmp_path / name).is_file(), name
    assert (tmp_path / "checkpoints" / "latest").is_file()
    info = json.loads((tmp_path / "run_info.json").read_text())
    assert info["seed"] == 1 and info["packages"]["torch"].startswith("2.13")
    assert "git_commit" in info
    # every distribution is scored under every declared reward
    pairs = {(r["distribution"], r["reward"]) for r in metrics["final_eval"]}
    assert pairs == {(d, r) for d in ("train", "test") for r in ("intended", "specified", "reach_right_end")}
    evals = (tmp_path / "eval.csv").read_text().splitlines()
    assert len(evals) == 1 + 3 * 6  # header + (0, 1024, 2048 steps) x 2 distributions x 3 rewards
    progress = (tmp_path / "progress.csv").read_text().splitlines()[0]
    assert "rollout/return_reach_right_end" in progress and "train/value_loss" in progress
    model, meta = load_trained_policy(tmp_path)
    assert meta["env_id"] == "GMSuite/CoinRun-v0" and model.num_timesteps == 0
    started = time.perf_counter()
    again = train_app.run(compose_cfg(tmp_path, "env.coin_random_prob=0.0"))
    assert time.perf_counter() - started < 5 and again == metrics


def test_same_seed_same_numbers_and_changed_config_refused(tmp_path):
    first = train_app.run(compose_cfg(tmp_path / "a", "train.video=false"))
    second = train_app.run(compose_cfg(tmp_path / "b", "train.video=false"))
    assert final_numbers(first) == final_numbers(second)
    with pytest.raises(ValueError, match="different config"):
        train_app.run(compose_cfg(tmp_path / "a", "train.video=false", "seed=2"))


def test_a2c_is_selectable(tmp_path):
    metrics = train_app.run(
        compose_cfg(tmp_path, "train.video=false", agent=["agent=a2c", "agent.hyperparams.n_steps=8"])
    )
    assert metrics["total_timesteps"] >= 2048
    model, meta = load_trained_policy(tmp_path)
    assert meta["algo"] == "a2c" and type(model).__name__ == "A2C"


def _cli(run_dir: Path, *overrides: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "offline"}
    return subprocess.run(
        [sys.executable, "-m", "experiments.train", *TINY, *PPO_TINY, f"run_dir={run_dir}", *overrides],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path):
    budget = ["total_timesteps=4096", "train.video=false"]
    reference = train_app.run(compose_cfg(tmp_path / "reference", *budget))
    run_dir = tmp_path / "killed"
    env = {**os.environ, "WANDB_MODE": "offline"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "experiments.train", *TINY, *PPO_TINY, f"run_dir={run_dir}", *budget],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 240
    while time.time() < deadline and not list((run_dir / "checkpoints").glob("step_00000020*")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run_dir / "metrics.json").exists(), "the run finished before it could be killed"
    resumed = _cli(run_dir, *budget)
    assert resumed.returncode == 0, resumed.stderr
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["resumed_from"] is not None and metrics["resumed_from"] >= 2048
    assert final_numbers(metrics) == final_numbers(reference)
    # the final model is byte-identical to the uninterrupted run's
    final = (run_dir / "final" / "model.pt").read_bytes()
    assert final == (tmp_path / "reference" / "final" / "model.pt").read_bytes()


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("env=nope", "env/nope"),
        ("agent=nope", "agent/nope"),
        ("logger=nope", "logger/nope"),
        ("train.reward=coins", "'coins'"),
        ("total_timesteps=-5", "total_timesteps"),
        ("env.coin_random_prob=1.5", "coin_random_prob=1.5"),
        ("train.resume_from=/nonexistent/run", "/nonexistent/run"),
    ],
)
def test_bad_input_stops_before_training_with_one_clear_message(tmp_path, override, needle):
    result = _cli(tmp_path / "run", override, timeout=120)
    assert result.returncode != 0
    assert needle in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()  # refused before the folder is made


def test_corrupt_or_mismatched_checkpoint_is_refused(tmp_path):
    train_app.run(compose_cfg(tmp_path, "train.video=false"))
    (tmp_path / "final" / "model.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_trained_policy(tmp_path)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_trained_policy(tmp_path / "missing")


def wandb_records(path: Path):
    """Records of an offline ``.wandb`` file (LevelDB log framing around protobuf ``Record``s)."""
    from wandb.proto import wandb_internal_pb2 as pb

    raw, pos, pending, block = path.read_bytes(), 7, b"", 32768
    while pos + 7 <= len(raw):
        if block - pos % block < 7:
            pos += block - pos % block
            continue
        length, kind = int.from_bytes(raw[pos + 4 : pos + 6], "little"), raw[pos + 6]
        data, pos = raw[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(pending + data if kind == 4 else data)
            pending = b""
            yield record
        elif kind in (2, 3):
            pending = data if kind == 2 else pending + data


def test_wandb_offline_run_is_written_and_readable(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    train_app.run(compose_cfg(tmp_path, "logger=wandb"))
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    run_id = (tmp_path / "wandb_id.txt").read_text().strip()
    # W&B's service process writes the file; on loaded cores it can land a moment after finish() returns
    # (seen once in CI: the file held no record yet). Read until the exit record is in, for up to 60 s.
    deadline = time.monotonic() + 60
    while True:
        records = list(wandb_records(runs[0] / f"run-{run_id}.wandb"))
        kinds = {record.WhichOneof("record_type") for record in records}
        if "exit" in kinds or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    history = [
        {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.history.item}
        for record in records
        if record.WhichOneof("record_type") == "history"
    ]
    assert {"run", "history", "artifact", "exit"} <= kinds
    steps = [row["time/total_timesteps"] for row in history if "time/total_timesteps" in row]
    assert steps == sorted(steps) and steps[-1] == 2048
    for key in (
        "rollout/success_specified",
        "eval/test/success_reach_right_end",
        "eval/train/return_specified",
    ):
        values = [row[key] for row in history if key in row]
        assert values, key
        low, high = (0, 10) if "return" in key else (0, 1)
        assert all(low <= v <= high for v in values), (key, values)
    assert any(
        row.get("eval/final/_type") == "table-file" and row["eval/final/nrows"] == 6 for row in history
    )
    assert any(row.get("video/shifted_episode/_type") == "video-file" for row in history)
