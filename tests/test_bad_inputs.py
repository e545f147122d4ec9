"""Bad inputs, one row each: how to make it, and the one-line message (or the correct result).

Every message names the file or the config key and says what to do; none is a silent wrong
number. The rows run the real code paths (data module, tasks, checkpoint reading) on tiny data.
"""

from __future__ import annotations

import re

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from spark_lightning.data.datamodule import SparkDataModule
from spark_lightning.data.spark import SparkFormat, encode_mask
from spark_lightning.errors import CheckpointError, ConfigError, SparkDataError
from spark_lightning.tasks import run_evaluate, run_export, run_predict, run_train

from .conftest import compose_task, tiny_train_config

SPARK = {"_target_": "spark_lightning.data.spark.SparkFormat"}


@pytest.fixture
def root(tiny_root, tmp_path) -> Path:
    """A private copy of the tiny set, to damage."""
    return Path(shutil.copytree(tiny_root, tmp_path / "data"))


def first(root: Path, split: str = "val"):
    return SparkFormat(root).samples(split)[0]


def prepare(root: Path, tmp_path: Path, **kwargs) -> SparkDataModule:
    dm = SparkDataModule(SPARK, root=str(root), size=kwargs.pop("size", 32), num_workers=0,
                         cache_dir=str(tmp_path / "cache"), **kwargs)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def write_mask(path: Path, labels: np.ndarray, colours: np.ndarray | None = None) -> None:
    rgb = encode_mask(labels) if colours is None else colours[labels]
    cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 95])


def labels_of(root: Path) -> np.ndarray:
    return SparkFormat(root).read_mask(first(root).mask)


# --- data: each case damages the tiny set, then prepares the data module ------------------

def pink_purple_masks(root):
    sample, labels = first(root), labels_of(root)
    write_mask(sample.mask, labels, np.array([[0, 0, 0], [255, 105, 180], [128, 0, 128]], np.uint8))


def index_png_masks(root):
    """Index masks (0/1/2 grey) are read as class ids, not as all background: correct result."""
    sample, labels = first(root), labels_of(root)
    Image.fromarray(labels).save(sample.mask, format="PNG")  # keeps the _layer.jpg name


def binary_masks(root):
    sample, labels = first(root), labels_of(root)
    Image.fromarray((labels > 0).astype(np.uint8) * 255).save(sample.mask, format="PNG")


def mask_of_other_size(root):
    sample = first(root)
    write_mask(sample.mask, np.zeros((48, 48), np.uint8))


def truncated_val_image(root):
    sample = SparkFormat(root).samples("val")[-1]  # the last validation batch
    sample.image.write_bytes(sample.image.read_bytes()[:200])


def two_truncated_images(root):
    truncated_val_image(root)
    sample = SparkFormat(root).samples("train")[0]
    sample.image.write_bytes(b"not a jpeg at all")


def unknown_spacecraft_folders(root):
    """A hand-made set with folders of other names (and no CSVs, which would name the old ones)."""
    for name in ("train.csv", "val.csv"):
        (root / name).unlink()
    for top in ("images", "mask"):
        shutil.copytree(root / top / "Soho", root / top / "Hubble")
        (root / top / "XMM Newton").rename(root / top / "XMM_Newton")


DATA_CASES = [
    ("pink/purple mask colours", pink_purple_masks, SparkDataError,
     r"_layer.jpg: \d+ pixels .* neither black, red .* nor blue .*most common: .*(\(240, 112, 176\)|\(144, 16, 144\))"),
    ("binary 0/255 mask", binary_masks, SparkDataError, r"is single-channel with values \[0, 255\]: expected SPARK"),
    ("mask of another size than its image", mask_of_other_size, SparkDataError,
     r"mask .*_layer.jpg is 48x48 but image .*_img.jpg is 64x64: they must match"),
    ("truncated image in the last val batch", truncated_val_image, SparkDataError,
     r"1 unreadable file\(s\):\n  cannot read image .*_img.jpg"),
    ("two broken images, reported at once", two_truncated_images, SparkDataError, r"2 unreadable file\(s\)"),
]


