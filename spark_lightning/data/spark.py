"""The SPARK 2024 Stream 1 layout: folder scan, mask colour decoding, image reading.

Both the real data and the synthetic generator use this layout (see shared/spark_format.md):

    <root>/images/<Spacecraft>/<split>/<name>_img.jpg
    <root>/mask/<Spacecraft>/<split>/<name>_layer.jpg

The CSVs are not documented publicly, so we scan folders instead of trusting them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

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
CLASSES = ("background", "body", "panel")
# Colour of each class in a SPARK mask (index = class id).
CLASS_COLORS = np.array([[0, 0, 0], [255, 0, 0], [0, 0, 255]], dtype=np.uint8)

IMAGE_SUFFIX = "_img.jpg"
MASK_SUFFIX = "_layer.jpg"


class SparkDataError(ValueError):
    """Bad or missing SPARK data; the message names the path and what to do."""


@dataclass(frozen=True)
class Sample:
    """One image of a split: its files, its name (without suffix) and spacecraft index."""

    image: Path
    mask: Path | None
    name: str
    spacecraft: int


def decode_mask(rgb: np.ndarray) -> np.ndarray:
    """RGB JPEG mask (H, W, 3) -> uint8 class index (H, W).

    Thresholds, not exact colours, because JPEG smears the colours at edges:
    body = R>200 and G,B<100; panel = B>200 and R,G<100; anything else background.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise SparkDataError(f"mask must be H x W x 3 RGB, got shape {rgb.shape}")
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    out = np.zeros(rgb.shape[:2], dtype=np.uint8)
    out[(r > 200) & (g < 100) & (b < 100)] = 1
    out[(b > 200) & (r < 100) & (g < 100)] = 2
    return out


def encode_mask(index: np.ndarray) -> np.ndarray:
    """uint8 class index (H, W) -> RGB colour mask (H, W, 3), the SPARK colour code."""
    return CLASS_COLORS[index]


def read_rgb(path: Path, size: int | None = None) -> np.ndarray:
    """Read an image as uint8 RGB, optionally downscaled to size x size.

    PIL's ``draft`` lets libjpeg decode straight at 1/2, 1/4 or 1/8 scale, which is much
    cheaper than decoding at full size and resizing. Truncated or unreadable files raise
    SparkDataError naming the file.
    """
    try:
        with Image.open(path) as im:
            if size is not None and im.format == "JPEG":
                im.draft("RGB", (size, size))
            im = im.convert("RGB")
            if size is not None and im.size != (size, size):
                im = im.resize((size, size), Image.BILINEAR)
            return np.asarray(im)
    except (OSError, SyntaxError) as err:
        raise SparkDataError(
            f"cannot read image {path}: {err}. Re-extract or delete this file."
        ) from err


def read_mask(path: Path, size: int | None = None) -> np.ndarray:
    """Read a colour-coded mask as a class index map, resized by nearest neighbour.

    Masks are decoded at full size first: decoding at reduced scale (or bilinear resizing)
    would blend red/blue with black and move the class boundaries.
    """
    try:
        with Image.open(path) as im:
            index = decode_mask(np.asarray(im.convert("RGB")))
    except (OSError, SyntaxError) as err:
        raise SparkDataError(
            f"cannot read mask {path}: {err}. Re-extract or delete this file."
        ) from err
    if size is not None and index.shape != (size, size):
        index = np.asarray(Image.fromarray(index).resize((size, size), Image.NEAREST))
    return index


def _visible_files(folder: Path, suffix: str) -> dict[str, Path]:
    """name -> path for files ending in suffix, skipping macOS ``._*`` and hidden files."""
    return {
        p.name[: -len(suffix)]: p
        for p in folder.iterdir()
        if p.is_file() and p.name.endswith(suffix) and not p.name.startswith(".")
    }


def scan_split(root: str | Path, split: str, require_masks: bool = True) -> list[Sample]:
    """List the samples of one split, pairing every ``_img`` with its ``_layer``.

    Raises SparkDataError for a missing root or split, an empty split, or an image without
    a mask (or a mask without an image), so training never silently runs on nothing.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise SparkDataError(
            f"data root {root} does not exist. Set data.root to a folder in the SPARK layout "
            "(images/<Spacecraft>/<split>/...), or leave it unset to use synthetic data."
        )
    images_dir, masks_dir = root / "images", root / "mask"
    if not images_dir.is_dir():
        raise SparkDataError(
            f"{images_dir} not found: data.root must hold images/ and mask/ "
            "(the SPARK 2024 Stream 1 layout)."
        )
    samples: list[Sample] = []
    found_split = False
    for index, craft in enumerate(SPACECRAFT):
        img_dir = images_dir / craft / split
        if not img_dir.is_dir():
            continue
        found_split = True
        images = _visible_files(img_dir, IMAGE_SUFFIX)
        masks: dict[str, Path] = {}
        if require_masks:
            mask_dir = masks_dir / craft / split
            if not mask_dir.is_dir():
                raise SparkDataError(
                    f"{mask_dir} not found but {img_dir} exists: every image folder needs "
                    "its mask folder (mask/<Spacecraft>/<split>/)."
                )
            masks = _visible_files(mask_dir, MASK_SUFFIX)
            no_mask = sorted(set(images) - set(masks))
            no_image = sorted(set(masks) - set(images))
            if no_mask:
                raise SparkDataError(
                    f"{len(no_mask)} image(s) in {img_dir} have no mask, e.g. "
                    f"{images[no_mask[0]].name} (expected {mask_dir / (no_mask[0] + MASK_SUFFIX)})."
                    " Restore the masks or remove those images."
                )
            if no_image:
                raise SparkDataError(
                    f"{len(no_image)} mask(s) in {mask_dir} have no image, e.g. "
                    f"{masks[no_image[0]].name} (expected {img_dir / (no_image[0] + IMAGE_SUFFIX)})."
                    " Restore the images or remove those masks."
                )
        for name in sorted(images):
            samples.append(Sample(images[name], masks.get(name), name, index))
    if not found_split:
        raise SparkDataError(
            f"split '{split}' not found under {images_dir}: expected folders like "
            f"{images_dir / SPACECRAFT[0] / split}."
        )
    if not samples:
        raise SparkDataError(f"split '{split}' under {images_dir} holds no *{IMAGE_SUFFIX} files.")
    return samples


def scan_images(folder: str | Path) -> list[Path]:
    """Every ``*_img.jpg`` under a folder (any depth): the unlabelled test layout."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise SparkDataError(f"image folder {folder} does not exist.")
    paths = sorted(
        p for p in folder.rglob(f"*{IMAGE_SUFFIX}") if p.is_file() and not p.name.startswith(".")
    )
    if not paths:
        raise SparkDataError(f"no *{IMAGE_SUFFIX} files under {folder}.")
    return paths
