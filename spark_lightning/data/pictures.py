"""How labels look: a mask's palette colours and the image | truth | prediction panel, drawn
the same way by training's overlays, predict and evaluate (kept with the data, below all three)."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from spark_lightning.data.formats import PALETTE


def colour(labels: np.ndarray) -> np.ndarray:
    return PALETTE[np.minimum(labels, len(PALETTE) - 1)]


def overlay(image: np.ndarray, truth: np.ndarray | None, pred: np.ndarray, height: int = 384,
            title: str | None = None) -> np.ndarray:
    """image | truth | prediction side by side (masks blended over the image), each column
    labelled, with an optional title strip above."""
    panels = [image]
    for labels in ([truth] if truth is not None else []) + [pred]:
        blend = np.where(labels[..., None] > 0, 0.4 * image + 0.6 * colour(labels).astype(np.float32), image)
        panels.append(blend.astype(np.uint8))
    names = ["image", "truth", "prediction"] if truth is not None else ["image", "prediction"]
    scale = height / image.shape[0]
    width = round(image.shape[1] * scale)
    head = 18 if title else 0
    canvas = Image.new("RGB", (width * len(panels), height + head + 16), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((4, 3), title, fill=(0, 0, 0))
    for i, (panel, name) in enumerate(zip(panels, names)):
        canvas.paste(Image.fromarray(panel).resize((width, height), Image.BILINEAR), (i * width, head + 16))
        draw.text((i * width + 4, head + 2), name, fill=(0, 0, 0))
    return np.asarray(canvas)
