"""Statistics that say whether synthetic renders look like real frames, measured the same way
on both: brightness, colour, the background around the craft, Earth, the craft's box in the
frame, and class shares.

``python -m spark_lightning.synth compare real=DIR [synthetic=DIR]`` prints them side by side.
``real`` is either a data set in the SPARK layout **with masks** (every split found is read):
the craft's pixels, box and class shares then come from the masks and the background is every
non-craft pixel; or a plain folder of images, with craft boxes from a ``bboxes.csv`` beside
them (``name,r0,c0,r1,c1``) when there is one, the background then being everything outside
the box. Synthetic sets always have masks.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from spark_lightning.data.formats import SPARK_CLASSES, find_image_files, image_name, read_rgb

Box = tuple[int, int, int, int]  # r0, c0, r1, c1 (rows/columns, end exclusive)
SPARK_TRAIN_SHARES = {"background": 0.952, "body": 0.036, "panel": 0.012}
# A background is "bright or textured" (Earth, terrain, sun glare) rather than a dark starfield
# when its non-craft pixels have a mean grey above BUSY_MEAN or a grey standard deviation above
# BUSY_STD: dark SPARK 2024 frames sit at about 34 +- 4, the Earth frames far beyond.
BUSY_MEAN, BUSY_STD = 55.0, 14.0
FLAGS = ("earth", "busy", "touches_edge", "tiny_object")  # per-image 0/1 values: shown as shares


def mask_box(labels: np.ndarray) -> Box | None:
    ys, xs = np.nonzero(labels)
    if not len(ys):
        return None
    return int(ys.min()), int(xs.min()), int(ys.max()) + 1, int(xs.max()) + 1


def earth_share(rgb: np.ndarray) -> float:
    """Share of bright, blue-dominated pixels (ocean, the lit limb's atmosphere)."""
    r, g, b = (rgb[..., i].astype(np.int16) for i in range(3))
    return float(((b > r + 15) & (b > 70)).mean())


def image_stats(rgb: np.ndarray, labels: np.ndarray | None = None, box: Box | None = None) -> dict[str, float]:
    """Per-image numbers. With ``labels`` (class ids) the craft is its pixels; with only a
    ``box`` the craft is the box; with neither, the whole frame is background."""
    grey = rgb.astype(np.float32).mean(-1)
    h, w = grey.shape
    if labels is not None:
        box = mask_box(labels)
        craft = labels > 0
    else:
        craft = np.zeros_like(grey, bool)
        if box is not None:
            craft[box[0]:box[2], box[1]:box[3]] = True
    out = {"mean": float(grey.mean()), "std": float(grey.std()), "earth": float(earth_share(rgb) > 0.05)}
    for i, c in enumerate("rgb"):
        out[f"mean_{c}"] = float(rgb[..., i].mean())
    background = grey[~craft] if (~craft).any() else grey.ravel()
    median = float(np.median(background))
    out.update(bg_mean=float(background.mean()), bg_std=float(background.std()), bg_median=median,
               bg_noise=float(np.median(np.abs(background - median))) * 1.4826,
               stars_per_mpx=float((background > median + 40).mean() * 1e6))
    out["busy"] = float(out["bg_mean"] > BUSY_MEAN or out["bg_std"] > BUSY_STD)
    if box is not None:
        r0, c0, r1, c1 = box
        inside = grey[craft] if labels is not None else grey[r0:r1, c0:c1]
        out.update(box_share=(r1 - r0) * (c1 - c0) / (h * w),
                   touches_edge=float(r0 <= 0 or c0 <= 0 or r1 >= h or c1 >= w),
                   craft_median=float(np.median(inside)), craft_p90=float(np.percentile(inside, 90)))
        out["craft_contrast"] = out["craft_median"] - median
    if labels is not None:
        out["tiny_object"] = float(craft.mean() < 0.01)
    return out


def read_boxes(folder: Path) -> dict[str, Box]:
    path = folder / "bboxes.csv"
    if not path.is_file():
        return {}
    with open(path, newline="") as f:
        return {row["name"]: tuple(int(row[k]) for k in ("r0", "c0", "r1", "c1")) for row in csv.DictReader(f)}


def _is_labelled_set(folder: Path) -> bool:
    return (folder / "images").is_dir() and (folder / "mask").is_dir()


def labelled_set_stats(root: Path, splits: tuple[str, ...] | None = None,
                       limit: int | None = None) -> tuple[list[dict[str, float]], dict[str, float]]:
    """Stats of a SPARK-layout set with masks (``splits``: default every split found), and its
    class pixel shares."""
    from spark_lightning.data.spark import SparkFormat

    fmt = SparkFormat(root)
    found = sorted({p.name for c in (root / "images").iterdir() if c.is_dir() for p in c.iterdir() if p.is_dir()})
    samples = [s for split in (splits or found) if split in found for s in fmt.samples(split)]
    step = max(1, len(samples) // limit) if limit else 1
    rows, counts = [], np.zeros(3)
    for sample in samples[::step][:limit]:
        labels = fmt.read_mask(sample.mask)
        counts += np.bincount(labels.ravel(), minlength=3)[:3]
        rows.append(image_stats(fmt.read_image(sample.image), labels))
    shares = {name: float(c / max(1, counts.sum())) for name, c in zip(SPARK_CLASSES, counts)}
    return rows, shares


def real_set_stats(folder: Path, limit: int | None = None) -> tuple[list[dict[str, float]], dict[str, float] | None]:
    """Stats of real frames: a SPARK-layout set with masks, or a folder of images (boxes from
    its bboxes.csv when there); class shares only when there are masks."""
    if _is_labelled_set(folder):
        return labelled_set_stats(folder, limit=limit)
    boxes = read_boxes(folder)
    paths = find_image_files(folder, recursive=False)[:limit]
    return [image_stats(read_rgb(p), box=boxes.get(image_name(p))) for p in paths], None


def summarise(rows: list[dict[str, float]]) -> dict[str, str]:
    """Median [10th-90th percentile] of each number, or the share for 0/1 flags."""
    out = {}
    keys = sorted({k for r in rows for k in r})
    for key in keys:
        values = np.array([r[key] for r in rows if key in r])
        if key in FLAGS:
            out[key] = f"{values.mean():.0%}"
        else:
            p10, p50, p90 = np.percentile(values, [10, 50, 90])
            scale, unit = (100, "%") if key == "box_share" else (1, "")
            out[key] = f"{p50 * scale:.1f}{unit} [{p10 * scale:.1f}-{p90 * scale:.1f}]"
    return out


ROWS = [("mean", "image mean grey"), ("std", "image grey std"), ("mean_r", "mean R"), ("mean_g", "mean G"),
        ("mean_b", "mean B"), ("bg_mean", "background mean grey (non-craft pixels)"),
        ("bg_std", "background grey std"), ("bg_median", "background median"),
        ("bg_noise", "background noise (MAD)"), ("stars_per_mpx", "stars per Mpx (> median + 40)"),
        ("busy", f"bright or textured background (mean > {BUSY_MEAN:.0f} or std > {BUSY_STD:.0f})"),
        ("earth", "frames with blue Earth/atmosphere (> 5 % blue pixels)"),
        ("box_share", "craft box / frame"), ("touches_edge", "box touches the edge"),
        ("craft_median", "median grey of the craft"), ("craft_contrast", "craft median - background median"),
        ("craft_p90", "90th pct grey of the craft (lit parts)"), ("tiny_object", "frames < 1 % craft pixels")]


def comparison_table(real: list[dict], synthetic: list[dict], shares: dict[str, float],
                     real_shares: dict[str, float] | None = None) -> str:
    r, s = summarise(real), summarise(synthetic)
    lines = ["| statistic | real | synthetic |", "|---|---|---|"]
    lines += [f"| {label} | {r.get(key, '')} | {s.get(key, '')} |" for key, label in ROWS]
    for k, v in shares.items():
        ref = f"{real_shares[k]:.1%}" if real_shares else f"{SPARK_TRAIN_SHARES[k]:.1%} (SPARK 2024 train)"
        lines.append(f"| class share: {k} | {ref} | {v:.1%} |")
    lines.append(f"| images | {len(real)} | {len(synthetic)} |")
    return "\n".join(lines)


def compare(real: Path, synthetic: Path | None, num_images: int, size: int, seed: int, limit: int) -> str:
    """The comparison table of real frames and a synthetic set's train images (rendered to a
    temp folder when ``synthetic`` is None)."""
    import tempfile

    from spark_lightning.errors import SparkDataError

    real = Path(real).expanduser()
    if not real.is_dir():
        what = "is a file, not a folder" if real.exists() else "does not exist"
        raise SparkDataError(f"real={real} {what}: give a folder of real frames (SPARK layout with masks, "
                             "or images with an optional bboxes.csv).")
    real_rows, real_shares = real_set_stats(real, limit)
    if not real_rows:
        raise SparkDataError(f"real={real} holds no images (*_img.jpg / .png, or images/ and mask/ of the SPARK layout).")
    if synthetic is not None:
        rows, shares = labelled_set_stats(Path(synthetic).expanduser(), ("train",), limit)
        return comparison_table(real_rows, rows, shares, real_shares)
    from spark_lightning.data.synth.writer import generate

    with tempfile.TemporaryDirectory(prefix="spark_compare_") as tmp:
        root = generate(Path(tmp) / "set", num_images=num_images, size=size, seed=seed, val_fraction=0.1, num_test=0)
        rows, shares = labelled_set_stats(root, ("train",), limit)
    return comparison_table(real_rows, rows, shares, real_shares)
