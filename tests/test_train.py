"""Training end to end: in-process (composed config) and as the real command."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from spark_lightning.tasks import run_train
from spark_lightning.training.module import SegmentationModule

from .wandb_files import summary_and_config

REPO = Path(__file__).resolve().parents[1]
VAL_KEYS = {"val/iou", "val/iou_background", "val/iou_body", "val/iou_panel", "val/spark_score", "val/loss"}


def test_two_steps_in_process(cfg_tiny):
    result = run_train(cfg_tiny)
    run = Path(cfg_tiny.paths.output_dir)
    assert result["trainer"].global_step == 2
    metrics = json.loads((run / "metrics.json").read_text())
    assert VAL_KEYS <= set(metrics["final"]) and VAL_KEYS <= set(metrics["best"])
    assert 0.0 <= metrics["best"]["val/spark_score"] <= 1.0
    assert result["metrics"] == metrics["best"]
    assert (run / "checkpoints" / "last.ckpt").is_file()
    best = list((run / "checkpoints").glob("epoch001-score*.ckpt"))  # epochs count from 1, as in the log
    assert len(best) == 1 and (run / "checkpoints" / "best.ckpt").samefile(best[0])
    assert (run / "config.yaml").is_file()
    header = (run / "csv" / "version_0" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"train/loss_step", "val/spark_score", "val/iou_body", "lr-AdamW"} <= set(header)


def test_checkpoint_reloads_without_config(cfg_tiny):
    result = run_train(cfg_tiny)
    ckpt = Path(cfg_tiny.paths.output_dir) / "checkpoints" / "last.ckpt"
    module = SegmentationModule.load_from_checkpoint(ckpt, map_location="cpu").eval()
    x = torch.randint(0, 255, (1, 3, 64, 64), dtype=torch.uint8)
    trained = result["module"].eval()
    with torch.no_grad():
        assert torch.allclose(module(x), trained(x), atol=1e-5)


def test_gradient_accumulation(cfg_tiny):
    cfg_tiny.trainer.accumulate_grad_batches = 2
    result = run_train(cfg_tiny)
    assert result["trainer"].global_step == 1  # 2 micro-batches -> 1 optimizer step


def test_seed_baseline_trains(tiny_root, tmp_path):
    """The blog's real network (a real-model test): DeepLabV3-MobileNetV3 + SGD trains a step."""
    from .conftest import tiny_train_config

    cfg = tiny_train_config(tiny_root, tmp_path, ["experiment=seed_baseline", "model=deeplabv3_mnv3", "logger=none",
                                                  "data.batch_size=2", "trainer.limit_train_batches=1"])
    result = run_train(cfg)
    assert type(result["module"].net.model).__name__ == "DeepLabV3"
    assert isinstance(result["trainer"].optimizers[0], torch.optim.SGD)
    assert result["trainer"].global_step == 1


def wandb_cfg(cfg_tiny):
    cfg_tiny.trainer.max_epochs = 2
    from .conftest import compose_train

    cfg_tiny.logger = compose_train(["logger=default"]).logger
    cfg_tiny.logger.csv.save_dir = cfg_tiny.paths.output_dir
    cfg_tiny.logger.wandb.save_dir = cfg_tiny.paths.output_dir
    cfg_tiny.callbacks.overlays.every_n_epochs = 1
    return cfg_tiny


