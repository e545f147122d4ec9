"""The plug-in point for data set formats: what a format must say, and shared image reading.

A format knows where a split's samples are, how to read an image and how to read a mask into
class ids, and the class names. The data module, the sample cache, evaluation and prediction
only talk to this interface; a format is chosen with ``_target_`` under ``dataset:`` in
``conf/data/`` (see ``spark.py`` for SPARK, ``synth/`` for the generated set). A new format
is one subclass and one config file.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from spark_lightning.errors import SparkDataError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp")
IMAGE_MARK, MASK_MARK = "_img", "_layer"  # SPARK names: <name>_img.jpg, <name>_layer.jpg
PREDICTIONS_MANIFEST = "predictions.json"  # marks a folder of our predictions (inference/writers.py)
# The label of pixels no loss or metric counts: padding, pseudo-label pixels the model was unsure
# of. One fact: the configs read it as ${spark:ignore_index} (spark_lightning/__init__.py).
from spark_lightning import IGNORE_INDEX as IGNORE  # noqa: E402
SPARK_CLASSES = ("background", "body", "panel")  # SPARK 2024 Stream 1's classes, by class id
# Colours of class ids: SPARK masks' colour code (black, red, blue) for the SPARK classes, then
# more for formats with more classes; overlays and colour PNGs draw with them.
PALETTE = np.array([[0, 0, 0], [255, 0, 0], [0, 0, 255], [0, 200, 0], [255, 200, 0], [200, 0, 200]], np.uint8)


@dataclass(frozen=True)
class Sample:
    """One labelled (or unlabelled: ``mask=None``) image; ``group`` is informational (SPARK: the
    spacecraft folder), used to break scores down."""

    image: Path
    mask: Path | None
    name: str
    group: str = ""
    box: tuple[int, int, int, int] | None = None  # the craft's box, where a CSV gives one (data/boxes.py)
    listed_in: str = ""  # the CSV row that gave the box, for error messages


def _to_uint8(array: np.ndarray, path: Path) -> np.ndarray:
    """16-bit or float pixels scaled to 0..255 (reading them as 8-bit would clip to white)."""
    if array.dtype == np.uint8:
        return array
    if array.dtype in (np.uint16, np.int32, np.int64) and array.max(initial=0) <= 65535:
        return (array.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
    if array.dtype.kind == "f" and 0 <= array.min(initial=0) and array.max(initial=0) <= 1:
        return (array * 255 + 0.5).astype(np.uint8)
    raise SparkDataError(f"image {path} has {array.dtype} pixels in an unknown range: save it as 8-bit RGB.")


from spark_lightning.data.sizes import MIN_SIDE  # noqa: E402  (the one rule of image sides)


def read_rgb(path: Path, size: int | None = None) -> np.ndarray:
    """Read any image as uint8 RGB (H, W, 3), optionally downscaled to size x size.

    JPEGs decode straight at 1/2, 1/4 or 1/8 scale through PIL's ``draft`` (much cheaper than
    decoding at full size); 16-bit images are scaled, not clipped. Unreadable files raise
    SparkDataError naming the file.
    """
    try:
        with Image.open(path) as im:
            if min(im.size) < MIN_SIDE:  # a 1 x 1 frame would train silently on an upscaled blur
                raise SparkDataError(f"image {path} is {im.size[0]} x {im.size[1]} px, too small for a segmentation "
                                     f"network (at least {MIN_SIDE} px a side): delete or replace it.")
            if size is not None and im.format == "JPEG":
                im.draft("RGB", (size, size))
            if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                rgb = np.repeat(_to_uint8(np.asarray(im), path)[..., None], 3, axis=-1)
                im = Image.fromarray(rgb)
            im = im.convert("RGB")
            if size is not None and im.size != (size, size):
                im = im.resize((size, size), Image.BILINEAR)
            return np.asarray(im)
    except (OSError, SyntaxError, ValueError) as err:
        if isinstance(err, SparkDataError):
            raise
        raise SparkDataError(f"cannot read image {path}: {err}. Re-extract or delete this file.") from err


def resize_labels(labels: np.ndarray, size: int | None) -> np.ndarray:
    """Class ids resized by nearest neighbour (never blended)."""
    if size is None or labels.shape == (size, size):
        return labels
    return np.asarray(Image.fromarray(labels).resize((size, size), Image.NEAREST))


class SegmentationFormat:
    """Base class of data set formats. Subclasses implement ``samples`` and ``decode_mask``.

    Args:
        root: the folder holding the data set.
    """

    classes: tuple[str, ...] = SPARK_CLASSES
    allows_ignore = False  # whether masks may mark unlabelled pixels IGNORE

    def __init__(self, root: str | Path | None = None) -> None:
        self._root = Path(root).expanduser() if root else None

    @property
    def root(self) -> Path:
        if self._root is None:
            raise SparkDataError("data.root is not set: point it at a folder holding the data set.")
        return self._root

    def prepare(self) -> None:
        """Make the data exist (generate, download); called once, on one process."""

    def samples(self, split: str) -> list[Sample]:
        raise NotImplementedError

    def read_image(self, path: Path, size: int | None = None) -> np.ndarray:
        return read_rgb(path, size)

    def decode_mask(self, path: Path) -> np.ndarray:
        """The mask file at full resolution as uint8 class ids (H, W)."""
        raise NotImplementedError

    def read_mask(self, path: Path, size: int | None = None) -> np.ndarray:
        """Class ids, resized by nearest neighbour. Masks are decoded at full size first: decoding
        at reduced scale or blending would move class boundaries."""
        labels = self.decode_mask(path)
        bad = labels[(labels >= len(self.classes)) & ((labels != IGNORE) | (not self.allows_ignore))]
        if bad.size:
            raise SparkDataError(f"mask {path} holds class id {int(bad[0])} but this data set has "
                                 f"{len(self.classes)} classes {self.classes}.")
        return resize_labels(labels, size)

    def read_sample(self, sample: Sample, size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(image, mask) at ``size``; checks first that the two files are the same picture size."""
        image = self.read_image(sample.image, size)
        if sample.mask is None:
            return image, np.zeros(image.shape[:2], np.uint8)
        mask = self.read_mask(sample.mask)
        width, height = image_size(sample.image)
        if mask.shape != (height, width):
            raise SparkDataError(
                f"mask {sample.mask} is {mask.shape[1]}x{mask.shape[0]} but image {sample.image} is "
                f"{width}x{height}: they must match (fix or remove this pair)."
            )
        if sample.box is not None:
            from spark_lightning.data.boxes import check_box

            check_box(sample.box, mask, sample.listed_in, sample.mask)
        return image, resize_labels(mask, size)

    def find_images(self, folder: str | Path) -> list[Path]:
        """Every image under a folder (any depth), for prediction: any name, any common image
        extension. Masks (``*_layer.*``), other files and unreadable images are skipped with
        one log line each saying which and why; two images that would give the same
        prediction file are an error."""
        folder = Path(folder).expanduser()
        if not folder.is_dir():
            what = "is a file, not a folder" if folder.exists() else "does not exist"
            raise SparkDataError(f"image folder {folder} {what}: give the folder holding the images to predict.")
        paths, skipped = [], {}
        for path in sorted(p for p in folder.rglob("*") if p.is_file() and not _hidden(p, folder)):
            if not is_image_file(path):
                skipped.setdefault("not an image", []).append(path)
            elif path.stem.endswith(MASK_MARK):
                skipped.setdefault(f"a mask ({MASK_MARK}.*)", []).append(path)
            else:
                try:
                    image_size(path)
                    paths.append(path)
                except SparkDataError as err:
                    skipped.setdefault(f"unreadable: {str(err).split(': ', 1)[-1][:80]}", []).append(path)
        for why, files in skipped.items():
            files = [p for p in files if not (p.parent / PREDICTIONS_MANIFEST).is_file()]  # our own outputs
            if files:
                log.warning("skipped %d file(s) under %s, %s: %s%s", len(files), folder, why,
                            ", ".join(str(p.relative_to(folder)) for p in files[:5]), " ..." if len(files) > 5 else "")
        if not paths:
            unreadable = [p for why, files in skipped.items() if why.startswith("unreadable") for p in files]
            seen = f"; unreadable: {', '.join(p.name for p in unreadable[:5])}" if unreadable else ""
            raise SparkDataError(f"no readable images under {folder} (looked for {', '.join(IMAGE_EXTENSIONS)}{seen}).")
        by_name: dict[str, Path] = {}
        for path in paths:
            if (other := by_name.setdefault(self.image_name(path), path)) != path:
                raise SparkDataError(f"{other} and {path} would both be predicted as {self.image_name(path)}: "
                                     "rename one, or predict the two folders separately.")
        return paths

    def image_name(self, path: Path) -> str:
        """What prediction files are named after: ``<name>`` of ``<name>_img.<ext>`` or ``<name>.<ext>``."""
        return image_name(path)

    def describe(self) -> str:
        return f"{type(self).__name__}({self._root})"


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def image_name(path: Path) -> str:
    """``<name>`` of ``<name>_img.<ext>`` (the SPARK naming), else the file's stem."""
    stem = path.stem
    return stem[: -len(IMAGE_MARK)] if stem.endswith(IMAGE_MARK) and len(stem) > len(IMAGE_MARK) else stem


