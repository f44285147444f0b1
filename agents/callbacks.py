"""Training extensions as SB3 callbacks, one job each.

All act at the start of a rollout, the one point where the learner's state is
complete (the previous update is done, the next rollout not begun): that is
where a checkpoint can be resumed from exactly and where an evaluation sees
the same network an uninterrupted run would.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from agents.checkpoints import save_training_checkpoint


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

    def __init__(self, evaluate: Callable, every: int, path: Path, last_step: int = -1):
        super().__init__()
        self.evaluate, self.every, self.path, self.last_step = evaluate, every, path, last_step

    def due(self, timesteps: int) -> bool:
        return timesteps // self.every > max(self.last_step, -1) // self.every or self.last_step < 0

    def _on_training_start(self) -> None:
        self.started = time.perf_counter()

    def run(self, timesteps: int) -> list[dict]:
        wall = time.perf_counter() - getattr(self, "started", time.perf_counter())
        rows = [{**row, "wall_seconds": round(wall, 2)} for row in self.evaluate(self.model, timesteps)]
        with open(self.path, "a") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")
                key = f"eval/{row['distribution']}/{{}}_{row['reward']}"
                self.logger.record(key.format("return"), row["mean_return"])
                self.logger.record(key.format("success"), row["success_rate"])
        self.last_step = timesteps
        return rows

    def _on_rollout_start(self) -> None:
        if self.due(self.model.num_timesteps):
            self.run(self.model.num_timesteps)

    def _on_step(self) -> bool:
        return True


class Checkpointing(BaseCallback):
    """Saves a resumable checkpoint every ``every`` steps (after any evaluation due then)."""

    def __init__(self, folder: Path, venv, every: int, meta: dict, state: Callable[[], dict]):
        super().__init__()
        self.folder, self.venv, self.every, self.meta, self.state = folder, venv, every, meta, state
        self.last_saved = -1

    def _on_training_start(self) -> None:
        self.last_saved = self.model.num_timesteps

    def _on_rollout_start(self) -> None:
        t = self.model.num_timesteps
        if t // self.every > self.last_saved // self.every:
            save_training_checkpoint(self.folder, self.model, self.venv, {**self.meta, **self.state()})
            self.last_saved = t

    def _on_step(self) -> bool:
        return True
