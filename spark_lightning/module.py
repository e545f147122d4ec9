"""SegmentationModule: network + loss + metrics + optimizer/scheduler, built from configs.

The constructor takes plain config dicts (``_target_`` style) and saves them as
hyperparameters, so ``SegmentationModule.load_from_checkpoint(path)`` rebuilds the same
network with no Hydra config at hand. Train and validation share one ``_step``.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from torch import nn

from spark_lightning.callbacks.time_budget import share_used
from spark_lightning.losses import float32_loss
from spark_lightning.data.formats import SPARK_CLASSES
from spark_lightning.metrics import BREAKDOWN, GroupedSparkScore, segmentation_metrics
from spark_lightning.optim import build_optimizer


class SegmentationModule(L.LightningModule):
    """Semantic segmentation into ``classes`` (SPARK: background / body / panel).

    Args:
        model: config of the network (``spark_lightning.models.build_model`` arguments).
        loss: config of the loss, called as ``loss(logits, target)``.
        optimizer: partial config of a torch optimizer (``params`` supplied here).
        scheduler: partial config of a schedule from ``spark_lightning.optim`` taking
            ``(optimizer, total_steps)``, or None for a constant learning rate.
        classes: class names, from the data set format.
        ignore_index: target value of unlabelled pixels (pseudo-labels), left out of metrics.
        num_classes, inference: read from checkpoints written before 0.2 (the training scale
            now lives with the data module's hyperparameters).
    """

    def __init__(
        self,
        model: dict[str, Any],
        loss: dict[str, Any],
        optimizer: dict[str, Any],
        scheduler: dict[str, Any] | None = None,
        classes: tuple[str, ...] | list[str] | None = None,
        ignore_index: int | None = None,
        num_classes: int | None = None,
        inference: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        classes = tuple(classes or SPARK_CLASSES[: num_classes or len(SPARK_CLASSES)])
        self.save_hyperparameters({"model": model, "loss": loss, "optimizer": optimizer, "scheduler": scheduler,
                                   "classes": list(classes), "ignore_index": ignore_index})
        del inference  # checkpoints of early versions saved predict settings here: accepted, unused
        self.net = instantiate(model, num_classes=len(classes))
        self.criterion = instantiate(loss)
        self.classes = classes
        self.train_metrics = segmentation_metrics(classes, ignore_index).clone(prefix="train/")
        # One metric collection (and breakdown by spacecraft type and object size, SPARK classes
        # only) per validation set, under its prefix: "val", then "val_<name>" for extra sets.
        self.val_names = ["val"]
        self.val_metrics = nn.ModuleDict({"val": self._val_metrics("val")})
        self.val_breakdowns = nn.ModuleDict(self._breakdown("val"))

    def _val_metrics(self, name: str):
        return segmentation_metrics(self.classes, self.hparams.ignore_index).clone(prefix=f"{name}/")

    def _breakdown(self, name: str) -> dict[str, GroupedSparkScore]:
        return {name: GroupedSparkScore(self.hparams.ignore_index)} if self.classes == SPARK_CLASSES else {}

    def setup(self, stage: str) -> None:
        """Metrics for each of the data module's validation sets, and their group ids (taken
        from the data, so the same on every process: DDP gathers them)."""
        datamodule = getattr(self.trainer, "datamodule", None)
        self.val_names = list(getattr(datamodule, "val_names", ["val"]))
        for name in self.val_names:
            if name not in self.val_metrics:
                self.val_metrics[name] = self._val_metrics(name)
                self.val_breakdowns.update(self._breakdown(name))
        for name, val_set in zip(self.val_names, getattr(datamodule, "val_sets", [])):
            if name in self.val_breakdowns:
                self.val_breakdowns[name].names = sorted({s.group for s in getattr(val_set, "samples", [])})

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 or float pixels (B, 3, H, W) in [0, 255] -> logits (B, C, H, W)."""
        return self.net(images)

    def _step(self, batch: dict[str, Any], stage: str) -> torch.Tensor:
        """``stage``: "train", or the prefix of the validation set the batch comes from."""
        images, target = batch["image"], batch["mask"].long()
        logits = self(images)
        loss = float32_loss(self.criterion, logits, target)
        train = stage == "train"
        self.log(f"{stage}/loss", loss, on_step=train, on_epoch=True, prog_bar=stage in ("train", "val"),
                 batch_size=images.shape[0], add_dataloader_idx=False)
        metrics = self.train_metrics if train else self.val_metrics[stage]
        preds = logits.detach().argmax(1)
        metrics.update(preds, target)
        if not train and stage in self.val_breakdowns and "group" in batch:
            self.val_breakdowns[stage].update(preds, target, list(batch["group"]))
        return loss

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> None:
        self._step(batch, self.val_names[dataloader_idx])

    def _log_metrics(self, metrics) -> None:
        self.log_dict(metrics.compute(), add_dataloader_idx=False)
        metrics.reset()

    def on_train_epoch_end(self) -> None:
        self._log_metrics(self.train_metrics)

    def on_validation_epoch_end(self) -> None:
        for name in self.val_names:
            self._log_metrics(self.val_metrics[name])
            breakdown = self.val_breakdowns[name] if name in self.val_breakdowns else None
            if breakdown is None:
                continue
            if not self.trainer.sanity_checking and breakdown.rows:
                for kind, table in breakdown.compute().items():
                    for key, row in table.items():
                        self.log_dict({f"{name}/by_{kind}/{key}/{m}": float(row[m]) for m in
                                       BREAKDOWN if row[m] == row[m]},  # not NaN
                                      add_dataloader_idx=False)
            breakdown.reset()

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = build_optimizer(self.hparams.optimizer, self.net)
        if not self.hparams.scheduler:
            return {"optimizer": optimizer}
        total = int(self.trainer.estimated_stepping_batches)
        per_epoch = max(1, total // max(1, self.trainer.max_epochs or 1))
        scheduler = instantiate(self.hparams.scheduler)(optimizer, total_steps=total, steps_per_epoch=per_epoch,
                                                        clock=lambda: share_used(self.trainer))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
