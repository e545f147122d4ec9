"""A run directory belongs to one training: the guard that checks before Hydra writes into it,
the lock, the refusal to start over a finished run, and a SLURM requeue that continues it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from spark_lightning.run.run_dir import RunDirGuard, run_dir_lock
from spark_lightning.tasks import run_train

from .conftest import tiny_train_config


def _hydra_config(run_dir: Path, task: str = "train", **keys) -> object:
    return OmegaConf.create({"task_name": task, "resume": None, "overwrite": False, "ckpt_path": None,
                             "hydra": {"run": {"dir": str(run_dir)}, "sweep": {"dir": str(run_dir)}}, **keys})


def _guard_says(config, capsys, multirun: bool = False) -> str | None:
    """The guard's one line (it exits 1), or None when it lets the run go on."""
    guard = RunDirGuard()
    try:
        (guard.on_multirun_start if multirun else guard.on_run_start)(config=config)
    except SystemExit as stop:
        assert stop.code == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("error: ")
        return err
    return None


def _finished_run(tmp_path: Path) -> Path:
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "last.ckpt").write_bytes(b"the first run's weights")
    return run_dir


def test_guard_refuses_a_fresh_training_over_a_finished_run(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("SLURM_RESTART_COUNT", raising=False)
    run_dir = _finished_run(tmp_path)
    said = _guard_says(_hydra_config(run_dir), capsys)
    assert f"run directory {run_dir} already holds a training (checkpoints/last.ckpt)" in said
    assert "resume=auto continues it" in said and "overwrite=true" in said
    assert sorted(p.name for p in run_dir.iterdir()) == ["checkpoints"]  # nothing written before the refusal
    for goes_on in ({"resume": "auto"}, {"overwrite": True}, {"ckpt_path": "x.ckpt"}):
        assert _guard_says(_hydra_config(run_dir, **goes_on), capsys) is None, goes_on
    assert _guard_says(_hydra_config(run_dir, task="evaluate"), capsys) is None  # other commands write beside it
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")  # a job SLURM requeued continues its run
    assert _guard_says(_hydra_config(run_dir), capsys) is None


def test_guard_refuses_a_run_dir_another_training_holds(tmp_path, capsys, monkeypatch):
    run_dir = tmp_path / "run"
    with run_dir_lock(run_dir):
        said = _guard_says(_hydra_config(run_dir), capsys)
        assert f"run directory {run_dir} is in use by another training (pid {os.getpid()})" in said
        monkeypatch.setenv("LOCAL_RANK", "1")  # a DDP rank > 0 joins rank 0's directory
        assert _guard_says(_hydra_config(run_dir), capsys) is None
    monkeypatch.delenv("LOCAL_RANK")
    assert _guard_says(_hydra_config(run_dir), capsys) is None  # free again
    assert list(run_dir.iterdir()) == []  # the finished lock leaves no file behind


def test_guard_names_an_unwritable_folder(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("x")
    said = _guard_says(_hydra_config(tmp_path / "notes.txt" / "run", task="evaluate"), capsys)
    assert f"hydra.run.dir={tmp_path / 'notes.txt' / 'run'} cannot be written (Not a directory)" in said
    said = _guard_says(_hydra_config(tmp_path / "notes.txt" / "sweep"), capsys, multirun=True)
    assert "hydra.sweep.dir=" in said and "cannot be written" in said


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_guard_names_a_read_only_folder(tmp_path, capsys):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        said = _guard_says(_hydra_config(folder), capsys)
    finally:
        folder.chmod(0o755)
    assert f"hydra.run.dir={folder} cannot be written (Permission denied)" in said


def test_a_slurm_requeued_training_continues_its_run(tiny_root, tmp_path, monkeypatch, caplog):
    """SLURM requeues the same command: without resume=auto it continues from last.ckpt
    instead of being refused (or replacing the run)."""
    monkeypatch.delenv("SLURM_RESTART_COUNT", raising=False)
    cfg = tiny_train_config(tiny_root, tmp_path)
    cfg.trainer.max_epochs = 1
    run_train(cfg)
    monkeypatch.setenv("SLURM_RESTART_COUNT", "2")
    cfg.trainer.max_epochs = 2
    caplog.set_level("INFO")
    second = run_train(cfg)["trainer"]
    assert second.global_step == 4  # continued from epoch 1, not restarted
    assert "SLURM requeued this job (SLURM_RESTART_COUNT=2)" in caplog.text
    history = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())["history"]
    assert [h["epoch"] for h in history] == [1, 2]
