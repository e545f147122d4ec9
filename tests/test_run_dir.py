"""A run directory belongs to one training: the guard that checks before Hydra writes into it,
the lock, the refusal to start over a finished run, and a SLURM requeue that continues it."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from spark_lightning.run.run_dir import RunDirGuard, run_dir_lock
from spark_lightning.tasks import run_train

from .conftest import compose_task, long_smoke_run, tiny_train_config


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


def test_two_trainings_at_once_as_processes(tiny_root, tmp_path):
    """The real case: two commands into one hydra.run.dir; the second stops with one line."""
    run_dir, args, env = long_smoke_run(tiny_root, tmp_path, 400)
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
