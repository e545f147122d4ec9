"""Prediction to submission files, sliding windows, resume-skip, and evaluation."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
import torch
from torch import nn

from spark_lightning.data.spark import SparkDataError, read_mask, scan_split
from spark_lightning.inference import InferenceConfig, slide_probs
from spark_lightning.outputs import load_mask_npz, save_mask_npz
from spark_lightning.tasks import run_evaluate, run_predict

from .conftest import compose_task


def predict_cfg(ckpt, input_dir, output, tmp_path, *extra):
    return compose_task("predict", [f"ckpt={ckpt}", f"input={input_dir}", f"output={output}",
                                    "predict.num_workers=0", *extra], tmp_path / "hydra")


def test_predict_writes_submission(trained_ckpt, tiny_root, tmp_path):
    out = tmp_path / "pred"
    result = run_predict(predict_cfg(trained_ckpt, tiny_root / "stream-1-test", out, tmp_path, "save_png=true"))
    npz = sorted(out.glob("*_layer.npz"))
    assert result["written"] == 3 and len(npz) == 3
    for f in npz:
        labels = load_mask_npz(f)
        assert labels.shape == (64, 64) and labels.dtype == np.uint8  # full resolution, not the 48 px of training
        assert set(np.unique(labels)) <= {0, 1, 2}
        assert (out / f.name.replace(".npz", ".png")).is_file()
    with zipfile.ZipFile(out / "submission.zip") as zf:
        assert sorted(zf.namelist()) == [f.name for f in npz]
    assert not list(out.glob(".*tmp"))


def test_predict_resumes_by_skipping_done_images(trained_ckpt, tiny_root, tmp_path):
    out = tmp_path / "pred"
    out.mkdir()
    done = out / "000030_layer.npz"
    save_mask_npz(done, np.full((64, 64), 2, np.uint8))  # a marker no model would predict
    result = run_predict(predict_cfg(trained_ckpt, tiny_root / "stream-1-test", out, tmp_path))
    assert result == {**result, "written": 2, "skipped": 1}
    assert (load_mask_npz(done) == 2).all()
    assert len(list(out.glob("*_layer.npz"))) == 3


@pytest.mark.parametrize("extra", [["predict.mode=slide", "predict.tile=32"], ["predict.tta=flip"]])
def test_predict_modes_match_shapes(trained_ckpt, tiny_root, tmp_path, extra):
    out = tmp_path / "pred"
    run_predict(predict_cfg(trained_ckpt, tiny_root / "stream-1-test", out, tmp_path, *extra))
    assert all(load_mask_npz(f).shape == (64, 64) for f in out.glob("*_layer.npz"))


class Doubler(nn.Module):
    """A 'network' whose logits are a known function of its input, to test the blending."""

    def forward(self, x):
        return torch.cat([x[:, :1] * 0, x[:, :1], -x[:, :1]], 1)


def test_slide_on_size_not_divisible_by_tile_equals_whole_image():
    x = torch.rand(2, 3, 45, 37) * 255
    whole = Doubler()(x).softmax(1)
    slid = slide_probs(Doubler(), x, tile=16, overlap=0.3, tta="none")
    assert slid.shape == whole.shape and torch.allclose(slid, whole, atol=1e-5)


def test_bad_inference_options():
    with pytest.raises(ValueError, match="predict.mode='tiles'"):
        InferenceConfig(mode="tiles")
    with pytest.raises(ValueError, match="needs predict.tile"):
        InferenceConfig(mode="slide")


def test_predict_errors_name_the_file(trained_ckpt, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SparkDataError, match=f"no \\*_img.jpg files under {empty}"):
        run_predict(predict_cfg(trained_ckpt, empty, tmp_path / "o", tmp_path))
    (empty / "broken_img.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    with pytest.raises(SparkDataError, match="broken_img.jpg"):
        run_predict(predict_cfg(trained_ckpt, empty, tmp_path / "o", tmp_path))
    bogus = tmp_path / "other.ckpt"
    ckpt = torch.load(trained_ckpt, weights_only=False)
    ckpt["state_dict"] = {k.replace("net.model.", "net.other."): v for k, v in ckpt["state_dict"].items()}
    torch.save(ckpt, bogus)
    with pytest.raises(SparkDataError, match=f"checkpoint {bogus} does not match"):
        run_predict(predict_cfg(bogus, empty, tmp_path / "o", tmp_path))


def eval_cfg(tiny_root, tmp_path, *extra):
    return compose_task("evaluate", [f"data.root={tiny_root}", "split=val", "worst=2", *extra], tmp_path / "eval")


def write_truth_as_predictions(tiny_root, folder, transform=lambda m: m):
    folder.mkdir()
    for s in scan_split(tiny_root, "val"):
        save_mask_npz(folder / f"{s.name}_layer.npz", transform(read_mask(s.mask)))


def test_evaluate_truth_scores_one_and_empty_zero(tiny_root, tmp_path):
    write_truth_as_predictions(tiny_root, tmp_path / "gt")
    result = run_evaluate(eval_cfg(tiny_root, tmp_path, f"predictions={tmp_path / 'gt'}"))
    assert result["metrics"]["spark_score"] == pytest.approx(1.0)
    assert result["metrics"]["iou"] == pytest.approx(1.0)
    report = json.loads((tmp_path / "eval" / "eval.json").read_text())
    assert len(report["per_image"]) == 6 and {"iou_body", "iou_panel", "name"} <= set(report["per_image"][0])
    assert len(list((tmp_path / "eval" / "worst").glob("*.png"))) == 2
    write_truth_as_predictions(tiny_root, tmp_path / "empty", np.zeros_like)
    assert run_evaluate(eval_cfg(tiny_root, tmp_path, f"predictions={tmp_path / 'empty'}"))["metrics"]["spark_score"] == 0.0


def test_evaluate_hand_built_case(tiny_root, tmp_path):
    """Bodies right, panels erased: body score 1, panel score 0 (panel-less images are skipped,
    every image having a body), so the SPARK score is exactly 0.5."""
    write_truth_as_predictions(tiny_root, tmp_path / "p", lambda m: np.where(m == 2, 0, m).astype(np.uint8))
    m = run_evaluate(eval_cfg(tiny_root, tmp_path, f"predictions={tmp_path / 'p'}"))["metrics"]
    truths = [read_mask(s.mask) for s in scan_split(tiny_root, "val")]
    assert any((t == 2).sum() >= 0.05 * (t == 1).sum() > 0 for t in truths), "need a scored panel image"
    assert m["spark_body"] == pytest.approx(1.0)
    assert m["spark_panel"] == pytest.approx(0.0)
    assert m["spark_score"] == pytest.approx(0.5)


def test_evaluate_reports_missing_and_extra(tiny_root, tmp_path, caplog):
    write_truth_as_predictions(tiny_root, tmp_path / "p")
    first = sorted((tmp_path / "p").glob("*.npz"))[0]
    first.rename(tmp_path / "p" / "999999_layer.npz")
    with pytest.raises(SparkDataError, match=r"1 of 6 images of split 'val' have no prediction.*allow_missing=true"):
        run_evaluate(eval_cfg(tiny_root, tmp_path, f"predictions={tmp_path / 'p'}"))
    caplog.set_level("WARNING")
    m = run_evaluate(eval_cfg(tiny_root, tmp_path, f"predictions={tmp_path / 'p'}", "allow_missing=true"))["metrics"]
    assert "999999_layer.npz" in caplog.text and "scored as empty" in caplog.text
    assert m["spark_score"] < 1.0


def test_evaluate_checkpoint_uses_training_metric(trained_ckpt, tiny_root, tmp_path):
    result = run_evaluate(eval_cfg(tiny_root, tmp_path, f"ckpt={trained_ckpt}", "predict.num_workers=0"))
    assert 0.0 <= result["metrics"]["spark_score"] <= 1.0
    assert set(result["metrics"]) >= {"spark_score", "spark_body", "spark_panel", "iou", "iou_body", "iou_panel"}


def test_checkpoint_with_pretrained_encoder_loads_offline(trained_ckpt, tmp_path, monkeypatch):
    """Weights come from the checkpoint: no hub download is attempted when predicting."""
    from spark_lightning.inference import load_network

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty_hub"))
    ckpt = torch.load(trained_ckpt, weights_only=False)
    ckpt["hyper_parameters"]["model"]["encoder_weights"] = "imagenet"
    path = tmp_path / "pretrained.ckpt"
    torch.save(ckpt, path)
    net, hparams = load_network(path)
    state = {k.removeprefix("net."): v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
    assert all(torch.equal(net.state_dict()[k], v) for k, v in state.items())
    assert hparams["inference"]["size"] == 48
