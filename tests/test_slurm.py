"""The Slurm path on a real Slurm: ``.ci/slurm.sh start`` brings up a single-node cluster with
accounting; ``pytest -m slurm`` (``make test-slurm``, run by ``.ci/run``) then trains a two-seed
sweep through ``hydra/launcher=slurm`` and checks that a sweep with a failing job ends, in bounded
time, with an error naming the job, its state and its log. Skipped, saying why, without a cluster.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from tests.conftest import TINY_PPO, TINY_RUN

pytestmark = pytest.mark.slurm
ROOT = Path(__file__).resolve().parents[1]
TINY = [*TINY_RUN, *TINY_PPO]
FAILING_SWEEP_BOUND_S = 120


def _why_no_slurm() -> str | None:
    if shutil.which("sinfo") is None or shutil.which("sacct") is None:
        return "Slurm is not installed (no sinfo/sacct); `.ci/slurm.sh start` installs and starts one"
    try:
        nodes = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20)
        acct = subprocess.run(["sacct", "-n", "-X", "-j", "1"], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "Slurm does not answer within 20 s"
    if nodes.returncode != 0:
        last = (nodes.stderr.strip().splitlines() or ["?"])[-1]
        return f"no Slurm cluster answers (sinfo: {last}); `.ci/slurm.sh start` starts one"
    if not any(state.rstrip("*~#").startswith(("idle", "mixed")) for state in nodes.stdout.split()):
        return f"no idle Slurm node (sinfo states: {nodes.stdout.split()})"
    if acct.returncode != 0:
        return "Slurm accounting (sacct) is not available: submitit could not see a job die"
    return None


@pytest.fixture(scope="module", autouse=True)
def slurm_cluster():
    reason = _why_no_slurm()
    if reason:
        pytest.skip(reason)


def slurm_sweep(tmp_path: Path, *overrides: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "experiments.train",
            "-m",
            "hydra/launcher=slurm",
            *TINY,
            f"runs_root={tmp_path / 'runs'}",
            f"hydra.sweep.dir={tmp_path / 'sweep'}",
            *overrides,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "WANDB_MODE": "disabled", "PYTHONPATH": str(ROOT)},
    )


def job_ids(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in (tmp_path / "sweep" / ".submitit").glob("*_*") if p.is_dir())


def sacct(job: str, wait_s: float = 60) -> dict:
    """The job's accounting record once it is final (slurmdbd records the end a little later)."""
    deadline = time.time() + wait_s
    while True:
        out = subprocess.run(
            ["sacct", "-n", "-X", "-P", "-j", job, "-o", "JobID,State,Start,End"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        fields = out.splitlines()[0].split("|") if out else []
        if len(fields) == 4 and "Unknown" not in fields[2:] or time.time() > deadline:
            break
        time.sleep(1)
    job_id, state, start, end = fields
    return {
        "id": job_id,
        "state": state,
        "start": datetime.fromisoformat(start),
        "end": datetime.fromisoformat(end),
    }


def test_two_seeds_train_side_by_side_on_slurm(tmp_path):
    started = time.time()
    result = slurm_sweep(tmp_path, "seed=1,2", timeout=600)
    wall = time.time() - started
    assert result.returncode == 0, result.stderr[-3000:]
    runs = sorted((tmp_path / "runs" / "coinrun" / "ppo").iterdir())
    assert [r.name.rsplit("-", 1)[1] for r in runs] == ["seed1", "seed2"]
    assert runs[0].name.rsplit("-", 1)[0] == runs[1].name.rsplit("-", 1)[0]  # one config, two seeds
    for seed, run in enumerate(runs, start=1):
        metrics = json.loads((run / "metrics.json").read_text())
        assert metrics["status"] == "done" and metrics["seed"] == seed and metrics["total_timesteps"] == 1024
        assert (run / "final" / "model.pt").is_file() and "done at step 1024" in (
            run / "train.log"
        ).read_text()
        assert not (run / "run.lock").exists()
    jobs = [sacct(job) for job in job_ids(tmp_path)]
    assert len(jobs) == 2 and all(job["state"] == "COMPLETED" for job in jobs), jobs
    first, second = jobs
    assert first["start"] <= second["end"] and second["start"] <= first["end"], f"not side by side: {jobs}"
    print(f"two-seed Slurm sweep: {wall:.1f} s; jobs {[job['id'] for job in jobs]}")


def test_a_failing_job_ends_the_sweep_naming_job_state_and_log(tmp_path):
    started = time.time()
    result = slurm_sweep(
        tmp_path, "seed=1", "env.coin_random_prob=0.1,1.5", timeout=FAILING_SWEEP_BOUND_S + 60
    )
    wall = time.time() - started
    assert result.returncode != 0
    assert wall < FAILING_SWEEP_BOUND_S, f"the failing sweep took {wall:.0f} s"
    found = re.search(r"job (\d+_\d+) \(([^)]*)\), log (\S+) FAILED: (.*)", result.stderr)
    assert found, result.stderr[-3000:]
    job, overrides, log, message = found.groups()
    assert "env.coin_random_prob=1.5" in overrides
    assert "coin_random_prob=1.5 must be a probability in [0, 1]" in message
    assert job in job_ids(tmp_path) and Path(log).is_file()
    listing = tmp_path / "sweep" / "failed_jobs.txt"
    assert f"every failed job of this sweep: {listing}" in result.stderr
    assert listing.read_text().splitlines() == [found.group(0)]
    assert "Traceback" not in result.stderr
    # the good job of the sweep still finished
    (good,) = [r for r in (tmp_path / "runs" / "coinrun" / "ppo").iterdir() if r.name.startswith("crp0.1-")]
    assert json.loads((good / "metrics.json").read_text())["status"] == "done"
    print(f"failing-job Slurm sweep ended in {wall:.1f} s: {found.group(0)[:200]}")


def test_a_study_trains_its_seeds_as_a_slurm_job_array_and_reuses_them(tmp_path):
    """``experiments.study launcher=slurm``: one array task per (point, seed), judged here; a re-run
    submits nothing (every run is finished) and gives the same table."""
    command = [
        sys.executable,
        "-m",
        "experiments.study",
        "study=coin",
        "launcher=slurm",
        "study.values=[0.0]",
        "study.n_seeds=2",
        "total_timesteps=1024",
        "n_episodes=8",
        "train.eval_episodes=4",
        "agent.num_envs=8",
        *TINY_PPO,
        f"runs_dir={tmp_path / 'runs'}",
    ]
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONPATH": str(ROOT)}
    outputs = []
    for attempt in ("first", "again"):
        out = tmp_path / attempt
        result = subprocess.run(
            [*command, f"out_dir={out}"], cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env
        )
        assert result.returncode == 0, result.stderr[-3000:]
        outputs.append((out, result.stdout))
    (first, first_log), (again, again_log) = outputs
    assert "slurm: 2 training jobs submitted" in first_log and "submitted" not in again_log
    tasks = sorted(p.name for p in (first / ".submitit").glob("*_*") if p.is_dir())
    assert len(tasks) == 2 and {t.split("_")[0] for t in tasks} == {tasks[0].split("_")[0]}  # one array
    assert all(sacct(task)["state"] == "COMPLETED" for task in tasks)
    runs = sorted((tmp_path / "runs" / "coinrun").iterdir())
    assert [r.name.rsplit("-", 1)[1] for r in runs] == ["seed1", "seed2"]
    assert all(json.loads((r / "metrics.json").read_text())["status"] == "done" for r in runs)
    assert (first / "study.csv").read_text().splitlines()[0] == (
        again / "study.csv"
    ).read_text().splitlines()[0]
    rows = [
        json.loads((d / "study.json").read_text())["points"][0]["verdict_fractions"] for d in (first, again)
    ]
    assert rows[0] == rows[1]
