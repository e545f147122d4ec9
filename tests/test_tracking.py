"""Every logger gets the same metrics (spark_lightning/tracking.py): a multi-task run's SPARK 2026
scores and the network's cost reach TensorBoard and MLflow under the names metrics.json uses."""

from __future__ import annotations

import json

import pytest

from spark_lightning.tasks import run_train

from .conftest import tiny_train_config


@pytest.mark.slow
def test_tensorboard_and_mlflow_get_the_2026_scores_and_the_cost(tiny_root, tmp_path):
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    db = tmp_path / "mlflow.db"
    cfg = tiny_train_config(tiny_root, tmp_path, ["head=classify", "cost.size=128", "logger=[csv,tensorboard,mlflow]",
                                                  f"logger.mlflow.tracking_uri=sqlite:///{db}",
                                                  f"logger.mlflow.artifact_location={tmp_path / 'artifacts'}"])
    run_train(cfg)
    best = json.loads((tmp_path / "run" / "metrics.json").read_text())["best"]
    keys = ["val/cls_accuracy", "val/detection", "val/accuracy", "val/final", "cost/params", "cost/gflops"]
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    for key in keys:
        assert events.Scalars(key)[-1].value == pytest.approx(best[key], rel=1e-5), key
    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    [run] = client.search_runs([e.experiment_id for e in client.search_experiments()])
    for key in keys:
        assert run.data.metrics[key] == pytest.approx(best[key], rel=1e-5), key
    assert float(run.data.params["head.weight"]) == cfg.head.weight
