"""Write a synthetic data set in the exact SPARK 2024 Stream 1 layout.

Every image draws from its own ``np.random.default_rng([seed, index])``, so a set is the same
bytes whatever the number of worker processes. The set is written into a hidden temp folder
beside the target and renamed into place at the end: an interrupted run never leaves half a
set, ``overwrite=true`` keeps the old set until the new one is whole, and a later run removes
temp folders left by killed runs.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
import signal
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from spark_lightning.atomic import clean_stale_temps, explain_os_error, temp_name
from spark_lightning.data.boxes import CSV_COLUMNS, Box, format_box, mask_box
from spark_lightning.data.spark import IMAGE_SUFFIX, MASK_SUFFIX, SPACECRAFT, encode_mask
from spark_lightning.data.synth.scene import RENDER_VERSION, render_scene
from spark_lightning.errors import ConfigError

log = logging.getLogger(__name__)

TEST_DIR = "stream-1-test"
MANIFEST = "synthetic.json"  # what wrote the set: overwrite=true replaces only such folders
Job = tuple[Path, str, "str | None", int, int, int, int]  # folder, name, split, craft, size, seed, index


def write_jpeg(path: Path, rgb: np.ndarray, quality: int, full_chroma: bool = False) -> None:
    """JPEG as the real data ships it. ``full_chroma`` (4:4:4, for masks) keeps the colours of
    objects a few pixels wide, which 4:2:0 subsampling would smear below the decode thresholds."""
    params = [cv2.IMWRITE_JPEG_QUALITY, quality]
    if full_chroma:
        params += [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]
    ok, buf = cv2.imencode(".jpg", rgb[..., ::-1], params)
    if not ok:
        raise OSError(f"JPEG encoding failed for {path}")
    path.write_bytes(buf.tobytes())


def _render_one(job: Job) -> tuple[str, Box | None]:
    """Render and write one frame; return its name and the box of its craft's true pixels."""
    out, name, split, craft, size, seed, index = job
    image, mask = render_scene(np.random.default_rng([seed, index]), size, craft)
    if split is None:
        write_jpeg(out / TEST_DIR / f"{name}{IMAGE_SUFFIX}", image, 95)
        return name, None
    folder = SPACECRAFT[craft]
    write_jpeg(out / "images" / folder / split / f"{name}{IMAGE_SUFFIX}", image, 95)
    write_jpeg(out / "mask" / folder / split / f"{name}{MASK_SUFFIX}", encode_mask(mask), 90, full_chroma=True)
    return name, mask_box(mask)


