"""Benchmarks run as smoke tests at tiny sizes (no timing assertions), so they do not rot."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))


def test_memory_table_smoke(tmp_path):
    import memory_table

    out = tmp_path / "RESULTS.md"
    rows = memory_table.main(["--size", "32", "--models", "unet_mobilenet_v2", "--steps", "1", "--out", str(out)])
    assert rows[0]["model"] == "unet_mobilenet_v2" and float(rows[0]["train_img_s"]) > 0
    text = out.read_text()
    assert "| unet_mobilenet_v2 | 32 |" in text and "device:" in text and "torch " in text
