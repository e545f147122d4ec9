"""Checkpoints that survive kills: an atomic writer plugin and an always-fresh ``last.ckpt``."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from spark_lightning.atomic import write_with
from spark_lightning.errors import ConfigError

class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written to a temp file, fsync'ed and renamed over the old one.

    Lightning's own writer streams into the final path, so a kill while saving can leave a
    truncated ``last.ckpt``; with a rename the old checkpoint survives until the new one is whole.
    """

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        write_with(Path(path), lambda f: torch.save(checkpoint, f))


class LastCheckpoint(L.Callback):
    """``last.ckpt`` after every training epoch and, optionally, every N optimizer steps.

    What ``resume=auto`` continues from. Lightning's ``ModelCheckpoint(save_last=True)`` only
    refreshes last.ckpt when it also saved a top-k checkpoint at that step, so a run whose
    score stopped improving would resume from a stale epoch; this one always writes.
    """

    def __init__(self, dirpath: str, every_n_train_steps: int | None = None, filename: str = "last.ckpt") -> None:
        if every_n_train_steps is not None and every_n_train_steps < 1:
            raise ConfigError(f"every_n_train_steps={every_n_train_steps} must be >= 1 (or null).")
        self.path = Path(dirpath) / filename
        self.every_n_train_steps = every_n_train_steps
        self._saved_step = -1

    def _save(self, trainer: L.Trainer) -> None:
        if trainer.sanity_checking or trainer.global_step == self._saved_step:
            return
        trainer.save_checkpoint(self.path)
        self._saved_step = trainer.global_step

    def on_train_batch_end(self, trainer: L.Trainer, *args) -> None:
        n = self.every_n_train_steps
        if n and trainer.global_step % n == 0:
            self._save(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._saved_step = -1  # the end-of-epoch state differs from the mid-epoch one at the same step
        self._save(trainer)
