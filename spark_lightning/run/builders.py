"""Config -> objects: the data module, the LightningModule, the Trainer with its callbacks,
loggers and precision. They read the plan (run/plan.py), which decided everything first."""

from __future__ import annotations

import logging
from typing import Any

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.callbacks import LearningRateMonitor, ProgressBar, WeightAveraging
from omegaconf import DictConfig, OmegaConf

from spark_lightning.callbacks import AtomicCheckpointIO, TimeBudget
from spark_lightning.data.datamodule import SparkDataModule
from spark_lightning.data.formats import IGNORE
from spark_lightning.errors import ConfigError, plain_errors
from spark_lightning.training.module import SegmentationModule, craft_names
from spark_lightning.tracking import build_loggers

log = logging.getLogger(__name__)


def container(cfg: DictConfig | None) -> Any:
    return OmegaConf.to_container(cfg, resolve=True) if cfg is not None else None


def instantiate_dict(cfg: DictConfig | None) -> list[Any]:
    """Instantiate every entry of a name -> config mapping (callbacks, loggers); skip nulls."""
    if not cfg:
        return []
    with plain_errors():
        return [instantiate(value) for value in cfg.values() if value is not None]


def build_datamodule(cfg: DictConfig, **kwargs: Any) -> SparkDataModule:
    with plain_errors():
        transform = instantiate(cfg.aug) if cfg.get("aug") else None
        return instantiate(cfg.data, train_transform=transform, **kwargs)


def build_module(cfg: DictConfig, classes: tuple[str, ...] | None = None) -> SegmentationModule:
    loss = container(cfg.loss)
    _check_class_weights(loss, classes)
    with plain_errors():
        head = container(cfg.get("head"))
        return SegmentationModule(model=container(cfg.model), loss=loss, optimizer=container(cfg.optimizer),
                                  scheduler=container(cfg.get("scheduler")), classes=classes,
                                  ignore_index=IGNORE, head=head, crafts=craft_names(head),
                                  cost=container(cfg.get("cost")))


def _check_class_weights(loss: Any, classes: tuple[str, ...] | None) -> None:
    """``loss.weight`` (or a summed loss's) must give one weight per class."""
    n = len(classes) if classes else 3
    parts = loss.get("losses", {}) if isinstance(loss, dict) else {}
    for key, part in [("loss", loss), *((f"loss.losses.{k}", v) for k, v in parts.items())]:
        weight = part.get("weight") if isinstance(part, dict) else None
        if weight is not None and len(weight) != n:
            raise ConfigError(f"{key}.weight={list(weight)} has {len(weight)} values but there are {n} classes "
                              f"{tuple(classes or ())}: give one weight per class.")


def _callback_order(callback: L.Callback) -> int:
    """Weight averaging first (it swaps the averaged weights in before precise BN re-estimates
    their statistics), then the time budget (its state is current when last.ckpt is written)."""
    return 0 if isinstance(callback, WeightAveraging) else 1 if isinstance(callback, TimeBudget) else 2


def build_trainer(cfg: DictConfig, **kwargs: Any) -> L.Trainer:
    callbacks = instantiate_dict(cfg.get("callbacks")) + list(kwargs.pop("callbacks", []))
    callbacks.sort(key=_callback_order)
    loggers = build_loggers(cfg)
    if not loggers:  # nothing to record learning rates to
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    if any(isinstance(c, TimeBudget) and c.budget_s is not None for c in callbacks):
        kwargs["max_time"] = None  # the budget plans whole epochs; Lightning's Timer would cut one
    if not any(isinstance(c, ProgressBar) for c in callbacks):
        kwargs["enable_progress_bar"] = False  # callbacks.progress_bar=null: no bar at all, not Lightning's default
    with plain_errors():
        return instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, plugins=[AtomicCheckpointIO()],
                           **kwargs)
