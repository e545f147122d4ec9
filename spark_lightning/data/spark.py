"""The SPARK 2024 Stream 1 format: folder scan and colour-mask decoding.

Both the real data and the synthetic generator use this layout (see shared/spark_format.md):

    <root>/images/<Spacecraft>/<split>/<name>_img.jpg
    <root>/mask/<Spacecraft>/<split>/<name>_layer.jpg

The folders are scanned; a split's CSV (``train.csv``: ``Class``, ``Image name``, ``Mask name``,
``Bounding box``, as the organisers' loader reads it) adds each craft's box, checked against
the folders here and against the mask when the sample is decoded.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PIL import Image

from spark_lightning.data.formats import (IGNORE, IMAGE_EXTENSIONS, IMAGE_MARK, PALETTE, SPARK_CLASSES,
                                          SegmentationFormat, Sample)
from spark_lightning.errors import SparkDataError

log = logging.getLogger(__name__)

# The organisers' class-index order; note the space in "XMM Newton".
SPACECRAFT = (
    "VenusExpress",
    "Cheops",
    "LisaPathfinder",
    "ObservationSat1",
    "Proba2",
    "Proba3",
    "Proba3ocs",
    "Smart1",
    "Soho",
    "XMM Newton",
)
CLASS_COLORS = PALETTE[: len(SPARK_CLASSES)]  # the colour of each class in a SPARK mask (index = class id)

IMAGE_SUFFIX = "_img.jpg"
IMAGE_SUFFIXES = tuple(f"{IMAGE_MARK}{ext}" for ext in IMAGE_EXTENSIONS)  # real frames re-saved as PNG are read too
MASK_SUFFIX = "_layer.jpg"
PSEUDO_MANIFEST = "pseudo.json"
MASK_SUFFIXES = (MASK_SUFFIX, "_layer.png")  # PNG: index masks (pseudo-labels, with 255 = unlabelled)
# A mask may hold this share of bright pixels in none of the three colours (JPEG smear at edges
# stays far below it); more means another colour code, and the file is rejected.
MAX_UNKNOWN_SHARE = 0.25
MIN_UNKNOWN_PIXELS = 64


def decode_mask(rgb: np.ndarray, path: Path | str = "mask") -> np.ndarray:
    """RGB mask (H, W, 3) -> uint8 class ids (H, W).

    Thresholds, not exact colours, because JPEG smears colours at edges: body = R>200 and
    G,B<100; panel = B>200 and R,G<100; dark pixels background. Bright pixels in none of these
    colours are counted; when they are a large share of the foreground (pink, purple, green
    masks) the file is rejected with the colours found, instead of being read as background.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise SparkDataError(f"mask {path} must be H x W x 3 RGB, got shape {rgb.shape}")
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    body = (r > 200) & (g < 100) & (b < 100)
    panel = (b > 200) & (r < 100) & (g < 100)
    unknown = ~body & ~panel & (rgb.max(-1) >= 100)
    n_unknown = int(unknown.sum())
    if n_unknown >= MIN_UNKNOWN_PIXELS and n_unknown > MAX_UNKNOWN_SHARE * (n_unknown + body.sum() + panel.sum()):
        colours = _common_colours(rgb[unknown])
        raise SparkDataError(
            f"mask {path}: {n_unknown} pixels ({n_unknown / unknown.size:.1%}) are neither black, red (255,0,0) "
            f"nor blue (0,0,255); most common: {colours}. SPARK masks are red body / blue panels: convert the "
            "masks, or use a data format that reads this colour code."
        )
    out = np.zeros(rgb.shape[:2], dtype=np.uint8)
    out[body] = 1
    out[panel] = 2
    return out


