"""Training extensions as SB3 callbacks, one job each.

All act at the start of a rollout, the one point where the learner's state is
complete (the previous update is done, the next rollout not begun): that is
where a checkpoint can be resumed from exactly and where an evaluation sees
the same network an uninterrupted run would. A stop request (Ctrl-C) is
therefore honoured at the next rollout start: a checkpoint is saved there and
learning stops, so the same command resumes exactly.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from agents.checkpoints import save_training_checkpoint, writing


@dataclass
class StopRequest:
    """Set by a signal handler; the next rollout start saves a checkpoint and stops learning."""

    requested: bool = False
    saved_at: int | None = None


class EpisodeRewardStats(BaseCallback):
    """Logs each rollout's mean episode return and success rate under every declared reward."""

    def __init__(self, reward_names: tuple[str, ...]):
        super().__init__()
        self.reward_names = reward_names
        self._returns: dict[str, list[float]] = {name: [] for name in reward_names}

    def _on_step(self) -> bool:
        for info in self.locals["infos"]:
            episode = info.get("episode_rewards")
            if episode:
                for name in self.reward_names:
                    self._returns[name].append(episode[name])
        return True

    def _on_rollout_end(self) -> None:
        for name, values in self._returns.items():
            if values:
                self.logger.record(f"rollout/return_{name}", float(np.mean(values)))
                self.logger.record(f"rollout/success_{name}", float(np.mean(np.array(values) > 0)))
            values.clear()


class PeriodicEvaluation(BaseCallback):
    """Every ``every`` steps, ``evaluate(model, timesteps)`` rows go to the log and ``eval.jsonl``."""

    def __init__(
        self,
        evaluate: Callable,
        every: int,
        path: Path,
        last_step: int = -1,
        stop: StopRequest | None = None,
        note: Callable[[str], None] | None = None,
    ):
        super().__init__()
        self.evaluate, self.every, self.path, self.last_step = evaluate, every, path, last_step
        self.stop, self.note = stop or StopRequest(), note

    def due(self, timesteps: int) -> bool:
        return timesteps // self.every > max(self.last_step, -1) // self.every or self.last_step < 0

    def _on_training_start(self) -> None:
        self.started = time.perf_counter()

    def run(self, timesteps: int) -> list[dict]:
        wall = time.perf_counter() - getattr(self, "started", time.perf_counter())
        rows = [{**row, "wall_seconds": round(wall, 2)} for row in self.evaluate(self.model, timesteps)]
        with writing(self.path), open(self.path, "a") as f:
            f.write("".join(json.dumps(row) + "\n" for row in rows))
        for row in rows:
            key = f"eval/{row['distribution']}/{{}}_{row['reward']}"
            self.logger.record(key.format("return"), row["mean_return"])
            self.logger.record(key.format("success"), row["success_rate"])
        self.last_step = timesteps
        if self.note is not None:
            shown = [r for r in rows if r["reward"] in ("specified", "intended")]
            self.note(
                f"evaluated at step {timesteps}: "
                + ", ".join(
                    f"{r['distribution']}/{r['reward']} success {r['success_rate']:.2f}" for r in shown
                )
            )
        return rows

    def _on_rollout_start(self) -> None:
        if not self.stop.requested and self.due(self.model.num_timesteps):
            self.run(self.model.num_timesteps)

    def _on_step(self) -> bool:
        return True


class Checkpointing(BaseCallback):
    """Saves a resumable checkpoint every ``every`` steps (after any evaluation due then)."""

    def __init__(
        self,
        folder: Path,
        venv,
        every: int,
        meta: dict,
        state: Callable[[], dict],
        stop: StopRequest | None = None,
    ):
        super().__init__()
        self.folder, self.venv, self.every, self.meta, self.state = folder, venv, every, meta, state
        self.stop = stop or StopRequest()
        self.last_saved = -1

    def _on_training_start(self) -> None:
        self.last_saved = self.model.num_timesteps

    def save(self) -> None:
        save_training_checkpoint(self.folder, self.model, self.venv, {**self.meta, **self.state()})
        self.last_saved = self.model.num_timesteps

    def _on_rollout_start(self) -> None:
        t = self.model.num_timesteps
        if t // self.every > self.last_saved // self.every or (self.stop.requested and self.last_saved != t):
            self.save()
        if self.stop.requested:
            self.stop.saved_at = t

    def _on_step(self) -> bool:
        return self.stop.saved_at is None  # False ends learn() right after the stop checkpoint


class ProgressLog(BaseCallback):
    """Progress lines (step, rate, time left, success) to ``train.log``, at most every ``every_s`` seconds."""

    def __init__(self, path: Path, total: int, reward: str, every_s: float = 30.0):
        super().__init__()
        self.path, self.total, self.reward, self.every_s = path, total, reward, every_s
        self._last = 0.0

    def note(self, text: str) -> None:
        stamp = datetime.now().isoformat(timespec="seconds")
        with writing(self.path), open(self.path, "a") as f:
            f.write(f"{stamp} {text}\n")

    def _on_training_start(self) -> None:
        self._start_step, self._start = self.model.num_timesteps, time.perf_counter()
        self._last = self._start
        verb = "resuming at" if self._start_step else "starting at"
        self.note(f"{verb} step {self._start_step} of {self.total}")

    def line(self) -> str:
        t = self.model.num_timesteps
        elapsed = time.perf_counter() - self._start
        rate = (t - self._start_step) / max(elapsed, 1e-9)
        left = max(self.total - t, 0) / rate if rate > 0 else float("nan")
        text = f"step {t}/{self.total} ({100 * t / self.total:.0f}%), {rate:.0f} steps/s, ~{left:.0f} s left"
        success = self.logger.name_to_value.get(f"rollout/success_{self.reward}") if self.logger else None
        if success is not None:
            text += f", rollout success({self.reward}) {success:.2f}"
        return text

    def _on_rollout_end(self) -> None:
        if time.perf_counter() - self._last >= self.every_s:
            self._last = time.perf_counter()
            self.note(self.line())

    def _on_step(self) -> bool:
        return True
