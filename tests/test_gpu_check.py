"""The GPU check cannot rot: its --dry mode runs every path on the CPU, and the wheel set it
needs on the GPU machine is proven complete here."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))


def test_gpu_check_dry_runs_every_check(tmp_path, monkeypatch):
    import gpu_check

    monkeypatch.setenv("SPARK_LIGHTNING_CACHE", str(tmp_path / "cache"))
    assert gpu_check.main(["--out", str(tmp_path / "out"), "--dry"]) == 0
    report = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    checks = [r["check"] for r in report["rows"]]
    assert checks.count("train steps") == 6  # 3 precisions x channels_last off/on
    for name in ("mixed precision speed-up", "16 GiB budget", "16-mixed stability", "predict vs raw",
                 "training overhead vs raw"):
        assert name in checks, name
    assert all(r["ok"] for r in report["rows"]) and report["dry"]
    speedup = next(r for r in report["rows"] if r["check"] == "mixed precision speed-up")
    assert speedup["ratio"] > 0  # measured (tiny CPU steps), not a fixed "ok"
    assert all(r["img_s"] > 0 and r["ratio"] > 0 for r in report["rows"] if r["check"] == "predict vs raw")
    # The budget helper itself ran (a stand-in memory model of 1 GiB per image): 14.4 of 16 GiB usable -> at most
    # 14 images, so effective 32 = 8 x 4.
    budget = next(r for r in report["rows"] if r["check"] == "16 GiB budget")
    assert (budget["micro_batch"], budget["accumulation"]) == (8, 4)
    stability = [r for r in report["rows"] if r["check"] == "16-mixed stability"]
    assert {r["loss"] for r in stability} == {"jaccard", "dice"} and all(r["loss_finite"] for r in stability)
    text = (tmp_path / "out" / "gpu_check.md").read_text()
    assert text.startswith("# GPU check (dry run") and "| train steps | tiny | 16-mixed |" in text


def test_gpu_machine_wheel_set_is_complete():
    import gpu_wheels

    assert gpu_wheels.check() == "imports ok"
    with pytest.raises(SystemExit, match="the wheel set is incomplete"):  # and the check can fail
        gpu_wheels.check(names=[n for n in gpu_wheels.MISSING if n != "omegaconf"])


def test_gpu_check_refuses_to_run_without_a_gpu(tmp_path, capsys):
    import gpu_check
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(SystemExit):
        gpu_check.main(["--out", str(tmp_path)])
    assert "--dry" in capsys.readouterr().err
