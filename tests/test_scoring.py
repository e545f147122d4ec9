"""Scoring predictions (spark_lightning/scores/evaluation.py): the same metrics as training, per-image
rows, and SPARK 2026's detection score with the box taken from the predicted mask."""

from __future__ import annotations

import numpy as np
import pytest

from spark_lightning.data.spark import SparkFormat
from spark_lightning.scores.evaluation import Evaluation


def test_perfect_shifted_and_empty_predictions(tiny_root, tmp_path):
    fmt = SparkFormat(tiny_root)
    samples = fmt.samples("val")[:3]
    truths = [fmt.read_mask(s.mask) for s in samples]
    assert all(s.box is not None for s in samples)  # our sets' CSVs carry the boxes
    perfect = Evaluation(fmt, keep_worst=1)
    for sample, truth in zip(samples, truths):
        perfect.add(sample, truth)
    summary = perfect.summary()
    assert summary["spark_score"] == pytest.approx(1.0) and summary["detection_box"] == pytest.approx(1.0)
    assert all(r["box_iou"] == 1.0 for r in perfect.per_image)

    moved = Evaluation(fmt, keep_worst=1)
    for sample, truth in zip(samples, truths):
        moved.add(sample, np.roll(truth, 64 // 4, axis=1))  # a quarter of the frame to the right
    assert moved.summary()["detection_box"] < 0.5 and all(r["box_iou"] < 1.0 for r in moved.per_image)

    empty = Evaluation(fmt, keep_worst=3)
    for sample in samples:
        empty.add(sample, None)  # a missing prediction: an empty mask, no box
    assert empty.summary()["detection_box"] == 0.0 and empty.summary()["spark_score"] == 0.0
    assert len(empty.save_worst(tmp_path)) == 3
