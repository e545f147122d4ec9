"""Nothing of the user's destroyed, nothing wrong passed on: foreign folders, shared run
directories, ground-truth masks, diverged weights, images of any name, interrupted runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from spark_lightning.callbacks import TrainingDiverged
from spark_lightning.data.synth import generate
from spark_lightning.errors import CheckpointError, ConfigError
from spark_lightning.tasks import run_predict, run_train

from .conftest import compose_task, tiny_train_config


def test_synth_overwrite_replaces_only_our_own_sets(tmp_path):
    mine = tmp_path / "thesis"
    mine.mkdir()
    (mine / "thesis.txt").write_text("years of work")
    with pytest.raises(ConfigError, match="not a synthetic set written by spark_lightning .*never deleted"):
        generate(mine, num_images=2, size=32, workers=1, overwrite=True)
    assert (mine / "thesis.txt").read_text() == "years of work"
    (tmp_path / "notes.md").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        generate(tmp_path / "notes.md", num_images=2, size=32, workers=1, overwrite=True)
    ours = generate(tmp_path / "set", num_images=2, size=32, workers=1)
    with pytest.raises(FileExistsError, match="overwrite=true"):  # only here is the flag suggested
        generate(ours, num_images=2, size=32, workers=1)
    generate(ours, num_images=4, size=32, workers=1, overwrite=True)
    assert len(list(ours.glob("images/*/*/*_img.jpg"))) == 4
    empty = tmp_path / "empty"
    empty.mkdir()
    assert generate(empty, num_images=2, size=32, workers=1) == empty.resolve()  # an empty folder is fine


def test_a_second_training_into_the_same_run_dir_stops(tiny_root, tmp_path):
    from spark_lightning.run.run_dir import RunDirBusy, run_dir_lock

    cfg = tiny_train_config(tiny_root, tmp_path)
    run_dir = Path(cfg.paths.output_dir)
    with run_dir_lock(run_dir):  # as if another training held it
        with pytest.raises(RunDirBusy, match=f"run directory {run_dir} is in use by another training .pid {os.getpid()}"):
            run_train(cfg)
    assert not (run_dir / "FAILED").exists() and not (run_dir / "config.yaml").exists()  # nothing of the first touched
    run_train(cfg)  # free again


def test_a_fresh_training_into_a_finished_run_dir_replaces_nothing(tiny_root, tmp_path):
    """What a requeued job that forgot resume=auto does: stopped in one line, the first run's
    checkpoints, metrics, plan and FAILED marker untouched; resume=auto or overwrite=true go on."""
    from spark_lightning.run.run_dir import RunDirFinished

    cfg = tiny_train_config(tiny_root, tmp_path)
    run_dir = Path(cfg.paths.output_dir)
    run_train(cfg)
    (run_dir / "FAILED").write_text("an earlier attempt's cause\n")
    before = {p: p.read_bytes() for p in [run_dir / "metrics.json", run_dir / "config.yaml",
                                          *sorted((run_dir / "checkpoints").glob("*.ckpt"))]}
    with pytest.raises(RunDirFinished, match=rf"run directory {run_dir} already holds a training "
                                             r"\(checkpoints/last.ckpt, checkpoints/best.ckpt, metrics.json\): "
                                             r"resume=auto continues it; .* overwrite=true to replace it"):
        run_train(cfg)
    assert {p: p.read_bytes() for p in before} == before
    assert (run_dir / "FAILED").read_text() == "an earlier attempt's cause\n"  # not cleared, not rewritten
    stale = run_dir / "checkpoints" / ".last.ckpt.tmp-999999999"  # a run killed while saving (no such pid)
    stale.write_bytes(b"half a checkpoint")
    cfg.overwrite = True
    run_train(cfg)
    assert not (run_dir / "FAILED").exists() and json.loads((run_dir / "metrics.json").read_text())["history"]
    assert not stale.exists()


def test_another_command_into_a_run_dir_keeps_its_markers(trained_ckpt, tiny_root, tmp_path):
    from spark_lightning.tasks import run_evaluate

    run_dir = trained_ckpt.parents[1]
    (run_dir / "PRUNED").write_text("pruned after epoch 1\n")
    cfg = compose_task("evaluate", [f"ckpt={trained_ckpt}", f"data.root={tiny_root}", "predict.num_workers=0",
                                    "worst=0"], run_dir)
    run_evaluate(cfg)
    assert (run_dir / "PRUNED").read_text() == "pruned after epoch 1\n"
    (run_dir / "PRUNED").unlink()


def _long_smoke_run(tiny_root, tmp_path, epochs: int):
    """(run dir, command, environment) of a smoke training that runs until it is stopped."""
    run_dir = tmp_path / "run"
    env = {**os.environ, "SPARK_LIGHTNING_CACHE": str(tmp_path / "cache")}
    args = [sys.executable, "-m", "spark_lightning.train", "debug=smoke", f"data.root={tiny_root}",
            f"data.cache_dir={tmp_path / 'c'}", f"trainer.max_epochs={epochs}", f"hydra.run.dir={run_dir}"]
    return run_dir, args, env


def test_two_trainings_at_once_as_processes(tiny_root, tmp_path):
    """The real case: two commands into one hydra.run.dir; the second stops with one line."""
    run_dir, args, env = _long_smoke_run(tiny_root, tmp_path, 400)
    first = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (run_dir / "config.yaml").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        hydra_files = {p: p.stat().st_mtime_ns for p in (run_dir / ".hydra").iterdir()}
        second = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert {p: p.stat().st_mtime_ns for p in (run_dir / ".hydra").iterdir()} == hydra_files  # not rewritten
    finally:
        first.kill()
        first.wait()
    assert second.returncode == 1 and "is in use by another training" in second.stdout + second.stderr
    assert "Traceback" not in second.stdout + second.stderr
    assert "in use by another training" not in (run_dir / "train.log").read_text()  # nothing in the first's log


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


def _diverged(ckpt: Path, tmp_path: Path) -> Path:
    data = torch.load(ckpt, weights_only=False)
    data["state_dict"] = {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v
                          for k, v in data["state_dict"].items()}
    path = tmp_path / "nan.ckpt"
    torch.save(data, path)
    return path


def test_non_finite_checkpoints_are_refused(trained_ckpt, tiny_root, tmp_path):
    bad = _diverged(trained_ckpt, tmp_path)
    cfg = compose_task("predict", [f"ckpt={bad}", f"input={tiny_root / 'stream-1-test'}", f"output={tmp_path / 'o'}"],
                       tmp_path / "p")
    with pytest.raises(CheckpointError, match="holds non-finite weights .*its run diverged"):
        run_predict(cfg)
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").glob("*.npz"))


def test_a_diverged_run_saves_no_best_checkpoint(tiny_root, tmp_path):
    """Weights turned NaN by the optimizer in the first epoch: neither a best checkpoint nor
    last.ckpt takes them, and the run fails (the NaN guard) at the next loss it looks at."""
    cfg = tiny_train_config(tiny_root, tmp_path, ["optimizer=sgd", "optimizer.lr=1e30", "scheduler=none",
                                                  "callbacks.nan_guard.check_every_n_steps=1000", "trainer.max_epochs=3"])
    with pytest.raises(TrainingDiverged):  # at the first loss it looks at after the weights became NaN
        run_train(cfg)
    folder = Path(cfg.paths.output_dir) / "checkpoints"
    assert not list(folder.glob("epoch*.ckpt")) and not (folder / "best.ckpt").exists()
    for path in folder.glob("*.ckpt"):
        state = torch.load(path, weights_only=False)["state_dict"]
        assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point()), path.name


def test_training_at_full_resolution_on_frames_of_different_sizes(tmp_path):
    """data.size=null with aug=light on frames that are not square and not all alike (real 2024
    frames are 704 x 703): batches are padded with the ignore label (which cross-entropy would
    reject as a class id if it were not ignored) and the run trains and validates; that padded
    pixels change no loss and no metric is tests/test_dataset.py's."""
    root = tmp_path / "real"
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate([(70, 64), (64, 71), (66, 66), (75, 70), (64, 64), (70, 70)]):
        split = "val" if i >= 4 else "train"
        (root / "images" / "Cheops" / split).mkdir(parents=True, exist_ok=True)
        (root / "mask" / "Cheops" / split).mkdir(parents=True, exist_ok=True)
        labels = np.zeros((h, w), np.uint8)
        labels[10:30, 10:40] = 1
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(root / "images" / "Cheops" / split / f"{i}_img.png")
        Image.fromarray(labels).save(root / "mask" / "Cheops" / split / f"{i}_layer.png")
    cfg = tiny_train_config(root, tmp_path, ["data.size=null", "aug=light", "data.batch_size=2", "trainer.max_epochs=1"])
    result = run_train(cfg)
    assert result["trainer"].global_step == 2 and result["metrics"]["val/iou"] == result["metrics"]["val/iou"]


