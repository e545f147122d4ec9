"""The bounding box of the one craft in a frame, as SPARK's ``train.csv`` / ``val.csv`` write it
(column ``Bounding box``): ``"(xmin, ymin, xmax, ymax)"`` in pixels, Pascal VOC corners. Here
the corners are 0-based and inclusive: the first and the last column and row holding craft
pixels (body or panel)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from spark_lightning.errors import SparkDataError

Box = tuple[int, int, int, int]
CSV_COLUMNS = ("Class", "Image name", "Mask name", "Bounding box")  # the organisers' own loader reads these
AGREE_PX = 2, 0.02  # a CSV box's corners lie within max(2 px, 2 % of the frame) of its mask's (JPEG edges)


def mask_box(labels: np.ndarray) -> Box | None:
    """The box around every non-background pixel of a class-id mask, or None without any."""
    craft = (labels > 0) & (labels < 255)
    if not craft.any():
        return None
    rows, cols = np.flatnonzero(craft.any(1)), np.flatnonzero(craft.any(0))
    return int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1])


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


def check_box(box: Box, labels: np.ndarray, listed_in: str, mask: Path | None) -> None:
    """A CSV row whose box disagrees with its mask's craft pixels is one line naming both."""
    found = mask_box(labels)
    tolerance = max(AGREE_PX[0], AGREE_PX[1] * max(labels.shape))
    if found is None or max(abs(a - b) for a, b in zip(box, found)) > tolerance:
        raise SparkDataError(f"{listed_in}: bounding box {format_box(box)} disagrees with the craft pixels of {mask} "
                             f"({format_box(found) or 'none'}): fix the row or the mask.")