@pytest.mark.parametrize(("damage", "error", "message"), [c[1:] for c in DATA_CASES], ids=[c[0] for c in DATA_CASES])
def test_bad_data_stops_before_training(root, tmp_path, damage, error, message):
    """Every file is decoded into the cache up front: the error comes before the first step."""
    damage(root)
    with pytest.raises(error, match=message):
        prepare(root, tmp_path)


def test_without_cache_headers_are_checked_up_front_and_masks_on_reading(root, tiny_root, tmp_path):
    garbage = first(root, "train").image
    garbage.write_bytes(b"not a jpeg at all")
    with pytest.raises(SparkDataError, match=r"1 unreadable file\(s\):\n  cannot read image .*_img.jpg"):
        prepare(root, tmp_path, cache=False)
    shutil.copy(tiny_root / garbage.relative_to(root), garbage)
    pink_purple_masks(root)
    dm = prepare(root, tmp_path, cache=False)
    with pytest.raises(SparkDataError, match=r"neither black, red .* nor blue"):
        dm.val_set[0]


def test_index_masks_are_read_as_class_ids(root, tmp_path):
    expected = labels_of(root)
    index_png_masks(root)
    assert (SparkFormat(root).read_mask(first(root).mask) == expected).all()
    prepare(root, tmp_path)  # and the data module accepts them


def test_unknown_spacecraft_folders_are_read_with_one_warning(root, caplog):
    copied = len(list((root / "images" / "Soho" / "train").iterdir()))
    unknown_spacecraft_folders(root)
    caplog.set_level("WARNING")
    samples = SparkFormat(root).samples("train")
    assert {s.group for s in samples} >= {"Hubble", "XMM_Newton"} and len(samples) == 24 + copied
    warnings = [r.getMessage() for r in caplog.records if "outside the ten SPARK 2024 names" in r.getMessage()]
    assert len(warnings) == 1 and "Hubble, XMM_Newton" in warnings[0]


def test_16_bit_image_is_scaled_not_clipped(tmp_path):
    grey = np.full((16, 16), 20000, np.uint16)
    cv2.imwrite(str(tmp_path / "g_img.png"), grey)
    rgb = SparkFormat().read_image(tmp_path / "g_img.png")
    assert rgb.dtype == np.uint8 and (rgb == round(20000 / 257)).all()


@pytest.mark.parametrize("bad", ["zero bytes", "wrong shape", "wrong dtype", "garbage"])
def test_damaged_cache_entries_are_rebuilt(root, tmp_path, bad):
    dm = prepare(root, tmp_path)
    sample = dm.val_set.samples[0]
    path = dm.val_set.cache.path(sample)
    good = np.load(path)
    content = {"zero bytes": lambda: path.write_bytes(b""), "garbage": lambda: path.write_bytes(b"\x93NUMPY junk"),
               "wrong shape": lambda: np.save(path, np.zeros((8, 8, 4), np.uint8)),
               "wrong dtype": lambda: np.save(path, good.astype(np.float32))}
    content[bad]()
    image, mask = dm.val_set.cache.load(sample)
    assert np.array_equal(np.concatenate([image, mask[..., None]], -1), good)
    assert np.array_equal(np.load(path), good)  # rewritten


@pytest.mark.parametrize(("key", "value", "message"), [
    ("data.size", 0, r"data.size=0: give a whole number of pixels >= 16, or null"),
    ("data.size", -64, r"data.size=-64: give a whole number"),
    ("data.crop", 80, r"data.crop=80 is larger than data.size=64"),
    ("data.root", "FILE", r"data root .*a_file is a file, not a folder"),
    ("loss", "[1.0,2.0]", r"loss.losses.ce.weight=\[1.0, 2.0\] has 2 values but there are 3 classes"),
    ("resume", "yes", r"resume='yes': use resume=auto"),
])
def test_bad_config_values(tiny_root, tmp_path, key, value, message):
    file = tmp_path / "a_file"
    file.write_text("")
    override = {"FILE": f"{key}={file}", "[1.0,2.0]": f"+loss.losses.ce.weight={value}"}.get(value, f"{key}={value}")
    cfg = tiny_train_config(tiny_root, tmp_path, [override])
    with pytest.raises((ConfigError, SparkDataError), match=message):
        run_train(cfg)
    assert (Path(cfg.paths.output_dir) / "FAILED").read_text().count("\n") == 1  # the cause, one line


