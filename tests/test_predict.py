"""Prediction to submission files, sliding windows, resume-skip, and evaluation."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from spark_lightning.data.spark import SparkFormat
from spark_lightning.errors import CheckpointError, ConfigError, SparkDataError
from spark_lightning.inference.probabilities import (
    PredictOptions,
    Predictor,
    iter_predictions,
    slide_probs,
)
from spark_lightning.inference.writers import load_mask_npz, save_mask_npz
from spark_lightning.tasks import run_evaluate, run_predict, run_train


def scan_split(root, split):
    return SparkFormat(root).samples(split)


def read_mask(path):
    return SparkFormat().read_mask(path)

import errno

from .conftest import CONF_DIR, compose_task, tiny_train_config


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
    cfg = predict_cfg(trained_ckpt, tiny_root / "stream-1-test", out, tmp_path)
    run_predict(cfg)
    done, lost = sorted(out.glob("*_layer.npz"))[:2]
    save_mask_npz(done, np.full((64, 64), 2, np.uint8))  # a marker no model would predict
    lost.unlink()  # as if killed before this one was written
    result = run_predict(cfg)
    assert result == {**result, "written": 1, "skipped": 2}
    assert (load_mask_npz(done) == 2).all() and lost.is_file()


def test_predict_refuses_to_mix_checkpoints_unless_overwrite(trained_ckpt, tiny_root, tmp_path):
    out = tmp_path / "pred"
    run_predict(predict_cfg(trained_ckpt, tiny_root / "stream-1-test", out, tmp_path))
    other = tmp_path / "other.ckpt"
    other.write_bytes(trained_ckpt.read_bytes())
    with pytest.raises(ConfigError, match=f"made by {trained_ckpt.resolve()}.*overwrite=true"):
        run_predict(predict_cfg(other, tiny_root / "stream-1-test", out, tmp_path))
    with pytest.raises(ConfigError, match="overwrite=true"):  # same checkpoint, other settings
        run_predict(predict_cfg(trained_ckpt, tiny_root / "stream-1-test", out, tmp_path, "predict.tta=flip"))
    result = run_predict(predict_cfg(other, tiny_root / "stream-1-test", out, tmp_path, "overwrite=true"))
    assert result["written"] == 3 and result["skipped"] == 0
    manifest = json.loads((out / "predictions.json").read_text())
    assert manifest["checkpoints"][0]["path"] == str(other.resolve())


class Brightness(nn.Module):
    """A stand-in network that must get a known mask right: body where the pixel is bright.
    Pixel-wise, so exact under windows and flips."""

    def forward(self, x):
        g = (x.float().mean(1, keepdim=True) - 128) / 8
        return torch.cat([-g, g, torch.full_like(g, -100.0)], 1)


@pytest.fixture
def bright_square(tmp_path):
    """A 80 x 72 image, black with a bright off-centre rectangle (the 'body'), and its mask."""
    image = np.zeros((80, 72, 3), np.uint8)
    image[10:50, 20:61] = 255
    folder = tmp_path / "images"
    folder.mkdir()
    Image.fromarray(image).save(folder / "sq_img.jpg", quality=100)
    return folder / "sq_img.jpg", (image[..., 0] > 0).astype(np.uint8)


@pytest.mark.parametrize("options", [dict(mode="resize"), dict(mode="slide", tile=24, overlap=0.3),
                                     dict(mode="resize", tta="flip"), dict(mode="slide", tile=32, tta="flip")],
                         ids=["resize", "slide", "flip", "slide+flip"])
def test_windows_and_flips_reproduce_a_known_mask(bright_square, options):
    path, truth = bright_square
    (_, labels, probs, craft), = iter_predictions([Predictor(Brightness(), PredictOptions(**options))], [path], SparkFormat())
    assert labels.shape == truth.shape and probs.shape == (3, *truth.shape)
    assert (labels == truth).all()
    assert craft is None  # no classification head, no spacecraft class


def test_scales_and_ensembles_average_probabilities(bright_square):
    """Scales and models average probabilities: halving the working scale blurs only the edges."""
    path, truth = bright_square
    scaled = Predictor(Brightness(), PredictOptions(size=64, scales=(0.5, 1.0)))
    plain = Predictor(Brightness(), PredictOptions())
    (_, labels, probs, _), = iter_predictions([scaled, plain], [path], SparkFormat())
    assert (labels == truth).mean() > 0.98
    (_, _, plain_probs, _), = iter_predictions([plain], [path], SparkFormat())
    assert torch.allclose(probs.sum(0), torch.ones_like(probs[0]), atol=1e-5)  # still a distribution
    assert not torch.allclose(probs, plain_probs)  # the scaled member contributed


class BrightnessClassifier(Brightness):
    """Brightness with a known classification head: class 1's logit is the share of bright pixels
    (times 10), class 0's is 1 - that; so the spacecraft probabilities of a view are known."""

    craft_classes = 2

    def forward_both(self, x):
        share = (x.float().mean(1) > 128).float().mean((1, 2)) * 10
        return self(x), torch.stack([10 - share, share], 1)


