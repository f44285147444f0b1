"""Run folders: one writer each (``run.lock``), what a folder holds, and where training starts.

:func:`run_lock` makes the folder and holds its lock while training writes
into it; a second process stops at once naming the holder, and a lock whose
process is gone is taken over. :func:`prepare_run` reads what the folder
holds for a config: a finished run, a checkpoint to resume from, a shorter
run of the same config to extend, or nothing; it refuses a folder holding
another config before anything is written.

A refused start leaves no folder behind: a folder :func:`run_lock` made is
removed again (with any parents it made) when the body fails before a run
has begun in it, that is before :data:`RUN_CONFIG` is written, which
training does only once its start is validated (env, network, checkpoint).
A folder that existed before is never removed.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from agents.checkpoints import CheckpointError, latest_checkpoint, writing
from agents.train_config import FREE_KEYS, LATER_DEFAULTS, TrainConfig, canonical_json

RUN_CONFIG = "train_config.json"  # written once a start is validated: from then on the folder holds a run


# ------------------------------------------------------------------ one writer per run
LOCK_FILE = "run.lock"
_HELD: dict[str, int] = {}  # locks this process holds (re-entrant), by resolved path


class RunBusyError(ValueError):
    """Another live process is training into this run folder."""


def _proc_start(pid: int) -> str | None:
    """The process's start time in clock ticks (tells a live process from a reused pid), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


def _alive(holder: dict) -> bool:
    pid = holder.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except (OSError, IndexError):
        state = ""
    if state in ("Z", "X"):
        return False
    started = holder.get("proc_start")
    return not (started and _proc_start(pid) not in (None, started))