def _die_with_parent() -> None:
    """Pool workers end when the generating process is killed (Linux), instead of running on."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _plan(tmp: Path, num_images: int, n_val: int, num_test: int, size: int, seed: int):
    """The render jobs and the CSV rows: spacecraft take turns, so every type is in both splits."""
    jobs: list[Job] = []
    rows: dict[str, list] = {"train": [], "val": []}
    for i in range(num_images):
        split = "val" if i >= num_images - n_val else "train"
        craft, name = i % len(SPACECRAFT), f"{i:06d}"
        jobs.append((tmp, name, split, craft, size, seed, i))
        folder = SPACECRAFT[craft]
        rows[split].append([folder, f"{name}{IMAGE_SUFFIX}", f"{name}{MASK_SUFFIX}"])  # + the box, once rendered
    for j in range(num_test):
        i = num_images + j
        craft = int(np.random.default_rng([seed, i, 1]).integers(len(SPACECRAFT)))
        jobs.append((tmp, f"{i:06d}", None, craft, size, seed, i))
    return jobs, rows


def _render_all(jobs: list[Job], workers: int) -> dict[str, Box | None]:
    """Render every job; name -> box of the craft's true pixels."""
    if workers <= 1:
        return dict(_render_one(job) for job in jobs)
    with ProcessPoolExecutor(workers, initializer=_die_with_parent) as pool:
        return dict(pool.map(_render_one, jobs, chunksize=max(1, len(jobs) // (workers * 8))))


def _make_folders(tmp: Path) -> None:
    for top in ("images", "mask"):
        for craft in SPACECRAFT:
            for split in ("train", "val"):
                (tmp / top / craft / split).mkdir(parents=True)
    (tmp / TEST_DIR).mkdir()


def _swap_into_place(tmp: Path, out: Path, overwrite: bool) -> None:
    """Rename the finished set over ``out``; an old set is moved aside first, deleted last.

    Without ``overwrite``, a set another process finished meanwhile wins and ours is dropped.
    """
    old = None
    if out.exists() and is_synthetic_set(out) and not overwrite:
        theirs, ours = (json.loads((folder / MANIFEST).read_text()) for folder in (out, tmp))
        if theirs != ours:  # another synth wrote a different set: never report it as ours
            raise ConfigError(f"out={out}: another process wrote a different synthetic set there meanwhile "
                              f"({theirs.get('num_images')} images of {theirs.get('size')} px, seed "
                              f"{theirs.get('seed')}); it was kept and this one dropped. Choose another out=, "
                              "or set overwrite=true.")
        log.info("%s was written by another process meanwhile (the same set): using it", out)
        return
    if out.exists() and not is_synthetic_set(out):  # an empty folder, or a foreign one appeared meanwhile
        if any(out.iterdir()):
            raise ConfigError(f"out={out} is not a synthetic set written by spark_lightning: nothing was changed.")
        out.rmdir()
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}.tmp-{os.getpid()}")
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _check_args(num_images: int, size: int, val_fraction: float) -> None:
    if num_images < 2:
        raise ConfigError(f"num_images={num_images}: need at least 2 (one train, one val).")
    if size < 16:
        raise ConfigError(f"size={size}: images must be at least 16 pixels wide.")
    if not 0 < val_fraction < 1:
        raise ConfigError(f"val_fraction={val_fraction} must lie strictly between 0 and 1.")


def is_synthetic_set(folder: Path) -> bool:
    """Whether ``folder`` is a set this generator wrote (its manifest says so): the only kind of
    folder ``overwrite=true`` may replace."""
    try:
        return json.loads((folder / MANIFEST).read_text()).get("generator") == "spark_lightning.synth"
    except (OSError, ValueError, AttributeError):
        return False


def _check_out(out: Path, overwrite: bool) -> None:
    """Refuse a file, and any folder that is not one of our sets; an existing set needs overwrite."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"out={out} is a file: give a folder for the synthetic set (nothing was changed).")
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return
    if not is_synthetic_set(out):
        raise ConfigError(f"out={out} exists and is not a synthetic set written by spark_lightning (no {MANIFEST}): "
                          "choose another out= (nothing was changed; this folder is never deleted).")
    if not overwrite:
        raise FileExistsError(f"{out} already holds a synthetic set: choose another out=, or set overwrite=true "
                              "to replace it.")


def generate(
    out: str | Path,
    num_images: int,
    size: int,
    seed: int = 0,
    val_fraction: float = 0.2,
    num_test: int | None = None,
    workers: int | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a synthetic data set in the SPARK layout and return its root."""
    _check_args(num_images, size, val_fraction)
    out = Path(out).expanduser().resolve()
    _check_out(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    for stale in clean_stale_temps(out.parent, out.name + "*"):
        log.info("removed %s, left by an interrupted generation", stale)
    num_test = max(1, num_images // 10) if num_test is None else num_test
    n_val = max(1, round(num_images * val_fraction))
    tmp = temp_name(out)
    try:
        _make_folders(tmp)
        jobs, rows = _plan(tmp, num_images, n_val, num_test, size, seed)
        boxes = _render_all(jobs, workers or min(len(jobs), os.cpu_count() or 1))
        for split, split_rows in rows.items():  # the organisers' columns, so their loaders read our sets
            with open(tmp / f"{split}.csv", "w", newline="") as f:
                writer = csv.writer(f)
                writer.writerow(CSV_COLUMNS)
                writer.writerows([*row, format_box(boxes[row[1].removesuffix(IMAGE_SUFFIX)])] for row in split_rows)
        (tmp / MANIFEST).write_text(json.dumps({"generator": "spark_lightning.synth", "render_version": RENDER_VERSION,
                                                "num_images": num_images, "size": size, "seed": seed,
                                                "val_fraction": val_fraction, "num_test": num_test}, indent=2))
        _swap_into_place(tmp, out, overwrite)
    except OSError as err:
        raise explain_os_error(err, out, "write the synthetic set to") from err
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("wrote %d train, %d val, %d test synthetic images (%d px) to %s",
             num_images - n_val, n_val, num_test, size, out)
    return out
