"""SparkDataModule: a data set format -> cached, downscaled, augmented batches.

Batches carry uint8 images (B, 3, H, W) and uint8 masks (B, H, W): a quarter of the bytes of
float32 through the loader and the host-to-device copy. The LightningModule converts and
normalises on the device. The format (SPARK, synthetic, your own) is the ``dataset`` config.
"""

from __future__ import annotations

import logging
from pathlib import Path

import albumentations as A
import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import ConcatDataset, DataLoader

from spark_lightning.data.cache import SampleCache, default_cache_dir
from spark_lightning.data.dataset import SegmentationDataset, named_val_roots, pad_collate, seed_worker_transform
from spark_lightning.data.formats import SegmentationFormat, Sample, check_headers
from spark_lightning.data.sizes import check_side
from spark_lightning.errors import ConfigError, SparkDataError, plain_errors

log = logging.getLogger(__name__)


def build_format(dataset: dict | DictConfig | SegmentationFormat, root: str | None = None) -> SegmentationFormat:
    """A format from its ``_target_`` config (``root`` passed in when given)."""
    if isinstance(dataset, SegmentationFormat):
        return dataset
    kwargs = {"root": root} if root else {}
    with plain_errors():
        fmt = instantiate(dataset, **kwargs)
    if not isinstance(fmt, SegmentationFormat):
        raise ConfigError(f"data.dataset._target_={dataset.get('_target_')!r} is not a SegmentationFormat subclass.")
    return fmt


def _check_sizes(size: int | None, crop: int | None, batch_size: int) -> None:
    check_side("data.size", size, "full resolution")
    check_side("data.crop", crop, "no crops")
    if crop is not None and size is not None and crop > size:
        raise ConfigError(f"data.crop={crop} is larger than data.size={size}: choose crop <= size.")
    if batch_size < 1:
        raise ConfigError(f"data.batch_size={batch_size} must be at least 1.")


