"""Scoring predictions against ground truth with the training metrics, for the evaluate task:
the loop, the worst images, and breakdowns by spacecraft type and by object size."""

from __future__ import annotations

import heapq
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch
from rich.progress import track

from spark_lightning.data.boxes import Box, mask_box, parse_box, predicted_box
from spark_lightning.data.formats import SegmentationFormat, Sample
from spark_lightning.errors import SparkDataError
from spark_lightning.scores.metrics import (BREAKDOWN, CRAFT_BREAKDOWN, HEADLINE, breakdown, object_share, per_image_iou, segmentation_metrics,
                                     size_bin)
from spark_lightning.scores.spark2026 import detection_ious, detection_score, epoch_scores
from spark_lightning.data.pictures import overlay
from spark_lightning.inference.writers import DETECTIONS, NPZ_SUFFIX, load_mask_npz, pyplot, read_detections, save_figure, save_png

log = logging.getLogger(__name__)
TABLE_KEYS = (*HEADLINE, "detection_box")
SUB_KEYS = (*BREAKDOWN, *CRAFT_BREAKDOWN)


Craft = tuple[str, Box | None] | None  # SPARK 2026: a predicted spacecraft class and its box (None: the mask's)


def folder_pairs(folder: Path, samples: list[Sample], split: str, allow_missing: bool,
                 num_classes: int) -> Iterator[tuple[Sample, np.ndarray | None, Craft]]:
    """(sample, predicted labels or None, class and box) from a folder of ``<name>_layer.npz``
    and, where predict wrote one, its ``detection.csv``."""
    if not folder.is_dir():
        raise SparkDataError(f"predictions={folder} is not a folder.")
    files = {p.name[: -len(NPZ_SUFFIX)]: p for p in folder.glob(f"*{NPZ_SUFFIX}")}
    names = {s.name for s in samples}
    missing, extra = sorted(names - set(files)), sorted(set(files) - names)
    if extra:
        log.warning("%d predictions in %s have no image in split %s (ignored), e.g. %s",
                    len(extra), folder, split, files[extra[0]].name)
    if missing and not allow_missing:
        raise SparkDataError(
            f"{len(missing)} of {len(samples)} images of split '{split}' have no prediction in {folder}, "
            f"e.g. {missing[0]}{NPZ_SUFFIX}. Predict them, or set allow_missing=true to score them as empty."
        )
    if missing:
        log.warning("%d images have no prediction: scored as empty masks", len(missing))
    detections = read_detections(folder / DETECTIONS)
    for sample in samples:
        row = detections.get(sample.image.name)
        craft = (row[0], parse_box(row[1], f"{folder / DETECTIONS} {sample.image.name}")) if row else None
        if detections and row is None:
            craft = ("", None)  # a classifier's folder without this image's row: class and box count as wrong
        yield sample, load_mask_npz(files[sample.name], num_classes) if sample.name in files else None, craft