# --- checkpoints ---------------------------------------------------------------------------

@pytest.mark.parametrize(("make", "message"), [
    (lambda p: p.write_bytes(b""), r"is empty \(0 bytes\): a save was interrupted"),
    (lambda p: p.write_bytes(b"garbage" * 10), r"is damaged or not a checkpoint"),
    (lambda p: p.mkdir(), r"is a folder: give the .ckpt file inside it"),
    (lambda p: torch.save({"weights": 1}, p), r"is not a spark_lightning checkpoint"),
    (lambda p: None, r"does not exist"),
])
def test_bad_checkpoints_for_predict(trained_ckpt, tiny_root, tmp_path, make, message):
    bad = tmp_path / "bad.ckpt"
    make(bad)
    cfg = compose_task("predict", [f"ckpt={bad}", f"input={tiny_root / 'stream-1-test'}", f"output={tmp_path / 'o'}"],
                       tmp_path / "h")
    with pytest.raises(CheckpointError, match=message):
        run_predict(cfg)


def test_resume_from_damaged_last_names_the_other_checkpoints(cfg_tiny):
    run_train(cfg_tiny)
    folder = Path(cfg_tiny.paths.output_dir) / "checkpoints"
    good = next(folder.glob("epoch*.ckpt"))
    (folder / "last.ckpt").write_bytes((folder / "last.ckpt").read_bytes()[:1000])
    cfg_tiny.resume = "auto"
    with pytest.raises(CheckpointError, match=rf"last.ckpt is damaged .* beside it \(not opened; newest first\): "
                                              rf"{re.escape(good.name)}"):
        run_train(cfg_tiny)


def test_resume_with_checkpoint_of_another_model_says_which(cfg_tiny, tmp_path):
    run_train(cfg_tiny)
    cfg_tiny.ckpt_path = str(Path(cfg_tiny.paths.output_dir) / "checkpoints" / "last.ckpt")
    cfg_tiny.model.arch, cfg_tiny.model.encoder = "unet", "resnet18"
    with pytest.raises(CheckpointError, match=r"holds model tiny/none but this run asks for unet/resnet18"):
        run_train(cfg_tiny)


# --- outputs -------------------------------------------------------------------------------

def test_predict_output_that_is_a_file(trained_ckpt, tiny_root, tmp_path):
    out = tmp_path / "out"
    out.write_text("")
    cfg = compose_task("predict", [f"ckpt={trained_ckpt}", f"input={tiny_root / 'stream-1-test'}", f"output={out}"],
                       tmp_path / "h")
    with pytest.raises(ConfigError, match=r"output=.*out is a file: give a folder"):
        run_predict(cfg)


def test_export_into_a_missing_folder(trained_ckpt, tmp_path):
    cfg = compose_task("export", [f"ckpt={trained_ckpt}", f"output={tmp_path / 'nope' / 'm.onnx'}"], tmp_path)
    with pytest.raises(SparkDataError, match=r"folder .*nope does not exist; create it or choose another output="):
        run_export(cfg)


