"""Prediction files: ``<name>_layer.npz`` masks, colour PNGs, submission.zip, manifest.

Every file goes through the atomic writer, so an interrupted run leaves only whole files and
a re-run can trust whatever exists. The manifest records which checkpoint(s) and settings made
the predictions in a folder, so a later run with other settings does not mix with them.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from spark_lightning.atomic import write_bytes_atomic, write_json_atomic, write_with
from spark_lightning.data.formats import PREDICTIONS_MANIFEST
from spark_lightning.data.pictures import colour
from spark_lightning.errors import SparkDataError

NPZ_SUFFIX = "_layer.npz"
MANIFEST = PREDICTIONS_MANIFEST
DETECTIONS = "detection.csv"  # SPARK 2026 detections as participants submitted them
DETECTION_COLUMNS = ("filename", "class", "bbox")  # bbox: "(xmin, ymin, xmax, ymax)", pixels


def write_detections(path: Path, rows: dict[str, tuple[str, str]]) -> None:
    """``detection.csv``: one ``filename,class,bbox`` row per image (filename -> (class, bbox)),
    sorted by filename, written whole or not at all."""
    import csv

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(DETECTION_COLUMNS)
    writer.writerows([name, *rows[name]] for name in sorted(rows))
    write_bytes_atomic(path, buf.getvalue().encode())


def read_detections(path: Path) -> dict[str, tuple[str, str]]:
    """filename -> (class, bbox) of a ``detection.csv`` ({} when there is none); another header
    is one line naming the file."""
    import csv

    if not path.is_file():
        return {}
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = tuple(next(reader, ()))
        if header != DETECTION_COLUMNS:
            raise SparkDataError(f"{path}: header {','.join(header)!r} is not {','.join(DETECTION_COLUMNS)!r}; "
                                 "predict wrote it otherwise: move it away or predict again.")
        return {row[0]: (row[1], row[2]) for row in reader if row}


def save_mask_npz(path: Path, labels: np.ndarray) -> None:
    """uint8 H x W index mask as the single array of a compressed npz (the submission format)."""
    buf = io.BytesIO()
    np.savez_compressed(buf, labels.astype(np.uint8))
    write_bytes_atomic(path, buf.getvalue())


def load_mask_npz(path: Path, num_classes: int = 3) -> np.ndarray:
    """A prediction file's labels; anything but one integer H x W array of 0..C-1 is an error."""
    try:
        with np.load(path) as data:
            if len(data.files) != 1:
                raise SparkDataError(f"{path} holds {len(data.files)} arrays; a SPARK prediction holds exactly one.")
            labels = data[data.files[0]]
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        if isinstance(err, SparkDataError):
            raise
        raise SparkDataError(f"cannot read prediction {path}: {err}. Predict it again.") from err
    if labels.ndim != 2 or labels.dtype.kind not in "iu":
        raise SparkDataError(f"prediction {path} is a {labels.dtype} array of shape {labels.shape}: "
                             "expected H x W integer class ids.")
    bad = labels[(labels < 0) | (labels >= num_classes)]
    if bad.size:
        raise SparkDataError(f"prediction {path} holds label {int(bad[0])}: expected class ids 0..{num_classes - 1}.")
    return labels.astype(np.uint8)


def save_png(path: Path, rgb: np.ndarray) -> None:
    write_with(path, lambda f: Image.fromarray(rgb).save(f, format="PNG"))


def save_colour_mask(path: Path, labels: np.ndarray) -> None:
    save_png(path, colour(labels))


def write_zip(folder: Path, name: str = "submission.zip") -> Path:
    """Zip every ``*_layer.npz`` of a folder (sorted, flat), and its ``detection.csv`` when there
    is one (SPARK 2026), into ``folder/name``."""

    def write(f) -> None:
        with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as zf:  # npz are compressed already
            for path in sorted(folder.glob(f"*{NPZ_SUFFIX}")) + [p for p in [folder / DETECTIONS] if p.is_file()]:
                zf.write(path, arcname=path.name)

    out = folder / name
    write_with(out, write)
    return out


# What marks a predictions.json as ours: a file of that name written by anything else (or an
# older schema) is foreign, and nothing beside it is ever replaced.
GENERATOR, SCHEMA = "spark_lightning.predict", 1


def read_stamped_json(path: Path, generator: str, schema: int) -> dict | None:
    """A JSON manifest one of our commands wrote (its ``generator`` and ``schema`` say so),
    without those two keys; None when there is none, or the file there is not ours."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("generator") != generator or data.get("schema") != schema:
        return None
    return {k: v for k, v in data.items() if k not in ("generator", "schema")}


def write_stamped_json(path: Path, generator: str, schema: int, manifest: dict) -> None:
    write_json_atomic(path, {"generator": generator, "schema": schema, **manifest})


def read_manifest(folder: Path) -> dict | None:
    """The manifest predict wrote into ``folder`` (its checkpoints and settings), or None when
    there is none or the file there is not ours."""
    return read_stamped_json(folder / MANIFEST, GENERATOR, SCHEMA)


def write_manifest(folder: Path, manifest: dict) -> None:
    write_stamped_json(folder / MANIFEST, GENERATOR, SCHEMA, manifest)


def pyplot():
    """matplotlib's pyplot on the Agg backend: figures go to files, no display needed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path) -> None:
    """A matplotlib figure as PNG, written atomically, then closed."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    write_bytes_atomic(path, buf.getvalue())
