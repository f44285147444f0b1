"""Runs a researcher can rely on: run identity, one writer per run, validation before any work,
progress and clean interrupts, error hygiene (corrupt checkpoints, a full disk).

Command-line cases run in a temporary working directory, so a stub folder left by a refused
command (Hydra's output dir, a run or report folder) would show up there.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from agents.checkpoints import CheckpointError, WriteError, read_policy, write_json_atomic
from agents.loading import load_agents
from agents.training import (
    LOCK_FILE,
    AgentConfig,
    RunBusyError,
    TrainConfig,
    config_digest,
    run_lock,
    validate,
)
from experiments import train as train_app
from experiments.common import train_config
from tests.conftest import TINY_PPO, TINY_RUN

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = str(ROOT / "configs")
TINY = [*TINY_RUN, *TINY_PPO]


def compose_cfg(*overrides: str):
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        return compose("train", overrides=[*TINY, *overrides])


def folder_of(*overrides: str) -> Path:
    cfg = compose_cfg("runs_root=R", *overrides)
    return train_app.run_folder(cfg, train_config(cfg))


def cli(module: str, *args: str, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def train_cli(cwd: Path, *overrides: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return cli("experiments.train", *TINY, "runs_root=runs", *overrides, cwd=cwd, timeout=timeout)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def only_runs_left(cwd: Path) -> list[str]:
    """Everything in the working directory but the runs folder (stubs would show up here)."""
    return sorted(p.name for p in cwd.iterdir() if p.name != "runs")


# ------------------------------------------------------------------ 1. run identity
def test_run_folder_is_tag_digest_seed_and_numbers_compare_by_value():
    default = folder_of()
    assert default.parent == Path("R/coinrun/ppo")
    tag, digest, seed = default.name.rsplit("-", 2)
    assert (tag, seed) == ("crp0", "seed1") and len(digest) == 8
    # 0, 0.0 and the default (0.0) are one run; numerically equal hyper-parameters too
    assert folder_of("env.coin_random_prob=0") == default == folder_of("env.coin_random_prob=0.0")
    assert folder_of("agent.hyperparams.gamma=1") == folder_of("agent.hyperparams.gamma=1.0")
    # a different budget or hyper-parameter is a different run; the seed changes only the suffix
    assert folder_of("total_timesteps=2048") != default
    assert folder_of("agent.hyperparams.learning_rate=0.0003") != default
    assert folder_of("seed=2").name == f"crp0-{digest}-seed2"
    assert folder_of("train.checkpoint_every=512") == default  # checkpoints are exact: not identity
    assert folder_of("env.coin_random_prob=0.1").name.startswith("crp0.1-")
    config = train_config(compose_cfg())
    same = TrainConfig.from_dict({**config.to_dict(), "env_params": {**config.env_params, "height": 7.0}})
    assert config_digest(same) == config_digest(config)


def test_judge_takes_0_and_0p0_runs_as_one_agent(tmp_path):
    train_app.run(compose_cfg(f"runs_root={tmp_path}", "env.coin_random_prob=0", "seed=1"))
    train_app.run(compose_cfg(f"runs_root={tmp_path}", "env.coin_random_prob=0.0", "seed=2"))
    runs = sorted((tmp_path / "coinrun" / "ppo").iterdir())
    assert [p.name.split("-")[-1] for p in runs] == ["seed1", "seed2"]
    (agent,) = load_agents(runs)
    assert sorted(agent.policies) == [1, 2]


def test_refused_command_leaves_a_finished_run_untouched_and_names_the_keys(tmp_path):
    assert train_cli(tmp_path).returncode == 0
    (run,) = (tmp_path / "runs" / "coinrun" / "ppo").iterdir()
    before = snapshot(run)
    # the same folder asked for another budget: refused, naming the key and the ways out
    refused = train_cli(tmp_path, f"run_dir={run}", "total_timesteps=2048")
    assert refused.returncode == 2
    assert "changed: ['total_timesteps']" in refused.stderr
    assert "train.extend=true" in refused.stderr and "train.fresh=true" in refused.stderr
    assert "fresh=true" not in refused.stderr.replace("train.fresh=true", "")
    assert "Traceback" not in refused.stderr
    assert snapshot(run) == before
    assert only_runs_left(tmp_path) == []  # no .hydra, no outputs/
    # the same command again: returns at once, writes nothing
    again = train_cli(tmp_path)
    assert again.returncode == 0 and "is finished" in again.stdout
    assert snapshot(run) == before


def test_extend_continues_a_finished_run_into_a_larger_budget(tmp_path):
    short = train_app.run(compose_cfg(f"runs_root={tmp_path}"))
    longer = train_app.run(compose_cfg(f"runs_root={tmp_path}", "total_timesteps=2048", "train.extend=true"))
    assert short["total_timesteps"] == 1024
    assert longer["resumed_from"] == 1024 and longer["total_timesteps"] == 2048
    folders = sorted((tmp_path / "coinrun" / "ppo").iterdir())
    assert len(folders) == 2  # the short run is kept as it was
    extended = next(
        f for f in folders if json.loads((f / "metrics.json").read_text())["total_timesteps"] == 2048
    )
    steps = sorted(
        {json.loads(line)["timesteps"] for line in (extended / "eval.jsonl").read_text().splitlines()}
    )
    assert steps == [0, 1024, 2048]  # its curves continue the short run's
    assert "continuing" in (extended / "train.log").read_text()
    # in place, in a folder chosen with run_dir=: the same folder continues
    own = tmp_path / "own"
    train_app.run(compose_cfg(f"run_dir={own}"))
    again = train_app.run(compose_cfg(f"run_dir={own}", "total_timesteps=2048", "train.extend=true"))
    assert again["resumed_from"] == 1024 and again["total_timesteps"] == 2048
    assert json.loads((own / "train_config.json").read_text())["total_timesteps"] == 2048
    with pytest.raises(ValueError, match="no run of this config"):
        train_app.run(
            compose_cfg(f"runs_root={tmp_path}", "total_timesteps=2048", "seed=5", "train.extend=true")
        )


# ------------------------------------------------------------------ 2. one writer per run
def test_second_writer_exits_at_once_naming_the_holder(tmp_path):
    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        run.mkdir()
        lock = {"pid": holder.pid, "host": socket.gethostname(), "started": "2026-01-01T00:00:00"}
        (run / LOCK_FILE).write_text(json.dumps(lock))
        started = time.time()
        result = train_cli(tmp_path, f"run_dir={run}")
        assert time.time() - started < 60
        assert result.returncode == 2, result.stderr
        assert f"pid {holder.pid} on host {socket.gethostname()}" in result.stderr
        assert "Traceback" not in result.stderr
        assert sorted(p.name for p in run.iterdir()) == [LOCK_FILE]  # nothing written
    finally:
        holder.kill()
        holder.wait()


def test_stale_lock_is_taken_over_and_said_so(tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    run = tmp_path / "run"
    run.mkdir()
    (run / LOCK_FILE).write_text(json.dumps({"pid": gone.pid, "host": socket.gethostname(), "started": "x"}))
    result = train_cli(tmp_path, f"run_dir={run}")
    assert result.returncode == 0, result.stderr
    assert f"taking over the stale lock of {run}: pid {gone.pid}" in result.stderr
    assert (run / "metrics.json").is_file() and not (run / LOCK_FILE).exists()


def test_a_requeued_slurm_job_takes_over_its_own_lock_from_another_host(tmp_path, monkeypatch, capsys):
    holder = {"pid": 4242, "host": "node-that-died", "started": "x", "slurm_job": "77_3"}
    (tmp_path / LOCK_FILE).write_text(json.dumps(holder))
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "77")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    with run_lock(tmp_path) as path:
        assert json.loads(path.read_text())["slurm_job"] == "77_3"
        assert json.loads(path.read_text())["pid"] == os.getpid()
    assert "was this Slurm job (77_3) before it was requeued" in capsys.readouterr().err
    # another host's lock without a Slurm job cannot be checked: refused, saying how to clear it
    (tmp_path / LOCK_FILE).write_text(json.dumps({**holder, "slurm_job": None}))
    with pytest.raises(RunBusyError, match=f"if that process is gone, delete {tmp_path / LOCK_FILE}"):
        with run_lock(tmp_path):
            pass


def test_lock_is_reentrant_in_one_process_and_released(tmp_path):
    with run_lock(tmp_path) as path:
        with run_lock(tmp_path):
            assert json.loads(path.read_text())["pid"] == os.getpid()
        assert path.exists()
    assert not path.exists()


# ------------------------------------------------------------------ 3. validation before work
def _agent_config(**hyperparams) -> TrainConfig:
    return TrainConfig(env_id="GMSuite/CoinRun-v0", agent=AgentConfig(hyperparams=hyperparams))


@pytest.mark.parametrize(
    ("hyperparams", "needle"),
    [
        ({"n_steps": 0}, "agent.hyperparams.n_steps must be >= 1, got 0"),
        ({"n_steps": 1.5}, "agent.hyperparams.n_steps must be an integer >= 1, got 1.5"),
        ({"learning_rate": "fast"}, "agent.hyperparams.learning_rate must be a number > 0, got 'fast'"),
        ({"learning_rate": -1e-3}, "agent.hyperparams.learning_rate must be > 0, got -0.001"),
        ({"gamma": 1.5}, "agent.hyperparams.gamma must be in [0, 1], got 1.5"),
        ({"normalize_advantage": "no"}, "agent.hyperparams.normalize_advantage must be true or false"),
        ({"n_step": 64}, "agent.hyperparams.n_step=64: ppo has no such hyper-parameter"),
        ({"policy_kwargs": {}}, "agent.hyperparams.policy_kwargs is set by the suite"),
    ],
)
def test_bad_hyperparameters_are_named_before_any_work(hyperparams, needle):
    with pytest.raises(ValueError) as err:
        validate(_agent_config(**hyperparams))
    assert needle in str(err.value)


def test_a2c_hyperparameters_are_checked_against_a2c():
    validate(
        TrainConfig(env_id="GMSuite/CoinRun-v0", agent=AgentConfig(algo="a2c", hyperparams={"n_steps": 8}))
    )
    with pytest.raises(ValueError, match="a2c has no such hyper-parameter"):
        validate(
            TrainConfig(
                env_id="GMSuite/CoinRun-v0", agent=AgentConfig(algo="a2c", hyperparams={"n_epochs": 4})
            )
        )


@pytest.mark.parametrize(
    ("module", "args", "needle"),
    [
        (
            "experiments.train",
            ["agent.hyperparams.n_steps=0"],
            "agent.hyperparams.n_steps must be >= 1, got 0",
        ),
        (
            "experiments.suite",
            ["total_timesteps=0", "envs=[coinrun]", "seeds=[1]"],
            "total_timesteps must be a positive integer, got 0",
        ),
        (
            "experiments.curves",
            ["total_timesteps=0", "seeds=[1]"],
            "total_timesteps must be a positive integer, got 0",
        ),
        (
            "experiments.evaluate",
            ["runs=[runs/none-seed1]", "n_episodes=0"],
            "n_episodes must be a positive integer",
        ),
        ("experiments.evaluate", [], "give runs="),
    ],
    ids=["train-n_steps", "suite-budget0", "curves-budget0", "evaluate-n_episodes", "evaluate-no-runs"],
)
def test_refused_commands_say_one_line_and_leave_no_folder(tmp_path, module, args, needle):
    result = cli(module, *args, cwd=tmp_path, timeout=120)
    assert result.returncode == 2
    assert needle in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert list(tmp_path.iterdir()) == []  # no run, report or Hydra folder


def test_a_start_refused_once_the_folder_is_made_removes_only_what_it_made(tmp_path):
    """A checkpoint that does not fit is found only under the run's lock, in a folder made for it:
    that folder and its parents go again. A folder holding an earlier run's checkpoints stays."""
    source = tmp_path / "source"
    train_app.run(compose_cfg(f"run_dir={source}"))
    before = snapshot(source)
    runs = tmp_path / "runs"
    with pytest.raises(CheckpointError, match="env_params"):
        train_app.run(compose_cfg(f"runs_root={runs}", "env.height=9", f"train.resume_from={source}"))
    assert not runs.exists()
    assert snapshot(source) == before
    # the earlier run's own checkpoint is corrupt: refused, and its folder is left as it was
    (source / "metrics.json").unlink()
    latest = source / "checkpoints" / (source / "checkpoints" / "latest").read_text().strip()
    (latest / "state.pt").write_bytes(b"not a checkpoint")
    kept = snapshot(source)
    with pytest.raises(CheckpointError, match="corrupt"):
        train_app.run(compose_cfg(f"run_dir={source}"))
    assert snapshot(source) == kept and not (source / LOCK_FILE).exists()


