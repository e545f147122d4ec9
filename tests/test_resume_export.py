"""Resume after a kill, atomic checkpoints, and ONNX export parity."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from spark_lightning.callbacks import AtomicCheckpointIO
from spark_lightning.errors import ConfigError, SparkDataError
from spark_lightning.tasks import run_export, run_train

from .conftest import compose_task


def test_atomic_checkpoint_survives_failed_save(tmp_path, monkeypatch):
    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"epoch": 1}, path)

    def broken_save(obj, f):
        f.write(b"half a checkpoint")
        raise KeyboardInterrupt  # killed mid-write

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"epoch": 2}, path)
    monkeypatch.undo()
    assert torch.load(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_resume_auto_continues_in_process(cfg_tiny):
    cfg_tiny.trainer.max_epochs = 1
    first = run_train(cfg_tiny)["trainer"]
    assert first.current_epoch == 1 and first.global_step == 2
    cfg_tiny.trainer.max_epochs = 2
    cfg_tiny.resume = "auto"
    second = run_train(cfg_tiny)["trainer"]
    assert second.global_step == 4  # continued, not restarted
    history = json.loads((Path(cfg_tiny.paths.output_dir) / "metrics.json").read_text())["history"]
    assert [h["epoch"] for h in history] == [1, 2]  # epochs count from 1


def test_every_n_train_steps_checkpoints(cfg_tiny):
    cfg_tiny.callbacks.checkpoint.every_n_train_steps = 1
    cfg_tiny.trainer["limit_train_batches"] = 3
    calls = []
    original = AtomicCheckpointIO.save_checkpoint  # every checkpoint goes through it

    def spy(self, checkpoint, path, storage_options=None):
        calls.append((checkpoint["global_step"], Path(path).name))
        original(self, checkpoint, path, storage_options)

    AtomicCheckpointIO.save_checkpoint = spy
    try:
        run_train(cfg_tiny)
    finally:
        AtomicCheckpointIO.save_checkpoint = original
    steps_with_last = sorted({s for s, name in calls if name == "last.ckpt"})
    assert steps_with_last[:3] == [1, 2, 3]


def test_resume_bad_option(cfg_tiny):
    cfg_tiny.resume = "yes"
    with pytest.raises(ValueError, match="resume='yes'"):
        run_train(cfg_tiny)


@pytest.mark.slow
def test_sigkill_then_resume_finishes_right_epoch_count(tiny_root, tmp_path):
    run_dir = tmp_path / "run"
    env = {**os.environ, "SPARK_LIGHTNING_CACHE": str(tmp_path / "cache")}
    args = [sys.executable, "-m", "spark_lightning.train", f"data.root={tiny_root}", "data.size=64",
            "data.batch_size=4", "data.num_workers=0", "model=unet_mobilenet_v2", "trainer.max_epochs=4",
            "+trainer.limit_train_batches=3", "logger=csv", "callbacks.progress_bar=null", f"hydra.run.dir={run_dir}"]
    proc = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = run_dir / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 300
    while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert last.exists(), "the run ended before its first checkpoint"
    done_epochs = torch.load(last, weights_only=False)["epoch"]
    assert done_epochs < 3, "killed too late to test resuming"  # "epoch" is the 0-based index of the saved epoch
    resumed = subprocess.run(args + ["resume=auto"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from" in (run_dir / "train.log").read_text()
    final = torch.load(last, weights_only=False)
    assert final["epoch"] == 3 and final["global_step"] == 12  # 4 epochs x 3 steps
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["final"]["epoch"] == 4  # metrics.json counts epochs from 1


@pytest.mark.slow
def test_onnx_export_parity(trained_ckpt, tmp_path, capsys):
    cfg = compose_task("export", [f"ckpt={trained_ckpt}", f"output={tmp_path / 'm.onnx'}"], tmp_path)
    result = run_export(cfg)
    assert result["path"].is_file() and result["dynamic_spatial"]
    assert result["max_rel_diff"] < 1e-4 and result["argmax_agreement"] > 0.999
    assert "argmax agreement" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir() if "onnx" in p.name) == ["m.onnx"]  # no side or temp files
    import onnx

    alone = tmp_path / "copy"
    alone.mkdir()
    (alone / "m.onnx").write_bytes(result["path"].read_bytes())
    onnx.checker.check_model(onnx.load(str(alone / "m.onnx")))  # self-contained: the weights are inside


@pytest.mark.slow
def test_export_replaces_only_its_own_files(trained_ckpt, tmp_path):
    """output= the checkpoint, a file of yours, or a foreign ``.data`` beside it: refused in one
    line and untouched; export's own earlier file is replaced; overwrite=true replaces yours."""
    from spark_lightning.errors import SparkDataError
    from spark_lightning.tasks.export import read_manifest

    def export(output, *extra):
        return run_export(compose_task("export", [f"ckpt={trained_ckpt}", f"output={output}", *extra], tmp_path / "h"))

    ckpt_bytes = trained_ckpt.read_bytes()
    with pytest.raises(ConfigError, match=r"is the checkpoint being exported"):
        export(trained_ckpt)
    assert trained_ckpt.read_bytes() == ckpt_bytes
    yours = tmp_path / "notes.onnx"
    yours.write_text("my notes")
    with pytest.raises(SparkDataError, match=r"notes.onnx exists and was not written by spark_lightning's export"):
        export(yours)
    assert yours.read_text() == "my notes"
    side = tmp_path / "m.onnx.data"
    side.write_text("someone's data")
    ours = export(tmp_path / "m.onnx")["path"]  # a fresh file beside a foreign .data: that file is kept
    assert read_manifest(ours)["checkpoint"] == str(trained_ckpt.resolve()) and side.read_text() == "someone's data"
    export(ours)  # our own earlier export: replaced without a flag
    side.unlink()
    export(yours, "overwrite=true")
    assert read_manifest(yours) is not None


