"""Checkpoints that survive kills and never carry a diverged network: an atomic writer plugin,
an always-fresh ``last.ckpt``, and the best checkpoint with a stable ``best.ckpt`` beside it."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

from spark_lightning.atomic import temp_name, write_with
from spark_lightning.errors import ConfigError

log = logging.getLogger(__name__)
BEST = "best.ckpt"


def finite_weights(module: torch.nn.Module) -> bool:
    """Whether every parameter is finite (a diverged run's are NaN or inf)."""
    return all(bool(torch.isfinite(p).all()) for p in module.parameters())


def _refuse_non_finite(trainer: L.Trainer, what: str) -> bool:
    if finite_weights(trainer.lightning_module):
        return False
    log.warning("not saving %s at epoch %d: the weights hold NaN or inf (the run diverged)", what,
                trainer.current_epoch + 1)
    return True

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
        if trainer.sanity_checking or trainer.global_step == self._saved_step or _refuse_non_finite(trainer, self.path.name):
            return
        trainer.save_checkpoint(self.path, weights_only=False)  # the whole state: resume needs it
        self._saved_step = trainer.global_step

    def on_train_batch_end(self, trainer: L.Trainer, *args) -> None:
        n = self.every_n_train_steps
        if n and trainer.global_step % n == 0:
            self._save(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._saved_step = -1  # the end-of-epoch state differs from the mid-epoch one at the same step
        self._save(trainer)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        """SIGTERM (a scheduler's preemption or time limit): save where the run is, so resume=auto
        continues from here rather than from the last epoch's end."""
        from lightning.pytorch.utilities.exceptions import SIGTERMException

        if isinstance(exception, SIGTERMException) and trainer.global_step > 0:
            self._saved_step = -1
            self._save(trainer)


class BestCheckpoint(ModelCheckpoint):
    """Lightning's ModelCheckpoint, plus: a stable ``best.ckpt`` (a hard link to the current
    best file, so scripts need not know its score-bearing name), epochs counted from 1 in file
    names (as in the log, the progress bar and metrics.json), and never a checkpoint of
    non-finite weights."""

    def _should_skip_saving_checkpoint(self, trainer: L.Trainer) -> bool:
        return super()._should_skip_saving_checkpoint(trainer) or _refuse_non_finite(trainer, "a best checkpoint")

    def _monitor_candidates(self, trainer: L.Trainer) -> dict[str, torch.Tensor]:
        candidates = super()._monitor_candidates(trainer)
        candidates["epoch"] = candidates["epoch"] + 1
        return candidates

    def _save_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        super()._save_checkpoint(trainer, filepath)
        if filepath == self.best_model_path and trainer.is_global_zero:
            link_best(Path(filepath))


def link_best(path: Path) -> Path:
    """``best.ckpt`` beside ``path``, replaced atomically (a copy where hard links fail)."""
    best = path.with_name(BEST)
    tmp = temp_name(best)
    try:
        tmp.unlink(missing_ok=True)
        os.link(path, tmp)
        os.replace(tmp, best)
    except OSError:
        tmp.unlink(missing_ok=True)
        write_with(best, lambda f: f.write(path.read_bytes()))
    return best
