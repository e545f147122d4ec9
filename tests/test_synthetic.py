"""The synthetic generator: exact layout, determinism, pixel-exact masks, atomic writes."""

from __future__ import annotations

import csv
import os

import numpy as np
import pytest
from PIL import Image

import spark_lightning.atomic as atomic
from spark_lightning.atomic import clean_stale_temps
from spark_lightning.data.spark import SPACECRAFT, SparkFormat
from spark_lightning.data.synth import SyntheticSpark, generate, render_scene
from spark_lightning.data.synth.craft import HAS_PANELS
from spark_lightning.data.synth.stats import compare, image_stats, mask_box
from spark_lightning.errors import ConfigError

from .conftest import run_main


def test_layout_matches_spark(tiny_root):
    assert {p.name for p in (tiny_root / "images").iterdir()} == set(SPACECRAFT)
    assert (tiny_root / "images" / "XMM Newton" / "train").is_dir()
    assert (tiny_root / "mask" / "XMM Newton" / "val").is_dir()
    rows = list(csv.DictReader(open(tiny_root / "train.csv")))
    assert len(rows) == 24
    assert list(rows[0]) == ["Class", "Image name", "Mask name", "Bounding box"]  # the organisers' columns
    assert all((tiny_root / "images" / r["Class"] / "train" / r["Image name"]).is_file() and
               (tiny_root / "mask" / r["Class"] / "train" / r["Mask name"]).is_file() for r in rows)
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
    assert (hits[2] > 0) == HAS_PANELS[SPACECRAFT[craft]]


def test_renders_match_real_statistics():
    """Calibrated against real SPARK 2024 frames with masks (issue 17): the Earth or sun glare
    behind the craft in about 6 of 10 frames, dark frames at about 34 +- 4, the craft's box a
    median 8 % of the frame (3-20 %) touching the border in about 3 of 10, and the class shares
    of the SPARK 2024 train set (95.2 / 3.6 / 1.2 %)."""
    rows, counts = [], np.zeros(3)
    for i in range(60):
        image, mask = render_scene(np.random.default_rng([5, i]), 256, i % 10)
        rows.append(image_stats(image, mask))
        counts += np.bincount(mask.ravel(), minlength=3)
    share = np.array([r["box_share"] for r in rows])
    assert 0.05 <= np.median(share) <= 0.13 and np.percentile(share, 10) >= 0.012 and np.percentile(share, 90) <= 0.32
    assert 0.12 <= np.mean([r["touches_edge"] for r in rows]) <= 0.5
    busy = np.array([r["busy"] for r in rows])
    assert 0.4 <= busy.mean() <= 0.8
    dark = [r for r, b in zip(rows, busy) if not b]
    assert 28 <= np.median([r["bg_mean"] for r in dark]) <= 42 and np.median([r["bg_std"] for r in dark]) <= 10
    shares = counts / counts.sum()
    assert 0.92 < shares[0] < 0.98 and 0.015 < shares[1] < 0.06 and 0.004 < shares[2] < 0.025, shares


def test_earth_frames_have_texture_and_a_lit_limb():
    """The Earth is painted, not flat: land, ocean and clouds give a textured, bright background."""
    from spark_lightning.data.synth import earth

    for view in ("limb", "ground"):
        colour, cover = earth.earth(np.random.default_rng([3, 1]), 256, view)
        inside = colour[cover[..., 0] > 0.99].mean(-1)
        assert inside.size > 0.05 * 256 * 256 and inside.std() > 8 and inside.mean() > 25, view


def test_compare_prints_both_sides(tmp_path, tiny_root):
    real = tmp_path / "real"
    real.mkdir()
    image, mask = render_scene(np.random.default_rng(0), 96, 0)
    Image.fromarray(image).save(real / "a_img.jpg")
    r0, c0, r1, c1 = mask_box(mask)
    (real / "bboxes.csv").write_text(f"name,class,r0,c0,r1,c1\na,x,{r0},{c0},{r1},{c1}\n")
    table = compare(real, tiny_root, 0, 0, 0, 50)
    lines = {ln.split(" | ")[0].strip("| "): ln for ln in table.splitlines()}
    assert "| 1 | 24 |" in lines["images"]  # 1 real image, the 24 synthetic train images
    share = (r1 - r0) * (c1 - c0) / 96**2 * 100
    assert f"{share:.1f}%" in lines["craft box / frame"].split(" | ")[1]
    assert "95.2% (SPARK 2024 train)" in lines["class share: background"]  # no masks: the published shares


def test_compare_reads_real_frames_with_masks(tmp_path, tiny_root):
    """A real folder in the SPARK layout with index-PNG masks (as the real 2024 samples come):
    box and edge contact from the masks, background from non-craft pixels, measured class shares."""
    real = tmp_path / "real"
    (real / "images" / "Cheops" / "val").mkdir(parents=True)
    (real / "mask" / "Cheops" / "val").mkdir(parents=True)
    image = np.full((60, 70, 3), 30, np.uint8)
    labels = np.zeros((60, 70), np.uint8)
    labels[10:20, 0:35] = 1  # touches the left border
    labels[20:30, 10:20] = 2
    image[labels > 0] = 200
    Image.fromarray(image).save(real / "images" / "Cheops" / "val" / "f_img.png")
    Image.fromarray(labels).save(real / "mask" / "Cheops" / "val" / "f_layer.png")
    table = compare(real, tiny_root, 0, 0, 0, 50)
    lines = {ln.split(" | ")[0].strip("| "): ln.split(" | ")[1] for ln in table.splitlines()[2:]}
    assert lines["craft box / frame"].startswith(f"{20 * 35 / (60 * 70) * 100:.1f}%")
    assert lines["box touches the edge"] == "100%" and lines["background mean grey (non-craft pixels)"].startswith("30.0")
    assert lines["class share: body"] == f"{350 / 4200:.1%}" and lines["class share: panel"] == f"{100 / 4200:.1%}"


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


