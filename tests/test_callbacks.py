"""Our callbacks: speed/memory logging, the per-epoch log line, metrics.json in memory."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import spark_lightning.callbacks.monitoring as callbacks_mod
from spark_lightning.callbacks import EpochSummary, PerfMonitor
from spark_lightning.errors import ConfigError
from spark_lightning.tasks import run_train


def test_perf_monitor_counts_training_time_only(monkeypatch):
    """img/s = training images / (epoch time - validation time); peak memory logged beside it."""
    clock = iter([0.0, 10.0, 15.0, 20.0])  # epoch start, validation start, validation end, epoch end
    monkeypatch.setattr(callbacks_mod.time, "perf_counter", lambda: next(clock))
    logged = {}
    module = SimpleNamespace(device=torch.device("cpu"), log=lambda k, v: logged.__setitem__(k, v))
    trainer = SimpleNamespace(sanity_checking=False, world_size=1)
    perf = PerfMonitor()
    perf.on_train_epoch_start(trainer, module)
    for _ in range(2):
        perf.on_train_batch_end(trainer, module, None, {"image": torch.zeros(4, 3, 8, 8)}, 0)
    perf.on_validation_start(trainer, module)
    perf.on_validation_end(trainer, module)
    perf.on_train_epoch_end(trainer, module)
    assert logged["perf/img_per_s"] == pytest.approx(8 / 15)
    assert logged["perf/peak_mem_gib"] > 0.01  # this process's peak RSS on CPU


def test_epoch_summary_and_metrics_json_in_a_run(tiny_root, tmp_path, caplog):
    from .conftest import tiny_train_config

    caplog.set_level("INFO", logger="spark_lightning.callbacks.monitoring")
    cfg = tiny_train_config(tiny_root, tmp_path, ["trainer.max_epochs=3"])
    result = run_train(cfg)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("epoch ")]
    assert [ln.split(" |")[0] for ln in lines] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    assert "val/spark_score" in lines[0] and "img/s" in lines[0] and "ETA" in lines[0] and "ETA" not in lines[2]
    data = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    assert [h["epoch"] for h in data["history"]] == [0, 1, 2]
    assert all(h["perf/img_per_s"] > 0 for h in data["history"])  # each epoch's own speed
    assert result["metrics"] == data["best"] and data["monitor"] == "val/spark_score"


def test_optimising_a_metric_never_logged_fails_naming_it(tiny_root, tmp_path):
    from .conftest import tiny_train_config

    cfg = tiny_train_config(tiny_root, tmp_path, ["optimized_metric=val/dice"])
    with pytest.raises(ConfigError, match=r"optimized_metric=val/dice is not logged; .*val/spark_score"):
        run_train(cfg)
    assert "optimized_metric=val/dice" in (Path(cfg.paths.output_dir) / "FAILED").read_text()


def test_epoch_summary_without_epochs_says_nothing(caplog):
    summary = EpochSummary()
    summary.on_fit_end(SimpleNamespace(), None)
    assert not caplog.records


def test_time_budget_plans_whole_epochs_and_reports_progress(monkeypatch):
    """100 s budget, 10 s epochs: 9 epochs fit (2 % margin); it stops after the 9th, never mid-epoch."""
    import spark_lightning.callbacks.time_budget as tb
    from lightning.pytorch.callbacks import Timer

    now = [0.0]
    monkeypatch.setattr(tb.time, "monotonic", lambda: now[0])
    timer = Timer(duration="00:00:01:40")
    monkeypatch.setattr(timer, "time_elapsed", lambda stage: now[0])
    monkeypatch.setattr(timer, "time_remaining", lambda stage: 100.0 - now[0])
    trainer = SimpleNamespace(callbacks=[timer], max_epochs=1000, current_epoch=0, should_stop=False)
    budget = tb.TimeBudget()
    budget.on_train_start(trainer, None)
    assert budget.progress() is None  # nothing measured yet: the schedule counts steps
    for epoch in range(1, 10):
        budget.on_train_epoch_start(trainer, None)
        now[0] += 10.0
        budget.on_train_epoch_end(trainer, None)
        assert budget.planned_epochs == 9 and budget.progress() == pytest.approx(epoch / 9)
        assert trainer.should_stop == (epoch == 9)
    assert tb.TimeBudget._budget(SimpleNamespace(callbacks=[])) is None  # no max_time: a no-op
    trainer.callbacks.append(budget)
    assert EpochSummary()._planned_epochs(trainer) == 9  # the epoch log line says "epoch k/9", not "/1000"
