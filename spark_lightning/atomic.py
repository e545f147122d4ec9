"""One atomic writer for every file the project writes (predictions, JSON, cache, checkpoints).

Write to a temp file in the same folder, flush and fsync it, rename it over the target, fsync
the folder, and remove the temp file on any error. Readers (a resumed run, a second job, a
user) see the old file or the whole new one, never half a file or a 0-byte leftover, even when
the disk fills up or the process is killed mid-write. Also the one file lock jobs that share a
result (the synthetic set, an Optuna journal) wait on.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

TEMP_MARK = ".tmp-"  # our temp names: .<name>.tmp-<pid>; anything else is never deleted


def temp_name(path: Path) -> Path:
    """The temp file written before ``path``: hidden, in the same folder (same file system)."""
    return path.with_name(f".{path.name}{TEMP_MARK}{os.getpid()}")


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system allows opening a folder
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def explain_os_error(err: OSError, path: Path, what: str = "write") -> OSError:
    """An OSError whose message says which path and what to do (disk full, read-only...)."""
    hints = {
        errno.ENOSPC: "the disk is full: free space or choose another folder",
        errno.EDQUOT: "the disk quota is exceeded: free space or choose another folder",
        errno.EROFS: "the file system is read-only: choose a writable folder",
        errno.EACCES: "permission denied: choose a folder you can write to",
        errno.EPERM: "permission denied: choose a folder you can write to",
    }
    hint = hints.get(err.errno, err.strerror or str(err))
    new = type(err)(err.errno, f"cannot {what} {path}: {hint}")
    new.filename = str(path)
    return new


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "wb") -> Iterator[IO]:
    """``with atomic_open(p) as f: f.write(...)`` -- the file appears at ``p`` whole, or not at all."""
    path = Path(path)
    tmp = temp_name(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError as err:
        raise explain_os_error(err, path) from err
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    with atomic_open(path, "wb") as f:
        f.write(data)


def write_text_atomic(path: str | Path, text: str) -> None:
    write_bytes_atomic(path, text.encode())


def write_json_atomic(path: str | Path, data: object) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_with(path: str | Path, writer: Callable[[IO], None]) -> None:
    """Atomically write whatever ``writer(file)`` writes (``np.save``, ``torch.save``, a zip...)."""
    with atomic_open(path, "wb") as f:
        writer(f)


def clean_stale_temps(folder: Path, pattern: str = "*") -> list[Path]:
    """Remove our own temp files/folders (``.<name>.tmp-<pid>``) whose process is gone.

    A killed run cannot clean up after itself; the next run does. Names of any other shape, and
    temps of a process still running, are left alone.
    """
    removed = []
    if not folder.is_dir():
        return removed
    for path in folder.glob(f".{pattern}{TEMP_MARK}*"):
        pid = path.name.rsplit(TEMP_MARK, 1)[1]
        if not pid.isdigit() or _alive(int(pid)):
            continue
        if path.is_dir():
            import shutil

            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class LockHeld(Exception):
    """``file_lock(wait=False)``: another process holds the lock; ``owner`` is what it wrote there."""

    def __init__(self, owner: str) -> None:
        super().__init__(owner)
        self.owner = owner


@contextlib.contextmanager
def file_lock(path: Path, wait: bool = True, owner: str | None = None) -> Iterator[None]:
    """An exclusive lock (``flock``) on ``path`` held for the block: concurrent jobs wait, then
    reuse the result; with ``wait=False`` they get ``LockHeld`` at once instead. With ``owner``
    the file says who holds it, and is removed (while still held) at the end."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            f.seek(0)
            raise LockHeld(f.read().strip()) from None
        if owner is not None:
            f.seek(0)
            f.truncate()
            f.write(owner)
            f.flush()
        try:
            yield
        finally:
            if owner is not None:
                path.unlink(missing_ok=True)
            fcntl.flock(f, fcntl.LOCK_UN)


def lock_holder(path: Path) -> str | None:
    """What the holder of ``path``'s lock wrote, if a process holds it now (the lock is not kept)."""
    try:
        f = open(path)
    except OSError:
        return None  # no lock file, or none we could read: nobody of ours holds it
    with f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return f.read().strip() or "another process"
        fcntl.flock(f, fcntl.LOCK_UN)
    return None
