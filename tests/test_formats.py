"""The data-format plug-in point: a second format in two files (a class, a config) trains,
evaluates and predicts with no change to the framework."""

from __future__ import annotations

import sys
import textwrap

import cv2
import numpy as np
import pytest
from PIL import Image

from spark_lightning.data.spark import SparkFormat
from spark_lightning.tasks import run_evaluate, run_predict, run_train

from .conftest import compose_task, compose_train

FORMAT_PY = '''
"""PNG images with PNG masks of class ids: <root>/<split>/images/*.png, <root>/<split>/masks/*.png."""
import numpy as np
from PIL import Image

from spark_lightning.data.formats import Sample, SegmentationFormat


class PngIndexFormat(SegmentationFormat):
    image_suffix = ".png"

    def samples(self, split):
        folder = self.root / split
        return [Sample(p, folder / "masks" / p.name, p.stem, "all") for p in sorted((folder / "images").glob("*.png"))]

    def decode_mask(self, path):
        return np.asarray(Image.open(path))
'''

FORMAT_YAML = """
defaults:
  - spark
  - _self_
dataset:
  _target_: png_index_format.PngIndexFormat
size: 32
"""


@pytest.fixture
def png_plugin(tiny_root, tmp_path, monkeypatch):
    """The two files of the new format, and the tiny set converted to it."""
    (tmp_path / "png_index_format.py").write_text(textwrap.dedent(FORMAT_PY))
    (tmp_path / "conf" / "data").mkdir(parents=True)
    (tmp_path / "conf" / "data" / "pngs.yaml").write_text(FORMAT_YAML)
    monkeypatch.syspath_prepend(str(tmp_path))
    spark, root = SparkFormat(tiny_root), tmp_path / "pngs"
    for split in ("train", "val"):
        for sub in ("images", "masks"):
            (root / split / sub).mkdir(parents=True)
        for s in spark.samples(split):
            Image.fromarray(spark.read_image(s.image)).save(root / split / "images" / f"{s.name}.png")
            Image.fromarray(spark.read_mask(s.mask)).save(root / split / "masks" / f"{s.name}.png")
    yield root, f"hydra.searchpath=[file://{tmp_path / 'conf'}]"
    sys.modules.pop("png_index_format", None)


def test_second_format_trains_evaluates_and_predicts(png_plugin, tmp_path):
    root, searchpath = png_plugin
    cfg = compose_train(["debug=smoke", "data=pngs", f"data.root={root}", f"data.cache_dir={tmp_path / 'c'}",
                         "data.size=32", searchpath])
    cfg.paths.output_dir = str(tmp_path / "run")
    result = run_train(cfg)
    assert type(result["datamodule"].format).__name__ == "PngIndexFormat" and len(result["datamodule"].train_set) == 24
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    evaluation = run_evaluate(compose_task("evaluate", ["data=pngs", f"data.root={root}", f"ckpt={ckpt}", searchpath,
                                                        "predict.num_workers=0"], tmp_path / "eval"))
    assert len(evaluation["per_image"]) == 6
    predicted = run_predict(compose_task("predict", [f"ckpt={ckpt}", f"input={root / 'val' / 'images'}",
                                                     f"output={tmp_path / 'pred'}", "predict.num_workers=0"],
                                         tmp_path / "p"))
    assert predicted["written"] == 6  # the checkpoint's own format found the .png images
    # Evaluation read the new format's masks: its per-image body IoU is the one computed by hand
    # from the predictions and the PNG masks.
    for row in evaluation["per_image"]:
        pred = np.load(tmp_path / "pred" / f"{row['name']}_layer.npz")["arr_0"]
        truth = np.asarray(Image.open(root / "val" / "masks" / f"{row['name']}.png"))
        assert pred.shape == truth.shape == (64, 64)
        union = ((pred == 1) | (truth == 1)).sum()
        assert row["iou_body"] == pytest.approx(((pred == 1) & (truth == 1)).sum() / union if union else 1.0)


def test_16_bit_image_is_scaled_not_clipped(tmp_path):
    grey = np.full((16, 16), 20000, np.uint16)
    cv2.imwrite(str(tmp_path / "g_img.png"), grey)
    rgb = SparkFormat().read_image(tmp_path / "g_img.png")
    assert rgb.dtype == np.uint8 and (rgb == round(20000 / 257)).all()
