"""Batching (spark_lightning/data/dataset.py): frames of different sizes are padded with the
ignore label, and the padded pixels change neither any loss nor any metric."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from PIL import Image

from spark_lightning import CONF_DIR
from spark_lightning.data.dataset import pad_collate
from spark_lightning.data.formats import IGNORE
from spark_lightning.scores.metrics import GroupedSparkScore, segmentation_metrics
from spark_lightning.tasks import run_train
from spark_lightning.training.losses import float32_loss

from .conftest import compose_train, tiny_train_config

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


def test_training_at_full_resolution_on_frames_of_different_sizes(tmp_path):
    """data.size=null with aug=light on frames that are not square and not all alike (real 2024
    frames are 704 x 703): batches are padded with the ignore label (which cross-entropy would
    reject as a class id if it were not ignored) and the run trains and validates; that padded
    pixels change no loss and no metric is tests/test_dataset.py's."""
    root = tmp_path / "real"
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate([(70, 64), (64, 71), (66, 66), (75, 70), (64, 64), (70, 70)]):
        split = "val" if i >= 4 else "train"
        (root / "images" / "Cheops" / split).mkdir(parents=True, exist_ok=True)
        (root / "mask" / "Cheops" / split).mkdir(parents=True, exist_ok=True)
        labels = np.zeros((h, w), np.uint8)
        labels[10:30, 10:40] = 1
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(root / "images" / "Cheops" / split / f"{i}_img.png")
        Image.fromarray(labels).save(root / "mask" / "Cheops" / split / f"{i}_layer.png")
    cfg = tiny_train_config(root, tmp_path, ["data.size=null", "aug=light", "data.batch_size=2", "trainer.max_epochs=1"])
    result = run_train(cfg)
    assert result["trainer"].global_step == 2 and result["metrics"]["val/iou"] == result["metrics"]["val/iou"]


@pytest.mark.parametrize("option", sorted(p.stem for p in (Path(CONF_DIR) / "loss").glob("*.yaml")))
def test_ignored_pixels_change_neither_loss_nor_metrics(option):
    loss = instantiate(compose_train([f"loss={option}"]).loss)
    torch.manual_seed(0)
    target = torch.randint(0, 3, (2, 16, 16))
    target[:, :6] = 255  # unlabelled rows
    logits = torch.randn(2, 3, 16, 16)
    changed = logits.clone()
    changed[:, :, :6] = torch.randn(2, 3, 6, 16) * 10  # other predictions where nothing is labelled
    assert float(float32_loss(loss, logits, target)) == pytest.approx(float(float32_loss(loss, changed, target)), abs=1e-5)
    values = []
    for out in (logits, changed):
        metrics = segmentation_metrics(ignore_index=255)
        metrics.update(out.argmax(1), target)
        values.append({k: float(v) for k, v in metrics.compute().items()})
    assert values[0] == pytest.approx(values[1])
