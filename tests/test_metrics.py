"""The official SPARK score against hand-computed cases and a plain numpy reference."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from spark_lightning.scores.metrics import SparkScore, segmentation_metrics, spark_score
from spark_lightning.tasks import run_evaluate, run_train

from .conftest import compose_task, tiny_train_config

THRESHOLDS = [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]


def reference_score(preds: np.ndarray, target: np.ndarray) -> float:
    """Straight from shared/spark_format.md, one image and one threshold at a time."""
    per_class = {}
    for cls in (1, 2):
        ious = []
        for p, t in zip(preds, target):
            if cls == 2 and (t == 2).sum() < 0.05 * (t == 1).sum():
                continue
            union = ((p == cls) | (t == cls)).sum()
            ious.append(((p == cls) & (t == cls)).sum() / union if union else 1.0)
        if ious:
            per_class[cls] = np.mean([np.mean([iou > th for iou in ious]) for th in THRESHOLDS])
    return float(np.mean(list(per_class.values())))


def image(body=(0, 0, 0, 0), panel=(0, 0, 0, 0), size=20) -> np.ndarray:
    m = np.zeros((size, size), np.int64)
    for cls, (y0, y1, x0, x1) in ((1, body), (2, panel)):
        m[y0:y1, x0:x1] = cls
    return m


def score(preds, target) -> dict[str, float]:
    out = spark_score(torch.as_tensor(np.stack(preds)), torch.as_tensor(np.stack(target)))
    return {k: float(v) for k, v in out.items()}


def test_perfect_prediction_scores_one():
    t = [image((0, 10, 0, 10), (12, 18, 0, 10))]
    assert score(t, t) == {"spark_score": 1.0, "spark_body": 1.0, "spark_panel": 1.0}


def test_empty_prediction_scores_zero():
    t = [image((0, 10, 0, 10), (12, 18, 0, 10))]
    assert score([image()], t)["spark_score"] == 0.0


def test_hand_computed_thresholds():
    # Body: truth 10x10 = 100 px, prediction its first 8 rows (80 px): IoU 0.80 -> above
    # 0.50..0.75 (6 of 10 thresholds; 0.80 is not strictly above) -> 0.6.
    # Panel: truth 20 px, prediction 10 of them: IoU 0.5 -> above none -> 0.0.
    t = image((0, 10, 0, 10), (12, 14, 0, 10))
    p = image((0, 8, 0, 10), (12, 13, 0, 10))
    out = score([p], [t])
    assert out["spark_body"] == pytest.approx(0.6)
    assert out["spark_panel"] == pytest.approx(0.0)
    assert out["spark_score"] == pytest.approx(0.3)


def test_panel_skipped_below_five_percent_of_body():
    # 4 panel pixels < 5 % of 100 body pixels: the panel class of this image is not scored,
    # so a wrong panel prediction costs nothing; only the body counts.
    t = image((0, 10, 0, 10), (12, 13, 0, 4))
    p = image((0, 10, 0, 10))
    out = score([p], [t])
    assert out["spark_body"] == 1.0 and out["spark_score"] == 1.0
    # Two images, the second with a scored panel predicted perfectly.
    t2 = image((0, 10, 0, 10), (12, 18, 0, 10))
    out = score([p, t2], [t, t2])
    assert out["spark_panel"] == 1.0 and out["spark_score"] == 1.0


def test_matches_reference_on_random_cases():
    rng = np.random.default_rng(0)
    for _ in range(20):
        target = [image(tuple(sorted(rng.integers(0, 20, 2))) + tuple(sorted(rng.integers(0, 20, 2))),
                        tuple(sorted(rng.integers(0, 20, 2))) + tuple(sorted(rng.integers(0, 20, 2)))) for _ in range(5)]
        preds = [np.where(rng.random(t.shape) < 0.15, rng.integers(0, 3, t.shape), t) for t in target]
        assert score(preds, target)["spark_score"] == pytest.approx(reference_score(np.stack(preds), np.stack(target)))


def test_metric_accumulates_batches_like_one_call():
    rng = np.random.default_rng(1)
    target = torch.as_tensor(rng.integers(0, 3, (6, 16, 16)))
    logits = torch.randn(6, 3, 16, 16) + 3 * torch.nn.functional.one_hot(target, 3).permute(0, 3, 1, 2)
    metric = SparkScore()
    metric.update(logits[:2], target[:2])
    metric.update(logits[2:], target[2:])
    assert float(metric.compute()["spark_score"]) == pytest.approx(float(spark_score(logits.argmax(1), target)["spark_score"]))


def test_collection_keys_and_miou():
    target = torch.as_tensor(np.stack([image((0, 10, 0, 10), (12, 18, 0, 10))]))
    metrics = segmentation_metrics().clone(prefix="val/")
    metrics.update(target, target)
    values = metrics.compute()
    for key in ("val/iou", "val/iou_background", "val/iou_body", "val/iou_panel", "val/spark_score"):
        assert float(values[key]) == pytest.approx(1.0), key


def test_shape_mismatch_is_clear():
    with pytest.raises(ValueError, match=r"must both be \(N, H, W\)"):
        spark_score(torch.zeros(1, 4, 4), torch.zeros(1, 4, 5))


def test_breakdown_names_are_portable_metric_names():
    """Breakdown keys become metric names (val/by_size/<bin>/...): every logger must keep them
    as they are (MLflow allows letters, digits, _ - . / and spaces; it renamed '>20%')."""
    from spark_lightning.scores.metrics import GroupedSparkScore

    metric = GroupedSparkScore(names=["smart_1"])
    target = torch.zeros(4, 40, 40, dtype=torch.long)
    for i, side in enumerate((2, 6, 14, 30)):  # boxes of 0.25 %, 2 %, 12 %, 56 % of the frame
        target[i, :side, :side] = 1
    metric.update(target.clone(), target, ["smart_1"] * 4)
    result = metric.compute()
    assert sorted(result["size"]) == ["1to5pct", "5to20pct", "gt20pct", "lt1pct"]
    names = [f"val/by_{kind}/{key}/spark_score" for kind, rows in result.items() for key in rows]
    assert all(re.fullmatch(r"[\w\-. /]+", n) for n in names), names


def test_breakdowns_by_spacecraft_and_size_in_training_evaluation_and_report(tiny_root, tmp_path):
    from spark_lightning.tasks.report import write_report

    cfg = tiny_train_config(tiny_root, tmp_path / "sweep" / "0")
    run_train(cfg)
    best = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())["best"]
    by_type = {k.split("/")[2] for k in best if k.startswith("val/by_spacecraft/")}
    assert len(by_type) >= 3 and any(k.startswith("val/by_size/") for k in best)
    write_report(tmp_path / "sweep")
    assert "## SPARK score by spacecraft" in (tmp_path / "sweep" / "report.md").read_text()
    assert (tmp_path / "sweep" / "by_spacecraft.png").stat().st_size > 1000
    ckpt = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    result = run_evaluate(compose_task("evaluate", [f"data.root={tiny_root}", f"ckpt={ckpt}", "predict.num_workers=0"],
                                       tmp_path / "e"))
    report = json.loads((tmp_path / "e" / "eval.json").read_text())
    assert sum(r["images"] for r in report["by_spacecraft"].values()) == 6 == len(report["per_image"])
    assert set(report["by_object_size"]) <= {"lt1pct", "1to5pct", "5to20pct", "gt20pct"}
    assert (tmp_path / "e" / "breakdown.png").stat().st_size > 1000
    assert json.loads(json.dumps(result["breakdowns"]["spacecraft"])) == report["by_spacecraft"]