def test_a_classifier_s_spacecraft_probabilities_through_flips_windows_and_ensembles(bright_square):
    path, truth = bright_square
    share = float((truth > 0).mean()) * 10
    expected = torch.tensor([10 - share, share]).softmax(0)
    for options in (dict(), dict(tta="flip"), dict(mode="slide", tile=40, overlap=0.5)):
        (_, labels, _, craft), = iter_predictions([Predictor(BrightnessClassifier(), PredictOptions(**options))],
                                                  [path], SparkFormat())
        assert (labels == truth).all()
        if "tile" not in options:  # the whole image: exactly its share; windows: the mean over windows
            assert torch.allclose(craft, expected, atol=1e-5)
        assert craft.shape == (2,) and abs(float(craft.sum()) - 1) < 1e-5
    x = torch.from_numpy(np.asarray(Image.open(path))).permute(2, 0, 1)[None].float()
    _, windowed = slide_probs(BrightnessClassifier(), x, tile=40, overlap=0.5, tta="none")
    by_window = [BrightnessClassifier().forward_both(x[..., t:t + 40, l:l + 40])[1].softmax(1)
                 for t in (0, 20, 40) for l in (0, 20, 32)]
    assert torch.allclose(windowed, torch.stack(by_window).mean(0), atol=1e-5)
    # An ensemble of a classifier and a plain network: the class comes from the classifier alone.
    (_, _, _, craft), = iter_predictions([Predictor(BrightnessClassifier(), PredictOptions()),
                                          Predictor(Brightness(), PredictOptions())], [path], SparkFormat())
    assert torch.allclose(craft, expected, atol=1e-5)


class SizeClassifier(BrightnessClassifier):
    """Its class logits say which width it was shown, and it counts its forward passes."""

    calls = 0

    def forward_both(self, x):
        SizeClassifier.calls += 1
        return self(x), torch.tensor([[0.0, x.shape[-1] / 8]] * x.shape[0])


def test_a_classifier_reads_the_class_at_its_training_scale(bright_square):
    """Trained at 40 px, predicting at full resolution (72 px wide): the masks come from the full
    frame, the class from one more pass at 40 px; at its own scale, no extra pass."""
    path, truth = bright_square
    at_40 = torch.tensor([0.0, 40 / 8]).softmax(0)
    SizeClassifier.calls = 0
    (_, labels, _, craft), = iter_predictions([Predictor(SizeClassifier(), PredictOptions(), info={"size": 40})],
                                              [path], SparkFormat())
    assert (labels == truth).all() and torch.allclose(craft, at_40) and SizeClassifier.calls == 2
    SizeClassifier.calls = 0
    (_, _, _, craft), = iter_predictions([Predictor(SizeClassifier(), PredictOptions(size=40), info={"size": 40})],
                                         [path], SparkFormat())
    assert torch.allclose(craft, at_40) and SizeClassifier.calls == 1


class Doubler(nn.Module):
    """A 'network' whose logits are a known function of its input, to test the blending."""

    def forward(self, x):
        return torch.cat([x[:, :1] * 0, x[:, :1], -x[:, :1]], 1)


def test_slide_on_size_not_divisible_by_tile_equals_whole_image():
    x = torch.rand(2, 3, 45, 37) * 255
    whole = Doubler()(x).softmax(1)
    slid, craft = slide_probs(Doubler(), x, tile=16, overlap=0.3, tta="none")
    assert slid.shape == whole.shape and torch.allclose(slid, whole, atol=1e-5) and craft is None


