"""No lost work: concurrent jobs on one cache, kills, full disks; and one line per error."""

from __future__ import annotations

import errno
import multiprocessing
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import spark_lightning.atomic as atomic
from spark_lightning.atomic import clean_stale_temps, write_bytes_atomic
from spark_lightning.data.spark import SparkFormat
from spark_lightning.data.synth import SyntheticSpark
from spark_lightning.errors import SparkDataError
from spark_lightning.tasks import run_predict, run_train

from .conftest import compose_task, run_main, tiny_train_config


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


def test_two_synth_into_one_out_at_once_never_report_a_set_they_did_not_write(tmp_path):
    """Two generations into one folder at once with different settings: the first to finish
    keeps it; the other stops with one line instead of reporting the first one's set as its own."""
    from spark_lightning.data.synth import writer
    from spark_lightning.errors import ConfigError

    out = tmp_path / "set"
    real_swap = writer._swap_into_place

    def finished_meanwhile(tmp, target, overwrite):  # the other process wins the race just before us
        writer._swap_into_place = real_swap
        other = writer.generate(tmp_path / "other", num_images=3, size=32, seed=9, workers=1)
        os.replace(other, target)
        return real_swap(tmp, target, overwrite)

    writer._swap_into_place = finished_meanwhile
    try:
        with pytest.raises(ConfigError, match=r"another process wrote a different synthetic set there meanwhile "
                                              r"\(3 images of 32 px, seed 9\)"):
            writer.generate(out, num_images=2, size=32, seed=1, workers=1)
    finally:
        writer._swap_into_place = real_swap
    assert writer.is_synthetic_set(out) and len(list(out.glob("images/*/*/*_img.jpg"))) == 3
    assert not list(tmp_path.glob(".*tmp-*"))


def test_stale_temp_of_a_killed_generation_is_cleaned(tmp_path):
    synthetic = SyntheticSpark(num_images=4, size=32, seed=0, folder=tmp_path)
    dead = tmp_path / f".{synthetic.root.name}{atomic.TEMP_MARK}999999999"
    (dead / "images").mkdir(parents=True)
    alive = tmp_path / f".other{atomic.TEMP_MARK}{os.getpid()}"
    alive.mkdir()
    user = tmp_path / ".my_own.tmp-folder"
    user.mkdir()
    synthetic.prepare()
    assert not dead.exists() and alive.exists() and user.exists()
    assert clean_stale_temps(tmp_path) == []  # nothing of a dead process left


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
def test_a_full_or_read_only_disk_leaves_no_temp_file_and_names_the_path(tmp_path, monkeypatch, code):
    target = tmp_path / "x_layer.npz"
    real_fsync = os.fsync

    def failing_fsync(fd):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(atomic.os, "fsync", failing_fsync)
    with pytest.raises(OSError, match=rf"cannot write {target}: the (disk is full|file system is read-only)"):
        write_bytes_atomic(target, b"x" * 1000)
    monkeypatch.setattr(atomic.os, "fsync", real_fsync)
    assert list(tmp_path.iterdir()) == []


def _write_past_a_size_limit(path: str, queue) -> None:
    """A child process whose files may not grow past 4 KiB (RLIMIT_FSIZE): a small full disk."""
    import resource
    import signal

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
    try:
        write_bytes_atomic(Path(path), b"x" * 100_000)
        queue.put("written")
    except OSError as err:
        queue.put(f"{err.errno} {err}")


def test_a_size_limited_file_system_write_fails_cleanly(tmp_path):
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_write_past_a_size_limit, args=(str(tmp_path / "big.bin"), queue))
    child.start()
    result = queue.get(timeout=30)
    child.join()
    assert result.startswith(str(errno.EFBIG)) and "big.bin" in result
    assert list(tmp_path.iterdir()) == []  # no 0-byte or partial temp file


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


def test_cli_error_is_one_line_without_traceback(tmp_path, monkeypatch, capsys):
    code = run_main("train", ["debug=smoke", f"data.root={tmp_path / 'nope'}", f"hydra.run.dir={tmp_path / 'run'}"],
                    monkeypatch)
    out = capsys.readouterr()
    text = out.out + out.err
    assert code == 1 and "Traceback" not in text
    lines = [ln for ln in text.splitlines() if "does not exist" in ln]
    assert len(lines) == 1 and f"data root {tmp_path / 'nope'} does not exist" in lines[0]
    assert "does not exist" in (tmp_path / "run" / "FAILED").read_text()


def test_missing_pretrained_weights_are_one_line_with_the_way_to_get_them(tiny_root, tmp_path, monkeypatch, capsys):
    """Our error wraps the hub library's: the one line is ours (how to get the weights), no traceback."""
    code = run_main("train", ["experiment=spark2024_unet_mnv3", f"data.root={tiny_root}", "data.size=64",
                              f"data.cache_dir={tmp_path / 'cache'}", "logger=csv", f"hydra.run.dir={tmp_path / 'run'}"],
                    monkeypatch)
    out = capsys.readouterr()
    text = out.out + out.err
    assert code == 1 and "Traceback" not in text and "HYDRA_FULL_ERROR" not in text
    assert "model.encoder_weights=null" in (tmp_path / "run" / "FAILED").read_text()
    assert len([ln for ln in text.splitlines() if "HF_HUB_OFFLINE=0" in ln]) == 1


def test_debug_true_shows_the_traceback(tmp_path, monkeypatch, capsys):
    code = run_main("train", ["debug=smoke", "debug=true", f"data.root={tmp_path / 'nope'}",
                              f"hydra.run.dir={tmp_path / 'run'}"], monkeypatch)
    assert code == 1 and "Traceback" in capsys.readouterr().err


def test_failed_marker_names_the_file_also_from_a_loader_worker(tiny_root, tmp_path):
    root = Path(shutil.copytree(tiny_root, tmp_path / "data"))
    bad = SparkFormat(root).samples("val")[0].image  # read in the first validation batch
    bad.write_bytes(bad.read_bytes()[: len(bad.read_bytes()) // 2])  # a header that reads, pixels that do not
    cfg = tiny_train_config(root, tmp_path, ["data.cache=false", "data.num_workers=1"])
    with pytest.raises(SparkDataError):
        run_train(cfg)
    marker = (Path(cfg.paths.output_dir) / "FAILED").read_text()
    assert marker.startswith("SparkDataError: cannot read image ") and bad.name in marker
    assert "Traceback" not in marker and marker.count("\n") == 1


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