def _read_holder(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {"pid": None, "host": "?", "started": "?"}
    return data if isinstance(data, dict) else {"pid": None, "host": "?", "started": "?"}


def _slurm_job() -> str | None:
    """This process's Slurm job (``<array job>_<task>`` for an array task), or None outside Slurm."""
    env = os.environ
    if env.get("SLURM_ARRAY_JOB_ID") and env.get("SLURM_ARRAY_TASK_ID"):
        return f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    return env.get("SLURM_JOB_ID")


def _slurm_job_gone(job: str) -> bool:
    """True when Slurm says ``job`` is not running (finished, failed, cancelled, unknown)."""
    try:
        out = subprocess.run(
            ["squeue", "-h", "-j", job, "-o", "%T"], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.TimeoutExpired):
        return False  # cannot ask Slurm: assume it runs
    if out.returncode != 0:
        return "invalid job id" in out.stderr.lower()
    states = out.stdout.split()
    return not any(
        state in ("RUNNING", "PENDING", "COMPLETING", "CONFIGURING", "SUSPENDED") for state in states
    )


def _stale(holder: dict, host: str) -> str | None:
    """Why the lock ``holder`` is stale (its process is gone), or None when it may be alive."""
    who = f"pid {holder.get('pid')} on {holder.get('host')} (since {holder.get('started')})"
    if holder.get("host") == host:
        return None if _alive(holder) else f"{who} is gone"
    job = holder.get("slurm_job")
    if job and job == _slurm_job():
        return f"{who} was this Slurm job ({job}) before it was requeued"
    if job and _slurm_job_gone(str(job)):
        return f"{who} was Slurm job {job}, which is no longer running"
    return None


def _create_exclusive(source: Path, path: Path) -> None:
    """Create ``path`` with ``source``'s content, atomically; ``FileExistsError`` if it exists."""
    try:
        os.link(source, path)  # the content is there the moment the name is
    except FileExistsError:
        raise
    except OSError:  # a filesystem without hard links
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        with os.fdopen(fd, "w") as f:
            f.write(source.read_text())


@contextmanager
def run_lock(run_dir: str | Path, log: Callable[[str], None] | None = None) -> Iterator[Path]:
    """Hold ``run_dir/run.lock`` (pid, host, start time) while training into ``run_dir``.

    A second process exits at once with :class:`RunBusyError` naming the holder;
    a lock whose process is gone is taken over, and said so: on the same host
    by its pid, from another host when it was a Slurm job that is no longer
    running (or this very job, requeued). Re-entrant within one process.

    The folder (and any missing parents) is made here; when the body fails
    before a run has begun in it (no :data:`RUN_CONFIG` yet), what this call
    made is removed again, so a refused start leaves no folder. A folder that
    existed before is left as it is.
    """
    run_dir = Path(run_dir)
    made = _missing_folders(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_FILE
    key = str(path.resolve())
    if key in _HELD:
        _HELD[key] += 1
        try:
            yield path
        finally:
            _HELD[key] -= 1
        return
    host, pid = socket.gethostname(), os.getpid()
    me = {
        "pid": pid,
        "host": host,
        "started": datetime.now().isoformat(timespec="seconds"),
        "proc_start": _proc_start(pid),
        "slurm_job": _slurm_job(),
        "command": " ".join(sys.argv),
    }
    tmp = run_dir / f".{LOCK_FILE}.{host}.{pid}.tmp"
    try:
        _take_lock(path, tmp, me, log)
    except BaseException:
        _remove_empty(made)  # only empty folders: a busy folder holds its holder's lock
        raise
    _HELD[key] = 1
    refused = False
    try:
        yield path
    except BaseException:
        refused = bool(made) and not (run_dir / RUN_CONFIG).exists()
        if refused:
            _clear(run_dir, keep=LOCK_FILE)
        raise
    finally:
        del _HELD[key]
        holder = _read_holder(path)
        if holder is not None and holder.get("pid") == pid and holder.get("host") == host:
            path.unlink(missing_ok=True)
        if refused:
            _remove_empty(made)  # after the lock is gone; a folder another process took meanwhile stays


def _take_lock(path: Path, tmp: Path, me: dict, log: Callable[[str], None] | None) -> None:
    """Create the lock ``path`` holding ``me`` (through ``tmp``), taking over a stale one."""
    run_dir, host, pid = path.parent, me["host"], me["pid"]
    with writing(path, tmp):
        tmp.write_text(json.dumps(me))
    try:
        for _ in range(20):
            try:
                _create_exclusive(tmp, path)
                break
            except FileExistsError:
                holder = _read_holder(path)
                if holder is None:
                    continue  # released meanwhile
                reason = _stale(holder, host)
                if reason:
                    stale = run_dir / f".{LOCK_FILE}.stale.{pid}"
                    try:
                        os.replace(path, stale)
                    except FileNotFoundError:
                        continue
                    if _read_holder(stale) != holder:  # another process took it over first: put it back
                        try:
                            os.link(stale, path)
                        except FileExistsError:
                            pass
                        stale.unlink(missing_ok=True)
                        continue
                    stale.unlink(missing_ok=True)
                    message = f"taking over the stale lock of {run_dir}: {reason}"
                    print(message, file=sys.stderr, flush=True)
                    if log is not None:
                        log(message)
                    continue
                where = (
                    f"pid {holder.get('pid')} on host {holder.get('host')} (since {holder.get('started')})"
                )
                if holder.get("slurm_job"):
                    where += f", Slurm job {holder['slurm_job']}"
                hint = "wait for it to finish or stop it; the same command then resumes"
                if holder.get("host") != host:
                    hint += f"; if that process is gone, delete {path}"
                raise RunBusyError(f"{run_dir} is being trained by {where}; {hint}") from None
        else:
            raise RunBusyError(f"{run_dir}: could not take the lock {path}")
    finally:
        tmp.unlink(missing_ok=True)


def _missing_folders(folder: Path) -> list[Path]:
    """``folder`` and its parents that do not exist yet, deepest first."""
    missing = []
    for candidate in (folder, *folder.parents):
        if candidate.exists() or candidate.is_symlink():
            break
        missing.append(candidate)
    return missing


def _clear(folder: Path, keep: str) -> None:
    """Remove everything in ``folder`` but ``keep``."""
    for entry in folder.iterdir():
        if entry.name == keep:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def _remove_empty(folders: list[Path]) -> None:
    """Remove ``folders`` (deepest first) while they are empty; stop at the first that is not."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


# ------------------------------------------------------------------ the run folder
RESULT_NAMES = (
    "checkpoints",
    "final",
    "progress.jsonl",
    "progress.csv",
    "eval.jsonl",
    "eval.csv",
    "metrics.json",
    "train_config.json",
    "run_info.json",
    "config.yaml",
    "train.log",
    "video",
    "wandb",
    "wandb_id.txt",
)


@dataclass
class RunStart:
    """What a run folder holds for a config: a finished run, or where training starts from."""

    finished: dict | None = None
    checkpoint: Path | None = None
    history_from: Path | None = None  # a shorter run whose curves the extended run continues


def _differences(previous: dict, current: dict) -> list[str]:
    def value(config, key):
        return config.get(key, LATER_DEFAULTS.get(key))

    return sorted(
        k
        for k in set(previous) | set(current)
        if k not in FREE_KEYS and canonical_json(value(previous, k)) != canonical_json(value(current, k))
    )


def finished_metrics(run_dir: Path) -> dict | None:
    """The metrics of a run folder whose training is done (final model saved), else None."""
    metrics_path = run_dir / "metrics.json"
    if metrics_path.exists() and (run_dir / "final" / "model.pt").exists():
        try:
            metrics = json.loads(metrics_path.read_text())
        except ValueError:
            return None
        if metrics.get("status") == "done":
            return metrics
    return None


def _shorter_runs(run_dir: Path, config: TrainConfig) -> list[tuple[int, Path]]:
    """Runs beside ``run_dir`` (and itself) of the same config and seed with a smaller budget."""
    found = []
    want = config.to_dict()
    candidates = (
        {run_dir, *run_dir.parent.glob(f"*-seed{config.seed}")} if run_dir.parent.is_dir() else {run_dir}
    )
    for folder in candidates:
        try:
            previous = json.loads((folder / "train_config.json").read_text())
        except (OSError, ValueError):
            continue
        if (
            _differences(previous, want) == ["total_timesteps"]
            and previous["total_timesteps"] < config.total_timesteps
        ):
            try:
                if latest_checkpoint(folder / "checkpoints") is not None:
                    found.append((int(previous["total_timesteps"]), folder))
            except CheckpointError:
                continue
    return sorted(found, key=lambda item: item[0])


def prepare_run(
    config: TrainConfig, run_dir: str | Path, fresh: bool = False, extend: bool = False
) -> RunStart:
    """Check what ``run_dir`` holds (under its lock); writes nothing but ``fresh``'s deletions.

    Refuses a folder holding another config, naming the changed keys and the
    way out; returns a finished run's metrics; with ``extend``, a run of the
    same config and a smaller budget (this folder or a sibling) is continued
    from its latest (final) checkpoint.
    """
    run_dir = Path(run_dir)
    if fresh:
        for name in RESULT_NAMES:
            target = run_dir / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
    config_path = run_dir / "train_config.json"
    own = None
    if config_path.exists():
        previous = json.loads(config_path.read_text())
        changed = _differences(previous, config.to_dict())
        budget_only = changed == ["total_timesteps"] and previous["total_timesteps"] < config.total_timesteps
        if changed and not (budget_only and extend):
            way_out = "use another run folder (run_dir=...) or train.fresh=true to delete it and start over"
            if budget_only:
                way_out = "train.extend=true continues it to the new budget; or " + way_out
            raise ValueError(f"{run_dir} holds a run with a different config (changed: {changed}); {way_out}")
        if not changed:
            finished = finished_metrics(run_dir)
            if finished is not None:
                return RunStart(finished=finished)
        own = latest_checkpoint(run_dir / "checkpoints")
        if own is not None:
            return RunStart(checkpoint=own)
    if extend:
        shorter = [item for item in _shorter_runs(run_dir, config) if item[1] != run_dir]
        if not shorter:
            raise ValueError(
                f"train.extend=true: no run of this config (seed {config.seed}) with a smaller budget "
                f"and a checkpoint in {run_dir} or beside it in {run_dir.parent}"
            )
        source = shorter[-1][1]
        return RunStart(checkpoint=latest_checkpoint(source / "checkpoints"), history_from=source)
    return RunStart()


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint folder, or the latest one of a run folder; fails naming the path."""
    path = Path(path)
    if (path / "checkpoints").is_dir():
        found = latest_checkpoint(path / "checkpoints")
        if found is not None:
            return found
    if (path / "state.pt").is_file():
        return path
    raise CheckpointError(f"no checkpoint to resume from at {path}")
