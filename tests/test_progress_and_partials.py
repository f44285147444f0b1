"""Judging shows its progress; an interrupted evaluate leaves no report; files follow the umask."""

from __future__ import annotations

import io
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from agents.files import atomic_write
from evaluation.progress import Bar, JudgeStep, Lines, reporter
from experiments import train as train_app
from experiments.evaluate import partial_dir, publish
from tests.conftest import TINY_PPO, TINY_RUN

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = str(ROOT / "configs")
AGENT = "ppo[coin_random_prob=0.0]"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> list[Path]:
    """Two tiny runs trained under umask 027: every file they hold is 0640 (checkpoints, logs)."""
    root = tmp_path_factory.mktemp("runs")
    old = os.umask(0o027)
    try:
        for seed in (1, 2):
            with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
                cfg = compose(
                    "train", overrides=[*TINY_RUN, *TINY_PPO, f"seed={seed}", f"run_dir={root / f's{seed}'}"]
                )
            train_app.run(cfg)
    finally:
        os.umask(old)
    return [root / "s1", root / "s2"]


def _default_sigint() -> None:
    """Ctrl-C as on a terminal: a runner started in the background (nohup, CI) passes SIGINT on ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _evaluate(*overrides: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "experiments.evaluate", *overrides],
        cwd=ROOT,
        preexec_fn=_default_sigint,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "WANDB_MODE": "disabled"},
        **kwargs,
    )


def test_run_files_follow_the_umask(runs):
    files = [p for p in runs[0].rglob("*") if p.is_file()]
    assert any(p.name.endswith(".pt") for p in files) and any(p.suffix == ".json" for p in files)
    assert {str(p.relative_to(runs[0])): oct(mode(p)) for p in files if mode(p) != 0o640} == {}


def test_evaluate_logs_progress_per_agent_seed_and_distribution(runs, tmp_path):
    out = tmp_path / "report"
    proc = _evaluate(f"runs=[{runs[0]},{runs[1]}]", f"out_dir={out}", "n_episodes=10", umask=0o027)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    lines = [line for line in stderr.splitlines() if line.startswith("judging ")]
    prefix = f"judging {AGENT} on GMSuite/CoinRun-v0: "
    assert lines == [
        prefix + f"seed {s}/2, {d} ({stage})"
        for s in (1, 2)
        for d, stage in [("train", "rollouts"), ("test", "rollouts"), ("test", "goal inference, IRL, EPIC")]
    ], stderr
    # the report is complete, in out_dir, readable by the group as umask 027 says; no partial folder
    for name in ("results.json", "results.csv", "verdicts.md", "scores.png", "posterior.png", "seeds.png"):
        assert mode(out / name) == 0o640, name
    assert len(json.loads((out / "results.json").read_text())["judgements"]) == 2
    assert list((out / "rollouts").glob("*.npz"))
    assert not partial_dir(out).exists()
    assert "report: " in stdout


def test_ctrl_c_during_judging_leaves_no_report(runs, tmp_path):
    out = tmp_path / "report"
    proc = _evaluate(f"runs=[{runs[0]},{runs[1]}]", f"out_dir={out}", "n_episodes=1000")
    seen = []
    deadline = time.monotonic() + 240
    for line in proc.stderr:  # wait until the judging is under way (its first step), then press Ctrl-C
        seen.append(line)
        if line.startswith("judging ") and "(rollouts)" in line:
            break
        assert time.monotonic() < deadline, "".join(seen)
    assert partial_dir(out).is_dir()  # rollouts are being written there, not into out_dir
    proc.send_signal(signal.SIGINT)
    stdout, rest = proc.communicate(timeout=120)
    stderr = "".join(seen) + rest
    assert proc.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == "interrupted; no report written"
    assert "Traceback" not in stderr
    assert not partial_dir(out).exists()
    assert not (out / "results.json").exists()
    assert not out.exists()  # Hydra's stub folder goes too: nothing to mistake for a report


def test_publish_moves_a_complete_report_into_place(tmp_path):
    def report(folder: Path, tag: str) -> Path:
        (folder / "rollouts").mkdir(parents=True)
        (folder / "rollouts" / f"{tag}.npz").write_text(tag)
        (folder / "verdicts.md").write_text(tag)
        (folder / "results.json").write_text(tag)
        return folder

    # a missing out_dir: one rename
    out = tmp_path / "a"
    publish(report(partial_dir(out), "new"), out)
    assert (out / "results.json").read_text() == "new" and not partial_dir(out).exists()

    # Hydra's files and an earlier report: kept and replaced, the earlier rollouts gone
    out = tmp_path / "b"
    report(out, "old")
    (out / ".hydra").mkdir()
    (out / ".hydra" / "config.yaml").write_text("cfg")
    publish(report(partial_dir(out), "new"), out)
    assert (out / "results.json").read_text() == "new" and (out / "verdicts.md").read_text() == "new"
    assert sorted(p.name for p in (out / "rollouts").iterdir()) == ["new.npz"]
    assert (out / ".hydra" / "config.yaml").read_text() == "cfg"
    assert not partial_dir(out).exists()


def test_atomic_write_gives_the_umask_mode(tmp_path):
    old = os.umask(0o027)
    try:
        atomic_write(tmp_path / "a.json", b"{}")
        os.umask(0o002)
        atomic_write(tmp_path / "b.json", b"{}")
    finally:
        os.umask(old)
    assert mode(tmp_path / "a.json") == 0o640 and mode(tmp_path / "b.json") == 0o664
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.json"]  # no .tmp left


def test_reporter_is_a_bar_on_a_terminal_and_lines_otherwise():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    assert isinstance(reporter(io.StringIO()), Lines)
    stream = Tty()
    with reporter(stream) as bar:
        assert isinstance(bar, Bar)
        bar(JudgeStep("ppo[x]", "Env-v0", 1, 1, 2, "train", "rollouts", 0, 6))
        bar(JudgeStep("ppo[x]", "Env-v0", 2, 2, 2, "test", "rollouts", 4, 6))
    assert "ppo[x] on Env-v0: seed 2/2, test (rollouts)" in stream.getvalue()
    assert "6/6" in stream.getvalue()
    step = JudgeStep("a", "E", 7, 2, 3, "test", "rollouts", 0, 9)
    assert step.line() == "judging a on E: seed 7 (2/3), test (rollouts)"
