"""SPARK 2026 scores (spark_lightning/scores/spark2026.py) against hand-made cases, an independent
plain-numpy implementation, and the published numbers of the second-placed entry."""

from __future__ import annotations

import numpy as np
import pytest

from spark_lightning.data.boxes import box_iou
from spark_lightning.scores.spark2026 import (
    accuracy_score,
    classification_accuracy,
    cost_terms,
    detection_ious,
    detection_score,
    final_score,
)


def _reference_detection(pred, true, pred_cls, true_cls) -> float:
    """Independent: boxes as pixel masks on a grid, IoU by counting pixels, thresholds by numpy."""
    ious = []
    for p, t, pc, tc in zip(pred, true, pred_cls, true_cls):
        if p is None or pc != tc:
            ious.append(0.0)
            continue
        grid_p, grid_t = np.zeros((64, 64), bool), np.zeros((64, 64), bool)
        grid_p[p[1]:p[3] + 1, p[0]:p[2] + 1] = True
        grid_t[t[1]:t[3] + 1, t[0]:t[2] + 1] = True
        ious.append((grid_p & grid_t).sum() / (grid_p | grid_t).sum())
    thresholds = np.linspace(0.5, 0.95, 10)
    return float(np.mean([(np.array(ious) > th + 1e-12).mean() for th in thresholds]))


def test_box_iou_by_hand():
    assert box_iou((0, 0, 9, 9), (0, 0, 9, 9)) == 1.0
    assert box_iou((0, 0, 9, 9), (10, 0, 19, 9)) == 0.0  # touching, not overlapping
    assert box_iou((0, 0, 9, 9), (5, 0, 14, 9)) == pytest.approx(50 / 150)


def test_detection_score_by_hand():
    true = [(0, 0, 9, 9)] * 4
    pred = [(0, 0, 9, 9), (0, 0, 9, 7), (5, 0, 14, 9), None]  # IoU 1.0, 0.8, 1/3, missing
    ious = detection_ious(pred, true)
    assert ious == pytest.approx([1.0, 0.8, 1 / 3, 0.0])
    # 1.0 is above all 10 thresholds, 0.8 above 0.50..0.75 (6; not above 0.80): (10 + 6) / 10 / 4
    assert detection_score(ious) == pytest.approx(0.4)
    wrong_class = detection_ious(pred, true, ["a", "b", "a", "a"], ["a"] * 4)
    assert wrong_class == pytest.approx([1.0, 0.0, 1 / 3, 0.0])


def test_detection_score_matches_an_independent_implementation():
    rng = np.random.default_rng(0)
    for _ in range(20):
        n = int(rng.integers(1, 12))
        true, pred, tc, pc = [], [], [], []
        for _ in range(n):
            x0, y0 = (int(v) for v in rng.integers(0, 40, 2))
            t = (x0, y0, x0 + int(rng.integers(3, 20)), y0 + int(rng.integers(3, 20)))
            dx, dy = (int(v) for v in rng.integers(-3, 4, 2))
            p = None if rng.random() < 0.1 else (max(0, t[0] + dx), max(0, t[1] + dy), t[2] + dx + 3, t[3] + dy)
            true.append(t)
            pred.append(p)
            tc.append("Cheops")
            pc.append("Cheops" if rng.random() < 0.8 else "Soho")
        ours = detection_score(detection_ious(pred, true, pc, tc))
        assert ours == pytest.approx(_reference_detection(pred, true, pc, tc))


def test_final_score_reproduces_the_published_second_place():
    """arXiv 2606.15409: 3.849 M parameters, 22.575 GFLOPs; classification 1.000, detection
    0.979, segmentation 0.892; final 0.9276."""
    terms = cost_terms(3.849e6, 22.575)
    assert terms["params"] == pytest.approx(0.8717, abs=5e-5) and terms["flops"] == pytest.approx(0.8871, abs=5e-5)
    accuracy = accuracy_score(1.0, 0.979, 0.892)
    assert accuracy == pytest.approx(0.9484)
    # The inputs are published to 3 decimals: the final score is known to +-0.0003.
    assert final_score(accuracy, 3.849e6, 22.575) == pytest.approx(0.9276, abs=3e-4)


def test_classification_accuracy():
    assert classification_accuracy(["a", "b", "c", "a"], ["a", "b", "a", "a"]) == 0.75
    with pytest.raises(ValueError, match="3 predicted classes for 4 images"):
        classification_accuracy(["a"] * 3, ["a"] * 4)


