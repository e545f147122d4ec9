"""The SPARK 2026 Stream 1 scores ("Multi-Task Spacecraft Perception", AI4Space at CVPR 2026) as
far as they are public (docs/spark_format.md, last section): one model gives each frame's
spacecraft class, its bounding box and the body / panel segmentation, and is scored on those
and on its cost. No official evaluation script is public: the weights and normalisers below
are the best public reading (the second-placed paper's numbers fit them exactly) and are
arguments everywhere, so a config can change them."""

from __future__ import annotations

from collections.abc import Sequence

from spark_lightning.data.boxes import Box, box_iou
from spark_lightning.metrics import THRESHOLDS

ACCURACY_WEIGHTS = {"classification": 0.2, "detection": 0.4, "segmentation": 0.4}
FINAL_WEIGHTS = {"accuracy": 0.70, "flops": 0.15, "params": 0.15}
PARAMS_NORM = 30e6     # S_params = 1 - parameters / 30 M
GFLOPS_NORM = 200.0    # S_flops = 1 - GFLOPs / 200 (the stated cap is "100 GFLOPs": multiply-adds, probably)


def classification_accuracy(predicted: Sequence[str], true: Sequence[str]) -> float:
    """Top-1 accuracy over images."""
    if len(predicted) != len(true) or not true:
        raise ValueError(f"{len(predicted)} predicted classes for {len(true)} images")
    return sum(p == t for p, t in zip(predicted, true)) / len(true)


def detection_ious(predicted: Sequence[Box | None], true: Sequence[Box | None],
                   predicted_classes: Sequence[str] | None = None,
                   true_classes: Sequence[str] | None = None) -> list[float]:
    """Per image, the IoU of the predicted box with the true one; 0 where the class is wrong
    (when classes are given, as in SPARK 2022) or a box is missing on one side."""
    if len(predicted) != len(true):
        raise ValueError(f"{len(predicted)} predicted boxes for {len(true)} images")
    ious = [box_iou(p, t) if p is not None and t is not None else 0.0 for p, t in zip(predicted, true)]
    if predicted_classes is not None and true_classes is not None:
        ious = [iou if pc == tc else 0.0 for iou, pc, tc in zip(ious, predicted_classes, true_classes)]
    return ious


def detection_score(ious: Sequence[float]) -> float:
    """The share of images whose box IoU is above each threshold 0.50, 0.55 ... 0.95, averaged
    (the thresholds and the strict "above" of the SPARK 2024 score)."""
    if not ious:
        return 0.0
    return sum(sum(iou > t for iou in ious) / len(ious) for t in THRESHOLDS.tolist()) / len(THRESHOLDS)


def accuracy_score(classification: float, detection: float, segmentation: float,
                   weights: dict[str, float] = ACCURACY_WEIGHTS) -> float:
    """0.2 x classification + 0.4 x detection + 0.4 x segmentation (the SPARK 2024 score)."""
    return (weights["classification"] * classification + weights["detection"] * detection
            + weights["segmentation"] * segmentation)


def cost_terms(params: float, gflops: float, params_norm: float = PARAMS_NORM,
               gflops_norm: float = GFLOPS_NORM) -> dict[str, float]:
    """S_params = 1 - params / 30 M and S_flops = 1 - GFLOPs / 200 (not clipped: a model above a
    normaliser gets a negative term, which says more than a silent 0)."""
    return {"params": 1 - params / params_norm, "flops": 1 - gflops / gflops_norm}


def final_score(accuracy: float, params: float, gflops: float, weights: dict[str, float] = FINAL_WEIGHTS,
                params_norm: float = PARAMS_NORM, gflops_norm: float = GFLOPS_NORM) -> float:
    """0.70 x accuracy + 0.15 x S_flops + 0.15 x S_params."""
    terms = cost_terms(params, gflops, params_norm, gflops_norm)
    return weights["accuracy"] * accuracy + weights["flops"] * terms["flops"] + weights["params"] * terms["params"]
