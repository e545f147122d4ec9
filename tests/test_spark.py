"""The SPARK layout reader: scanning, pairing, mask decoding, and clear errors on bad input."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest

from spark_lightning.data.formats import read_rgb
from spark_lightning.data.spark import SPACECRAFT, SparkFormat, decode_mask, encode_mask
from spark_lightning.errors import SparkDataError


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
