"""The sample cache (spark_lightning/data/cache.py): damaged entries, concurrent fills,
read-only disks."""

from __future__ import annotations

import errno
import multiprocessing

import numpy as np
import pytest

import spark_lightning.atomic as atomic
from spark_lightning.errors import SparkDataError
from spark_lightning.tasks import run_train

from .conftest import prepare_datamodule, tiny_train_config


@pytest.mark.parametrize("bad", ["zero bytes", "wrong shape", "wrong dtype", "garbage"])
def test_damaged_cache_entries_are_rebuilt(root, tmp_path, bad):
    dm = prepare_datamodule(root, tmp_path)
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


def _prepare_shared_cache(folder: str, queue) -> None:
    """One 'job' of a SLURM array: generate (or wait for) the synthetic set, fill the cache."""
    try:
        from spark_lightning.data.datamodule import SparkDataModule

        spec = {"_target_": "spark_lightning.data.synth.SyntheticSpark", "num_images": 12, "size": 32, "seed": 5,
                "folder": folder}
        dm = SparkDataModule(spec, size=32, num_workers=1, cache_dir=folder)
        dm.prepare_data()
        dm.setup("fit")
        queue.put(("ok", len(dm.train_set) + len(dm.val_set)))
    except BaseException as err:  # noqa: BLE001 - reported to the parent
        queue.put(("error", f"{type(err).__name__}: {err}"))


def test_three_jobs_start_together_on_a_fresh_cache(tmp_path):
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    jobs = [ctx.Process(target=_prepare_shared_cache, args=(str(tmp_path), queue)) for _ in range(3)]
    for job in jobs:
        job.start()
    results = [queue.get(timeout=120) for _ in jobs]
    for job in jobs:
        job.join(timeout=60)
    assert results == [("ok", 12)] * 3
    sets = [p for p in tmp_path.iterdir() if p.name.startswith("synthetic-")]
    assert len(sets) == 1 and not list(tmp_path.glob(".*tmp-*"))  # one set, no temp left


def test_cache_on_a_read_only_disk_says_what_to_do(tiny_root, tmp_path, monkeypatch):
    replace = atomic.os.replace

    def read_only_cache(src, dst, *args, **kwargs):  # the run folder stays writable
        if str(tmp_path / "cache") in str(dst):
            raise OSError(errno.EROFS, "Read-only file system")
        return replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(atomic.os, "replace", read_only_cache)
    cfg = tiny_train_config(tiny_root, tmp_path)
    with pytest.raises(SparkDataError, match=r"read-only.*data.cache=false.*data.cache_dir"):
        run_train(cfg)
