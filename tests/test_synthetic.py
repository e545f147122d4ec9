"""The synthetic generator: exact layout, determinism, pixel-exact masks, atomic writes."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from spark_lightning.data.spark import SPACECRAFT, SparkFormat
from spark_lightning.data.synth import generate, render_scene
from spark_lightning.data.synth.scene import CRAFT_TYPES


def test_layout_matches_spark(tiny_root):
    assert {p.name for p in (tiny_root / "images").iterdir()} == set(SPACECRAFT)
    assert (tiny_root / "images" / "XMM Newton" / "train").is_dir()
    assert (tiny_root / "mask" / "XMM Newton" / "val").is_dir()
    rows = list(csv.DictReader(open(tiny_root / "train.csv")))
    assert len(rows) == 24
    assert all((tiny_root / r["image"]).is_file() and (tiny_root / r["mask"]).is_file() for r in rows)
    assert len(list((tiny_root / "stream-1-test").glob("*_img.jpg"))) == 3


def test_same_seed_same_bytes_any_worker_count(tmp_path):
    a = generate(tmp_path / "a", num_images=6, size=48, seed=7, workers=1)
    b = generate(tmp_path / "b", num_images=6, size=48, seed=7, workers=2)
    c = generate(tmp_path / "c", num_images=6, size=48, seed=8, workers=1)
    files = sorted(p.relative_to(a) for p in a.rglob("*.jpg"))
    assert len(files) == 6 * 2 + 1
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    assert any((a / f).read_bytes() != (c / f).read_bytes() for f in files)


@pytest.mark.parametrize("craft", range(10))
def test_render_each_type(craft):
    hits = {1: 0, 2: 0}
    for i in range(6):
        image, mask = render_scene(np.random.default_rng([1, craft, i]), 96, craft)
        assert image.shape == (96, 96, 3) and image.dtype == np.uint8
        assert mask.shape == (96, 96) and set(np.unique(mask)) <= {0, 1, 2}
        for c in hits:
            hits[c] += int((mask == c).sum())
    assert hits[1] > 0, "every type has a body"
    has_panels = CRAFT_TYPES[SPACECRAFT[craft]].wings > 0
    assert (hits[2] > 0) == has_panels


def test_images_look_like_dark_renders():
    images = [render_scene(np.random.default_rng([5, i]), 128, i % 10)[0] for i in range(20)]
    mean = float(np.mean(images))
    assert 10 < mean < 80, mean  # dark like the real data (mean about 38/255), never black
    assert np.median(images) > 5


def test_masks_are_pixel_exact_after_jpeg(tiny_root):
    """The JPEG masks decode back to the renderer's exact masks, small objects included."""
    fmt = SparkFormat(tiny_root)
    for sample in fmt.samples("val"):
        _, exact = render_scene(np.random.default_rng([3, int(sample.name)]), 64, SPACECRAFT.index(sample.group))
        decoded = fmt.read_mask(sample.mask)
        assert (decoded == exact).mean() > 0.995
        assert (decoded == 1).sum() >= 0.9 * (exact == 1).sum() > 0


def test_refuses_to_overwrite_and_leaves_no_temp(tmp_path):
    generate(tmp_path / "d", num_images=2, size=32, workers=1)
    with pytest.raises(FileExistsError, match="overwrite=true"):
        generate(tmp_path / "d", num_images=2, size=32, workers=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="num_images"):
        generate(tmp_path / "x", num_images=1, size=32)
    with pytest.raises(ValueError, match="size"):
        generate(tmp_path / "x", num_images=4, size=8)
