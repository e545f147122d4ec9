"""The command runtime (spark_lightning/run/runtime.py): one-line errors, tracebacks on request,
FAILED markers, signals."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from spark_lightning.data.spark import SparkFormat
from spark_lightning.errors import SparkDataError
from spark_lightning.tasks import run_train

from .conftest import long_smoke_run, run_main, tiny_train_config


@pytest.mark.slow
def test_sigterm_saves_exits_non_zero_and_resumes(tiny_root, tmp_path):
    """What SLURM sends before preemption or at the time limit: the run saves last.ckpt at the
    signal, exits 143 (not 0, which a scheduler records as COMPLETED and never requeues), says
    so in FAILED, and resume=auto finishes it."""
    run_dir, args, env = long_smoke_run(tiny_root, tmp_path, 100000)
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
    run_dir, args, env = long_smoke_run(tiny_root, tmp_path, 100000)
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
