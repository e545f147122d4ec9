"""Pseudo-labels (spark_lightning/tasks/pseudo.py): confident pixels only, never over a
labelled set."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from spark_lightning.data.spark import SparkFormat
from spark_lightning.tasks import run_train

from .conftest import run_main, tiny_train_config


def test_pseudo_labels_then_training_with_them(trained_ckpt, tiny_root, tmp_path, monkeypatch):
    out = tmp_path / "pseudo"
    code = run_main("pseudo", [f"ckpt={trained_ckpt}", f"input={tiny_root / 'stream-1-test'}", f"output={out}",
                               "threshold=0.6", "predict.num_workers=0", f"hydra.run.dir={tmp_path / 'run'}"],
                    monkeypatch)
    assert code == 0
    masks = sorted(out.glob("mask/pseudo/train/*_layer.png"))
    assert len(masks) == 3 and len(list(out.glob("images/pseudo/train/*_img.jpg"))) == 3
    labels = np.concatenate([np.asarray(Image.open(m)).ravel() for m in masks])
    assert set(np.unique(labels)) <= {0, 1, 2, 255} and (labels == 255).any()  # unsure pixels left unlabelled
    manifest = json.loads((out / "pseudo.json").read_text())
    assert manifest["threshold"] == 0.6 and 0 < manifest["labelled_share"] < 1
    result = run_train(tiny_train_config(tiny_root, tmp_path, [f"data.extra_roots=[{out}]"]))
    assert len(result["datamodule"].train_set) == 24 + 3
    assert (SparkFormat(out).read_mask(masks[0]) == np.asarray(Image.open(masks[0]))).all()


def test_pseudo_never_replaces_corrected_masks_nor_writes_into_a_labelled_set(trained_ckpt, tiny_root, tmp_path,
                                                                             monkeypatch, capsys):
    out = tmp_path / "pseudo"

    def pseudo(output, *extra):
        return run_main("pseudo", [f"ckpt={trained_ckpt}", f"input={tiny_root / 'stream-1-test'}", f"output={output}",
                                   "predict.num_workers=0", f"hydra.run.dir={tmp_path / 'run'}", *extra], monkeypatch)

    assert pseudo(out) == 0
    corrected = sorted(out.glob("mask/pseudo/train/*_layer.png"))[0]
    corrected.write_bytes(b"corrected by hand")
    assert pseudo(out) == 1 and "holds an earlier pseudo-label round" in "".join(capsys.readouterr())
    assert corrected.read_bytes() == b"corrected by hand"
    train_images = sorted(tiny_root.glob("images/*/train/*"))
    assert pseudo(tiny_root) == 1
    assert "is not a pseudo-label round written by spark_lightning" in "".join(capsys.readouterr())
    assert sorted(tiny_root.glob("images/*/train/*")) == train_images and not (tiny_root / "images" / "pseudo").exists()
    assert pseudo(out, "overwrite=true") == 0 and corrected.read_bytes() != b"corrected by hand"
