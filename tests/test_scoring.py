"""Scoring predictions (spark_lightning/scores/evaluation.py): the same metrics as training, per-image
rows, and SPARK 2026's detection score with the box taken from the predicted mask."""

from __future__ import annotations

import json

import numpy as np
import pytest

from spark_lightning.data.spark import SparkFormat
from spark_lightning.errors import SparkDataError
from spark_lightning.scores.evaluation import Evaluation
from spark_lightning.tasks import run_evaluate

from .conftest import compose_task


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


@pytest.mark.parametrize(("labels", "message"), [
    (np.full((64, 64), 3, np.uint8), r"holds label 3: expected class ids 0..2"),
    (np.full((64, 64), 255, np.uint8), r"holds label 255"),
    (np.full((64, 64), -1, np.int16), r"holds label -1"),
    (np.full((64, 64), 1.0, np.float32), r"is a float32 array .*expected H x W integer class ids"),
])
def test_evaluate_refuses_labels_outside_the_classes(tiny_root, tmp_path, labels, message):
    folder = tmp_path / "preds"
    folder.mkdir()
    for s in SparkFormat(tiny_root).samples("val"):
        np.savez_compressed(folder / f"{s.name}_layer.npz", labels)
    cfg = compose_task("evaluate", [f"data.root={tiny_root}", f"predictions={folder}", "worst=0"], tmp_path / "e")
    with pytest.raises(SparkDataError, match=message):
        run_evaluate(cfg)


def test_evaluate_logs_a_wandb_table(trained_ckpt, tiny_root, tmp_path, monkeypatch):
    from .wandb_files import history

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = compose_task("evaluate", [f"data.root={tiny_root}", f"ckpt={trained_ckpt}", "predict.num_workers=0",
                                    "wandb=true", "worst=2"], tmp_path / "e")
    assert run_evaluate(cfg)["wandb_table"]
    run = next((tmp_path / "e" / "wandb").glob("offline-run-*"))
    logged = history(run)
    assert logged["eval/per_image"]["_type"] == "table-file" and logged["eval/per_image"]["nrows"] == 6
    table = json.loads((run / "files" / logged["eval/per_image"]["path"]).read_text())
    assert [row[0] for row in table["data"]] == [r["name"] for r in json.loads((tmp_path / "e" / "eval.json")
                                                                              .read_text())["per_image"]]
    assert sum(row[-1] is not None for row in table["data"]) == 2  # the worst images carry their overlay
    assert logged["eval/worst"]["count"] == 2 and len(list(run.glob("files/media/images/eval/worst*.png"))) == 2
    assert logged["eval/spark_score"] == pytest.approx(json.loads((tmp_path / "e" / "eval.json").read_text())["spark_score"])