class Evaluation:
    """Accumulates metrics, per-image IoUs and the ``keep_worst`` lowest-scoring images."""

    def __init__(self, fmt: SegmentationFormat, keep_worst: int, box_mode: str = "union",
                 cost: tuple[dict | None, dict | None] = (None, None)) -> None:
        self.fmt, self.keep_worst, self.box_mode = fmt, keep_worst, box_mode
        self.cost = cost  # (the network's cost, the cost config) for SPARK 2026's final score
        self.metrics = segmentation_metrics(fmt.classes)
        self.per_image: list[dict] = []
        self._worst: list = []  # heap of (-score, index, sample, pred)

    def add(self, sample: Sample, pred: np.ndarray | None, craft: Craft = None) -> None:
        """``craft``: the predicted spacecraft class and box (None: from the mask) of a classifier."""
        truth = self.fmt.read_mask(sample.mask)
        pred = np.zeros_like(truth) if pred is None else pred
        if pred.shape != truth.shape:
            raise SparkDataError(f"prediction for {sample.name} is {pred.shape}, its mask {sample.mask} is {truth.shape}.")
        p, t = torch.from_numpy(pred.astype(np.int64))[None], torch.from_numpy(truth.astype(np.int64))[None]
        self.metrics.update(p, t)
        ious = {k: v.item() for k, v in per_image_iou(p, t).items()}
        share = float(object_share(t)[0])
        # SPARK 2026's detection: the box taken from the predicted mask (or given), class right.
        box = craft[1] if craft and craft[1] else predicted_box(pred, self.box_mode)
        [box_iou] = detection_ious([box], [sample.box or mask_box(truth)])
        row = {"name": sample.name, "spacecraft": sample.group, "object_share": round(share, 5),
               "size_bin": size_bin(share), **ious, "box_iou": round(box_iou, 5)}
        if craft is not None:
            row.update(predicted_class=craft[0], correct=craft[0] == sample.group,
                       detection_iou=round(box_iou if craft[0] == sample.group else 0.0, 5))
        self.per_image.append(row)
        scored = [ious["iou_body"]] + ([ious["iou_panel"]] if ious["panel_scored"] else [])
        heapq.heappush(self._worst, (-sum(scored) / len(scored), len(self.per_image), sample, pred))
        if len(self._worst) > self.keep_worst:
            heapq.heappop(self._worst)  # drop the best of the kept ones

    @property
    def classified(self) -> bool:
        return bool(self.per_image) and all("correct" in r for r in self.per_image)

    def summary(self) -> dict[str, float]:
        """The segmentation metrics, the box-only detection (``detection_box``) and, for a
        classifier, SPARK 2026's cls_accuracy, detection, accuracy and (cost known) final."""
        detection = detection_score([r["box_iou"] for r in self.per_image])
        out = {**{k: float(v) for k, v in self.metrics.compute().items()}, "detection_box": detection}
        if self.classified:
            craft = {"cls_accuracy": sum(r["correct"] for r in self.per_image) / len(self.per_image),
                     "detection": detection_score([r["detection_iou"] for r in self.per_image])}
            out.update(epoch_scores(craft, out.get("spark_score"), *self.cost))
        return out

    def breakdown(self, key: str) -> dict[str, dict[str, float]]:
        """SPARK score and mean IoUs (and a classifier's accuracy and detection) per value of
        ``key`` ("spacecraft" or "size_bin")."""
        t = {k: torch.tensor([float(r[k]) for r in self.per_image], dtype=torch.float64) for k in ("iou_body", "iou_panel")}
        scored = torch.tensor([bool(r["panel_scored"]) for r in self.per_image])
        craft = [torch.tensor([float(r[k]) for r in self.per_image], dtype=torch.float64)
                 for k in ("correct", "detection_iou")] if self.classified else [None, None]
        return breakdown(t["iou_body"], t["iou_panel"], scored, [r[key] for r in self.per_image], *craft)

    def save_worst(self, folder: Path) -> list[Path]:
        """Overlays (image | truth | prediction) of the worst images, titled with name, type and IoUs."""
        written = []
        for rank, (_, index, sample, pred) in enumerate(sorted(self._worst, reverse=True)):
            row = self.per_image[index - 1]
            panel = (f"panel IoU {row['iou_panel']:.2f}" if row["panel_scored"]
                     else "panel not scored (under 5 % of the body)")
            title = f"{sample.name}  {sample.group}  body IoU {row['iou_body']:.2f}  {panel}"
            image = self.fmt.read_image(sample.image)
            path = folder / f"{rank:02d}_{sample.name}.png"
            save_png(path, overlay(image, self.fmt.read_mask(sample.mask), pred, title=title))
            written.append(path)
        return written


def evaluate_pairs(pairs: Iterable[tuple[Sample, np.ndarray | None, Craft]], fmt: SegmentationFormat, total: int,
                   keep_worst: int, box_mode: str = "union",
                   cost: tuple[dict | None, dict | None] = (None, None)) -> Evaluation:
    evaluation = Evaluation(fmt, keep_worst, box_mode, cost)
    for sample, pred, craft in track(pairs, total=total, description="evaluate"):
        evaluation.add(sample, pred, craft)
    return evaluation


def breakdown_plot(path: Path, breakdowns: dict[str, dict[str, dict[str, float]]]) -> None:
    """Bars of the SPARK score per spacecraft type and per object-size bin, each labelled with
    its score and number of images."""
    plt = pyplot()
    rows = max(len(t) for t in breakdowns.values()) if breakdowns else 1
    fig, axes = plt.subplots(1, len(breakdowns), figsize=(6.5 * len(breakdowns), 1.2 + 0.4 * rows), squeeze=False)
    for ax, (name, table) in zip(axes[0], breakdowns.items()):
        labels = list(table)
        scores = [table[k]["spark_score"] for k in labels]
        ax.barh(labels, scores, color="#4878a8")
        for i, k in enumerate(labels):
            ax.text(min(scores[i], 0.75) + 0.01, i, f"{scores[i]:.2f}  (n={table[k]['images']})", va="center", fontsize=8)
        ax.set_xlim(0, 1)
        ax.invert_yaxis()
        ax.set_xlabel("SPARK score")
        ax.set_title(f"by {name}")
    fig.tight_layout()
    save_figure(fig, path)


def print_table(summary: dict[str, float], breakdowns: dict[str, dict[str, dict[str, float]]]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title="SPARK evaluation")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in TABLE_KEYS:
        if key in summary:
            table.add_row(key, f"{summary[key]:.4f}")
    console.print(table)
    for name, rows in breakdowns.items():
        sub = Table(title=f"by {name}")
        keys = [k for k in SUB_KEYS if all(k in row for row in rows.values())]
        for col in (name, "images", *keys):
            sub.add_column(col, justify="left" if col == name else "right")
        for key, row in rows.items():
            sub.add_row(key, str(row["images"]), *(f"{row[c]:.4f}" for c in keys))
        console.print(sub)
