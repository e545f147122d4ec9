"""The sweep report (spark_lightning/tasks/report.py, report_plots.py): costs beside scores and
the score-against-GFLOPs picture with its Pareto front."""

from __future__ import annotations

import csv
import json

import pytest

from spark_lightning.tasks.report import write_report
from spark_lightning.tasks.report_plots import pareto_front

from .conftest import run_main, smoke_args


def test_pareto_front_by_hand():
    points = [(10, 0.5), (20, 0.7), (15, 0.4), (40, 0.7), (5, 0.1), (20, 0.6)]
    # (15, 0.4) loses to (10, 0.5); (40, 0.7) to (20, 0.7); (20, 0.6) to (20, 0.7)
    assert pareto_front(points) == [4, 0, 1]
    assert pareto_front([(1, 0.5), (1, 0.5)]) == [0, 1]  # ties both stay
    assert pareto_front([]) == []


@pytest.mark.slow
def test_a_multitask_sweep_reports_cost_final_score_and_the_front(tiny_root, tmp_path, monkeypatch):
    sweep = tmp_path / "sweep"
    code = run_main("train", ["--multirun", "model.width=4,16", "head=classify", "cost.size=256",
                              *smoke_args(tiny_root, tmp_path), f"hydra.sweep.dir={sweep}"], monkeypatch)
    assert code == 0
    rows = write_report(sweep)
    table = {t["run"]: t for t in csv.DictReader(open(sweep / "report.csv"))}
    for row in rows:
        best = json.loads((row["path"] / "metrics.json").read_text())["best"]
        assert float(table[row["run"]]["gflops"]) == pytest.approx(best["cost/gflops"], rel=1e-3)
        assert float(table[row["run"]]["params_m"]) == pytest.approx(best["cost/params"] / 1e6, abs=1e-4)
        assert float(table[row["run"]]["final"]) == pytest.approx(best["val/final"], abs=1e-4)
    wide, narrow = sorted(rows, key=lambda r: -r["gflops"])
    assert wide["gflops"] > 5 * narrow["gflops"]
    on_front = [narrow] + ([wide] if wide["score"] > narrow["score"] else [])
    report = (sweep / "report.md").read_text()
    assert (sweep / "score_vs_gflops.png").stat().st_size > 5000 and "Pareto front" in report
    assert "![score against GFLOPs](score_vs_gflops.png)" in report
    from spark_lightning.tasks.report_plots import cost_plot

    assert [r["run"] for r in cost_plot(rows, tmp_path)] == [r["run"] for r in on_front]
