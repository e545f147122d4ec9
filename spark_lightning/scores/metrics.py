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

from spark_lightning.data.formats import SPARK_CLASSES

# The names of the headline metrics (one place): what every validation set logs under its prefix
# (val/..., val_<name>/...), loggers summarise by their best value and evaluate tabulates; and
# the three every breakdown (by spacecraft, by object size) reports.
# With a classification head (head=classify) each set also logs SPARK 2026's scores (spark2026.py).
MULTITASK = ("cls_accuracy", "detection", "accuracy", "final")
HEADLINE = ("spark_score", "spark_body", "spark_panel", "iou", *(f"iou_{c}" for c in SPARK_CLASSES), *MULTITASK)
BREAKDOWN = ("spark_score", "iou_body", "iou_panel")
CRAFT_BREAKDOWN = ("cls_accuracy", "detection")  # in breakdowns too, where a head gives them


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


# Object size bins (box area / frame area). Their names go into metric names
# (val/by_size/<bin>/...), so they use only characters every logger keeps (MLflow drops %, <, >).
SIZE_BINS = ((0.0, 0.01, "lt1pct"), (0.01, 0.05, "1to5pct"), (0.05, 0.2, "5to20pct"), (0.2, 1.01, "gt20pct"))


def object_share(target: torch.Tensor) -> torch.Tensor:
    """Per image (N, H, W): area of the box around all non-background pixels / frame area."""
    fg = target > 0
    rows, cols = fg.any(2), fg.any(1)
    h, w = target.shape[-2:]

    def extent(mask: torch.Tensor, n: int) -> torch.Tensor:
        idx = torch.arange(n, device=mask.device)
        first = torch.where(mask, idx, n).min(1).values
        last = torch.where(mask, idx, -1).max(1).values
        return (last - first + 1).clamp_min(0)

    return (extent(rows, h) * extent(cols, w)).double() / (h * w)


def size_bin(share: float) -> str:
    return next(name for lo, hi, name in SIZE_BINS if lo <= share < hi)


def breakdown(iou_body: torch.Tensor, iou_panel: torch.Tensor, panel_scored: torch.Tensor,
              keys: list[str], correct: torch.Tensor | None = None,
              box_iou: torch.Tensor | None = None) -> dict[str, dict[str, float]]:
    """SPARK score and mean IoUs of each subset of images sharing a key (type, size bin); with
    per-image class hits and box IoUs (NaN: not predicted) also SPARK 2026's classification
    accuracy and detection score."""
    out = {}
    for key in sorted(set(keys)):
        sel = torch.tensor([k == key for k in keys])
        scored = panel_scored[sel]
        score = {k: float(v) for k, v in spark_from_ious(iou_body[sel], iou_panel[sel], scored).items()}
        out[key] = {"images": int(sel.sum()), **score, "iou_body": float(iou_body[sel].mean()),
                    "iou_panel": float(iou_panel[sel][scored].mean()) if scored.any() else float("nan")}
        if correct is not None and box_iou is not None and not correct[sel].isnan().any():
            out[key].update(cls_accuracy=float(correct[sel].mean()),
                            detection=float((_hits(box_iou[sel]) / int(sel.sum())).mean()))
    return out


class GroupedSparkScore(Metric):
    """Per-image IoUs of a validation epoch (gathered across processes), broken down by group
    (spacecraft type) and by object size at the end."""

    full_state_update = False

    def __init__(self, ignore_index: int | None = None, names: list[str] | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.ignore_index = ignore_index
        self.add_state("rows", default=[], dist_reduce_fx="cat")
        self.names: list[str] = list(names or [])  # set by the module from the data: the same ids on every rank

    def update(self, preds: torch.Tensor, target: torch.Tensor, groups: list[str],
               correct: torch.Tensor | None = None, box_iou: torch.Tensor | None = None) -> None:
        """``correct`` / ``box_iou``: per image, class right and box IoU (with a classification head)."""
        ious = per_image_iou(preds, target, self.ignore_index)
        nan = torch.full_like(ious["iou_body"], float("nan"))
        correct = nan if correct is None else correct.to(nan)
        box_iou = nan if box_iou is None else box_iou.to(nan)
        ids = [self.names.index(g) if g in self.names else self.names.append(g) or len(self.names) - 1 for g in groups]
        share = object_share(torch.where(target == (self.ignore_index if self.ignore_index is not None else -1),
                                         0, target))
        self.rows.append(torch.stack([ious["iou_body"], ious["iou_panel"], ious["panel_scored"].double(),
                                      torch.tensor(ids, dtype=torch.float64, device=preds.device), share,
                                      correct, box_iou], 1))

    def compute(self) -> dict[str, dict[str, dict[str, float]]]:
        rows = self.rows if isinstance(self.rows, torch.Tensor) else torch.cat(self.rows) if self.rows else None
        if rows is None or not len(rows):
            return {}
        rows = rows.cpu()
        body, panel, scored = rows[:, 0], rows[:, 1], rows[:, 2].bool()
        groups = [self.names[int(i)] if int(i) < len(self.names) else str(int(i)) for i in rows[:, 3]]
        craft = rows[:, 5], rows[:, 6]
        return {"spacecraft": breakdown(body, panel, scored, groups, *craft),
                "size": breakdown(body, panel, scored, [size_bin(float(s)) for s in rows[:, 4]], *craft)}