def _rect_masks(rng, n: int, size: int = 64):
    """Label maps with one craft rectangle each (body, a panel strip), some frames empty."""
    labels = np.zeros((n, size, size), np.int64)
    for i in range(n):
        if rng.random() < 0.15:
            continue
        x0, y0 = rng.integers(0, size - 12, 2)
        x1, y1 = x0 + rng.integers(4, size - x0), y0 + rng.integers(4, size - y0)
        labels[i, y0:y1, x0:x1] = 1
        labels[i, y0:y1, x0:x0 + 2] = 2
    return labels


def test_the_validation_metric_matches_the_independent_implementation():
    """CraftScore + batch_box_ious (what validation logs) against the plain-numpy reference:
    random masks, noisy predictions, some classes wrong, accumulated over two batches."""
    import torch

    from spark_lightning.data.boxes import mask_box
    from spark_lightning.scores.spark2026 import CraftScore, batch_box_ious

    rng = np.random.default_rng(0)
    truth = _rect_masks(rng, 24)
    preds = truth.copy()
    preds[:, ::7] = 0  # drop rows of craft pixels: boxes shrink a little or not at all
    preds[3] = np.roll(preds[3], 9, axis=1)
    preds[5] = 0
    true_cls = rng.integers(0, 10, 24)
    pred_cls = np.where(rng.random(24) < 0.7, true_cls, (true_cls + 1) % 10)
    metric = CraftScore()
    for part in (slice(0, 10), slice(10, 24)):
        p, t = torch.from_numpy(preds[part]), torch.from_numpy(truth[part])
        pc, tc = torch.from_numpy(pred_cls[part]), torch.from_numpy(true_cls[part])
        metric.update((pc == tc).double(), batch_box_ious(p, t, pc, tc))
    result = {k: float(v) for k, v in metric.compute().items()}
    boxes = [mask_box(m) for m in preds], [mask_box(m) for m in truth]
    scored = [(p, t, pc, tc) for p, t, pc, tc in zip(*boxes, pred_cls, true_cls) if t is not None or p is not None]
    assert len(scored) < 24  # empty frames on both sides are part of the case
    reference = _reference_detection(*zip(*[(p, t or (0, 0, 0, 0), pc, tc if t is not None else -1)
                                            for p, t, pc, tc in zip(*boxes, pred_cls, true_cls)]))
    assert result["detection"] == pytest.approx(reference, abs=1e-6)
    assert result["cls_accuracy"] == pytest.approx((pred_cls == true_cls).mean())
    assert 0 < result["detection"] < result["cls_accuracy"]  # not a degenerate case


def test_epoch_scores_follow_the_published_formulas_in_the_configured_unit():
    from spark_lightning.scores.spark2026 import epoch_scores

    network = {"params": 3.849e6, "gflops": 22.575, "gmacs": 11.2875}
    craft = {"cls_accuracy": 1.0, "detection": 0.979}
    flops = epoch_scores(craft, 0.892, network, {"unit": "flops", "params_norm": 30e6, "gflops_norm": 200})
    assert flops["accuracy"] == pytest.approx(0.2 + 0.4 * 0.979 + 0.4 * 0.892)
    assert flops["final"] == pytest.approx(0.9276, abs=5e-4)  # the second place, as published
    macs = epoch_scores(craft, 0.892, network, {"unit": "macs", "params_norm": 30e6, "gflops_norm": 100})
    assert macs["final"] == pytest.approx(0.7 * flops["accuracy"] + 0.15 * (1 - 3.849 / 30) + 0.15 * (1 - 11.2875 / 100))
    assert "final" not in epoch_scores(craft, 0.892, None, None)  # no cost, no final score
    assert set(epoch_scores(craft, None, network, None)) == {"cls_accuracy", "detection"}


def test_the_cost_of_a_trained_network_counts_its_head():
    from spark_lightning.models import build_model
    from spark_lightning.models.cost import network_cost
    from spark_lightning.scores.spark2026 import module_cost

    plain = build_model(arch="tiny", encoder="none", width=8)
    headed = build_model(arch="tiny", encoder="none", width=8, craft_classes=10)
    cost = module_cost(headed, {"size": 64})
    assert cost["params"] - module_cost(plain, {"size": 64})["params"] == 16 * 10 + 10  # the linear head
    assert cost["gflops"] == pytest.approx(network_cost(headed, 64)["gflops"])  # meta copy = a real forward
    assert module_cost(headed, {"size": None}) is None
