"""Statistics that say whether synthetic renders look like real ones, measured the same way on
both: brightness, noise, stars, colour, Earth, contrast of the craft, and its box in the frame.

``python -m spark_lightning.synth compare real=DIR [synthetic=DIR]`` prints them side by side.
Real images need no masks: their spacecraft boxes come from a ``bboxes.csv`` beside them
(``name,r0,c0,r1,c1``), as in ``shared/real_samples``; synthetic boxes come from the masks.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from spark_lightning.data.formats import read_rgb

Box = tuple[int, int, int, int]  # r0, c0, r1, c1 (rows/columns, end exclusive)
CLASS_NAMES = ("background", "body", "panel")


def mask_box(labels: np.ndarray) -> Box | None:
    ys, xs = np.nonzero(labels)
    if not len(ys):
        return None
    return int(ys.min()), int(xs.min()), int(ys.max()) + 1, int(xs.max()) + 1


def earth_share(rgb: np.ndarray) -> float:
    """Share of bright, blue-dominated pixels (ocean, cloud-lit limb): Earth in the frame."""
    r, g, b = (rgb[..., i].astype(np.int16) for i in range(3))
    return float(((b > r + 15) & (b > 70)).mean())


def image_stats(rgb: np.ndarray, box: Box | None) -> dict[str, float]:
    """Per-image numbers; ``box`` is the spacecraft's (None: no craft known)."""
    grey = rgb.astype(np.float32).mean(-1)
    h, w = grey.shape
    outside = np.ones_like(grey, bool)
    out = {"mean": float(grey.mean()), "std": float(grey.std()), "earth": float(earth_share(rgb) > 0.05)}
    for i, c in enumerate("rgb"):
        out[f"mean_{c}"] = float(rgb[..., i].mean())
    if box is not None:
        r0, c0, r1, c1 = box
        outside[r0:r1, c0:c1] = False
        inside = grey[r0:r1, c0:c1]
        out.update(box_share=(r1 - r0) * (c1 - c0) / (h * w),
                   touches_edge=float(r0 <= 0 or c0 <= 0 or r1 >= h or c1 >= w),
                   box_median=float(np.median(inside)), box_p90=float(np.percentile(inside, 90)))
    background = grey[outside] if outside.any() else grey.ravel()
    median = float(np.median(background))
    mad = float(np.median(np.abs(background - median))) * 1.4826
    out.update(bg_median=median, bg_noise=mad, stars_per_mpx=float((background > median + 40).mean() * 1e6))
    if box is not None:
        out["box_contrast"] = out["box_median"] - median
    return out


def read_boxes(folder: Path) -> dict[str, Box]:
    path = folder / "bboxes.csv"
    if not path.is_file():
        return {}
    with open(path, newline="") as f:
        return {row["name"]: tuple(int(row[k]) for k in ("r0", "c0", "r1", "c1")) for row in csv.DictReader(f)}


def real_set_stats(folder: Path, limit: int | None = None) -> list[dict[str, float]]:
    """Stats of every ``*_img.jpg`` in a folder of real renders (boxes from bboxes.csv if there)."""
    boxes = read_boxes(folder)
    paths = sorted(folder.glob("*_img.jpg"))[:limit]
    return [image_stats(read_rgb(p), boxes.get(p.name[: -len("_img.jpg")])) for p in paths]


def synthetic_set_stats(root: Path, limit: int | None = None) -> tuple[list[dict[str, float]], dict[str, float]]:
    """Stats of a synthetic set's train images (boxes from masks), and its class pixel shares."""
    from spark_lightning.data.spark import SparkFormat

    fmt = SparkFormat(root)
    samples = fmt.samples("train")
    step = max(1, len(samples) // limit) if limit else 1
    rows, counts = [], np.zeros(3)
    for sample in samples[::step][:limit]:
        labels = fmt.read_mask(sample.mask)
        counts += np.bincount(labels.ravel(), minlength=3)[:3]
        row = image_stats(fmt.read_image(sample.image), mask_box(labels))
        row["tiny_object"] = float((labels > 0).mean() < 0.01)
        rows.append(row)
    shares = {name: float(c / counts.sum()) for name, c in zip(CLASS_NAMES, counts)}
    return rows, shares


def summarise(rows: list[dict[str, float]]) -> dict[str, str]:
    """Median [10th-90th percentile] of each number, or the share for 0/1 flags."""
    out = {}
    keys = sorted({k for r in rows for k in r})
    for key in keys:
        values = np.array([r[key] for r in rows if key in r])
        if key in ("earth", "touches_edge", "tiny_object"):
            out[key] = f"{values.mean():.0%}"
        else:
            p10, p50, p90 = np.percentile(values, [10, 50, 90])
            scale = 100 if key == "box_share" else 1
            unit = "%" if key == "box_share" else ""
            out[key] = f"{p50 * scale:.1f}{unit} [{p10 * scale:.1f}-{p90 * scale:.1f}]"
    return out


ROWS = [("mean", "image mean grey"), ("std", "image grey std"), ("mean_r", "mean R"), ("mean_g", "mean G"),
        ("mean_b", "mean B"), ("bg_median", "background median"), ("bg_noise", "background noise (MAD)"),
        ("stars_per_mpx", "stars per Mpx (> median + 40)"), ("earth", "frames with Earth"),
        ("box_share", "craft box / frame"), ("touches_edge", "box touches the edge"),
        ("box_median", "median grey in the box"), ("box_contrast", "box median - background"),
        ("box_p90", "90th pct grey in the box (lit parts)"), ("tiny_object", "frames < 1 % foreground")]


def comparison_table(real: list[dict], synthetic: list[dict], shares: dict[str, float]) -> str:
    r, s = summarise(real), summarise(synthetic)
    lines = ["| statistic | real | synthetic |", "|---|---|---|"]
    lines += [f"| {label} | {r.get(key, '')} | {s.get(key, '')} |" for key, label in ROWS]
    spark = {"background": 0.952, "body": 0.036, "panel": 0.012}
    lines += [f"| class share: {k} | {spark[k]:.1%} (SPARK 2024 train) | {v:.1%} |" for k, v in shares.items()]
    lines.append(f"| images | {len(real)} | {len(synthetic)} |")
    return "\n".join(lines)


def compare(real: Path, synthetic: Path | None, num_images: int, size: int, seed: int, limit: int) -> str:
    """The comparison table of a real folder and a synthetic set (rendered to a temp folder when
    ``synthetic`` is None)."""
    import tempfile

    from spark_lightning.errors import SparkDataError

    real = Path(real).expanduser()
    real_rows = real_set_stats(real, limit)
    if not real_rows:
        raise SparkDataError(f"real={real} holds no *_img.jpg files.")
    if synthetic is not None:
        rows, shares = synthetic_set_stats(Path(synthetic).expanduser(), limit)
        return comparison_table(real_rows, rows, shares)
    from spark_lightning.data.synth.writer import generate

    with tempfile.TemporaryDirectory(prefix="spark_compare_") as tmp:
        root = generate(Path(tmp) / "set", num_images=num_images, size=size, seed=seed, val_fraction=0.1, num_test=0)
        rows, shares = synthetic_set_stats(root, limit)
    return comparison_table(real_rows, rows, shares)
