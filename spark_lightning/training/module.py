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
from spark_lightning.data.formats import SPARK_CLASSES
from spark_lightning.data.spark import SPACECRAFT
from spark_lightning.errors import ConfigError
from spark_lightning.training.losses import float32_loss
from spark_lightning.scores.metrics import BREAKDOWN, CRAFT_BREAKDOWN, GroupedSparkScore, segmentation_metrics
from spark_lightning.training.optim import build_optimizer
from spark_lightning.scores import spark2026


def craft_names(head: dict[str, Any] | None) -> list[str] | None:
    """The spacecraft a classification head predicts: ``head.classes``, or the ten SPARK names;
    None without a head."""
    return list(head.get("classes") or SPACECRAFT) if head else None


class SegmentationModule(L.LightningModule):
    """Semantic segmentation into ``classes`` (SPARK: background / body / panel).

    Args:
        model: config of the network (``spark_lightning.models.build_model`` arguments).
        loss: config of the loss, called as ``loss(logits, target)``.
        optimizer: partial config of a torch optimizer (``params`` supplied here).
        scheduler: partial config of a schedule from ``spark_lightning.training.optim`` taking
            ``(optimizer, total_steps)``, or None for a constant learning rate.
        classes: class names, from the data set format.
        ignore_index: target value of unlabelled pixels (pseudo-labels), left out of metrics.
        head: SPARK 2026's classification head (``conf/head/classify.yaml``: ``weight`` of its loss,
            ``dropout``, ``box`` = how the box follows from the predicted mask), or None.
        crafts: the spacecraft classes the head predicts (default: the ten SPARK names).
        cost: ``cost`` config (input size, unit, normalisers) for the SPARK 2026 final score.
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
        head: dict[str, Any] | None = None,
        crafts: list[str] | None = None,
        cost: dict[str, Any] | None = None,
        num_classes: int | None = None,
        inference: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        classes = tuple(classes or SPARK_CLASSES[: num_classes or len(SPARK_CLASSES)])
        crafts = list(crafts or craft_names(head)) if head else None
        self.save_hyperparameters({"model": model, "loss": loss, "optimizer": optimizer, "scheduler": scheduler,
                                   "classes": list(classes), "ignore_index": ignore_index, "head": head,
                                   "crafts": crafts, "cost": cost})
        del inference  # checkpoints of early versions saved predict settings here: accepted, unused
        extra = {"craft_classes": len(crafts), "head_dropout": head.get("dropout", 0.2)} if head else {}
        self.net = instantiate(model, num_classes=len(classes), **extra)
        self.criterion = instantiate(loss)
        self.classes = classes
        self.craft_ids = {name: i for i, name in enumerate(crafts or [])}
        self.craft_metrics = nn.ModuleDict({"val": spark2026.CraftScore()} if head else {})
        self.network_cost: dict[str, Any] | None = None
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
                if self.hparams.head:
                    self.craft_metrics[name] = spark2026.CraftScore()
        for name, val_set in zip(self.val_names, getattr(datamodule, "val_sets", [])):
            if name in self.val_breakdowns:
                self.val_breakdowns[name].names = sorted({s.group for s in getattr(val_set, "samples", [])})
        train_set = getattr(datamodule, "train_set", None)
        sets = [*getattr(train_set, "datasets", [train_set] if train_set is not None else []),
                *getattr(datamodule, "val_sets", [])]
        if self.hparams.head:  # every spacecraft folder must be a class the head knows, said up front
            self._check_crafts({s.group for d in sets for s in getattr(d, "samples", [])})
        self.network_cost = self.network_cost or spark2026.module_cost(self.net, self.hparams.cost)

    def _check_crafts(self, groups: set[str] | list[str]) -> None:
        unknown = sorted(set(groups) - set(self.craft_ids))
        if unknown:
            raise ConfigError(f"head=classify: spacecraft folder(s) {unknown} are not among the head's classes "
                              f"{list(self.craft_ids)}; set head.classes=[...] to the spacecraft of your data.")

    def _craft_targets(self, groups: list[str]) -> torch.Tensor:
        self._check_crafts(groups)
        return torch.tensor([self.craft_ids[g] for g in groups], device=self.device)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 or float pixels (B, 3, H, W) in [0, 255] -> logits (B, C, H, W)."""
        return self.net(images)

    def _step(self, batch: dict[str, Any], stage: str) -> torch.Tensor:
        """``stage``: "train", or the prefix of the validation set the batch comes from."""
        images, target = batch["image"], batch["mask"].long()
        logits, craft_logits = self.net.forward_both(images) if self.hparams.head else (self(images), None)
        loss = float32_loss(self.criterion, logits, target)
        train, n = stage == "train", images.shape[0]
        if craft_logits is not None:
            crafts = self._craft_targets(list(batch["group"]))
            craft_loss = torch.nn.functional.cross_entropy(craft_logits.float(), crafts)
            self.log(f"{stage}/loss_cls", craft_loss, on_epoch=True, batch_size=n, add_dataloader_idx=False)
            loss = loss + float(self.hparams.head.get("weight", 1.0)) * craft_loss
        self.log(f"{stage}/loss", loss, on_step=train, on_epoch=True, prog_bar=stage in ("train", "val"),
                 batch_size=n, add_dataloader_idx=False)
        metrics = self.train_metrics if train else self.val_metrics[stage]
        preds = logits.detach().argmax(1)
        metrics.update(preds, target)
        if train:
            return loss
        craft = self._craft_update(stage, preds, target, craft_logits, crafts) if craft_logits is not None else {}
        if stage in self.val_breakdowns and "group" in batch:
            self.val_breakdowns[stage].update(preds, target, list(batch["group"]), **craft)
        return loss

    def _craft_update(self, stage: str, preds: torch.Tensor, target: torch.Tensor, craft_logits: torch.Tensor,
                      crafts: torch.Tensor) -> dict[str, torch.Tensor]:
        """Class hits and box IoUs (box from the predicted mask, class right) of a validation batch."""
        predicted = craft_logits.detach().argmax(1)  # boxes leave the ignore label out (data/boxes.py)
        box_iou = spark2026.batch_box_ious(preds, target, predicted, crafts, self.hparams.head.get("box", "union"))
        correct = (predicted == crafts).double()
        self.craft_metrics[stage].update(correct, box_iou)
        return {"correct": correct, "box_iou": box_iou}

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> None:
        self._step(batch, self.val_names[dataloader_idx])

    def _log_metrics(self, metrics, name: str | None = None) -> None:
        values = metrics.compute()
        metrics.reset()
        if name in self.craft_metrics:  # SPARK 2026: classification, detection, accuracy and final
            craft = self.craft_metrics[name]
            values.update({f"{name}/{k}": v for k, v in spark2026.epoch_scores(
                craft.compute(), values.get(f"{name}/spark_score"), self.network_cost, self.hparams.cost).items()})
            craft.reset()
        self.log_dict(values, add_dataloader_idx=False)

    def on_train_epoch_end(self) -> None:
        self._log_metrics(self.train_metrics)

    def on_validation_epoch_end(self) -> None:
        if self.network_cost:
            self.log_dict({"cost/params": float(self.network_cost["params"]),
                           "cost/gflops": float(self.network_cost["gflops"])}, add_dataloader_idx=False)
        for name in self.val_names:
            self._log_metrics(self.val_metrics[name], name)
            breakdown = self.val_breakdowns[name] if name in self.val_breakdowns else None
            if breakdown is None:
                continue
            if not self.trainer.sanity_checking and breakdown.rows:
                for kind, table in breakdown.compute().items():
                    for key, row in table.items():
                        self.log_dict({f"{name}/by_{kind}/{key}/{m}": float(row[m]) for m in
                                       (*BREAKDOWN, *CRAFT_BREAKDOWN) if row.get(m, float("nan")) == row.get(m)},  # there, not NaN
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
