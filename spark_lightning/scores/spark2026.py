"""The SPARK 2026 Stream 1 scores ("Multi-Task Spacecraft Perception", AI4Space at CVPR 2026) as
far as they are public (docs/spark_format.md, last section): one model gives each frame's
spacecraft class, its bounding box and the body / panel segmentation, and is scored on those
and on its cost. No official evaluation script is public: the weights and normalisers below
are the best public reading (the second-placed paper's numbers fit them exactly) and are
arguments everywhere, so a config can change them."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchmetrics import Metric

from spark_lightning.data.boxes import Box, box_iou, mask_box, predicted_box
from spark_lightning.scores.metrics import THRESHOLDS, _hits

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
    if not len(ious):
        return 0.0
    return float((_hits(torch.as_tensor(ious, dtype=torch.float64)) / len(ious)).mean())


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


def batch_box_ious(preds: torch.Tensor, target: torch.Tensor, predicted_classes: torch.Tensor,
                   true_classes: torch.Tensor, mode: str = "union") -> torch.Tensor:
    """Per image of label maps (N, H, W): the IoU of the box the predicted mask implies (``mode``:
    union or largest region) with the box of the true craft pixels, 0 where the class is wrong."""
    pred_np, true_np = preds.cpu().numpy(), target.cpu().numpy()
    ious = detection_ious([predicted_box(p, mode) for p in pred_np], [mask_box(t) for t in true_np],
                          predicted_classes.tolist(), true_classes.tolist())
    return torch.tensor(ious, dtype=torch.float64, device=preds.device)


class CraftScore(Metric):
    """SPARK 2026's classification accuracy and detection score of a validation epoch, as
    threshold counts (tiny state, summed across processes)."""

    full_state_update = False
    higher_is_better = True

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("correct", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("n", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("box_hits", torch.zeros(len(THRESHOLDS), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, correct: torch.Tensor, box_ious: torch.Tensor) -> None:
        """``correct``: per image, whether the class is right; ``box_ious``: per image (class applied)."""
        self.correct += correct.sum(dtype=torch.float64)
        self.n += correct.numel()
        self.box_hits += _hits(box_ious)

    def compute(self) -> dict[str, torch.Tensor]:
        n = self.n.clamp_min(1)
        return {"cls_accuracy": (self.correct / n).float(), "detection": (self.box_hits / n).mean().float()}


def module_cost(net: torch.nn.Module, cost: dict | None) -> dict | None:
    """The cost of a (trained) network at ``cost.size``, counted on a meta copy (no compute), or
    None when ``cost.size`` is null or the network cannot be counted."""
    import copy
    import logging

    from spark_lightning.models.cost import network_cost

    if not cost or not cost.get("size"):
        return None
    try:
        return network_cost(copy.deepcopy(net).to("meta"), int(cost["size"]))
    except Exception as err:  # an op without a meta kernel: the final score is then not logged
        logging.getLogger(__name__).warning("cost of the network not counted (%s: %s): no final score",
                                            type(err).__name__, err)
        return None


def ensemble_cost(nets: list[torch.nn.Module], cost: dict | None) -> dict | None:
    """The summed cost of an ensemble's networks (one view each: TTA and scales not counted)."""
    costs = [module_cost(net, cost) for net in nets]
    return {k: sum(c[k] for c in costs) for k in ("params", "gflops", "gmacs")} if all(costs) else None


def epoch_scores(craft: dict, segmentation, network: dict | None, cost: dict | None) -> dict[str, float]:
    """A validation epoch's SPARK 2026 scores: classification, detection, accuracy (with the SPARK
    2024 score as segmentation) and, when the network's cost is known, the final score with
    ``cost.params_norm`` / ``cost.gflops_norm`` (GFLOPs or G multiply-adds as ``cost.unit`` says)."""
    out = {k: float(v) for k, v in craft.items()}
    if segmentation is None:
        return out
    out["accuracy"] = accuracy_score(out["cls_accuracy"], out["detection"], float(segmentation))
    if network:
        cost = cost or {}
        giga = network["gmacs"] if cost.get("unit") == "macs" else network["gflops"]
        out["final"] = final_score(out["accuracy"], network["params"], giga,
                                   params_norm=float(cost.get("params_norm") or PARAMS_NORM),
                                   gflops_norm=float(cost.get("gflops_norm") or GFLOPS_NORM))
    return out
