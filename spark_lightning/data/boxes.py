"""The bounding box of the one craft in a frame, as SPARK's ``train.csv`` / ``val.csv`` write it
(column ``Bounding box``): ``"(xmin, ymin, xmax, ymax)"`` in pixels, Pascal VOC corners. Here
the corners are 0-based and inclusive: the first and the last column and row holding craft
pixels (body or panel)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from spark_lightning import IGNORE_INDEX
from spark_lightning.errors import SparkDataError

Box = tuple[int, int, int, int]
CSV_COLUMNS = ("Class", "Image name", "Mask name", "Bounding box")  # the organisers' own loader reads these
AGREE_PX = 2, 0.02  # a CSV box's corners lie within max(2 px, 2 % of the frame) of its mask's (JPEG edges)


def mask_box(labels: np.ndarray) -> Box | None:
    """The box around every non-background pixel of a class-id mask, or None without any."""
    craft = (labels > 0) & (labels != IGNORE_INDEX)
    if not craft.any():
        return None
    rows, cols = np.flatnonzero(craft.any(1)), np.flatnonzero(craft.any(0))
    return int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1])


BOX_MODES = ("union", "largest")  # how a box follows from a predicted mask


def predicted_box(labels: np.ndarray, mode: str = "union") -> Box | None:
    """The box a segmentation implies (SPARK 2026 entries derived their box from their mask):
    ``union`` around every craft pixel, ``largest`` around the largest connected craft region
    (a stray blob elsewhere then does not stretch the box)."""
    if mode == "union":
        return mask_box(labels)
    if mode not in BOX_MODES:
        raise ValueError(f"box mode {mode!r}: use one of {BOX_MODES}")
    import cv2

    craft = ((labels > 0) & (labels != IGNORE_INDEX)).astype(np.uint8)
    count, _, stats, _ = cv2.connectedComponentsWithStats(craft, connectivity=8)
    if count < 2:
        return None
    i = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y, w, h = (int(stats[i, k]) for k in (cv2.CC_STAT_LEFT, cv2.CC_STAT_TOP, cv2.CC_STAT_WIDTH, cv2.CC_STAT_HEIGHT))
    return x, y, x + w - 1, y + h - 1


def format_box(box: Box | None) -> str:
    return "" if box is None else "({}, {}, {}, {})".format(*box)


def parse_box(text: str, where: str) -> Box | None:
    """``"(xmin, ymin, xmax, ymax)"`` (brackets optional, empty: no craft) or one line naming ``where``."""
    text = text.strip()
    if not text:
        return None
    numbers = re.fullmatch(r"[(\[]?\s*(-?\d+(?:\.\d*)?)\s*,\s*(-?\d+(?:\.\d*)?)\s*,\s*(-?\d+(?:\.\d*)?)\s*,"
                           r"\s*(-?\d+(?:\.\d*)?)\s*[)\]]?", text)
    if not numbers:
        raise SparkDataError(f"{where}: bounding box {text!r} is not \"(xmin, ymin, xmax, ymax)\" in pixels.")
    xmin, ymin, xmax, ymax = (round(float(v)) for v in numbers.groups())
    if xmax < xmin or ymax < ymin:
        raise SparkDataError(f"{where}: bounding box {text!r} has xmax < xmin or ymax < ymin.")
    return xmin, ymin, xmax, ymax


def box_iou(a: Box, b: Box) -> float:
    """IoU of two boxes of inclusive pixel corners."""
    w = min(a[2], b[2]) - max(a[0], b[0]) + 1
    h = min(a[3], b[3]) - max(a[1], b[1]) + 1
    inter = max(0, w) * max(0, h)
    area_a = (a[2] - a[0] + 1) * (a[3] - a[1] + 1)
    area_b = (b[2] - b[0] + 1) * (b[3] - b[1] + 1)
    return inter / (area_a + area_b - inter)


def check_box(box: Box, labels: np.ndarray, listed_in: str, mask: Path | None) -> None:
    """A CSV row whose box disagrees with its mask's craft pixels is one line naming both."""
    found = mask_box(labels)
    tolerance = max(AGREE_PX[0], AGREE_PX[1] * max(labels.shape))
    if found is None or max(abs(a - b) for a, b in zip(box, found)) > tolerance:
        raise SparkDataError(f"{listed_in}: bounding box {format_box(box)} disagrees with the craft pixels of {mask} "
                             f"({format_box(found) or 'none'}): fix the row or the mask.")
