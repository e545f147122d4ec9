"""``data=synthetic``: the SPARK format over a synthetic set generated once into the cache."""

from __future__ import annotations

import logging
from pathlib import Path

from spark_lightning.atomic import file_lock
from spark_lightning.data.cache import default_cache_dir
from spark_lightning.data.spark import SparkFormat
from spark_lightning.data.synth.scene import RENDER_VERSION
from spark_lightning.data.synth.writer import generate

log = logging.getLogger(__name__)


class SyntheticSpark(SparkFormat):
    """SPARK layout; without ``root``, a synthetic set of ``num_images`` images of ``size`` px
    from ``seed`` is generated on first use under ``folder`` (default: the cache folder) and
    reused by every later run. With ``root`` it reads that folder like ``data=spark``.

    The folder name carries the renderer version, so a changed renderer never reuses old images.
    """

    def __init__(self, num_images: int, size: int, seed: int, root: str | Path | None = None,
                 folder: str | Path | None = None) -> None:
        self.spec = {"num_images": int(num_images), "size": int(size), "seed": int(seed)}
        self.folder = Path(folder).expanduser() if folder else None
        super().__init__(root)

    @property
    def generated(self) -> bool:
        return self._root is None

    @property
    def root(self) -> Path:
        if self._root is not None:
            return self._root
        s = self.spec
        base = self.folder or default_cache_dir()
        return base / f"synthetic-r{RENDER_VERSION}-n{s['num_images']}-s{s['size']}-seed{s['seed']}"

    def prepare(self) -> None:
        if not self.generated or self.root.exists():
            return
        with file_lock(self.root.with_name(f".{self.root.name}.lock")):
            if self.root.exists():  # another job generated it while we waited
                return
            log.info("data.root not set: generating a synthetic SPARK-like set in %s", self.root)
            generate(self.root, **self.spec)

    def describe(self) -> str:
        return f"synthetic data in {self.root}" if self.generated else f"SPARK layout at {self.root}"
