"""Batching (spark_lightning/data/dataset.py): frames of different sizes are padded with the
ignore label, and the padded pixels change neither any loss nor any metric."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate

from spark_lightning import CONF_DIR
from spark_lightning.data.dataset import pad_collate
from spark_lightning.data.formats import IGNORE
from spark_lightning.scores.metrics import GroupedSparkScore, segmentation_metrics

from .conftest import compose_train

LOSSES = sorted(p.stem for p in (Path(CONF_DIR) / "loss").glob("*.yaml"))


def _padded_batch() -> dict:
    g = torch.Generator().manual_seed(0)
    items = [{"image": torch.randint(0, 255, (3, h, w), dtype=torch.uint8, generator=g),
              "mask": torch.randint(0, 3, (h, w), generator=g), "group": "Smart1", "name": str(h)}
             for h, w in ((24, 20), (32, 32))]
    return pad_collate(items)


@pytest.mark.parametrize("loss", LOSSES)
def test_padded_pixels_change_no_loss(loss):
    batch = _padded_batch()
    target = batch["mask"]
    assert target.shape == (2, 32, 32) and (target[0, 24:] == IGNORE).all() and (target[0, :, 20:] == IGNORE).all()
    criterion = instantiate(compose_train([f"loss={loss}"]).loss)
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 3, 32, 32, generator=g)
    other = logits.clone()
    padded = target == IGNORE
    other.permute(0, 2, 3, 1)[padded] = torch.randn(int(padded.sum()), 3, generator=g) * 10  # anything there
    assert torch.allclose(criterion(logits, target), criterion(other, target), atol=1e-6), loss


def test_padded_pixels_change_no_metric():
    batch = _padded_batch()
    target = batch["mask"]
    preds = target.clamp(max=2).clone()
    other = preds.clone()
    other[target == IGNORE] = 1  # "body" everywhere in the padding
    results = []
    for p in (preds, other):
        metrics, grouped = segmentation_metrics(ignore_index=IGNORE), GroupedSparkScore(ignore_index=IGNORE)
        metrics.update(p, target)
        grouped.update(p, target, batch["group"])
        results.append(({k: float(v) for k, v in metrics.compute().items()}, grouped.compute()))
    assert results[0] == results[1]
    assert results[0][0]["iou"] == 1.0  # the unpadded pixels are predicted right