@pytest.mark.parametrize(("labels", "message"), [
    (np.full((64, 64), 3, np.uint8), r"holds label 3: expected class ids 0..2"),
    (np.full((64, 64), 255, np.uint8), r"holds label 255"),
    (np.full((64, 64), -1, np.int16), r"holds label -1"),
    (np.full((64, 64), 1.0, np.float32), r"is a float32 array .*expected H x W integer class ids"),
])
def test_evaluate_refuses_labels_outside_the_classes(tiny_root, tmp_path, labels, message):
    folder = tmp_path / "preds"
    folder.mkdir()
    for s in SparkFormat(tiny_root).samples("val"):
        np.savez_compressed(folder / f"{s.name}_layer.npz", labels)
    cfg = compose_task("evaluate", [f"data.root={tiny_root}", f"predictions={folder}", "worst=0"], tmp_path / "e")
    with pytest.raises(SparkDataError, match=message):
        run_evaluate(cfg)


CLI_BAD_VALUES = [
    ("train", ["data.batch_size=abc"], "data.batch_size=abc: give a whole number >= 1"),
    ("train", ["trainer.precision=bf17"], "trainer.precision=bf17: give one of 32-true, 16-mixed"),
    ("train", ["optimizer.lr=-1"], "optimizer.lr=-1: give a number > 0"),
    ("train", ["optimizer.lr=abc"], "optimizer.lr=abc: give a number > 0"),
    ("train", ["trainer.max_epochs=-5"], "trainer.max_epochs=-5: give a whole number >= 1, or -1"),
    ("train", ["data.num_workers=-1"], "data.num_workers=-1: give a whole number >= 0"),
    ("train", ["trainer.max_time=banana"], 'trainer.max_time=banana: give a duration "DD:HH:MM:SS"'),
    ("train", ["seed=-3"], "seed=-3: give a whole number >= 0"),
    ("train", ["data.extra_val_roots={real:MISSING}"], "data.extra_val_roots.real: "),
    ("train", ["data.extra_val_roots=[MISSING,MISSING]"], "data.extra_val_roots: the name 'missing'"),
    ("train", ["model.encoder=resnet999"], "model.encoder=resnet999 has no effect: this run trains the tiny network"),
    ("predict", ["predict.size=abc"], "predict.size=abc: give a whole number of pixels >= 16"),
    ("synth", ["out=FILE"], "is a file: give a folder for the synthetic set"),
    ("synth", ["num_images=0"], "num_images=0: give a whole number >= 2"),
    ("synth", ["size=8"], "size=8: give a whole number of pixels >= 16"),
    ("synth", ["val_fraction=1.5"], "val_fraction=1.5: give a fraction strictly between 0 and 1"),
    ("synth", ["compare", "real=MISSING"], "real=MISSING does not exist"),
]


@pytest.mark.parametrize(("entry", "args", "message"), CLI_BAD_VALUES, ids=[" ".join(a) for _, a, _ in CLI_BAD_VALUES])
def test_bad_values_stop_with_one_line(entry, args, message, tiny_root, trained_ckpt, tmp_path, monkeypatch, capsys):
    """Every bad value at the command line: exit 1 and one line naming the key, the value and what
    is allowed; no traceback."""
    from .conftest import run_main, smoke_args

    (tmp_path / "FILE").write_text("not a folder")
    args = [a.replace("FILE", str(tmp_path / "FILE")).replace("MISSING", str(tmp_path / "missing")) for a in args]
    message = message.replace("MISSING", str(tmp_path / "missing"))
    extra = {"train": smoke_args(tiny_root, tmp_path),
             "predict": [f"ckpt={trained_ckpt}", f"input={tiny_root / 'stream-1-test'}", f"output={tmp_path / 'p'}"],
             "synth": [] if "compare" in args else [f"out={tmp_path / 'set'}"]}[entry]
    if entry == "synth" and any(a.startswith("out=") for a in args):
        extra = []
    head = args[:1] if args[0] == "compare" else []
    code = run_main(entry, [*head, *extra, *args[len(head):], f"hydra.run.dir={tmp_path / 'run'}"], monkeypatch)
    out = capsys.readouterr()
    assert code == 1
    assert message in out.out + out.err and "Traceback" not in out.out + out.err
    lines = [ln for ln in (out.out + out.err).splitlines() if message in ln]
    assert len(lines) == 1 and ("error" in lines[0].lower() or "failed" in lines[0])
