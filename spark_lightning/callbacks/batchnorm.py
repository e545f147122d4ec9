"""Precise BatchNorm statistics before each validation."""

from __future__ import annotations

import lightning as L
import torch

class PreciseBatchNorm(L.Callback):
    """Recompute BatchNorm running statistics on recent training batches before validating.

    Running averages lag behind weights that move fast (early epochs, peak learning rate), and
    SPARK-like images, dark with the odd bright Earth limb, make batch statistics swing; in
    eval mode the lagging statistics can turn a model that segments well in train mode into
    one that predicts foreground everywhere. Re-estimating them from the last ``num_batches``
    training inputs ("precise BN", Wu & Johnson 2021) costs a few forward passes per epoch and
    does not change training, which uses batch statistics.
    """

    def __init__(self, num_batches: int = 8) -> None:
        self.num_batches = num_batches
        self._recent: list[torch.Tensor] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.num_batches:
            self._recent.append(batch["image"].detach().to("cpu", non_blocking=True))
            del self._recent[: -self.num_batches]

    @torch.no_grad()
    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        norms = [m for m in pl_module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        if trainer.sanity_checking or not norms or not self._recent:
            return
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the batches below
            m.train()
        with trainer.precision_plugin.forward_context():
            for images in self._recent:
                pl_module(images.to(pl_module.device, non_blocking=True))
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
            m.eval()
