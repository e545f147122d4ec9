"""The SPARK layout reader: scanning, pairing, mask decoding, and clear errors on bad input."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from spark_lightning.data.formats import read_rgb
from spark_lightning.data.spark import SPACECRAFT, SparkFormat, decode_mask, encode_mask
from spark_lightning.errors import SparkDataError

from .conftest import prepare_datamodule


def scan_split(root, split):
    return SparkFormat(root).samples(split)


@pytest.fixture
def root_copy(tiny_root, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(tiny_root, dst)
    return dst


def test_scan_pairs_every_image_with_its_mask(tiny_root):
    train, val = scan_split(tiny_root, "train"), scan_split(tiny_root, "val")
    assert len(train) == 24 and len(val) == 6
    for s in train + val:
        assert s.image.name == f"{s.name}_img.jpg" and s.mask.name == f"{s.name}_layer.jpg"
        assert s.image.parent.parent.name == s.group
        assert s.mask.parts[-4] == "mask"
    assert {s.group for s in train} == set(SPACECRAFT)


def test_scan_ignores_macos_and_stray_files(root_copy):
    folder = root_copy / "images" / "Soho" / "train"
    (folder / "._000008_img.jpg").write_bytes(b"\x00\x05\x16\x07")
    (folder / "notes.txt").write_text("hello")
    (root_copy / "mask" / "Soho" / "train" / "._000008_layer.jpg").write_bytes(b"junk")
    assert len(scan_split(root_copy, "train")) == 24


def test_missing_root_names_path_and_fix(tmp_path):
    with pytest.raises(SparkDataError, match=r"does not exist.*data.root"):
        scan_split(tmp_path / "nope", "train")


def test_missing_split(tiny_root):
    with pytest.raises(SparkDataError, match="split 'test' not found"):
        scan_split(tiny_root, "test")


def test_empty_split(root_copy):
    for f in root_copy.glob("images/*/val/*") :
        f.unlink()
    for f in root_copy.glob("mask/*/val/*"):
        f.unlink()
    with pytest.raises(SparkDataError, match="holds no"):
        scan_split(root_copy, "val")


def test_image_without_mask(root_copy):
    mask = next(root_copy.glob("mask/*/train/*_layer.jpg"))
    mask.unlink()
    with pytest.raises(SparkDataError, match=r"have no mask.*" + mask.name.replace("_layer.jpg", "_img.jpg")):
        scan_split(root_copy, "train")


def test_mask_without_image(root_copy):
    image = next(root_copy.glob("images/*/val/*_img.jpg"))
    image.unlink()
    with pytest.raises(SparkDataError, match="have no image"):
        scan_split(root_copy, "val")


def test_truncated_image_names_file(root_copy):
    sample = scan_split(root_copy, "train")[0]
    data = sample.image.read_bytes()
    sample.image.write_bytes(data[: len(data) // 3])
    with pytest.raises(SparkDataError, match=sample.image.name):
        read_rgb(sample.image)


def test_decode_mask_survives_jpeg_noise():
    rng = np.random.default_rng(0)
    index = np.zeros((64, 64), np.uint8)
    index[10:40, 5:30] = 1
    index[20:50, 35:60] = 2
    index[52:, :][rng.random((12, 64)) < 0.05] = 1  # isolated specks, like thin antennas
    ok, buf = cv2.imencode(".jpg", encode_mask(index)[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 75])
    noisy = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]
    assert not np.array_equal(noisy, encode_mask(index)), "JPEG should have smeared the colours"
    decoded = decode_mask(noisy)
    assert set(np.unique(decoded)) <= {0, 1, 2}
    # Interior pixels of the blocks decode exactly; only edges and isolated specks may differ.
    assert (decoded[15:35, 10:25] == 1).all() and (decoded[25:45, 40:55] == 2).all()
    # Every wrong pixel lies within 2 px of a class edge (JPEG's 2x2 chroma subsampling).
    kernel = np.ones((5, 5), np.uint8)
    near_edge = cv2.dilate(index, kernel) != cv2.erode(index, kernel)
    assert not ((decoded != index) & ~near_edge).any()


def test_decode_mask_rejects_grey():
    with pytest.raises(SparkDataError, match="H x W x 3"):
        decode_mask(np.zeros((4, 4), np.uint8))


def test_read_downscaled(tiny_root):
    sample = scan_split(tiny_root, "val")[0]
    assert read_rgb(sample.image).shape == (64, 64, 3)
    assert read_rgb(sample.image, 32).shape == (32, 32, 3)
    mask = SparkFormat(tiny_root).read_mask(sample.mask, 32)
    assert mask.shape == (32, 32) and set(np.unique(mask)) <= {0, 1, 2}


def test_find_images_finds_test_folder(tiny_root, tmp_path):
    fmt = SparkFormat()
    paths = fmt.find_images(tiny_root / "stream-1-test")
    assert len(paths) == 3 and all(p.name.endswith("_img.jpg") for p in paths)
    (tmp_path / "other.jpg").write_bytes(b"")
    with pytest.raises(SparkDataError, match="no readable images under"):
        fmt.find_images(tmp_path)





def first(root: Path, split: str = "val"):
    return SparkFormat(root).samples(split)[0]



def write_mask(path: Path, labels: np.ndarray, colours: np.ndarray | None = None) -> None:
    rgb = encode_mask(labels) if colours is None else colours[labels]
    cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 95])


def labels_of(root: Path) -> np.ndarray:
    return SparkFormat(root).read_mask(first(root).mask)


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
        prepare_datamodule(root, tmp_path)


def test_without_cache_headers_are_checked_up_front_and_masks_on_reading(root, tiny_root, tmp_path):
    garbage = first(root, "train").image
    garbage.write_bytes(b"not a jpeg at all")
    with pytest.raises(SparkDataError, match=r"1 unreadable file\(s\):\n  cannot read image .*_img.jpg"):
        prepare_datamodule(root, tmp_path, cache=False)
    shutil.copy(tiny_root / garbage.relative_to(root), garbage)
    pink_purple_masks(root)
    dm = prepare_datamodule(root, tmp_path, cache=False)
    with pytest.raises(SparkDataError, match=r"neither black, red .* nor blue"):
        dm.val_set[0]


def test_index_masks_are_read_as_class_ids(root, tmp_path):
    expected = labels_of(root)
    index_png_masks(root)
    assert (SparkFormat(root).read_mask(first(root).mask) == expected).all()
    prepare_datamodule(root, tmp_path)  # and the data module accepts them


def test_unknown_spacecraft_folders_are_read_with_one_warning(root, caplog):
    copied = len(list((root / "images" / "Soho" / "train").iterdir()))
    unknown_spacecraft_folders(root)
    caplog.set_level("WARNING")
    samples = SparkFormat(root).samples("train")
    assert {s.group for s in samples} >= {"Hubble", "XMM_Newton"} and len(samples) == 24 + copied
    warnings = [r.getMessage() for r in caplog.records if "outside the ten SPARK 2024 names" in r.getMessage()]
    assert len(warnings) == 1 and "Hubble, XMM_Newton" in warnings[0]
