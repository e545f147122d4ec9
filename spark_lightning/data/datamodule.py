"""SparkDataModule: SPARK layout (real or synthetic) -> cached, downscaled, augmented batches.

Batches carry uint8 images (B, 3, H, W) and uint8 masks (B, H, W): a quarter of the bytes of
float32 through the loader and the host-to-device copy. The LightningModule converts and
normalises on the device.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import albumentations as A
import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, get_worker_info

from spark_lightning.data.cache import SampleCache, decode_sample, default_cache_dir
from spark_lightning.data.spark import Sample, scan_split
from spark_lightning.data.synthetic import generate

log = logging.getLogger(__name__)


class SparkDataset(Dataset):
    """Samples of one split, read through the cache (or decoded every time)."""

    def __init__(
        self,
        samples: list[Sample],
        size: int | None,
        cache: SampleCache | None = None,
        transform: A.BaseCompose | None = None,
    ) -> None:
        self.samples, self.size, self.cache, self.transform = samples, size, cache, transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.samples[index]
        if self.cache is not None:
            image, mask = self.cache.load(sample)
        else:
            image, mask = decode_sample(sample, self.size)
        if self.transform is not None:
            out = self.transform(image=image, mask=mask)
            image, mask = out["image"], out["mask"]
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),
            "mask": torch.tensor(mask),  # a copy: decoded masks may be read-only views
            "spacecraft": sample.spacecraft,
            "name": sample.name,
        }


def seed_worker_transform(worker_id: int) -> None:
    """Give each loader worker its own augmentation stream.

    Albumentations 2.x keeps its own generator, which forked workers would otherwise share,
    repeating the same augmentations in every worker. torch's per-worker seed differs per
    worker and per epoch (and follows ``seed_everything``).
    """
    info = get_worker_info()
    transform = getattr(info.dataset, "transform", None) if info else None
    if transform is not None:
        transform.set_random_seed(torch.initial_seed() % 2**32)


class SparkDataModule(L.LightningDataModule):
    """SPARK 2024 Stream 1 data: train on ``train``, validate on ``val``.

    Args:
        root: a folder in the SPARK layout; ``None`` generates (once) and uses a synthetic set.
        size: square side the images are downscaled to (``None`` keeps full resolution).
        crop: random crops of this side from the downscaled training images (tiling for
            high-resolution training); validation always sees whole images.
        cache: keep decoded, downscaled samples on disk (``cache_dir``) after first use.
        train_transform: an albumentations pipeline (config group ``aug``).
        synthetic: generator arguments (num_images, size, seed) used when root is None.
        effective_batch_size: read by the VRAM budget helper (``spark_lightning.budget``),
            which sets ``batch_size`` and gradient accumulation from it; unused here.
    """

    def __init__(
        self,
        root: str | None = None,
        size: int | None = 512,
        crop: int | None = None,
        batch_size: int = 8,
        num_workers: int = 2,
        pin_memory: bool = True,
        persistent_workers: bool = True,
        cache: bool = True,
        cache_dir: str | None = None,
        train_transform: A.BaseCompose | None = None,
        synthetic: dict[str, Any] | None = None,
        train_split: str = "train",
        val_split: str = "val",
        effective_batch_size: int | None = None,
    ) -> None:
        super().__init__()
        if crop is not None and size is not None and crop > size:
            raise ValueError(f"data.crop={crop} is larger than data.size={size}: choose crop <= size.")
        if batch_size < 1:
            raise ValueError(f"data.batch_size={batch_size} must be at least 1.")
        self.root, self.size, self.crop = root, size, crop
        self.batch_size, self.num_workers = batch_size, num_workers
        self.pin_memory, self.persistent_workers = pin_memory, persistent_workers
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
        self.use_cache = cache
        self.synthetic = {"num_images": 500, "size": 256, "seed": 0, **dict(synthetic or {})}
        self.train_split, self.val_split = train_split, val_split
        transforms = [A.RandomCrop(crop, crop, pad_if_needed=True)] if crop else []
        if train_transform is not None:
            transforms.append(train_transform)
        self.train_transform = A.Compose(transforms) if transforms else None
        self.train_set: SparkDataset | None = None
        self.val_set: SparkDataset | None = None

    @property
    def data_root(self) -> Path:
        """The folder read: ``root``, or where the synthetic set lives."""
        if self.root:
            return Path(self.root).expanduser()
        s = self.synthetic
        return self.cache_dir / f"synthetic-n{s['num_images']}-s{s['size']}-seed{s['seed']}"

    def prepare_data(self) -> None:
        if self.root or self.data_root.exists():
            return
        log.info("data.root not set: generating a synthetic SPARK-like set in %s", self.data_root)
        generate(self.data_root, **self.synthetic)

    def _dataset(self, split: str, transform: A.BaseCompose | None) -> SparkDataset:
        cache = SampleCache(self.cache_dir / "samples", self.data_root, self.size) if self.use_cache else None
        return SparkDataset(scan_split(self.data_root, split), self.size, cache, transform)

    def setup(self, stage: str | None = None) -> None:
        if not self.root:
            log.info("using synthetic data from %s", self.data_root)
        if stage in ("fit", None) and self.train_set is None:
            self.train_set = self._dataset(self.train_split, self.train_transform)
        if stage in ("fit", "validate", None) and self.val_set is None:
            self.val_set = self._dataset(self.val_split, None)

    def _loader(self, dataset: SparkDataset, shuffle: bool) -> DataLoader:
        workers = self.num_workers
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            drop_last=shuffle and len(dataset) > self.batch_size,
            num_workers=workers,
            pin_memory=self.pin_memory and torch.cuda.is_available(),
            persistent_workers=self.persistent_workers and workers > 0,
            worker_init_fn=seed_worker_transform if workers > 0 else None,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)
