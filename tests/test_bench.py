"""Benchmarks run as smoke tests at tiny sizes (no timing assertions), so they do not rot."""

from __future__ import annotations

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


def test_train_overhead_smoke(tmp_path, monkeypatch):
    import train_overhead

    monkeypatch.setenv("SPARK_LIGHTNING_CACHE", str(tmp_path / "cache"))
    row = train_overhead.main(["--model", "unet_mobilenet_v2", "--size", "32", "--batch", "2", "--warmup", "1",
                               "--steps", "2", "--repeats", "1", "--workers", "0", "--num-images", "12",
                               "--out", str(tmp_path / "R.md")])
    assert float(row["raw_img_s"]) > 0 and float(row["framework_img_s"]) > 0
    assert "Training overhead" in (tmp_path / "R.md").read_text()


def test_data_pipeline_smoke(tmp_path):
    import data_pipeline

    rows = data_pipeline.main(["--source-size", "64", "--sizes", "64", "32", "--images", "4", "--workers", "0",
                               "--out", str(tmp_path / "R.md")])
    assert [r["size"] for r in rows] == [64, 32] and all(float(r["cached_1w"]) > 0 for r in rows)


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