def test_compare_command_writes_the_table(tmp_path, tiny_root, monkeypatch):

    real = tmp_path / "real"
    real.mkdir()
    Image.fromarray(render_scene(np.random.default_rng(1), 64, 3)[0]).save(real / "b_img.jpg")
    out = tmp_path / "stats.md"
    code = run_main("synth", ["compare", f"real={real}", f"synthetic={tiny_root}", f"out={out}",
                              f"hydra.run.dir={tmp_path / 'run'}"], monkeypatch)
    assert code == 0 and out.read_text().startswith("| statistic | real | synthetic |")


def test_overwrite_keeps_the_old_set_until_the_new_one_is_whole(tmp_path, monkeypatch):
    import spark_lightning.data.synth.writer as writer

    old = generate(tmp_path / "d", num_images=2, size=32, workers=1)
    (old / "my_notes.txt").write_text("mine")

    def killed(jobs, workers):
        raise KeyboardInterrupt

    monkeypatch.setattr(writer, "_render_all", killed)
    with pytest.raises(KeyboardInterrupt):
        generate(tmp_path / "d", num_images=4, size=32, workers=1, overwrite=True)
    assert (old / "my_notes.txt").read_text() == "mine" and len(list(old.rglob("*_img.jpg"))) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]  # no temp folder left behind
    monkeypatch.undo()
    generate(tmp_path / "d", num_images=4, size=32, workers=1, overwrite=True)
    assert len(list(old.rglob("*_img.jpg"))) == 4 + 1 and not (old / "my_notes.txt").exists()


def test_synth_overwrite_replaces_only_our_own_sets(tmp_path):
    mine = tmp_path / "thesis"
    mine.mkdir()
    (mine / "thesis.txt").write_text("years of work")
    with pytest.raises(ConfigError, match="not a synthetic set written by spark_lightning .*never deleted"):
        generate(mine, num_images=2, size=32, workers=1, overwrite=True)
    assert (mine / "thesis.txt").read_text() == "years of work"
    (tmp_path / "notes.md").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        generate(tmp_path / "notes.md", num_images=2, size=32, workers=1, overwrite=True)
    ours = generate(tmp_path / "set", num_images=2, size=32, workers=1)
    with pytest.raises(FileExistsError, match="overwrite=true"):  # only here is the flag suggested
        generate(ours, num_images=2, size=32, workers=1)
    generate(ours, num_images=4, size=32, workers=1, overwrite=True)
    assert len(list(ours.glob("images/*/*/*_img.jpg"))) == 4
    empty = tmp_path / "empty"
    empty.mkdir()
    assert generate(empty, num_images=2, size=32, workers=1) == empty.resolve()  # an empty folder is fine


def test_two_synth_into_one_out_at_once_never_report_a_set_they_did_not_write(tmp_path):
    """Two generations into one folder at once with different settings: the first to finish
    keeps it; the other stops with one line instead of reporting the first one's set as its own."""
    from spark_lightning.data.synth import writer
    from spark_lightning.errors import ConfigError

    out = tmp_path / "set"
    real_swap = writer._swap_into_place

    def finished_meanwhile(tmp, target, overwrite):  # the other process wins the race just before us
        writer._swap_into_place = real_swap
        other = writer.generate(tmp_path / "other", num_images=3, size=32, seed=9, workers=1)
        os.replace(other, target)
        return real_swap(tmp, target, overwrite)

    writer._swap_into_place = finished_meanwhile
    try:
        with pytest.raises(ConfigError, match=r"another process wrote a different synthetic set there meanwhile "
                                              r"\(3 images of 32 px, seed 9\)"):
            writer.generate(out, num_images=2, size=32, seed=1, workers=1)
    finally:
        writer._swap_into_place = real_swap
    assert writer.is_synthetic_set(out) and len(list(out.glob("images/*/*/*_img.jpg"))) == 3
    assert not list(tmp_path.glob(".*tmp-*"))


def test_stale_temp_of_a_killed_generation_is_cleaned(tmp_path):
    synthetic = SyntheticSpark(num_images=4, size=32, seed=0, folder=tmp_path)
    dead = tmp_path / f".{synthetic.root.name}{atomic.TEMP_MARK}999999999"
    (dead / "images").mkdir(parents=True)
    alive = tmp_path / f".other{atomic.TEMP_MARK}{os.getpid()}"
    alive.mkdir()
    user = tmp_path / ".my_own.tmp-folder"
    user.mkdir()
    synthetic.prepare()
    assert not dead.exists() and alive.exists() and user.exists()
    assert clean_stale_temps(tmp_path) == []  # nothing of a dead process left