def test_progress_bar_null_removes_every_bar(tiny_root, tmp_path):
    cfg = tiny_train_config(tiny_root, tmp_path, ["trainer.enable_progress_bar=true", "callbacks.progress_bar=null"])
    trainer = run_train(cfg)["trainer"]
    assert trainer.progress_bar_callback is None


@pytest.mark.slow
def test_sigterm_saves_exits_non_zero_and_resumes(tiny_root, tmp_path):
    """What SLURM sends before preemption or at the time limit: the run saves last.ckpt at the
    signal, exits 143 (not 0, which a scheduler records as COMPLETED and never requeues), says
    so in FAILED, and resume=auto finishes it."""
    run_dir, args, env = _long_smoke_run(tiny_root, tmp_path, 100000)
    proc = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (run_dir / "metrics.json").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 143
    assert "stopped by SIGTERM" in (run_dir / "FAILED").read_text()
    saved = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert saved["global_step"] > 0
    until = saved["epoch"] + 2  # resumed with a short limit, so that the test ends
    done = subprocess.run([*args, "resume=auto", f"trainer.max_epochs={until}"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert not (run_dir / "FAILED").exists()
    assert json.loads((run_dir / "metrics.json").read_text())["final"]["epoch"] == until


@pytest.mark.slow
def test_sigint_leaves_a_marker_the_report_reads(tiny_root, tmp_path):
    run_dir, args, env = _long_smoke_run(tiny_root, tmp_path, 100000)
    proc = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (run_dir / "metrics.json").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=120) != 0
    assert "interrupted" in (run_dir / "FAILED").read_text()
    from spark_lightning.tasks.report import read_run

    assert read_run(run_dir)["status"].startswith("failed: interrupted")
    assert json.loads((run_dir / "metrics.json").read_text())["history"]  # its numbers are kept
