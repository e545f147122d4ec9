"""Stop a diverging run at once, with the step, instead of training on NaN for hours."""

from __future__ import annotations

import math

import lightning as L

from spark_lightning.errors import SparkError


class TrainingDiverged(SparkError):
    """The loss became NaN or infinite: the run (a sweep trial) fails, the sweep goes on."""


class NanGuard(L.Callback):
    """Fail the run when the training loss is not finite, looked at every ``check_every_n_steps``
    batches (each look waits for the GPU)."""

    def __init__(self, check_every_n_steps: int = 10) -> None:
        self.every = max(1, check_every_n_steps)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        if batch_idx % self.every:
            return
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        value = float(loss.detach()) if loss is not None else 0.0
        if not math.isfinite(value):
            lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else float("nan")
            raise TrainingDiverged(
                f"training loss became {value} at step {trainer.global_step} (epoch {trainer.current_epoch}, "
                f"batch {batch_idx}, lr {lr:.3g}): lower optimizer.lr, add trainer.gradient_clip_val=1.0, "
                "or train in 32-true / bf16-mixed."
            )