class SparkDataModule(L.LightningDataModule):
    """Train on ``train_split``, validate on ``val_split`` of a data set format.

    Args:
        dataset: the format's ``_target_`` config (or a format object); stored in checkpoints.
        root: the data folder, passed to the format (``data.root=...``).
        size: square side the images are downscaled to (``None`` keeps full resolution).
        crop: random crops of this side from the downscaled training images (tiling for
            high-resolution training); validation always sees whole images.
        cache: keep decoded, downscaled samples on disk (``cache_dir``) after first use; the
            first run decodes (and so checks) every file up front.
        train_transform: an albumentations pipeline (config group ``aug``).

    ``size`` and ``crop`` are saved as hyperparameters, which Lightning puts into every
    checkpoint: prediction reads the training scale from there.
    """

    def __init__(
        self,
        dataset: dict | DictConfig | SegmentationFormat,
        root: str | None = None,
        size: int | None = 512,
        crop: int | None = None,
        predict_size: int | None = None,
        batch_size: int = 8,
        num_workers: int = 2,
        pin_memory: bool = True,
        persistent_workers: bool = True,
        cache: bool = True,
        cache_dir: str | None = None,
        train_transform: A.BaseCompose | None = None,
        train_split: str = "train",
        val_split: str = "val",
        extra_roots: list[str] | None = None,
        extra_val_roots: dict[str, str] | list[str] | None = None,
    ) -> None:
        super().__init__()
        _check_sizes(size, crop, batch_size)
        config = OmegaConf.to_container(dataset, resolve=True) if isinstance(dataset, DictConfig) else dataset
        self.save_hyperparameters({"dataset": config if isinstance(config, dict) else None, "root": root,
                                   "size": size, "crop": crop, "predict_size": predict_size,
                                   "train_split": train_split, "val_split": val_split})
        self.format = build_format(dataset, root)
        # More training data in the same format (e.g. a pseudo-label round): their train splits join ours.
        self.extra_formats = [build_format(dataset, str(r)) for r in extra_roots or []]
        # More validation sets (e.g. real frames with masks), each logged under its own prefix.
        self.extra_val_formats = {name: build_format(dataset, str(r)) for name, r in named_val_roots(extra_val_roots).items()}
        self.size, self.crop = size, crop
        self.batch_size, self.num_workers = batch_size, num_workers
        self.pin_memory, self.persistent_workers = pin_memory, persistent_workers
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
        self.use_cache = cache
        self.train_split, self.val_split = train_split, val_split
        transforms = [A.RandomCrop(crop, crop, pad_if_needed=True)] if crop else []
        if train_transform is not None:
            transforms.append(train_transform)
        self.train_transform = A.Compose(transforms) if transforms else None
        self.train_set: SegmentationDataset | None = None
        self.val_sets: list[SegmentationDataset] = []

    @property
    def val_names(self) -> list[str]:
        """Metric prefix of each validation set, in loader order: ``val`` then ``val_<name>``."""
        return ["val", *(f"val_{name}" for name in self.extra_val_formats)]

    @property
    def val_set(self) -> SegmentationDataset | None:
        """The main validation set (the data set's own ``val_split``)."""
        return self.val_sets[0] if self.val_sets else None

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.format.classes)

    @property
    def data_root(self) -> Path:
        """The folder read: ``root``, or where the generated set lives."""
        return self.format.root

    def _cache(self, fmt: SegmentationFormat) -> SampleCache | None:
        return SampleCache(self.cache_dir / "samples", fmt, self.size) if self.use_cache else None

    def prepare_data(self) -> None:
        """Generate the data if needed, then check every file once, up front: decoded into the
        cache (or, with ``cache=false``, its header read), so bad files stop the run now, all of
        them listed, not after an epoch of training."""
        self.format.prepare()
        parts = [(self.format, (self.train_split, self.val_split))] + [(f, (self.train_split,)) for f in self.extra_formats]
        parts += [(f, (self.val_split,)) for f in self.extra_val_formats.values()]
        for fmt, splits in parts:
            samples = [s for split in splits for s in self._samples(fmt, split)]
            cache = self._cache(fmt)
            if cache is not None:
                cache.fill(samples, max(1, self.num_workers))
            else:
                check_headers(samples)

    def _samples(self, fmt: SegmentationFormat, split: str) -> list[Sample]:
        """A split's samples; for an extra validation set, an error says which option named it."""
        name = next((n for n, f in self.extra_val_formats.items() if f is fmt), None)
        if name is None:
            return fmt.samples(split)
        try:
            return fmt.samples(split)
        except SparkDataError as err:
            raise SparkDataError(f"data.extra_val_roots.{name}: {err}") from err

    def _dataset(self, fmt: SegmentationFormat, split: str, transform: A.BaseCompose | None) -> SegmentationDataset:
        return SegmentationDataset(self._samples(fmt, split), fmt, self.size, self._cache(fmt), transform)

    def setup(self, stage: str | None = None) -> None:
        if stage in ("fit", None) and self.train_set is None:
            log.info("training on %s", ", ".join(f.describe() for f in [self.format, *self.extra_formats]))
            parts = [self._dataset(f, self.train_split, self.train_transform) for f in [self.format, *self.extra_formats]]
            self.train_set = parts[0] if len(parts) == 1 else ConcatDataset(parts)
            if self.batch_size > len(self.train_set):  # the plan would promise batches the set cannot fill
                raise ConfigError(f"data.batch_size={self.batch_size} is larger than the training set "
                                  f"({len(self.train_set)} images): give data.batch_size={len(self.train_set)} or less.")
        if stage in ("fit", "validate", None) and not self.val_sets:
            formats = [self.format, *self.extra_val_formats.values()]
            self.val_sets = [self._dataset(f, self.val_split, None) for f in formats]
            if self.extra_val_formats:
                log.info("validating on %s", ", ".join(f"{n} ({len(d)} images)" for n, d in zip(self.val_names, self.val_sets)))

    def _loader(self, dataset: SegmentationDataset, shuffle: bool) -> DataLoader:
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
            collate_fn=pad_collate,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader | list[DataLoader]:
        loaders = [self._loader(d, shuffle=False) for d in self.val_sets]
        return loaders[0] if len(loaders) == 1 else loaders
