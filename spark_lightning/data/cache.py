"""On-disk cache of decoded, downscaled samples, so epoch 2+ never decodes a JPEG again.

One ``.npy`` per sample holds the image and its mask stacked as uint8 (H, W, 4). The file
name hashes the source paths, sizes and mtimes, and the folder is keyed by the data format,
root and target size, so a changed file or another ``data.size`` never reads a stale entry,
and every job of a sweep over the same data reuses the same cache. Entries are written
atomically; an entry that is empty, damaged or of the wrong shape is rebuilt, not trusted.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from spark_lightning.atomic import write_with
from spark_lightning.data.formats import SegmentationFormat, Sample
from spark_lightning.errors import SparkDataError

log = logging.getLogger(__name__)
CACHE_VERSION = 2


def default_cache_dir() -> Path:
    """``$SPARK_LIGHTNING_CACHE``, else ``$XDG_CACHE_HOME/spark_lightning`` (~/.cache)."""
    env = os.environ.get("SPARK_LIGHTNING_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(xdg) / "spark_lightning"


def _digest(*parts: object) -> str:
    return hashlib.sha1("\0".join(map(str, parts)).encode()).hexdigest()[:16]


class SampleCache:
    """Decoded (image, mask) pairs of one data set at one size."""

    def __init__(self, cache_dir: str | Path, fmt: SegmentationFormat, size: int | None) -> None:
        root = fmt.root.expanduser().resolve()
        key = _digest(type(fmt).__qualname__, root, size)
        self.dir = Path(cache_dir).expanduser() / f"v{CACHE_VERSION}-{key}-{size or 'full'}"
        self.fmt, self.size = fmt, size

    def path(self, sample: Sample) -> Path:
        stats = [(p, p.stat().st_size, p.stat().st_mtime_ns) for p in (sample.image, sample.mask) if p]
        return self.dir / f"{_digest(*stats)}.npy"

    def _read(self, path: Path) -> np.ndarray | None:
        """A stored entry, or None when missing or not a whole, well-shaped entry."""
        try:
            both = np.load(path, allow_pickle=False)
        except (FileNotFoundError, ValueError, OSError, EOFError):
            return None
        if both.dtype != np.uint8 or both.ndim != 3 or both.shape[2] != 4 or (
                self.size is not None and both.shape[:2] != (self.size, self.size)):
            log.warning("cache entry %s has shape %s %s: rebuilding it", path, both.shape, both.dtype)
            return None
        return both

    def load(self, sample: Sample) -> tuple[np.ndarray, np.ndarray]:
        """(image HxWx3, mask HxW) as uint8, decoding and storing them on a miss."""
        path = self.path(sample)
        both = self._read(path)
        if both is None:
            image, mask = self.fmt.read_sample(sample, self.size)
            both = np.concatenate([image, mask[..., None]], axis=-1)
            self._store(path, both)
        return both[..., :3], both[..., 3]

    def _store(self, path: Path, both: np.ndarray) -> None:
        try:
            write_with(path, lambda f: np.save(f, both))
        except OSError as err:
            short_write = err.errno is None and "written" in str(err)  # numpy's "N requested and M written": full
            if short_write or err.errno in (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT):
                why = "the disk is full (a short write)" if short_write else err.strerror
                raise SparkDataError(
                    f"cannot write the sample cache {path.parent}: {why}. Turn the cache off with data.cache=false, "
                    "or point data.cache_dir (or $SPARK_LIGHTNING_CACHE) at a writable folder with space."
                ) from err
            raise

    def fill(self, samples: list[Sample], workers: int = 2) -> int:
        """Decode every sample not cached yet (threads: decoding releases the GIL); raise one
        SparkDataError listing every unreadable file. Returns how many entries were written."""
        todo = [s for s in samples if self._read(self.path(s)) is None]
        if not todo:
            return 0
        log.info("decoding %d samples into the cache %s (once)", len(todo), self.dir)
        errors = []

        def one(sample: Sample) -> None:
            try:
                self.load(sample)
            except SparkDataError as err:
                if "data.cache=false" in str(err):
                    raise
                errors.append(str(err))

        with ThreadPoolExecutor(max(1, workers)) as pool:
            list(pool.map(one, todo))
        if errors:
            raise SparkDataError(f"{len(errors)} unreadable file(s):\n  " + "\n  ".join(sorted(errors)))
        return len(todo)
