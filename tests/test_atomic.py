"""The atomic writer (spark_lightning/atomic.py): full, read-only and size-limited disks leave
no partial file."""

from __future__ import annotations

import errno
import multiprocessing
import os
from pathlib import Path

import pytest

import spark_lightning.atomic as atomic
from spark_lightning.atomic import write_bytes_atomic


def _write_past_a_size_limit(path: str, queue) -> None:
    """A child process whose files may not grow past 4 KiB (RLIMIT_FSIZE): a small full disk."""
    import resource
    import signal

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
    try:
        write_bytes_atomic(Path(path), b"x" * 100_000)
        queue.put("written")
    except OSError as err:
        queue.put(f"{err.errno} {err}")


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
def test_a_full_or_read_only_disk_leaves_no_temp_file_and_names_the_path(tmp_path, monkeypatch, code):
    target = tmp_path / "x_layer.npz"
    real_fsync = os.fsync

    def failing_fsync(fd):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(atomic.os, "fsync", failing_fsync)
    with pytest.raises(OSError, match=rf"cannot write {target}: the (disk is full|file system is read-only)"):
        write_bytes_atomic(target, b"x" * 1000)
    monkeypatch.setattr(atomic.os, "fsync", real_fsync)
    assert list(tmp_path.iterdir()) == []


def test_a_size_limited_file_system_write_fails_cleanly(tmp_path):
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_write_past_a_size_limit, args=(str(tmp_path / "big.bin"), queue))
    child.start()
    result = queue.get(timeout=30)
    child.join()
    assert result.startswith(str(errno.EFBIG)) and "big.bin" in result
    assert list(tmp_path.iterdir()) == []  # no 0-byte or partial temp file
