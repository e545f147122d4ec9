"""SparkDataModule: sizes, crops, the on-disk cache, worker augmentation streams."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spark_lightning.data.datamodule import SparkDataModule
from spark_lightning.data.spark import SparkFormat
from spark_lightning.errors import ConfigError, SparkDataError

SPARK = {"_target_": "spark_lightning.data.spark.SparkFormat"}


def make_dm(root, tmp_path, **kwargs) -> SparkDataModule:
    args = dict(dataset=SPARK, root=str(root) if root else None, size=32, batch_size=4, num_workers=0,
                cache_dir=str(tmp_path / "cache"))
    args.update(kwargs)
    dm = SparkDataModule(**args)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def test_batches_are_uint8_at_data_size(tiny_root, tmp_path):
    dm = make_dm(tiny_root, tmp_path)
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (4, 3, 32, 32) and batch["image"].dtype == torch.uint8
    assert batch["mask"].shape == (4, 32, 32) and batch["mask"].dtype == torch.uint8
    assert set(batch["mask"].unique().tolist()) <= {0, 1, 2}
    assert len(dm.train_set) == 24 and len(dm.val_set) == 6
    val = next(iter(dm.val_dataloader()))
    assert val["image"].shape[-2:] == (32, 32)


def test_crop_applies_to_training_only(tiny_root, tmp_path):
    dm = make_dm(tiny_root, tmp_path, size=64, crop=48)
    assert next(iter(dm.train_dataloader()))["image"].shape[-2:] == (48, 48)
    assert next(iter(dm.val_dataloader()))["image"].shape[-2:] == (64, 64)
    with pytest.raises(ConfigError, match="data.crop=80 is larger than data.size=64"):
        SparkDataModule(SPARK, root=str(tiny_root), size=64, crop=80)


def test_cache_filled_up_front_then_never_decodes(tiny_root, tmp_path, monkeypatch):
    dm = make_dm(tiny_root, tmp_path)  # prepare_data decodes every sample once
    files = list((tmp_path / "cache" / "samples").rglob("*.npy"))
    assert len(files) == 30
    stored = np.load(files[0])
    assert stored.shape == (32, 32, 4) and stored.dtype == np.uint8
    expected = SparkFormat(tiny_root).read_sample(dm.val_set.samples[0], 32)[0]

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded a JPEG although the sample was cached")

    monkeypatch.setattr(SparkFormat, "read_sample", no_decoding)
    first = next(iter(dm.val_dataloader()))["image"][0]
    assert torch.equal(first, torch.from_numpy(expected.transpose(2, 0, 1).copy()))
    assert len(list(dm.train_dataloader())) == 6


def test_cache_keyed_by_size(tiny_root, tmp_path):
    for size in (32, 48):
        dm = make_dm(tiny_root, tmp_path, size=size)
        list(dm.val_dataloader())
    folders = sorted((p.name for p in (tmp_path / "cache" / "samples").iterdir()), key=lambda n: int(n.rsplit("-", 1)[1]))
    assert len(folders) == 2 and folders[0].endswith("-32") and folders[1].endswith("-48")


def test_changed_file_is_not_read_stale(tiny_root, tmp_path):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(tiny_root, root)
    dm = make_dm(root, tmp_path)
    before = dm.val_set[0]["image"]
    sample = dm.val_set.samples[0]
    other = dm.val_set.samples[1]
    shutil.copy(other.image, sample.image)  # new content, new size/mtime
    after = dm.val_set[0]["image"]
    assert not torch.equal(before, after)


def test_no_cache_still_works(tiny_root, tmp_path):
    dm = make_dm(tiny_root, tmp_path, cache=False)
    assert next(iter(dm.val_dataloader()))["image"].shape == (4, 3, 32, 32)
    assert not (tmp_path / "cache" / "samples").exists()


def test_synthetic_default_generated_once(tmp_path, caplog):
    caplog.set_level("INFO")
    synthetic = {"_target_": "spark_lightning.data.synth.SyntheticSpark", "num_images": 12, "size": 32, "seed": 0,
                 "folder": str(tmp_path)}
    kwargs = dict(size=32, dataset=synthetic)
    dm = make_dm(None, tmp_path, **kwargs)
    assert dm.data_root.parent == tmp_path and (dm.data_root / "images" / "XMM Newton").is_dir()
    assert "generating a synthetic SPARK-like set in" in caplog.text
    caplog.clear()
    make_dm(None, tmp_path, **kwargs)
    assert "generating" not in caplog.text
    assert len(dm.train_set) + len(dm.val_set) == 12


def test_bad_root_fails_at_setup(tmp_path):
    with pytest.raises(SparkDataError, match="does not exist"):
        make_dm(tmp_path / "missing", tmp_path)


def test_workers_get_different_augmentations(tiny_root, tmp_path):
    """Forked workers must not replay the same albumentations random stream."""
    import albumentations as A

    flip = A.Compose([A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5), A.RandomRotate90(p=1.0)])
    dm = make_dm(tiny_root, tmp_path, num_workers=2, batch_size=1, train_transform=flip, persistent_workers=False)
    dm.train_set.samples = [dm.train_set.samples[0]] * 16  # one image: only augmentation differs
    images = [b["image"] for b in dm.train_dataloader()]
    distinct = {tuple(im.flatten().tolist()) for im in images}
    assert len(distinct) > 2


def test_a_batch_larger_than_the_training_set_is_one_line(tiny_root, tmp_path):
    with pytest.raises(ConfigError, match=r"data.batch_size=100000 is larger than the training set \(24 images\): "
                                          r"give data.batch_size=24 or less"):
        make_dm(tiny_root, tmp_path, batch_size=100000)


def test_a_frame_too_small_to_see_is_named(tmp_path):
    from PIL import Image

    from spark_lightning.data.formats import read_rgb

    Image.new("RGB", (1, 1)).save(tmp_path / "dot_img.png")
    with pytest.raises(SparkDataError, match=r"dot_img.png is 1 x 1 px, too small for a segmentation network"):
        read_rgb(tmp_path / "dot_img.png", 64)


def test_a_full_disk_under_the_cache_is_one_line(tiny_root, tmp_path, monkeypatch):
    """numpy reports a short write on a full disk without an errno: still one line naming the cache."""
    import spark_lightning.data.cache as cache

    def short_write(f, array):
        raise OSError("37632 requested and 0 written")

    monkeypatch.setattr(cache.np, "save", short_write)
    with pytest.raises(SparkDataError, match=r"cannot write the sample cache .*: the disk is full \(a short write\)\. "
                                             r"Turn the cache off with data.cache=false"):
        make_dm(tiny_root, tmp_path)
