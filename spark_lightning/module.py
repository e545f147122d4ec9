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

from spark_lightning.callbacks.time_budget import share_used
from spark_lightning.losses import float32_loss
from spark_lightning.metrics import SPARK_CLASSES, GroupedSparkScore, segmentation_metrics
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
        self.legacy_inference = inference
        self.net = instantiate(model, num_classes=len(classes))
        self.criterion = instantiate(loss)
        metrics = segmentation_metrics(classes, ignore_index)
        self.train_metrics = metrics.clone(prefix="train/")
        self.val_metrics = metrics.clone(prefix="val/")
        # Validation broken down by spacecraft type and object size (SPARK classes only).
        self.val_breakdown = GroupedSparkScore(ignore_index) if classes == SPARK_CLASSES else None

    def setup(self, stage: str) -> None:
        """Group ids from the validation data, the same on every process (DDP gathers them)."""
        val_set = getattr(getattr(self.trainer, "datamodule", None), "val_set", None)
        if self.val_breakdown is not None and val_set is not None:
            self.val_breakdown.names = sorted({s.group for s in getattr(val_set, "samples", [])})

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 or float pixels (B, 3, H, W) in [0, 255] -> logits (B, C, H, W)."""
        return self.net(images)

    def _step(self, batch: dict[str, Any], stage: str) -> torch.Tensor:
        images, target = batch["image"], batch["mask"].long()
        logits = self(images)
        loss = float32_loss(self.criterion, logits, target)
        train = stage == "train"
        self.log(f"{stage}/loss", loss, on_step=train, on_epoch=True, prog_bar=True, batch_size=images.shape[0])
        metrics = self.train_metrics if train else self.val_metrics
        preds = logits.detach().argmax(1)
        metrics.update(preds, target)
        if not train and self.val_breakdown is not None and "group" in batch:
            self.val_breakdown.update(preds, target, list(batch["group"]))
        return loss

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._step(batch, "val")

    def _log_metrics(self, metrics) -> None:
        self.log_dict(metrics.compute())
        metrics.reset()

    def on_train_epoch_end(self) -> None:
        self._log_metrics(self.train_metrics)

    def on_validation_epoch_end(self) -> None:
        self._log_metrics(self.val_metrics)
        if self.val_breakdown is None:
            return
        if not self.trainer.sanity_checking and self.val_breakdown.rows:
            for kind, table in self.val_breakdown.compute().items():
                for key, row in table.items():
                    self.log_dict({f"val/by_{kind}/{key}/{name}": float(row[name]) for name in
                                   ("spark_score", "iou_body", "iou_panel") if row[name] == row[name]})  # not NaN
        self.val_breakdown.reset()

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = build_optimizer(self.hparams.optimizer, self.net)
        if not self.hparams.scheduler:
            return {"optimizer": optimizer}
        total = int(self.trainer.estimated_stepping_batches)
        per_epoch = max(1, total // max(1, self.trainer.max_epochs or 1))
        scheduler = instantiate(self.hparams.scheduler)(optimizer, total_steps=total, steps_per_epoch=per_epoch,
                                                        clock=lambda: share_used(self.trainer))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