@pytest.mark.slow
def test_time_budget_survives_sigkill_and_resume(tiny_root, tmp_path):
    """Killed mid-run under a 60 s budget, then resume=auto: the resumed run plans the time left
    (not the whole budget again), its one-cycle learning rate continues from the checkpoint (no
    second warm-up) and ends near zero, every epoch is whole, and the time used stays within
    the budget, stopping only when no further epoch fits."""
    budget = 60
    run_dir = tmp_path / "run"
    # one thread per process: under pytest-xdist beside other trainings, epochs stay seconds long
    env = {**os.environ, "SPARK_LIGHTNING_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    args = [sys.executable, "-m", "spark_lightning.train", f"data.root={tiny_root}", "data.size=64",
            "data.batch_size=4", "data.num_workers=0", "model=unet_mobilenet_v2", "model.encoder_weights=null",
            "scheduler=onecycle", "optimizer.lr=3e-3", f"trainer.max_time=00:00:00:{budget}", "trainer.max_epochs=1000",
            "trainer.log_every_n_steps=1", "logger=csv", "callbacks.progress_bar=null", f"hydra.run.dir={run_dir}"]
    proc = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = run_dir / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 300
    while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(4)
    assert proc.poll() is None, "the first run ended before it could be killed: epochs far too slow here"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed = torch.load(last, weights_only=False)
    budget_state = next(v for k, v in killed["callbacks"].items() if "TimeBudget" in k)
    assert 0 < budget_state["used"] < budget - 4, "killed too late to test resuming"
    lr_at_kill = killed["lr_schedulers"][0]["_last_lr"][0]
    resumed = subprocess.run(args + ["resume=auto"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    log = (run_dir / "train.log").read_text()
    assert "used before this resume" in log
    final = torch.load(last, weights_only=False)
    state = next(v for k, v in final["callbacks"].items() if "TimeBudget" in k)
    longest = max(state["durations"])
    assert state["used"] <= budget + longest  # within the budget (whole epochs: at most one runs over)
    assert budget * 0.98 - state["used"] < 1.5 * longest  # it stopped because no further epoch fitted
    history = json.loads((run_dir / "metrics.json").read_text())["history"]
    epochs = [h["epoch"] for h in history]
    assert final["global_step"] == len(epochs) * (24 // 4)  # whole epochs of the tiny set's 24 images, batch 4
    assert epochs == list(range(1, len(epochs) + 1))  # each epoch once, in order, none cut
    import csv as csv_module

    rows = [r for r in csv_module.DictReader(open(run_dir / "csv" / "version_1" / "metrics.csv")) if r.get("lr-AdamW")]
    lrs = [float(r["lr-AdamW"]) for r in rows]
    assert lrs[0] == pytest.approx(lr_at_kill, rel=0.1)  # continued where the checkpoint left it
    if budget_state["done_share"] >= 0.3:  # killed after the one-cycle peak: no second climb to it
        assert max(lrs) <= 1.05 * lr_at_kill
    # and the schedule ends near zero on time (the bug ended at 70 % of the peak): a revised plan
    # spreads the rest of the schedule over its steps, so even one epoch left ends below 10 %
    assert lrs[-1] < 0.1 * 3e-3


def test_export_into_a_missing_folder(trained_ckpt, tmp_path):
    cfg = compose_task("export", [f"ckpt={trained_ckpt}", f"output={tmp_path / 'nope' / 'm.onnx'}"], tmp_path)
    with pytest.raises(SparkDataError, match=r"folder .*nope does not exist; create it or choose another output="):
        run_export(cfg)
