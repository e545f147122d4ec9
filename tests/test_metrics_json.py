"""metrics.json (spark_lightning/callbacks/metrics_json.py): every validation epoch, the best by
the monitored metric in either direction, NaN epochs never best, perf values attached to
their epoch, and the history surviving a resume."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from spark_lightning.callbacks import MetricsJson
from spark_lightning.errors import ConfigError


def _trainer(epoch: int, **metrics: float) -> SimpleNamespace:
    return SimpleNamespace(sanity_checking=False, is_global_zero=True, current_epoch=epoch, global_step=10 * (epoch + 1),
                           callback_metrics={k.replace("__", "/"): torch.tensor(v) for k, v in metrics.items()})


def test_best_epoch_either_direction_and_nan_never_wins(tmp_path):
    path = tmp_path / "metrics.json"
    up = MetricsJson(str(path), "val/spark_score", "max")
    for epoch, score in enumerate([0.2, float("nan"), 0.5, 0.4]):
        up.on_validation_end(_trainer(epoch, val__spark_score=score, val__loss=1 - (score == score) * score,
                                      train__loss=9.0), None)
    written = json.loads(path.read_text())
    assert [h["epoch"] for h in written["history"]] == [1, 2, 3, 4]  # epochs count from 1
    assert written["best"]["epoch"] == 3 and written["final"]["epoch"] == 4
    assert "train/loss" not in written["final"]  # validation values only
    down = MetricsJson(str(tmp_path / "m2.json"), "val/loss", "min")
    for epoch, loss in enumerate([0.9, 0.3, 0.6]):
        down.on_validation_end(_trainer(epoch, val__loss=loss), None)
    assert down.best["epoch"] == 2


def test_perf_values_join_their_epoch_and_history_survives_a_resume(tmp_path):
    path = tmp_path / "metrics.json"
    first = MetricsJson(str(path), "val/iou")
    first.on_validation_end(_trainer(0, val__iou=0.3), None)
    first.on_train_epoch_start(_trainer(1, val__iou=0.3, perf__img_per_s=12.5), None)  # logged at epoch 1's end
    assert json.loads(path.read_text())["history"][0]["perf/img_per_s"] == 12.5
    resumed = MetricsJson(str(path), "val/iou")
    resumed.load_state_dict(first.state_dict())
    resumed.on_validation_end(_trainer(1, val__iou=0.4), None)
    assert [h["epoch"] for h in json.loads(path.read_text())["history"]] == [1, 2]


def test_an_unlogged_monitor_or_a_bad_mode_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match="optimized_mode='up': use 'max' or 'min'"):
        MetricsJson(str(tmp_path / "m.json"), "val/iou", "up")
    with pytest.raises(ConfigError, match=r"optimized_metric=val/dice is not logged; logged validation metrics: val/iou"):
        MetricsJson(str(tmp_path / "m.json"), "val/dice").on_validation_end(_trainer(0, val__iou=0.3), None)