def test_bad_predict_options():
    with pytest.raises(ConfigError, match="predict.mode='tiles'"):
        PredictOptions(mode="tiles")
    with pytest.raises(ConfigError, match="needs predict.tile"):
        PredictOptions(mode="slide")


def test_predict_errors_name_the_file(trained_ckpt, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SparkDataError, match=f"no readable images under {empty}"):
        run_predict(predict_cfg(trained_ckpt, empty, tmp_path / "o", tmp_path))
    (empty / "broken_img.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    with pytest.raises(SparkDataError, match="broken_img.jpg"):
        run_predict(predict_cfg(trained_ckpt, empty, tmp_path / "o", tmp_path))
    bogus = tmp_path / "other.ckpt"
    ckpt = torch.load(trained_ckpt, weights_only=False)
    ckpt["state_dict"] = {k.replace("net.model.", "net.other."): v for k, v in ckpt["state_dict"].items()}
    torch.save(ckpt, bogus)
    with pytest.raises(CheckpointError, match=f"checkpoint {bogus} does not match"):
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
    """Scoring a checkpoint = predicting, then the training metrics on (prediction, truth)."""
    from spark_lightning.scores.metrics import segmentation_metrics

    result = run_evaluate(eval_cfg(tiny_root, tmp_path, f"ckpt={trained_ckpt}", "predict.num_workers=0"))
    val = tiny_root / "images"
    run_predict(predict_cfg(trained_ckpt, val, tmp_path / "pred", tmp_path))  # every image; val ones are scored
    metrics = segmentation_metrics()
    for sample in scan_split(tiny_root, "val"):
        pred = load_mask_npz(tmp_path / "pred" / f"{sample.name}_layer.npz")
        metrics.update(torch.from_numpy(pred.astype(np.int64))[None], torch.from_numpy(read_mask(sample.mask))[None].long())
    expected = {k: float(v) for k, v in metrics.compute().items()}
    detection = result["metrics"].pop("detection_box")  # SPARK 2026's, from the predicted masks (test_scoring)
    assert result["metrics"] == pytest.approx(expected) and 0.0 <= detection <= 1.0
    from_folder = run_evaluate(eval_cfg(tiny_root, tmp_path, f"predictions={tmp_path / 'pred'}"))
    assert from_folder["metrics"].pop("detection_box") == detection
    assert from_folder["metrics"] == pytest.approx(expected)


def test_checkpoint_with_pretrained_encoder_loads_offline(trained_ckpt, tmp_path, monkeypatch):
    """Weights come from the checkpoint: no hub download is attempted when predicting."""
    from spark_lightning.checkpoints import load_network

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty_hub"))
    ckpt = torch.load(trained_ckpt, weights_only=False)
    ckpt["hyper_parameters"]["model"]["encoder_weights"] = "imagenet"
    path = tmp_path / "pretrained.ckpt"
    torch.save(ckpt, path)
    net, info = load_network(path)
    state = {k.removeprefix("net."): v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
    assert all(torch.equal(net.state_dict()[k], v) for k, v in state.items())
    assert info["size"] == 48  # the training scale, from the data module's hyperparameters


def _official_score(pairs):
    """The SPARK score written out from the challenge's description, apart from metrics.py."""
    import numpy as np

    body, panel = [], []
    for truth, pred in pairs:
        for cls, out in ((1, body), (2, panel)):
            t, p = truth == cls, pred == cls
            union = (t | p).sum()
            iou = (t & p).sum() / union if union else 1.0
            if cls == 2 and (truth == 2).sum() < 0.05 * (truth == 1).sum():
                continue  # panels under 5 % of the body: not judged
            out.append(iou)
    thresholds = [0.5 + 0.05 * i for i in range(10)]

    def score(ious):
        return float(np.mean([np.mean([iou > t + 1e-9 for iou in ious]) for t in thresholds]))

    return (score(body) + score(panel)) / 2


def test_evaluate_real_frames_as_they_come_matches_the_written_out_score(tmp_path):
    """Frames like the real 2024 samples: not square (70 x 69), index-PNG masks, only val/, PNG
    images; evaluate reads them and its SPARK score equals the one computed from the rules."""
    import numpy as np

    root, preds = tmp_path / "real", tmp_path / "preds"
    preds.mkdir()
    rng = np.random.default_rng(4)
    pairs = []
    for i, craft in enumerate(["Cheops", "XMM Newton", "Smart1", "Proba2"]):
        for top in ("images", "mask"):
            (root / top / craft / "val").mkdir(parents=True)
        truth = np.zeros((70, 69), np.uint8)
        truth[10 + i:40, 5:30 + 5 * i] = 1
        if craft != "Smart1":
            truth[45:60, 10:20 + 8 * i] = 2
        pred = truth.copy()
        pred[rng.random(truth.shape) < 0.1 * (i + 1)] = 0  # more and more pixels missed
        Image.fromarray(rng.integers(0, 255, (70, 69, 3), dtype=np.uint8)).save(root / "images" / craft / "val" / f"f{i}_img.png")
        Image.fromarray(truth).save(root / "mask" / craft / "val" / f"f{i}_layer.png")
        np.savez_compressed(preds / f"f{i}_layer.npz", pred)
        pairs.append((truth, pred))
    result = run_evaluate(compose_task("evaluate", ["data=spark", f"data.root={root}", f"predictions={preds}"],
                                       tmp_path / "eval"))
    assert len(result["per_image"]) == 4
    assert result["metrics"]["spark_score"] == pytest.approx(_official_score(pairs), abs=1e-6)


def test_a_checkpoint_predicts_at_its_predict_size_unless_told(tiny_root, tmp_path):
    """data.predict_size is stored in the checkpoint: predict and evaluate work at that scale by
    default (finer masks from a model trained smaller); predict.size still wins."""
    from omegaconf import OmegaConf

    from spark_lightning.inference.predictors import load_predictors

    cfg = tiny_train_config(tiny_root, tmp_path, ["data.size=32", "data.predict_size=56"])
    run_train(cfg)
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    settings = OmegaConf.load(Path(CONF_DIR) / "predict" / "default.yaml")
    assert load_predictors(str(ckpt), settings, "cpu")[0].options.size == 56
    settings.size = 40
    assert load_predictors(str(ckpt), settings, "cpu")[0].options.size == 40
    result = run_predict(compose_task("predict", [f"ckpt={ckpt}", f"input={tiny_root / 'stream-1-test'}",
                                                  f"output={tmp_path / 'pred'}", "predict.num_workers=0"], tmp_path / "p"))
    assert result["written"] == 3


def test_a_classifier_writes_detection_csv_that_evaluate_scores(multitask_run, tiny_root, tmp_path):
    """SPARK 2026: predict writes detection.csv (filename,class,bbox; the box of the predicted
    mask), zips it with the masks, redoes an image whose row is lost; evaluate scores the folder
    and the checkpoint alike, with classification, detection, accuracy and final."""
    import csv

    from spark_lightning.data.boxes import format_box, predicted_box
    from spark_lightning.data.spark import SPACECRAFT

    ckpt, out = multitask_run / "checkpoints" / "best.ckpt", tmp_path / "pred"
    cfg = predict_cfg(ckpt, tiny_root / "images", out, tmp_path, "cost.size=256")
    result = run_predict(cfg)
    rows = list(csv.reader(open(out / "detection.csv", newline="")))
    assert rows[0] == ["filename", "class", "bbox"] and len(rows) - 1 == result["written"] == 30
    for name, craft, bbox in rows[1:]:
        labels = load_mask_npz(out / name.replace("_img.jpg", "_layer.npz"))
        assert craft in SPACECRAFT and bbox == format_box(predicted_box(labels, "union"))
    with zipfile.ZipFile(out / "submission.zip") as zf:
        assert "detection.csv" in zf.namelist()
    assert json.loads((out / "predictions.json").read_text())["cost"]["params"] > 0
    with open(out / "detection.csv", "w", newline="") as f:  # as if stopped before the last row was saved
        csv.writer(f).writerows(rows[:-1])
    assert run_predict(cfg)["written"] == 1 and list(csv.reader(open(out / "detection.csv", newline=""))) == rows

    folder = run_evaluate(eval_cfg(tiny_root, tmp_path, f"predictions={out}", "cost.size=256"))
    direct = run_evaluate(eval_cfg(tiny_root, tmp_path, f"ckpt={ckpt}", "predict.num_workers=0", "cost.size=256"))
    per_image = folder["per_image"]
    assert folder["metrics"]["cls_accuracy"] == pytest.approx(
        sum(r["predicted_class"] == r["spacecraft"] for r in per_image) / len(per_image))
    for key in ("cls_accuracy", "detection", "accuracy", "final", "spark_score"):
        assert folder["metrics"][key] == pytest.approx(direct["metrics"][key]), key
    assert "cls_accuracy" in next(iter(folder["breakdowns"]["spacecraft"].values()))


def test_the_box_follows_the_classifier_s_head_unless_the_command_says_otherwise():
    """predict's ``box`` and evaluate's ``box_from_mask`` read one rule: the option when given,
    else the box mode a classifier was validated with (its head.box), else union."""
    from torch import nn

    from spark_lightning.inference.predictors import box_mode
    from spark_lightning.inference.probabilities import PredictOptions, Predictor

    plain = Predictor(nn.Identity(), PredictOptions(), info={"box": None})
    largest = Predictor(nn.Identity(), PredictOptions(), info={"box": "largest", "crafts": ("Cheops",)})
    assert box_mode(None, [plain, largest]) == "largest"
    assert box_mode("union", [largest]) == "union"
    assert box_mode(None, [plain]) == box_mode(None, []) == "union"


def test_predict_output_that_is_a_file(trained_ckpt, tiny_root, tmp_path):
    out = tmp_path / "out"
    out.write_text("")
    cfg = compose_task("predict", [f"ckpt={trained_ckpt}", f"input={tiny_root / 'stream-1-test'}", f"output={out}"],
                       tmp_path / "h")
    with pytest.raises(ConfigError, match=r"output=.*out is a file: give a folder"):
        run_predict(cfg)


def test_predict_never_writes_over_ground_truth(trained_ckpt, tiny_root, tmp_path):
    masks = tmp_path / "masks"
    masks.mkdir()
    truth = next(tiny_root.glob("mask/*/val/*_layer.jpg"))
    (masks / "000000_layer.png").write_bytes(b"ground truth")
    (masks / truth.name).write_bytes(truth.read_bytes())
    cfg = compose_task("predict", [f"ckpt={trained_ckpt}", f"input={tiny_root / 'stream-1-test'}", f"output={masks}",
                                   "save_png=true", "overwrite=true", "predict.num_workers=0"], tmp_path / "p")
    with pytest.raises(ConfigError, match="files predict did not write"):
        run_predict(cfg)
    assert (masks / "000000_layer.png").read_bytes() == b"ground truth"
    assert sorted(p.name for p in masks.iterdir()) == sorted(["000000_layer.png", truth.name])


@pytest.mark.parametrize("theirs", ["predictions.json", "submission.zip"])
def test_predict_never_replaces_a_manifest_or_zip_it_did_not_write(trained_ckpt, tiny_root, tmp_path, theirs):
    """A parseable predictions.json of someone else's is not ours: it neither switches off the
    check for foreign files nor gets replaced; nor does a submission.zip predict did not write."""
    out = tmp_path / "out"
    out.mkdir()
    (out / theirs).write_text('{"checkpoints": [], "options": []}')
    (out / "000000_layer.png").write_bytes(b"hand-corrected mask")
    cfg = compose_task("predict", [f"ckpt={trained_ckpt}", f"input={tiny_root / 'stream-1-test'}", f"output={out}",
                                   "overwrite=true", "predict.num_workers=0"], tmp_path / "p")
    with pytest.raises(ConfigError, match="files predict did not write"):
        run_predict(cfg)
    assert (out / theirs).read_text() == '{"checkpoints": [], "options": []}'
    assert (out / "000000_layer.png").read_bytes() == b"hand-corrected mask"
    assert sorted(p.name for p in out.iterdir()) == sorted([theirs, "000000_layer.png"])


def test_predict_reads_every_image_and_says_what_it_skipped(trained_ckpt, tiny_root, tmp_path, caplog):
    folder = tmp_path / "in"
    folder.mkdir()
    image = Image.open(next(tiny_root.glob("stream-1-test/*_img.jpg")))
    for name in ("a.png", "b.jpeg", "C.JPG", "plain.jpg", "d_img.jpg", "e.tif"):
        image.save(folder / name)
    (folder / "notes.txt").write_text("x")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    (folder / "f_layer.png").write_bytes(b"a mask")
    caplog.set_level("WARNING")
    out = tmp_path / "out"
    result = run_predict(compose_task("predict", [f"ckpt={trained_ckpt}", f"input={folder}", f"output={out}",
                                                  "predict.num_workers=0"], tmp_path / "p"))
    assert result["written"] == 6
    assert sorted(p.name for p in out.glob("*_layer.npz")) == sorted(
        f"{n}_layer.npz" for n in ("a", "b", "C", "plain", "d", "e"))
    text = caplog.text
    assert "not an image: notes.txt" in text and "unreadable" in text and "broken.jpg" in text
    assert "a mask (_layer.*): f_layer.png" in text


def test_predictions_survive_a_disk_full_midway(trained_ckpt, tiny_root, tmp_path, monkeypatch):
    """Disk full on the 2nd file: the 1st stays whole, no temp is left, a rerun completes."""
    import spark_lightning.inference.writers as outputs

    out = tmp_path / "pred"
    real = outputs.write_bytes_atomic
    calls = []

    def full_after_one(path, data):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, f"cannot write {path}: the disk is full: free space or choose another folder")
        real(path, data)

    monkeypatch.setattr(outputs, "write_bytes_atomic", full_after_one)
    cfg = compose_task("predict", [f"ckpt={trained_ckpt}", f"input={tiny_root / 'stream-1-test'}", f"output={out}",
                                   "predict.num_workers=0"], tmp_path / "h")
    with pytest.raises(OSError, match="disk is full"):
        run_predict(cfg)
    assert not torch.is_inference_mode_enabled()  # the stopped prediction loop leaked no grad mode
    assert len(list(out.glob("*_layer.npz"))) == 1 and not list(out.glob(".*tmp-*"))
    monkeypatch.undo()
    assert run_predict(cfg)["written"] == 2
    assert all(np.load(p)["arr_0"].shape == (64, 64) for p in out.glob("*_layer.npz"))


def test_ensemble_of_different_models_and_sizes_with_scales(trained_ckpt, tiny_root, tmp_path):
    other_cfg = tiny_train_config(tiny_root, tmp_path, ["model.width=4", "data.size=64"])
    run_train(other_cfg)
    other = Path(other_cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    cfg = compose_task("predict", [f"ckpt=[{trained_ckpt},{other}]", f"input={tiny_root / 'stream-1-test'}",
                                   f"output={tmp_path / 'pred'}", "predict.scales=[0.75,1.0]", "predict.tta=flip",
                                   "predict.num_workers=0"], tmp_path / "h")
    assert run_predict(cfg)["written"] == 3
    manifest = json.loads((tmp_path / "pred" / "predictions.json").read_text())
    assert [o["size"] for o in manifest["options"]] == [48, 64] and len(manifest["checkpoints"]) == 2
    # The ensemble's probabilities are the mean of its members' (each at its own size, with the
    # scales and flips), and predict wrote their argmax.
    from spark_lightning.inference.predictors import load_predictors
    from spark_lightning.inference.probabilities import iter_predictions
    from spark_lightning.inference.writers import load_mask_npz

    members = load_predictors([str(trained_ckpt), str(other)], cfg.predict, "cpu")
    assert [m.options.size for m in members] == [48, 64]
    path = sorted((tiny_root / "stream-1-test").rglob("*_img.jpg"))[0]
    (_, labels, mean, _), = iter_predictions(members, [path], SparkFormat())
    alone = [next(iter_predictions([m], [path], SparkFormat()))[2] for m in members]
    assert torch.allclose(mean, (alone[0] + alone[1]) / 2, atol=1e-5) and not torch.allclose(alone[0], alone[1])
    assert (load_mask_npz(tmp_path / "pred" / path.name.replace("_img.jpg", "_layer.npz")) == labels).all()


def test_the_recorded_cost_is_not_a_setting_that_blocks_a_resume(multitask_run, tiny_root, tmp_path):
    """Predicting again with another cost.size continues the folder (the cost is recorded, not a
    prediction setting); another prediction setting is still refused."""
    ckpt, out = multitask_run / "checkpoints" / "best.ckpt", tmp_path / "pred"
    run_predict(predict_cfg(ckpt, tiny_root / "stream-1-test", out, tmp_path, "cost.size=256"))
    again = run_predict(predict_cfg(ckpt, tiny_root / "stream-1-test", out, tmp_path, "cost.size=128"))
    assert again["written"] == 0 and again["skipped"] == 3
    with pytest.raises(ConfigError, match="with other settings"):
        run_predict(predict_cfg(ckpt, tiny_root / "stream-1-test", out, tmp_path, "cost.size=128", "predict.tta=flip"))
