"""Plain task functions taking a composed config; the ``@hydra.main`` shims only call these.

Tests call them directly with configs composed in-process.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import LearningRateMonitor
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from spark_lightning.budget import apply_budget
from spark_lightning.module import SegmentationModule

log = logging.getLogger(__name__)


def _container(cfg: DictConfig | None) -> Any:
    return OmegaConf.to_container(cfg, resolve=True) if cfg is not None else None


def instantiate_dict(cfg: DictConfig | None) -> list[Any]:
    """Instantiate every entry of a name -> config mapping (callbacks, loggers); skip nulls."""
    if not cfg:
        return []
    return [instantiate(value) for value in cfg.values() if value is not None]


def resolve_precision(precision: str | int | None, accelerator: str) -> str | int | None:
    """Mixed fp16 needs CUDA; on a CPU-only run fall back to 32-true and say so."""
    on_cpu = accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available())
    if on_cpu and precision is not None and str(precision).startswith("16"):
        log.info("trainer.precision=%s needs a CUDA GPU; this run is on CPU, using 32-true", precision)
        return "32-true"
    return precision


def build_module(cfg: DictConfig) -> SegmentationModule:
    return SegmentationModule(
        model=_container(cfg.model),
        loss=_container(cfg.loss),
        optimizer=_container(cfg.optimizer),
        scheduler=_container(cfg.get("scheduler")),
    )


def build_trainer(cfg: DictConfig, **kwargs: Any) -> L.Trainer:
    callbacks = instantiate_dict(cfg.get("callbacks"))
    loggers = instantiate_dict(cfg.get("logger"))
    if not loggers:  # nothing to record learning rates to
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    precision = resolve_precision(cfg.trainer.get("precision"), cfg.trainer.get("accelerator", "auto"))
    return instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, precision=precision, **kwargs)


def _finish_wandb() -> None:
    """End this job's W&B run so the next multirun job starts a new one."""
    import sys

    if "wandb" in sys.modules:
        import wandb

        if wandb.run is not None:
            wandb.finish()


def run_train(cfg: DictConfig) -> dict[str, Any]:
    """Train and validate; return ``{"metrics": best-epoch metrics, "trainer", "module", ...}``."""
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, output_dir / "config.yaml", resolve=True)
    try:
        apply_budget(cfg, build_module)
        transform = instantiate(cfg.aug) if cfg.get("aug") else None
        datamodule = instantiate(cfg.data, train_transform=transform)
        module = build_module(cfg)
        trainer = build_trainer(cfg)
        for logger in trainer.loggers:
            logger.log_hyperparams(_container(cfg))
        trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
        best = metrics
        metrics_file = output_dir / "metrics.json"
        if metrics_file.exists():
            best = json.loads(metrics_file.read_text())["best"]
        log.info("best %s: %s (run dir %s)", cfg.get("monitor", "val/spark_score"), best.get("val/spark_score"), output_dir)
        return {"metrics": best, "final": metrics, "trainer": trainer, "module": module, "datamodule": datamodule}
    except Exception:
        log.exception("training failed; run dir %s", output_dir)
        raise
    finally:
        _finish_wandb()
