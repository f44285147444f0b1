"""Checkpoints that refuse what they cannot trust and never unpickle code.

Two kinds, both plain tensors and arrays (``torch.load(weights_only=True)``,
``np.load(allow_pickle=False)``) plus JSON, so loading a file executes nothing:

- a *training checkpoint* (``checkpoints/step_<t>/``): everything needed to
  continue a run exactly — network and optimiser state, RNG states, the
  environments' batch state and the learner's last observation;
- a *policy file* (``model.pt`` + ``model.json``): the trained network and the
  description needed to rebuild it (algorithm, network, env, observation shape).

Every write goes to a temporary name first and is renamed into place, so a
run killed mid-write leaves the previous checkpoint intact; a write that fails
(a full disk) removes its temporary file and raises :class:`WriteError`
naming the path.
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import re
import shutil
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

LATEST = "latest"
POLICY_FILE = "model.pt"
POLICY_META = "model.json"
KEEP_CHECKPOINTS = 2


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, or made for another env or network."""


class WriteError(OSError):
    """A file of a run could not be written (full disk, quota, permissions); names the path."""

    def __init__(self, path: Path, reason: str, errno_: int | None = None):
        super().__init__(errno_, reason, str(path))
        self.path, self.reason = Path(path), reason

    def __str__(self) -> str:
        return f"could not write {self.path}: {self.reason}"


def _free_bytes(path: Path) -> int | None:
    for folder in (path, *path.parents):
        try:
            stat = os.statvfs(folder)
        except OSError:
            continue
        return stat.f_bavail * stat.f_frsize
    return None


def _reason(err: BaseException, path: Path) -> tuple[str, int | None]:
    code = getattr(err, "errno", None)
    free = _free_bytes(path)
    if code in (errno.ENOSPC, errno.EDQUOT) or (free is not None and free < 1 << 20):
        return "no space left on device (free space, then run the same command: it resumes)", code
    if isinstance(err, OSError):
        return err.strerror or str(err), code
    return str(err).splitlines()[0] if str(err) else type(err).__name__, code


@contextmanager
def writing(path: Path, *temporaries: Path) -> Iterator[None]:
    """Write ``path`` through ``temporaries``: on any failure they are removed; I/O errors become
    :class:`WriteError` naming ``path`` (torch reports a full disk as a ``RuntimeError``)."""
    try:
        yield
    except BaseException as err:
        for tmp in temporaries:
            if tmp.is_dir() and not tmp.is_symlink():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink(missing_ok=True)
        if isinstance(err, WriteError):
            raise
        if isinstance(err, (OSError, RuntimeError)):  # torch reports a full disk as a RuntimeError
            reason, code = _reason(err, Path(path))
            raise WriteError(path, reason, code) from err
        raise


def write_bytes_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with writing(path, tmp):
        tmp.write_bytes(data)
        os.replace(tmp, path)


def write_json_atomic(path: Path, data: Any) -> None:
    write_bytes_atomic(path, json.dumps(data, indent=2, sort_keys=True, default=str).encode())


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
    tmp = folder / (POLICY_FILE + ".tmp")
    with writing(folder / POLICY_FILE, tmp):
        folder.mkdir(parents=True, exist_ok=True)
        torch.save(model.policy.state_dict(), tmp)
        os.replace(tmp, folder / POLICY_FILE)
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
