"""What a run reports about itself: speed and memory per epoch, and one log line per epoch."""

from __future__ import annotations

import logging
import time
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import RichProgressBar

from spark_lightning.callbacks.time_budget import TimeBudget, find_callback

log = logging.getLogger(__name__)


def _peak_memory_gib(device: torch.device) -> float:
    """Peak allocated GPU memory, or on CPU the process's peak resident set size."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 1024**3
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB on Linux


class PerfMonitor(L.Callback):
    """Log speed and memory once per epoch: ``perf/img_per_s`` (training images per second,
    validation time excluded) and ``perf/peak_mem_gib`` (GPU memory on CUDA, peak RSS on CPU).
    Host clocks only, one sync per epoch: no per-step cost."""

    def __init__(self) -> None:
        self._images = 0
        self._start = self._val_time = self._val_start = 0.0

    def _sync(self, pl_module: L.LightningModule) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._sync(pl_module)
        self._images, self._val_time, self._start = 0, 0.0, time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._images += batch["image"].shape[0]

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._val_start = time.perf_counter()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._val_time += time.perf_counter() - self._val_start

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._sync(pl_module)
        elapsed = time.perf_counter() - self._start - self._val_time
        if self._images and elapsed > 0:
            pl_module.log("perf/img_per_s", self._images * trainer.world_size / elapsed)
            pl_module.log("perf/peak_mem_gib", _peak_memory_gib(pl_module.device))


class EpochSummary(L.Callback):
    """One log line per epoch (train loss, validation metrics, img/s, ETA) whatever the terminal.

    Runs in the background have no TTY: the rich progress bar then leaves nothing in
    ``train.log`` for an hour. Epoch-end values are complete only once the epoch has ended, so
    the line is written when the next epoch starts, or when training ends.
    """

    KEYS = ("val/spark_score", "val/iou", "val/iou_body", "val/iou_panel", "val/loss")

    def __init__(self) -> None:
        self._start, self._first_epoch, self._pending = 0.0, 0, None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start, self._first_epoch = time.monotonic(), trainer.current_epoch

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._pending = trainer.current_epoch

    @staticmethod
    def _planned_epochs(trainer: L.Trainer) -> int | None:
        """The run's last epoch number: max_epochs, which a time budget sets to its plan."""
        return trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else None

    def _report(self, trainer: L.Trainer) -> None:
        epoch, self._pending = self._pending, None
        if epoch is None:
            return
        metrics = trainer.callback_metrics
        total = self._planned_epochs(trainer)
        parts = [f"epoch {epoch + 1}/{total or '?'}"]
        if "train/loss_epoch" in metrics:
            parts.append(f"train/loss {float(metrics['train/loss_epoch']):.4f}")
        parts += [f"{k} {float(metrics[k]):.4f}" for k in self.KEYS if k in metrics]
        for name in getattr(trainer.lightning_module, "val_names", ["val"])[1:]:  # extra validation sets
            parts += [f"{name}/{k} {float(metrics[f'{name}/{k}']):.4f}" for k in ("spark_score", "iou")
                      if f"{name}/{k}" in metrics]
        if "perf/img_per_s" in metrics:
            parts.append(f"{float(metrics['perf/img_per_s']):.1f} img/s")
        done, left = epoch + 1 - self._first_epoch, 0 if trainer.should_stop else (total or 0) - epoch - 1
        eta = (time.monotonic() - self._start) / done * left if done > 0 and left > 0 else None
        budget = find_callback(trainer, TimeBudget)
        if eta is not None and budget is not None and budget.remaining() is not None:
            eta = min(eta, budget.remaining())
        if eta and eta > 0:
            parts.append(f"ETA {eta / 60:.1f} min")
        log.info(" | ".join(parts))

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._report(trainer)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._report(trainer)


class ProgressBar(RichProgressBar):
    """Lightning's rich progress bar, counting epochs as the log and checkpoints do: from 1, out
    of the planned number ("Epoch 3/31", not "Epoch 2/999" under a time budget)."""

    def _get_train_description(self, current_epoch: int) -> str:
        total = self.trainer.max_epochs
        text = f"Epoch {current_epoch + 1}" + (f"/{total}" if total and total > 0 else "")
        return f"{text:{len(self.validation_description)}}" if len(self.validation_description) > len(text) else text

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        """The time budget plans its epochs after the first batches: show the plan from then
        on, not the placeholder limit for the rest of the first epoch."""
        super().on_train_batch_end(trainer, *args, **kwargs)
        if self.progress is not None and self.train_progress_bar_id is not None:
            description = self._get_train_description(trainer.current_epoch)
            if self.progress.tasks[self.train_progress_bar_id].description != description:
                self.progress.update(self.train_progress_bar_id, description=description)
