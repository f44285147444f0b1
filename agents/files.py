"""Files written whole or not at all, with the mode the umask gives.

Every file the suite writes (checkpoints, run logs, rollouts, videos,
reports) goes through :func:`replacing`: the content is written to a fresh
temporary name in the target's folder and renamed into place, so a reader
never sees a half-written file and an interrupted run leaves the previous one
intact. A write that fails removes its temporary file and raises
:class:`WriteError` naming the target (a full disk says so, and how to go on).

The temporary file is created with mode ``0o666`` minus the umask, as
``open`` creates files (``tempfile.mkstemp`` makes ``0600`` files: a report
would be unreadable by the group).

This is the lowest layer that writes files: ``evaluation`` and
``experiments`` import it, it imports nothing of the project.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class WriteError(OSError):
    """A file could not be written (full disk, quota, permissions); names the path."""

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


def current_umask() -> int:
    """The process's umask (read by setting and restoring it: Python has no getter)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _new_temporary(path: Path, suffix: str, unique: bool) -> Path:
    """A new empty file beside ``path``, created with the umask's mode: ``.<name>.<random><suffix>``, or
    ``<name><suffix>`` when not ``unique`` (a leftover of that name is replaced)."""
    for _ in range(100):
        if unique:
            tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}{suffix}")
        else:
            tmp = path.with_name(path.name + suffix)
            tmp.unlink(missing_ok=True)
        try:
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(path))


@contextmanager
def replacing(path: str | Path, suffix: str = ".tmp", unique: bool = True) -> Iterator[Path]:
    """Write ``path`` atomically: yields a temporary path to write to, renamed to ``path`` on success.

    The temporary file exists (empty) and is removed on failure; I/O errors
    become :class:`WriteError` naming ``path``. The folder is created if
    missing. ``suffix`` ends the temporary name: a writer that picks its
    format by extension (``np.savez`` adds ``.npz`` otherwise, imageio reads
    ``.gif``) needs it to end like ``path``. The name is random unless
    ``unique`` is False, for writers that record the file's own name in it
    (``torch.save`` names its archive after the file): then it is
    ``<name><suffix>``, and the bytes depend on the content only.
    """
    path = Path(path)
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _new_temporary(path, suffix, unique)
        with writing(path, tmp):
            yield tmp
            os.replace(tmp, path)


def atomic_write(path: str | Path, data: bytes | str) -> None:
    """Write ``data`` (``str`` as UTF-8) to ``path`` atomically (:func:`replacing`)."""
    if isinstance(data, str):
        data = data.encode()
    with replacing(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_json(
    path: str | Path,
    data: Any,
    *,
    indent: int = 2,
    sort_keys: bool = True,
    default=str,
    allow_nan: bool = True,
) -> None:
    """``data`` as JSON, atomically; the defaults are a run folder's (sorted keys, anything else as ``str``).

    Reports pass ``indent=1, sort_keys=False, default=None, allow_nan=False``:
    their keys keep their order and a value JSON cannot hold is an error.
    """
    text = json.dumps(data, indent=indent, sort_keys=sort_keys, default=default, allow_nan=allow_nan)
    atomic_write(path, text)