# ------------------------------------------------------------------ 4. progress and interrupts
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_saves_a_checkpoint_exits_130_and_the_same_command_resumes(tmp_path, sig):
    """Ctrl-C, or SIGTERM (Slurm's time limit, scancel): checkpoint, one line, exit 130, exact resume."""
    budget = ["total_timesteps=16384", "train.checkpoint_every=100000", "train.eval_every=100000"]
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "experiments.train", *TINY, "runs_root=runs", *budget]
    proc = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.time() + 180
    progress = None
    while time.time() < deadline:
        found = list((tmp_path / "runs").rglob("progress.jsonl"))
        if found and len(found[0].read_text().splitlines()) >= 2:
            progress = found[0]
            break
        time.sleep(0.1)
    assert progress is not None, "training did not start"
    run = progress.parent
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("interrupted at step ") and last.endswith("; the same command resumes")
    step = int(last.split()[3].rstrip(";"))
    assert 0 < step < 16384
    assert (run / "checkpoints" / "latest").read_text().strip() == f"step_{step:010d}"
    assert not (run / "metrics.json").exists() and not (run / LOCK_FILE).exists()
    assert f"interrupted at step {step}" in (run / "train.log").read_text()
    resumed = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["resumed_from"] == step and metrics["total_timesteps"] >= 16384
    log = (run / "train.log").read_text()
    assert f"resuming at step {step} of 16384" in log and "done at step" in log
    if sig != signal.SIGINT:
        return
    # exactly: the final model is byte-identical to an uninterrupted run's
    train_app.run(compose_cfg(f"run_dir={tmp_path / 'reference'}", *budget))
    reference = (tmp_path / "reference" / "final" / "model.pt").read_bytes()
    assert (run / "final" / "model.pt").read_bytes() == reference


