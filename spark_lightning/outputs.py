"""Writing predictions: ``<name>_layer.npz`` masks, colour PNGs, submission.zip, overlays.

Every file is written to a temporary name and renamed, so an interrupted run leaves only
whole files, and a re-run can trust whatever exists.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from spark_lightning.data.spark import IMAGE_SUFFIX, encode_mask

NPZ_SUFFIX = "_layer.npz"


def image_name(path: Path) -> str:
    """``<name>`` of ``<name>_img.jpg``."""
    return path.name[: -len(IMAGE_SUFFIX)] if path.name.endswith(IMAGE_SUFFIX) else path.stem


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write to a temp file beside ``path`` and rename it over ``path``: never half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def save_mask_npz(path: Path, labels: np.ndarray) -> None:
    """uint8 H x W index mask as the single array of a compressed npz (the submission format)."""
    buf = io.BytesIO()
    np.savez_compressed(buf, labels.astype(np.uint8))
    write_bytes_atomic(path, buf.getvalue())


def load_mask_npz(path: Path) -> np.ndarray:
    with np.load(path) as data:
        if len(data.files) != 1:
            raise ValueError(f"{path} holds {len(data.files)} arrays; a SPARK prediction holds exactly one.")
        return data[data.files[0]]


def save_png(path: Path, rgb: np.ndarray) -> None:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    write_bytes_atomic(path, buf.getvalue())


def save_colour_mask(path: Path, labels: np.ndarray) -> None:
    save_png(path, encode_mask(labels))


def write_zip(folder: Path, name: str = "submission.zip") -> Path:
    """Zip every ``*_layer.npz`` of a folder (sorted, flat) into ``folder/name``."""
    out = folder / name
    tmp = folder / f".{name}.{os.getpid()}.tmp"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:  # npz are compressed already
        for path in sorted(folder.glob(f"*{NPZ_SUFFIX}")):
            zf.write(path, arcname=path.name)
    os.replace(tmp, out)
    return out


def overlay(image: np.ndarray, truth: np.ndarray, pred: np.ndarray, height: int = 384) -> np.ndarray:
    """image | truth | prediction side by side, masks blended over the image."""
    panels = [image]
    for labels in (truth, pred):
        colour = encode_mask(labels).astype(np.float32)
        blend = np.where(labels[..., None] > 0, 0.4 * image + 0.6 * colour, image)
        panels.append(blend.astype(np.uint8))
    row = np.concatenate(panels, axis=1)
    scale = height / row.shape[0]
    return np.asarray(Image.fromarray(row).resize((round(row.shape[1] * scale), height), Image.BILINEAR))
