"""Craft boxes as SPARK's CSVs write them (spark_lightning/data/boxes.py), in our synthetic sets,
read back from a set in the real layout, and a row that disagrees with its files."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from spark_lightning.data.boxes import (
    CSV_COLUMNS,
    format_box,
    mask_box,
    parse_box,
    predicted_box,
)
from spark_lightning.data.spark import SparkFormat
from spark_lightning.data.synth import generate
from spark_lightning.errors import SparkDataError


def test_mask_box_is_the_inclusive_corners_of_craft_pixels():
    labels = np.zeros((20, 30), np.uint8)
    assert mask_box(labels) is None
    labels[3:7, 10:12] = 1
    labels[9, 25] = 2
    labels[0, 0] = 255  # the ignore label is not craft
    assert mask_box(labels) == (10, 3, 25, 9)
    assert format_box((10, 3, 25, 9)) == "(10, 3, 25, 9)" and parse_box("(10, 3, 25, 9)", "x") == (10, 3, 25, 9)
    assert parse_box("[10.0, 3, 25, 9.4]", "x") == (10, 3, 25, 9) and parse_box(" ", "x") is None


def test_the_box_of_a_predicted_mask_union_or_largest_region():
    labels = np.zeros((40, 40), np.uint8)
    labels[10:20, 10:25] = 1  # body
    labels[12:18, 25:35] = 2  # a panel touching it: one region
    labels[36:38, 2:4] = 1  # a stray blob
    assert predicted_box(labels, "union") == (2, 10, 34, 37)
    assert predicted_box(labels, "largest") == (10, 10, 34, 19)
    assert predicted_box(np.zeros((5, 5), np.uint8), "largest") is None
    with pytest.raises(ValueError, match="box mode 'biggest'"):
        predicted_box(labels, "biggest")


@pytest.mark.parametrize("text", ["(1, 2, 3)", "a, b, c, d", "(5, 2, 3, 4)"])
def test_a_bad_box_is_one_line_naming_the_row(text):
    with pytest.raises(SparkDataError, match=r"train.csv line 7: bounding box .* (is not|has xmax < xmin)"):
        parse_box(text, "train.csv line 7")


@pytest.fixture(scope="module")
def boxed_set(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("boxes") / "set", num_images=12, size=64, seed=5, workers=1)


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_synthetic_sets_write_the_real_csv_columns_with_true_boxes(boxed_set):
    rows = _rows(boxed_set / "train.csv")
    assert tuple(rows[0]) == CSV_COLUMNS
    fmt = SparkFormat(boxed_set)
    samples = fmt.samples("train")
    assert len(rows) - 1 == len(samples) and all(s.listed_in for s in samples)
    for sample in samples:
        _, labels = fmt.read_sample(sample)  # checks the row's box against the decoded mask
        assert sample.box == mask_box(labels) or max(abs(a - b) for a, b in zip(sample.box, mask_box(labels))) <= 2


def test_a_row_that_disagrees_with_its_files_is_one_line(boxed_set, tmp_path):
    import shutil

    root = tmp_path / "set"
    shutil.copytree(boxed_set, root)
    rows = _rows(root / "train.csv")
    box = parse_box(rows[1][3], "x")
    rows[1][3] = format_box((box[0] + 20, box[1], box[2] + 20, box[3]) if box else (0, 0, 5, 5))
    with open(root / "train.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    fmt = SparkFormat(root)
    sample = next(s for s in fmt.samples("train") if s.image.name == rows[1][1])
    with pytest.raises(SparkDataError, match=rf"train.csv line 2: bounding box .* disagrees with the craft pixels of "
                                             rf".*{rows[1][2]}"):
        fmt.read_sample(sample)
    rows[2][0] = "Proba2" if rows[2][0] != "Proba2" else "Cheops"  # a row naming the wrong spacecraft folder
    with open(root / "train.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    with pytest.raises(SparkDataError, match=rf"train.csv line 3: {rows[2][1]} is not in .*images/{rows[2][0]}/train/"):
        SparkFormat(root).samples("train")
