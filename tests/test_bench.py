"""Benchmarks run as smoke tests at tiny sizes (no timing assertions), so they do not rot."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))


def test_memory_table_smoke(tmp_path):
    import memory_table

    out = tmp_path / "RESULTS.md"
    rows = memory_table.main(["--size", "32", "--models", "unet_mobilenet_v2", "--steps", "1", "--out", str(out)])
    assert rows[0]["model"] == "unet_mobilenet_v2" and float(rows[0]["train_img_s"]) > 0
    text = out.read_text()
    assert "| unet_mobilenet_v2 | 32 |" in text and "device:" in text and "torch " in text


def test_cost_table_smoke(tmp_path):
    import cost_table

    rows = cost_table.main(["--size", "64", "--models", "tiny", "unet_efficientnet_lite0",
                            "--results", str(tmp_path / "R.md")])
    assert [r["model"] for r in rows] == ["tiny", "unet_efficientnet_lite0"]  # cheapest first
    lite0 = rows[1]
    assert lite0["params_M"] == 3.78 and lite0["S_params (1 - params/30M)"] == round(1 - 3.78e6 / 30e6, 3)
    assert lite0["G_multiply_adds"] == pytest.approx(lite0["GFLOPs"] / 2, abs=0.06)
    assert "| unet_efficientnet_lite0 | 3.78 |" in (tmp_path / "R.md").read_text()
    speed = "img/s (cpu, batch 1)"  # measured (no timing assertion: a busy machine may run anything slowly)
    assert all(isinstance(r[speed], float) for r in rows)
    assert speed not in cost_table.main(["--size", "64", "--models", "tiny", "--repeats", "0",
                                         "--results", str(tmp_path / "R.md")])[0]


def test_train_overhead_smoke(tmp_path, monkeypatch):
    import train_overhead

    monkeypatch.setenv("SPARK_LIGHTNING_CACHE", str(tmp_path / "cache"))
    row = train_overhead.main(["--model", "unet_mobilenet_v2", "--size", "32", "--batch", "2", "--warmup", "1",
                               "--steps", "2", "--repeats", "1", "--workers", "0", "--num-images", "12",
                               "--out", str(tmp_path / "R.md")])
    assert row["images_timed"] == "4/4"  # both sides timed the same 2 steps of 2 images, after the warm-up
    assert float(row["ratio"]) == pytest.approx(float(row["framework_img_s"]) / float(row["raw_img_s"]), rel=0.01)
    assert "Training overhead" in (tmp_path / "R.md").read_text()


def test_data_pipeline_smoke(tmp_path):
    import data_pipeline

    rows = data_pipeline.main(["--source-size", "64", "--sizes", "64", "32", "--images", "4", "--workers", "0",
                               "--out", str(tmp_path / "R.md")])
    assert [r["size"] for r in rows] == [64, 32]
    assert [r["cache_entries"] for r in rows] == [4, 4]  # the cached side read a cache of every image, per size


def test_predict_speed_smoke(tmp_path):
    import predict_speed

    rows = predict_speed.main(["--model", "unet_mobilenet_v2", "--image-size", "64", "--size", "32", "--tile", "16",
                               "--images", "2", "--out", str(tmp_path / "R.md")])
    assert {(r["mode"], r["tta"]) for r in rows} == {(m, t) for m in ("resize", "slide") for t in ("none", "flip")}


@pytest.mark.slow
def test_sweep_overhead_smoke(tmp_path):
    import sweep_overhead

    row = sweep_overhead.main(["--size", "32", "--images", "12", "--models", "tiny", "--multirun-only",
                               "--out", str(tmp_path / "R.md")])
    assert row["cache_entries_written_after_job_1"] == 0  # jobs 2-4 decoded nothing new
    assert row["cache_entries"] > 0


def test_synth_speed_smoke(tmp_path):
    import synth_speed

    row = synth_speed.main(["--images", "4", "--size", "64", "--workers", "1", "--out", str(tmp_path / "R.md")])
    assert row["images"] == 4 and row["images_per_s"] > 0
    assert "Synthetic generation speed" in (tmp_path / "R.md").read_text()


@pytest.mark.slow
def test_search_pruning_smoke(tmp_path):
    import search_pruning

    rows, shared = search_pruning.main(["--trials", "4", "--epochs", "2", "--images", "20", "--work", str(tmp_path / "w"),
                                        "--out", str(tmp_path / "R.md"), "--pruners", "successive_halving"])
    assert [r["trials"] for r in rows] == [4, 4] and all(r["failed"] == 0 for r in rows)
    assert rows[0]["epochs_trained"] == 4 * 2  # without pruning every trial trains every epoch
    assert shared["each_trial_once"] and shared["exit_codes"] == "0/0"


@pytest.mark.slow
def test_dashboards_in_a_real_browser(tmp_path):
    """mlflow ui and optuna-dashboard on localhost, loaded in headless Chromium (CI installs it)."""
    import dashboards

    if dashboards.chromium() is None and not os.environ.get("SPARK_REQUIRE_BROWSER"):
        pytest.skip("no chromium on this machine (CI installs it and sets SPARK_REQUIRE_BROWSER=1)")
    rows = {r["dashboard"]: r for r in dashboards.main(["--work", str(tmp_path / "w"), "--out", str(tmp_path / "shots")])}
    assert rows["mlflow ui"]["runs"] == 3 and rows["mlflow ui"]["runs_on_page"] == 3
    assert rows["mlflow ui"]["val/spark_score_on_page"]
    assert rows["optuna-dashboard"]["study_on_page"] and rows["optuna-dashboard"]["val/spark_score_on_page"]
    assert rows["tensorboard (event files)"]["runs_with_hparams"] == 3 and rows["tensorboard (event files)"]["val/spark_score_logged"]
    assert all((tmp_path / "shots" / f).stat().st_size > 10_000 for f in ("mlflow_runs.png", "optuna_dashboard.png"))
