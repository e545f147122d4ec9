"""W&B panels of image | truth | prediction during training."""

from __future__ import annotations

import lightning as L
import torch

class WandbOverlays(L.Callback):
    """Every N epochs, a W&B panel of image | truth | prediction for the first validation
    images (the same ones each time, so progress is visible). No-op without a W&B logger."""

    def __init__(self, every_n_epochs: int = 5, num_images: int = 4) -> None:
        self.every_n_epochs, self.num_images = every_n_epochs, num_images

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        from lightning.pytorch.loggers import WandbLogger

        loggers = [lg for lg in trainer.loggers if isinstance(lg, WandbLogger)]
        if batch_idx != 0 or trainer.sanity_checking or not loggers or trainer.current_epoch % self.every_n_epochs:
            return
        from spark_lightning.outputs import overlay

        n = self.num_images
        with torch.no_grad():
            preds = pl_module(batch["image"][:n]).argmax(1).cpu().numpy()
        images = batch["image"][:n].permute(0, 2, 3, 1).cpu().numpy()
        truths = batch["mask"][:n].cpu().numpy()
        panels = [overlay(im, t, p, height=min(256, im.shape[0])) for im, t, p in zip(images, truths, preds)]
        name = getattr(pl_module, "val_names", ["val"])[dataloader_idx]
        loggers[0].log_image(f"{name}/overlays", panels, step=trainer.global_step, caption=list(batch["name"][:n]))
