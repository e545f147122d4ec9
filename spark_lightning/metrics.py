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


THRESHOLDS = torch.tensor([round(0.5 + 0.05 * i, 2) for i in range(10)], dtype=torch.float64)  # exact 0.80 etc.
PANEL_MIN_RATIO = 0.05
BODY, PANEL = 1, 2


def per_image_iou(preds: torch.Tensor, target: torch.Tensor, ignore_index: int | None = None) -> dict[str, torch.Tensor]:
    """Per-image body/panel IoU of label maps (N, H, W), and which panel IoUs count. Pixels
    whose target is ``ignore_index`` are left out of both sides."""
    if preds.shape != target.shape or preds.ndim != 3:
        raise ValueError(f"preds {tuple(preds.shape)} and target {tuple(target.shape)} must both be (N, H, W)")
    out = {}
    counts = {}
    valid = (target != ignore_index).flatten(1) if ignore_index is not None else True
    for name, cls in (("body", BODY), ("panel", PANEL)):
        p, t = (preds == cls).flatten(1) & valid, (target == cls).flatten(1)
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


def spark_from_ious(iou_body: torch.Tensor, iou_panel: torch.Tensor, panel_scored: torch.Tensor) -> dict[str, torch.Tensor]:
    """SPARK score of per-image IoUs (any subset of images: a spacecraft type, a size bin)."""
    panel = iou_panel[panel_scored]
    n = torch.tensor(float(iou_body.numel()), dtype=torch.float64)
    return _combine(_hits(iou_body), n, _hits(panel), torch.tensor(float(panel.numel()), dtype=torch.float64))


def spark_score(preds: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """SPARK score of label maps (N, H, W): ``spark_score``, ``spark_body``, ``spark_panel``."""
    ious = per_image_iou(preds, target)
    return spark_from_ious(ious["iou_body"], ious["iou_panel"], ious["panel_scored"])


class SparkScore(Metric):
    """The official score as a torchmetrics Metric (threshold counts summed across processes)."""

    full_state_update = False
    higher_is_better = True

    def __init__(self, ignore_index: int | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.ignore_index = ignore_index
        n = len(THRESHOLDS)
        for name, shape in (("body_hits", n), ("panel_hits", n), ("body_n", ()), ("panel_n", ())):
            self.add_state(name, torch.zeros(shape, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        """preds: logits (N, C, H, W) or labels (N, H, W); target: labels (N, H, W)."""
        if preds.ndim == 4:
            preds = preds.argmax(1)
        ious = per_image_iou(preds, target, self.ignore_index)
        panel = ious["iou_panel"][ious["panel_scored"]]
        self.body_hits += _hits(ious["iou_body"])
        self.body_n += preds.shape[0]
        self.panel_hits += _hits(panel)
        self.panel_n += panel.numel()

    def compute(self) -> dict[str, torch.Tensor]:
        return _combine(self.body_hits, self.body_n, self.panel_hits, self.panel_n)


SPARK_CLASSES = ("background", "body", "panel")


def segmentation_metrics(classes: tuple[str, ...] = SPARK_CLASSES, ignore_index: int | None = None) -> MetricCollection:
    """Metrics logged per stage: mean IoU (``iou``), ``iou_<class>``, and the SPARK score when
    the classes are SPARK's (background, body, panel). Pixels labelled ``ignore_index`` count
    in none of them."""
    n = len(classes)
    metrics = {
        "iou": MulticlassJaccardIndex(n, average="macro", ignore_index=ignore_index),
        "iou_": ClasswiseWrapper(MulticlassJaccardIndex(n, average=None, ignore_index=ignore_index),
                                 labels=list(classes), prefix="iou_"),
    }
    if tuple(classes) == SPARK_CLASSES:
        metrics["spark"] = SparkScore(ignore_index=ignore_index)
    return MetricCollection(metrics, compute_groups=False)
