"""Where training metrics go: JSON lines in the run folder first, W&B second.

SB3's logger takes output formats (``KVWriter``); these two add the run
folder's ``progress.jsonl`` (appended, so a resumed run keeps its history)
and an optional W&B run. W&B starts offline by default and any failure to
start it is reported and ignored: logging never stops a run.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.logger import KVWriter

from agents.files import atomic_write, writing


def _plain(value: Any):
    if isinstance(value, np.generic):
        return value.item()
    return value


class JsonlWriter(KVWriter):
    """One JSON object per SB3 dump, keyed by ``time/total_timesteps``."""

    def __init__(self, path: Path):
        self.path = path
        self.file = open(path, "a")

    def write(self, key_values: dict[str, Any], key_excluded: dict, step: int = 0) -> None:
        row = {k: _plain(v) for k, v in key_values.items() if isinstance(_plain(v), (int, float, str))}
        with writing(self.path):
            self.file.write(json.dumps(row) + "\n")
            self.file.flush()

    def close(self) -> None:
        self.file.close()


class WandbWriter(KVWriter):
    def __init__(self, run):
        self.run = run

    def write(self, key_values: dict[str, Any], key_excluded: dict, step: int = 0) -> None:
        values = {k: _plain(v) for k, v in key_values.items() if isinstance(_plain(v), (int, float))}
        self.run.log(values, step=int(key_values.get("time/total_timesteps", step)))

    def close(self) -> None:
        pass


def truncate_jsonl(path: Path, max_timesteps: int, key: str = "time/total_timesteps") -> None:
    """Drop rows logged after ``max_timesteps`` (a resumed run redoes them)."""
    if not path.exists():
        return
    kept = [
        line
        for line in path.read_text().splitlines()
        if line and json.loads(line).get(key, 0) <= max_timesteps
    ]
    atomic_write(path, "".join(line + "\n" for line in kept))


def jsonl_to_csv(source: Path, target: Path) -> None:
    rows = [json.loads(line) for line in source.read_text().splitlines() if line] if source.exists() else []
    columns = sorted({k for row in rows for k in row})
    buf = io.StringIO(newline="")
    writer = csv.DictWriter(buf, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(target, buf.getvalue())


def start_wandb(run_dir: Path, project: str, mode: str, config: dict, name: str, group: str | None = None):
    """A W&B run resumed by the id stored in ``run_dir``, or ``None`` if disabled or failing."""
    if mode == "disabled":
        return None
    id_file = run_dir / "wandb_id.txt"
    try:
        import wandb

        run_id = id_file.read_text().strip() if id_file.exists() else uuid.uuid4().hex[:12]
        id_file.write_text(run_id)
        return wandb.init(
            project=project,
            dir=str(run_dir),
            mode=mode,
            id=run_id,
            resume="allow",
            name=name,
            group=group,
            config=config,
            settings=wandb.Settings(silent=True, console="off"),
            reinit="finish_previous",
        )
    except Exception as err:  # noqa: BLE001 - W&B must never stop a run
        warnings.warn(
            f"W&B could not start ({type(err).__name__}: {err}); continuing without it", stacklevel=2
        )
        return None


def log_run_summary(run, run_dir: Path, metrics: dict) -> None:
    """The final evaluation table, the video and the final model (as an artifact) to W&B."""
    import wandb

    rows = metrics.get("final_eval", [])
    if rows:
        columns = sorted(rows[0])
        run.log({"eval/final": wandb.Table(columns=columns, data=[[r[c] for c in columns] for r in rows])})
    if metrics.get("video"):
        run.log({"video/shifted_episode": wandb.Video(metrics["video"], format="gif")})
    artifact = wandb.Artifact(
        name=f"model-{run.id}", type="model", metadata={"env_id": metrics.get("env_id")}
    )
    for name in ("model.pt", "model.json"):
        artifact.add_file(str(run_dir / "final" / name))
    run.log_artifact(artifact)
    run.summary.update({f"final/{r['distribution']}/success_{r['reward']}": r["success_rate"] for r in rows})