def _hidden(path: Path, top: Path) -> bool:
    """Hidden files and folders below ``top`` (macOS ``._*`` files, our temp files)."""
    return any(part.startswith(".") for part in path.relative_to(top).parts)


def find_image_files(folder: Path, recursive: bool = True) -> list[Path]:
    """Visible image files (by extension, any case) in a folder, sorted."""
    files = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in files if p.is_file() and is_image_file(p) and not _hidden(p, folder))


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the file header, without decoding the pixels."""
    try:
        with Image.open(path) as im:
            return im.size
    except (OSError, SyntaxError) as err:
        raise SparkDataError(f"cannot read image {path}: {err}. Re-extract or delete this file.") from err


def resize_image(image: np.ndarray, size: int | None) -> np.ndarray:
    """An RGB image resized (bilinear) to size x size."""
    if size is None or image.shape[:2] == (size, size):
        return image
    return np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR))


def check_headers(samples: list[Sample]) -> None:
    """Open every image and mask header (cheap); one SparkDataError listing every unreadable file."""
    errors = []
    for sample in samples:
        for path in (sample.image, sample.mask):
            if path is None:
                continue
            try:
                image_size(path)
            except SparkDataError as err:
                errors.append(str(err))
    if errors:
        raise SparkDataError(f"{len(errors)} unreadable file(s):\n  " + "\n  ".join(errors))
