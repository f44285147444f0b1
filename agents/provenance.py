"""Provenance: what reproducing a run needs, saved beside its results (``run_info.json``).

The seed, the Python and platform, the versions of the packages that change
a result, the git commit of this code (and whether the tree had uncommitted
changes) and the command line. Nothing here fails a run: a package that is
not installed has version ``None``, code outside a git checkout has commit
``None``.
"""

from __future__ import annotations

import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from agents.checkpoints import write_json_atomic
from agents.run_folder import RUN_CONFIG
from agents.train_config import TrainConfig

PACKAGES = ("numpy", "torch", "gymnasium", "stable-baselines3", "hydra-core", "wandb")


def run_info(config: TrainConfig) -> dict:
    """Seed, package versions and git commit: what reproducing this run needs."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
            check=True,
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain"], capture_output=True, text=True, cwd=Path(__file__).parent
            ).stdout.strip()
        )
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = None, None
    return {
        "seed": config.seed,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": versions,
        "git_commit": commit,
        "git_dirty": dirty,
        "command": " ".join(sys.argv),
    }


def save_provenance(run_dir: Path, config: TrainConfig) -> None:
    """Write ``config`` (:data:`~agents.run_folder.RUN_CONFIG`) and :func:`run_info` into ``run_dir``.

    Training calls this once its start is validated: from then on the folder
    holds a run (a refused start before it leaves no folder, :func:`~agents.run_folder.run_lock`).
    """
    write_json_atomic(run_dir / RUN_CONFIG, config.to_dict())
    write_json_atomic(run_dir / "run_info.json", run_info(config))
