"""Checkpoints that refuse what they cannot trust and never unpickle code.

Two kinds, both plain tensors and arrays (``torch.load(weights_only=True)``,
``np.load(allow_pickle=False)``) plus JSON, so loading a file executes nothing:

- a *training checkpoint* (``checkpoints/step_<t>/``): everything needed to
  continue a run exactly — network and optimiser state, RNG states, the
  environments' batch state and the learner's last observation;
- a *policy file* (``model.pt`` + ``model.json``): the trained network and the
  description needed to rebuild it (algorithm, network, env, observation shape).

Every write goes to a temporary name first and is renamed into place
(:mod:`agents.files`), so a run killed mid-write leaves the previous
checkpoint intact; a write that fails (a full disk) removes its temporary
file and raises :class:`WriteError` naming the path.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import zipfile
from pathlib import Path

import numpy as np
import torch

from agents.files import (
    WriteError,  # noqa: F401  (re-exported: callers catch it from here)
    atomic_write,
    atomic_write_json,
    replacing,
    writing,
)

LATEST = "latest"
POLICY_FILE = "model.pt"
POLICY_META = "model.json"
KEEP_CHECKPOINTS = 2


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, or made for another env or network."""


# The one atomic writer lives in agents.files; its names stay importable from here.
write_bytes_atomic = atomic_write
write_json_atomic = atomic_write_json


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"missing file {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"corrupt file {path}: {err}") from None


def _torch_load(path: Path) -> dict:
    if not path.is_file():
        raise CheckpointError(f"missing file {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, pickle.UnpicklingError) as err:
        raise CheckpointError(f"corrupt checkpoint {path}: {_load_failure(err)}") from None


def _load_failure(err: BaseException) -> str:
    """Why a file is not a checkpoint of plain tensors, without torch's advice to unpickle code."""
    text = str(err)
    found = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if found:
        return f"it holds a Python object ({found.group(1)}), not plain tensors; it is not loaded"
    if isinstance(err, pickle.UnpicklingError) or "weights_only" in text:
        return "not a file of plain tensors (unreadable or not made by this suite)"
    first = text.splitlines()[0] if text else type(err).__name__
    return first.split(". ")[0][:200]


def check_compatible(meta: dict, expected: dict, source: Path) -> None:
    """Fail naming the first field (env, observation shape, algorithm...) that differs."""
    for key, want in expected.items():
        have = meta.get(key)
        if json.loads(json.dumps(have)) != json.loads(json.dumps(want)):
            raise CheckpointError(f"{source} was made for {key}={have!r}, not {key}={want!r}")


# ------------------------------------------------------------------ training checkpoints
def _numpy_rng_state() -> dict[str, np.ndarray]:
    _, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "np_keys": keys,
        "np_pos": np.array(pos),
        "np_has_gauss": np.array(has_gauss),
        "np_cached": np.array(cached),
    }


def _set_numpy_rng_state(arrays) -> None:
    np.random.set_state(
        (
            "MT19937",
            arrays["np_keys"],
            int(arrays["np_pos"]),
            int(arrays["np_has_gauss"]),
            float(arrays["np_cached"]),
        )
    )


def save_training_checkpoint(folder: Path, model, venv, meta: dict) -> Path:
    """Snapshot ``model`` and its ``ShiftSB3VecEnv`` at ``model.num_timesteps``."""
    name = f"step_{model.num_timesteps:010d}"
    tmp = folder / f".{name}.tmp"
    final = folder / name
    with writing(final, tmp):
        folder.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        torch.save(
            {
                "policy": model.policy.state_dict(),
                "optimizer": model.policy.optimizer.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "num_timesteps": model.num_timesteps,
                "n_updates": getattr(model, "_n_updates", 0),
            },
            tmp / "state.pt",
        )
        np.savez(
            tmp / "env.npz",
            last_obs=model._last_obs,
            last_episode_starts=model._last_episode_starts,
            **venv.snapshot(),
            **_numpy_rng_state(),
        )
        write_json_atomic(tmp / "meta.json", {**meta, "num_timesteps": model.num_timesteps})
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
    write_bytes_atomic(folder / LATEST, name.encode())
    for old in sorted(p for p in folder.glob("step_*") if p.is_dir())[:-KEEP_CHECKPOINTS]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(folder: Path) -> Path | None:
    pointer = folder / LATEST
    if not pointer.is_file():
        return None
    path = folder / pointer.read_text().strip()
    if not path.is_dir():
        raise CheckpointError(f"{pointer} names {path.name}, which does not exist")
    return path


def load_training_checkpoint(path: Path, model, venv, expected_meta: dict) -> dict:
    """Restore ``model`` and ``venv`` in place; returns the checkpoint's metadata."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"no checkpoint at {path}")
    meta = _read_json(path / "meta.json")
    check_compatible(meta, expected_meta, path)
    state = _torch_load(path / "state.pt")
    try:
        with np.load(path / "env.npz", allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise CheckpointError(f"corrupt checkpoint {path / 'env.npz'}: {err}") from None
    try:
        model.policy.load_state_dict(state["policy"])
        model.policy.optimizer.load_state_dict(state["optimizer"])
    except (KeyError, RuntimeError, ValueError) as err:
        raise CheckpointError(f"checkpoint {path} does not fit this network: {err}") from None
    torch.set_rng_state(state["torch_rng"])
    model.num_timesteps = int(state["num_timesteps"])
    if hasattr(model, "_n_updates"):
        model._n_updates = int(state["n_updates"])
    venv.restore(arrays)
    model._last_obs = arrays["last_obs"]
    model._last_episode_starts = arrays["last_episode_starts"]
    _set_numpy_rng_state(arrays)
    return meta


# ------------------------------------------------------------------ policy files
def save_policy(folder: Path, model, meta: dict) -> Path:
    with replacing(folder / POLICY_FILE, unique=False) as tmp:  # torch names its archive after the file
        torch.save(model.policy.state_dict(), tmp)
    write_json_atomic(folder / POLICY_META, meta)
    return folder / POLICY_FILE


def read_policy(path: Path) -> tuple[dict, dict]:
    """``(state_dict, meta)`` of a policy file or of the folder holding one."""
    path = Path(path)
    if path.is_dir():
        path = path / POLICY_FILE
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}")
    meta = _read_json(path.with_name(POLICY_META))
    return _torch_load(path), meta
