"""Panels of image | truth | prediction during training, in every logger that shows pictures."""

from __future__ import annotations

import io

import lightning as L
import numpy as np
import torch

from spark_lightning.data.pictures import overlay


def _send(logger, tag: str, panels: list[np.ndarray], names: list[str], step: int) -> None:
    """One picture per panel: W&B images, TensorBoard images, MLflow artifacts (PNG)."""
    from lightning.pytorch.loggers import MLFlowLogger, TensorBoardLogger, WandbLogger

    if isinstance(logger, WandbLogger):
        logger.log_image(tag, panels, step=step, caption=names)
    elif isinstance(logger, TensorBoardLogger):
        for panel, name in zip(panels, names):
            logger.experiment.add_image(f"{tag}/{name}", panel, global_step=step, dataformats="HWC")
    elif isinstance(logger, MLFlowLogger):
        from PIL import Image

        for panel, name in zip(panels, names):
            buf = io.BytesIO()
            Image.fromarray(panel).save(buf, format="PNG")
            logger.experiment.log_image(logger.run_id, Image.open(buf), f"{tag}/step{step:06d}_{name}.png")


class Overlays(L.Callback):
    """Every N epochs, image | truth | prediction for the first validation images of each
    validation set (the same ones each time, so progress is visible), under ``<set>/overlays``,
    in W&B, TensorBoard and MLflow. No-op without such a logger."""

    def __init__(self, every_n_epochs: int = 5, num_images: int = 4) -> None:
        self.every_n_epochs, self.num_images = every_n_epochs, num_images

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        from lightning.pytorch.loggers import MLFlowLogger, TensorBoardLogger, WandbLogger

        loggers = [lg for lg in trainer.loggers if isinstance(lg, (WandbLogger, TensorBoardLogger, MLFlowLogger))]
        if batch_idx != 0 or trainer.sanity_checking or not loggers or trainer.current_epoch % self.every_n_epochs:
            return
        n = self.num_images
        with torch.no_grad():
            preds = pl_module(batch["image"][:n]).argmax(1).cpu().numpy()
        images = batch["image"][:n].permute(0, 2, 3, 1).cpu().numpy()
        truths = batch["mask"][:n].cpu().numpy()
        panels = [overlay(im, t, p, height=min(256, im.shape[0])) for im, t, p in zip(images, truths, preds)]
        name = getattr(pl_module, "val_names", ["val"])[dataloader_idx]
        for logger in loggers:
            _send(logger, f"{name}/overlays", panels, list(batch["name"][:n]), trainer.global_step)