def _common_colours(pixels: np.ndarray, n: int = 3) -> str:
    quantised = (pixels.astype(np.int32) // 32) * 32 + 16
    values, counts = np.unique(quantised, axis=0, return_counts=True)
    order = np.argsort(-counts)[:n]
    return ", ".join(f"~{tuple(int(v) for v in values[i])} x{counts[i]}" for i in order)


def encode_mask(index: np.ndarray) -> np.ndarray:
    """uint8 class index (H, W) -> RGB colour mask (H, W, 3), the SPARK colour code."""
    return CLASS_COLORS[index]


def read_label_image(path: Path, num_classes: int, allow_ignore: bool = False) -> np.ndarray:
    """A mask file as class ids: SPARK colours, or an index mask (grey values 0..C-1, and, in a
    pseudo-label set, 255 for unlabelled pixels)."""
    try:
        with Image.open(path) as im:
            array = np.asarray(im.convert("RGB") if im.mode in ("RGB", "RGBA", "P", "CMYK") else im)
    except (OSError, SyntaxError) as err:
        raise SparkDataError(f"cannot read mask {path}: {err}. Re-extract or delete this file.") from err
    if array.ndim == 3 and (array[..., 0] == array[..., 1]).all() and (array[..., 1] == array[..., 2]).all():
        array = array[..., 0]
    if array.ndim == 2:  # grey: an index mask, or a broken one
        if not ((array >= num_classes) & ((array != IGNORE) | (not allow_ignore))).any():
            return array.astype(np.uint8)
        values = np.unique(array)
        raise SparkDataError(
            f"mask {path} is single-channel with values {values[:8].tolist()}{'...' if len(values) > 8 else ''}: "
            f"expected SPARK colours (red body, blue panels) or class ids 0..{num_classes - 1}."
        )
    return decode_mask(array, path)


def with_csv_boxes(samples: list[Sample], csv_path: Path, split: str) -> list[Sample]:
    """``samples`` with the boxes of ``csv_path`` (in the SPARK 2024 columns), if it is there; a
    row naming an image that is not in ``images/<Class>/<split>/`` is one line."""
    import csv
    import dataclasses

    from spark_lightning.data.boxes import CSV_COLUMNS, parse_box

    if not csv_path.is_file():
        return samples
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or not set(CSV_COLUMNS) <= set(rows[0]):
        return samples  # another table (synthetic sets written before 2026-12-07 had other columns)
    by_file = {(s.group, s.image.name): s for s in samples}
    boxes = {}
    for n, row in enumerate(rows, start=2):  # line 1 is the header
        key = (row["Class"].strip(), row["Image name"].strip())
        if key not in by_file:
            raise SparkDataError(f"{csv_path.name} line {n}: {key[1]} is not in {csv_path.parent}/images/{key[0]}/{split}/ "
                                 "(the row and the folders disagree): fix the row or restore the image.")
        boxes[key] = (parse_box(row["Bounding box"], f"{csv_path.name} line {n}"), f"{csv_path} line {n}")
    return [dataclasses.replace(s, box=boxes[k][0], listed_in=boxes[k][1]) if (k := (s.group, s.image.name)) in boxes
            else s for s in samples]


def _visible_files(folder: Path, *suffixes: str) -> dict[str, Path]:
    """name -> path for files ending in one of the suffixes (any case), skipping macOS ``._*``
    and hidden files; two files of one name (``a_img.jpg`` and ``a_img.png``) are an error."""
    found: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        suffix = next((s for s in suffixes if p.name.lower().endswith(s)), None)
        if suffix is None or not p.is_file() or p.name.startswith("."):
            continue
        if (other := found.setdefault(p.name[: -len(suffix)], p)) != p:
            raise SparkDataError(f"{other} and {p} are two files for one sample: keep one of them.")
    return found


def _pair(craft: str, img_dir: Path, mask_dir: Path) -> list[Sample]:
    """Samples of one spacecraft folder; an image without a mask (or the reverse) is an error."""
    if not mask_dir.is_dir():
        raise SparkDataError(
            f"{mask_dir} not found but {img_dir} exists: every image folder needs its mask folder "
            "(mask/<Spacecraft>/<split>/)."
        )
    images, masks = _visible_files(img_dir, *IMAGE_SUFFIXES), _visible_files(mask_dir, *MASK_SUFFIXES)
    for missing, have, want, kind in ((sorted(set(images) - set(masks)), images, mask_dir, "mask"),
                                      (sorted(set(masks) - set(images)), masks, img_dir, "image")):
        if missing:
            suffix = MASK_SUFFIX if kind == "mask" else IMAGE_SUFFIX
            raise SparkDataError(
                f"{len(missing)} file(s) in {have[missing[0]].parent} have no {kind}, e.g. {have[missing[0]].name} "
                f"(expected {want / (missing[0] + suffix)}). Restore the {kind}s or remove those files."
            )
    return [Sample(images[n], masks[n], n, craft) for n in sorted(images)]


class SparkFormat(SegmentationFormat):
    """SPARK 2024 Stream 1: ``images/<Spacecraft>/<split>/`` + colour ``mask/``.

    Folders other than the ten known spacecraft are read too (the type is informational),
    with one warning listing them.
    """

    classes = SPARK_CLASSES

    def _check_root(self) -> Path:
        root = self.root
        if not root.is_dir():
            what = "is a file, not a folder" if root.exists() else "does not exist"
            raise SparkDataError(
                f"data root {root} {what}. Set data.root to a folder in the SPARK layout "
                "(images/<Spacecraft>/<split>/...), or leave it unset to use synthetic data."
            )
        if not (root / "images").is_dir():
            raise SparkDataError(
                f"{root / 'images'} not found: data.root must hold images/ and mask/ (the SPARK 2024 Stream 1 layout)."
            )
        return root

    def spacecraft_folders(self) -> list[str]:
        """The known spacecraft in the organisers' order, then any other folder, sorted."""
        found = {p.name for p in (self._check_root() / "images").iterdir() if p.is_dir() and not p.name.startswith(".")}
        unknown = sorted(found - set(SPACECRAFT))
        return [c for c in SPACECRAFT if c in found] + unknown

    def samples(self, split: str) -> list[Sample]:
        """Every image of one split paired with its mask. Raises SparkDataError for a missing
        split, an empty split, or an image without a mask (or a mask without an image)."""
        root = self._check_root()
        folders = [c for c in self.spacecraft_folders() if (root / "images" / c / split).is_dir()]
        if not folders:
            raise SparkDataError(
                f"split '{split}' not found under {root / 'images'}: expected folders like "
                f"{root / 'images' / SPACECRAFT[0] / split}."
            )
        unknown = [c for c in folders if c not in SPACECRAFT]
        if unknown and not self.allows_ignore:  # a pseudo-label set's folder is ours
            log.warning("split '%s' of %s: spacecraft folders outside the ten SPARK 2024 names are read too: %s",
                        split, root, ", ".join(unknown))
        samples = [s for c in folders for s in _pair(c, root / "images" / c / split, root / "mask" / c / split)]
        if not samples:
            raise SparkDataError(f"split '{split}' under {root / 'images'} holds no *{IMAGE_SUFFIX} (or _img.png) files.")
        return with_csv_boxes(samples, root / f"{split}.csv", split)

    @property
    def allows_ignore(self) -> bool:
        """A pseudo-label set (its ``pseudo.json`` manifest) may mark unsure pixels 255."""
        return self._root is not None and (self.root / PSEUDO_MANIFEST).is_file()

    def decode_mask(self, path: Path) -> np.ndarray:
        return read_label_image(path, len(self.classes), self.allows_ignore)
