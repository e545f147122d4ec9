"""The official SPARK 2024 Stream 1 score, plus the usual per-class IoU collection.

SPARK score (shared/spark_format.md):
  1. per image, IoU of body (class 1) and of solar panels (class 2); background not scored;
  2. an image's panel IoU is skipped when its true panel pixels are < 5 % of its body pixels;
  3. per class, the fraction of non-skipped images whose IoU is above t, averaged over
     t = 0.50, 0.55, ..., 0.95;
  4. score = mean of the body and panel scores.
Choices where the text is silent: an image whose truth and prediction are both empty for a
class has IoU 1 (nothing to find, nothing found); "above" is strict (IoU > t); a class with no
scored image at all is left out of the mean.

The pure function ``per_image_iou``/``spark_score`` and the ``SparkScore`` Metric share one
code path; the Metric keeps only threshold counts, so its state is tiny and sums across
processes.
"""

from __future__ import annotations

import torch
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import MulticlassJaccardIndex
from torchmetrics.wrappers import ClasswiseWrapper

from spark_lightning.data.spark import CLASSES

THRESHOLDS = torch.tensor([round(0.5 + 0.05 * i, 2) for i in range(10)], dtype=torch.float64)  # exact 0.80 etc.
PANEL_MIN_RATIO = 0.05
BODY, PANEL = 1, 2


def per_image_iou(preds: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-image body/panel IoU of label maps (N, H, W), and which panel IoUs count."""
    if preds.shape != target.shape or preds.ndim != 3:
        raise ValueError(f"preds {tuple(preds.shape)} and target {tuple(target.shape)} must both be (N, H, W)")
    out = {}
    counts = {}
    for name, cls in (("body", BODY), ("panel", PANEL)):
        p, t = (preds == cls).flatten(1), (target == cls).flatten(1)
        inter = (p & t).sum(1, dtype=torch.float64)
        union = (p | t).sum(1, dtype=torch.float64)
        out[f"iou_{name}"] = torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))
        counts[name] = t.sum(1, dtype=torch.float64)
    out["panel_scored"] = counts["panel"] >= PANEL_MIN_RATIO * counts["body"]
    return out


def _hits(iou: torch.Tensor) -> torch.Tensor:
    """Number of images above each threshold, shape (10,)."""
    return (iou[:, None] > THRESHOLDS.to(iou.device)).sum(0, dtype=torch.float64)


def _combine(body_hits, body_n, panel_hits, panel_n) -> dict[str, torch.Tensor]:
    body = (body_hits / body_n.clamp_min(1)).mean()
    panel = (panel_hits / panel_n.clamp_min(1)).mean()
    scored = torch.stack([body_n > 0, panel_n > 0])
    both = torch.stack([body, panel])
    total = (both * scored).sum() / scored.sum().clamp_min(1)
    return {"spark_score": total.float(), "spark_body": body.float(), "spark_panel": panel.float()}


def spark_score(preds: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """SPARK score of label maps (N, H, W): ``spark_score``, ``spark_body``, ``spark_panel``."""
    ious = per_image_iou(preds, target)
    panel = ious["iou_panel"][ious["panel_scored"]]
    n = torch.tensor(float(preds.shape[0]), dtype=torch.float64)
    return _combine(_hits(ious["iou_body"]), n, _hits(panel), torch.tensor(float(panel.numel()), dtype=torch.float64))


class SparkScore(Metric):
    """The official score as a torchmetrics Metric (threshold counts summed across processes)."""

    full_state_update = False
    higher_is_better = True

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        n = len(THRESHOLDS)
        for name, shape in (("body_hits", n), ("panel_hits", n), ("body_n", ()), ("panel_n", ())):
            self.add_state(name, torch.zeros(shape, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        """preds: logits (N, C, H, W) or labels (N, H, W); target: labels (N, H, W)."""
        if preds.ndim == 4:
            preds = preds.argmax(1)
        ious = per_image_iou(preds, target)
        panel = ious["iou_panel"][ious["panel_scored"]]
        self.body_hits += _hits(ious["iou_body"])
        self.body_n += preds.shape[0]
        self.panel_hits += _hits(panel)
        self.panel_n += panel.numel()

    def compute(self) -> dict[str, torch.Tensor]:
        return _combine(self.body_hits, self.body_n, self.panel_hits, self.panel_n)


def segmentation_metrics(num_classes: int = len(CLASSES)) -> MetricCollection:
    """Metrics logged per stage: mean IoU (``iou``), ``iou_<class>`` and the SPARK score."""
    return MetricCollection(
        {
            "iou": MulticlassJaccardIndex(num_classes, average="macro"),
            "iou_": ClasswiseWrapper(MulticlassJaccardIndex(num_classes, average=None), labels=list(CLASSES), prefix="iou_"),
            "spark": SparkScore(),
        },
        compute_groups=False,
    )
