"""One split as a torch Dataset (through the sample cache), and how its samples are batched."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import albumentations as A
import numpy as np
import torch
from torch.utils.data import Dataset, default_collate, get_worker_info

from spark_lightning.data.cache import SampleCache
from spark_lightning.data.formats import IGNORE, SegmentationFormat, Sample
from spark_lightning.errors import ConfigError


class SegmentationDataset(Dataset):
    """Samples of one split, read through the cache (or decoded every time)."""

    def __init__(self, samples: list[Sample], fmt: SegmentationFormat, size: int | None,
                 cache: SampleCache | None = None, transform: A.BaseCompose | None = None) -> None:
        self.samples, self.fmt, self.size, self.cache, self.transform = samples, fmt, size, cache, transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.samples[index]
        if self.cache is not None:
            image, mask = self.cache.load(sample)
        else:
            image, mask = self.fmt.read_sample(sample, self.size)
        if self.transform is not None:
            out = self.transform(image=image, mask=mask)
            image, mask = out["image"], out["mask"]
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),
            "mask": torch.tensor(mask),  # a copy: decoded masks may be read-only views
            "group": sample.group,
            "name": sample.name,
        }


def pad_collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Batch samples; images of different sizes (``data.size=null`` on frames that are not all
    alike) are padded to the largest with black and their masks with IGNORE, which no loss or
    metric counts."""
    shapes = {tuple(it["image"].shape[-2:]) for it in items}
    if len(shapes) > 1:
        h, w = max(s[0] for s in shapes), max(s[1] for s in shapes)
        for it in items:
            ph, pw = h - it["image"].shape[-2], w - it["image"].shape[-1]
            it["image"] = torch.nn.functional.pad(it["image"], (0, pw, 0, ph))
            it["mask"] = torch.nn.functional.pad(it["mask"], (0, pw, 0, ph), value=IGNORE)
    return default_collate(items)


def named_val_roots(roots: dict | list | None) -> dict[str, str]:
    """``data.extra_val_roots`` as name -> folder: a mapping as given (``{real: /data/real}``),
    a list named after each folder (``/data/real2024`` -> ``real2024``). Names become metric
    prefixes (``val_<name>/``), so they must be plain words and unique."""
    if not roots:
        return {}
    if isinstance(roots, (str, Path)):
        roots = [roots]
    items = roots.items() if hasattr(roots, "items") else [(Path(str(r)).expanduser().name, r) for r in roots]
    out: dict[str, str] = {}
    for name, root in items:
        clean = re.sub(r"[^0-9a-zA-Z_]+", "_", str(name)).strip("_").lower()
        if not clean or clean in out:
            raise ConfigError(f"data.extra_val_roots: the name {name!r} (of {root}) is empty or used twice; "
                              "give the sets names, e.g. data.extra_val_roots={real:/data/real,dev:/data/dev}.")
        out[clean] = str(root)
    return out


def seed_worker_transform(worker_id: int) -> None:
    """Give each loader worker its own augmentation stream.

    Albumentations 2.x keeps its own generator, which forked workers would otherwise share,
    repeating the same augmentations in every worker. torch's per-worker seed differs per
    worker and per epoch (and follows ``seed_everything``).
    """
    info = get_worker_info()
    datasets = getattr(info.dataset, "datasets", [info.dataset]) if info else []  # a ConcatDataset's parts
    for dataset in datasets:
        if getattr(dataset, "transform", None) is not None:
            dataset.transform.set_random_seed(torch.initial_seed() % 2**32)