@pytest.mark.slow
def test_wandb_offline_run_with_overlays_and_resume(cfg_tiny, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = wandb_cfg(cfg_tiny)
    run_train(cfg)
    import wandb

    assert wandb.run is None, "the job's W&B run must be finished"
    runs = list((Path(cfg.paths.output_dir) / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("*.wandb"))
    assert list(runs[0].glob("files/media/images/val/overlays*.png")), "overlay panel not logged"
    summary, config = summary_and_config(runs[0])
    history = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())["history"]
    for key in ("val/spark_score", "val/iou", "val/iou_body"):  # the best epoch, not the last
        assert summary[key] == {"max": pytest.approx(max(h[key] for h in history))}, key
    assert summary["val/loss"] == {"min": pytest.approx(min(h["val/loss"] for h in history))}
    assert config["model.arch"] == "tiny" and config["optimizer.lr"] == cfg.optimizer.lr  # flattened config
    # Resuming continues the same W&B run id.
    cfg.trainer.max_epochs = 3
    cfg.resume = "auto"
    run_train(cfg)
    from spark_lightning.tracking import run_ids

    assert set(run_ids(Path(cfg.paths.output_dir) / "wandb")) == {runs[0].name.rsplit("-", 1)[1]}


def test_wandb_failure_falls_back_to_csv(cfg_tiny, monkeypatch, caplog):
    from lightning.pytorch.loggers import WandbLogger

    def broken(self):
        raise RuntimeError("wandb service unreachable")

    monkeypatch.setattr(WandbLogger, "experiment", property(broken))
    caplog.set_level("WARNING")
    result = run_train(wandb_cfg(cfg_tiny))
    assert "W&B could not start (RuntimeError: wandb service unreachable)" in caplog.text
    assert [type(lg).__name__ for lg in result["trainer"].loggers] == ["CSVLogger"]
    assert (Path(cfg_tiny.paths.output_dir) / "metrics.json").is_file()


@pytest.mark.slow
def test_train_command(tiny_root, tmp_path):
    """README's headline command as a real process, with its real network, on tiny data."""
    run_dir = tmp_path / "run"
    env = {**os.environ, "SPARK_LIGHTNING_CACHE": str(tmp_path / "cache")}
    env.pop("WANDB_API_KEY", None)
    cmd = [sys.executable, "-m", "spark_lightning.train", "model=unet_resnet34", "loss=jaccard",
           f"data.root={tiny_root}", "data.size=64", "data.batch_size=4", "data.num_workers=0",
           "trainer.max_epochs=2", "+trainer.limit_train_batches=2", "logger=csv", f"hydra.run.dir={run_dir}"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["final"]["epoch"] == 2 and VAL_KEYS <= set(metrics["best"])
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    log = (run_dir / "train.log").read_text()
    # With a data.root it is the real-data recipe the plan says, not the CPU demo (128 px, 10 minutes).
    plan = log[log.index("plan\n"):].split("\n[")[0]
    assert "conf/train.yaml's groups" in plan and "unet / resnet34, random init: no ImageNet weights" in plan
    assert "64 px" in plan and "2 epochs" in plan and "within" not in plan and "JaccardLoss" in plan
    assert "using 32-true" in log and f"run directory: {run_dir}" in log
    assert "epoch 2/2 | train/loss" in log  # one line per epoch without a terminal
    assert "weights_only" not in proc.stdout + proc.stderr and "litlogger" not in proc.stdout + proc.stderr
    assert "precision: 32-true" in (run_dir / "config.yaml").read_text()  # what ran, not what was asked


def test_precise_bn_recomputes_running_stats():
    from types import SimpleNamespace

    import lightning as L
    from lightning.pytorch.plugins.precision import Precision

    from spark_lightning.callbacks import PreciseBatchNorm

    class Tiny(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.bn = torch.nn.BatchNorm2d(3)

        def forward(self, x):
            return self.bn(x.float())

    module = Tiny().eval()
    callback = PreciseBatchNorm(num_batches=2)
    trainer = SimpleNamespace(sanity_checking=False, precision_plugin=Precision())
    batches = [torch.full((2, 3, 4, 4), v, dtype=torch.uint8) for v in (10, 50, 90)]
    for b in batches:
        callback.on_train_batch_end(trainer, module, None, {"image": b}, 0)
    callback.on_validation_epoch_start(trainer, module)
    # Only the last two batches count, averaged: (50 + 90) / 2.
    assert torch.allclose(module.bn.running_mean, torch.full((3,), 70.0))
    assert not module.bn.training and module.bn.momentum == 0.1


@pytest.mark.slow
@pytest.mark.parametrize("name", ["spark2024_segformer_b5", "spark2024_unet_mnv3", "spark2024_deeplabv3plus_r50"])
def test_spark2024_recipes_train_a_step_without_weights(name, tiny_root, tmp_path):
    """The real-data recipes (a real-model test): 16 GB budget settings and ImageNet weights are in
    the config; with the weights off (offline machine) their network trains one CPU step."""
    from omegaconf import open_dict

    from .conftest import compose_train

    cfg = compose_train([f"experiment={name}", f"data.root={tiny_root}", f"data.cache_dir={tmp_path / 'cache'}",
                         "data.size=64", "data.crop=null", "data.batch_size=2", "data.num_workers=0",
                         "data.persistent_workers=false", "trainer=cpu", "logger=csv", "trainer.max_epochs=1",
                         "++trainer.limit_train_batches=1", "++trainer.limit_val_batches=1", "++trainer.num_sanity_val_steps=0",
                         "++trainer.enable_progress_bar=false", "callbacks.progress_bar=null"])
    assert cfg.model.encoder_weights == "imagenet" and cfg.budget.vram_gb == 16 and cfg.budget.effective_batch_size
    with open_dict(cfg):
        cfg.model.encoder_weights = None
        cfg.paths.output_dir = str(tmp_path / "run")
    result = run_train(cfg)
    assert result["trainer"].global_step == 1 and math.isfinite(result["final"]["val/loss"])


def test_validation_on_several_sets_at_once(tiny_root, tmp_path):
    """data.extra_val_roots: each set is validated every epoch under its own prefix, breakdowns
    included; optimized_metric may name one of them (checkpoints and metrics.json follow it); the
    sweep report shows both."""
    from spark_lightning.tasks.report import write_report

    from .conftest import tiny_train_config

    cfg = tiny_train_config(tiny_root, tmp_path, [f"data.extra_val_roots={{real:{tiny_root}}}", "trainer.max_epochs=2",
                                                  "optimized_metric=val_real/iou"])
    result = run_train(cfg)
    run = Path(cfg.paths.output_dir)
    best = json.loads((run / "metrics.json").read_text())["best"]
    for prefix in ("val", "val_real"):
        assert {f"{prefix}/iou", f"{prefix}/spark_score", f"{prefix}/loss"} <= set(best)
        assert any(k.startswith(f"{prefix}/by_spacecraft/") for k in best)
    assert best["val_real/iou"] == pytest.approx(best["val/iou"])  # the same images, read twice
    assert result["value"] == best["val_real/iou"] and result["datamodule"].val_names == ["val", "val_real"]
    best_file = (run / "checkpoints" / "best.ckpt").resolve()
    assert torch.load(best_file, weights_only=False)["callbacks"]  # a real checkpoint
    rows = write_report(run.parent)
    assert "val_real score" in (run.parent / "report.csv").read_text().splitlines()[0] and rows[0]["val_real iou"]


def test_real_data_recipe_trains_the_shipped_network_when_its_own_has_no_weights(tiny_root, tmp_path, monkeypatch,
                                                                                caplog):
    """An offline machine with an empty hub cache: the real-data recipe (ResNet-34) would start
    from random weights, so it trains recipe.fallback_model with the ImageNet weights that install
    with the project, and its plan says so; a network you chose is kept."""
    from omegaconf import open_dict

    from spark_lightning.run.plan import resolve_train

    from .conftest import compose_train

    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty_hub"))

    def plan(*extra):
        cfg = compose_train([f"data.root={tiny_root}", *extra])
        with open_dict(cfg):
            cfg.paths.output_dir = str(tmp_path / f"run{len(extra)}")
        return resolve_train(cfg)

    with caplog.at_level("INFO", logger="spark_lightning"):
        swapped = plan()
    assert swapped.model.encoder == "tu-tf_efficientnet_lite0" and swapped.model.encoder_weights == "shipped"
    assert "recipe.fallback_model=unet_efficientnet_lite0" in caplog.text
    assert "tu-tf_efficientnet_lite0" in (tmp_path / "run0" / "config.yaml").read_text()
    chosen = plan("model=unet_resnet34")
    assert chosen.model.encoder == "resnet34" and chosen.model.encoder_weights is None
    assert plan("model=unet_resnet34", "recipe.fallback_model=null").model.encoder == "resnet34"