# ------------------------------------------------------------------ 5. error hygiene
class Payload:
    """A Python object in a checkpoint file: refused by weights-only loading."""


def test_corrupt_checkpoint_message_never_advises_unsafe_loading(tmp_path):
    folder = tmp_path / "final"
    folder.mkdir()
    write_json_atomic(folder / "model.json", {})
    for content in (b"not a checkpoint", None):
        if content is None:
            torch.save({"x": Payload()}, folder / "model.pt")
        else:
            (folder / "model.pt").write_bytes(content)
        with pytest.raises(CheckpointError) as err:
            read_policy(folder)
        message = str(err.value)
        assert "corrupt checkpoint" in message and str(folder / "model.pt") in message
        assert "weights_only" not in message and "trust" not in message
        assert len(message.splitlines()) == 1


def _disk_full_on_checkpoint(monkeypatch):
    real_save = torch.save

    def save(obj, path, *args, **kwargs):
        if str(path).endswith("state.pt") and "step_0000000512" in str(path):
            Path(path).write_bytes(b"partial")
            raise RuntimeError(
                "[enforce fail at inline_container.cc] . PytorchStreamWriter failed writing file"
            )
        return real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)


def test_full_disk_names_the_path_and_leaves_no_tmp_files(tmp_path, monkeypatch):
    _disk_full_on_checkpoint(monkeypatch)
    with pytest.raises(WriteError) as err:
        train_app.run(compose_cfg(f"run_dir={tmp_path / 'run'}", "train.checkpoint_every=512"))
    assert str(tmp_path / "run" / "checkpoints" / "step_0000000512") in str(err.value)
    assert not [p for p in (tmp_path / "run").rglob("*") if ".tmp" in p.name]
    assert not (tmp_path / "run" / LOCK_FILE).exists()
    # ENOSPC from a JSON write: the message says so and names the file
    target = tmp_path / "x.json"

    def no_space(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", no_space)
    with pytest.raises(WriteError, match="no space left on device") as err:
        write_json_atomic(target, {"a": 1})
    assert str(target) in str(err.value) and list(tmp_path.glob("*.tmp")) == []


FULL_DISK = """
import runpy, sys, torch
real = torch.save
def save(obj, path, *args, **kwargs):
    if str(path).endswith("state.pt") and "step_0000000512" in str(path):
        open(path, "wb").write(b"partial")
        raise RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed")
    return real(obj, path, *args, **kwargs)
torch.save = save
sys.argv = ["train", *sys.argv[1:]]
runpy.run_module("experiments.train", run_name="__main__", alter_sys=True)
"""


def test_full_disk_exits_1_with_one_line(tmp_path):
    (tmp_path / "full_disk.py").write_text(FULL_DISK)
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONPATH": str(ROOT)}
    run = tmp_path / "run"
    args = [*TINY, f"run_dir={run}", "train.checkpoint_every=512"]
    result = subprocess.run(
        [sys.executable, "full_disk.py", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: could not write {run / 'checkpoints' / 'step_0000000512'}: "
        "PytorchStreamWriter failed writing file data/0: file write failed"
    ]
    assert not [p for p in run.rglob("*") if ".tmp" in p.name] and not (run / LOCK_FILE).exists()


def test_a_real_full_disk_names_the_path_and_leaves_no_tmp_files(tmp_path):
    """On a 1.5 MB tmpfs (needs root and mount; skipped otherwise) the first checkpoint fills it."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tiny tmpfs needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1500k", "tmpfs", str(disk)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        run = disk / "run"
        result = train_cli(tmp_path, f"run_dir={run}", "total_timesteps=4096", "train.checkpoint_every=512")
        assert result.returncode == 1
        assert result.stderr.strip().splitlines() == [
            f"error: could not write {run / 'checkpoints' / 'step_0000000512'}: no space left on device "
            "(free space, then run the same command: it resumes)"
        ]
        assert not [p for p in run.rglob("*") if ".tmp" in p.name] and not (run / LOCK_FILE).exists()
    finally:
        subprocess.run(["umount", str(disk)], check=True)
