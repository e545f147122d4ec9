"""On-disk cache of decoded, downscaled samples, so epoch 2+ never decodes a JPEG again.

One ``.npy`` per sample holds the image and its mask stacked as uint8 (H, W, 4). The file
name hashes the source paths, sizes and mtimes, and the folder is keyed by the data root
and target size, so a changed file or another ``data.size`` never reads a stale entry, and
every job of a multirun sweep over the same data reuses the same cache. Entries are written
to a temp file and renamed, so parallel loader workers (or a killed run) never leave a
half-written one.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from spark_lightning.data.spark import Sample, SparkDataError, read_mask, read_rgb

CACHE_VERSION = 1


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
    """Decoded (image, mask) pairs of one data root at one size."""

    def __init__(self, cache_dir: str | Path, root: str | Path, size: int | None) -> None:
        root = Path(root).expanduser().resolve()
        self.dir = Path(cache_dir).expanduser() / f"v{CACHE_VERSION}-{_digest(root, size)}-{size or 'full'}"
        self.size = size

    def path(self, sample: Sample) -> Path:
        stats = [(p, p.stat().st_size, p.stat().st_mtime_ns) for p in (sample.image, sample.mask) if p]
        return self.dir / f"{_digest(*stats)}.npy"

    def load(self, sample: Sample) -> tuple[np.ndarray, np.ndarray]:
        """(image HxWx3, mask HxW) as uint8, decoding and storing them on a miss."""
        path = self.path(sample)
        try:
            both = np.load(path)
            return both[..., :3], both[..., 3]
        except (FileNotFoundError, ValueError, OSError):
            pass  # a miss, or an unreadable entry that we simply rebuild
        image, mask = decode_sample(sample, self.size)
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npy")
        np.save(tmp, np.concatenate([image, mask[..., None]], axis=-1))
        os.replace(tmp, path)
        return image, mask


def decode_sample(sample: Sample, size: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Decode one sample from its JPEGs (no cache)."""
    image = read_rgb(sample.image, size)
    if sample.mask is None:
        return image, np.zeros(image.shape[:2], np.uint8)
    mask = read_mask(sample.mask, size)
    if mask.shape != image.shape[:2]:
        raise SparkDataError(
            f"mask {sample.mask} is {mask.shape[1]}x{mask.shape[0]} but image {sample.image} is "
            f"{image.shape[1]}x{image.shape[0]}: they must match."
        )
    return image, mask
