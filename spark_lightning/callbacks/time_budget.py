"""Whole epochs within ``trainer.max_time``, with the learning-rate schedule ending on time.

Lightning's ``max_time`` stops a run in the middle of an epoch, which is then never validated,
and a step-based schedule never reaches its final learning rate on a slower machine. This
callback measures the epochs (validation included), plans the last one that fits the budget,
stops after it, and tells the schedule how far along the planned run is.
"""

from __future__ import annotations

import logging
import time

import lightning as L
from lightning.pytorch.callbacks import Timer

log = logging.getLogger(__name__)


def find_callback(trainer: L.Trainer, kind: type) -> L.Callback | None:
    """The trainer's callback of this type (Lightning adds a ``Timer`` when ``max_time`` is set)."""
    return next((c for c in trainer.callbacks if isinstance(c, kind)), None)


def share_used(trainer: L.Trainer) -> float:
    """Share of the time budget used so far, for the learning-rate schedule: of the planned whole
    epochs (TimeBudget), else of ``trainer.max_time``; 0 without a time limit."""
    budget = find_callback(trainer, TimeBudget)
    if budget is not None and (progress := budget.progress()) is not None:
        return progress
    timer = find_callback(trainer, Timer)
    if timer is None or timer.time_remaining("train") is None:
        return 0.0
    elapsed, remaining = timer.time_elapsed("train"), timer.time_remaining("train")
    return elapsed / max(1e-9, elapsed + remaining)


class TimeBudget(L.Callback):
    """Plan the run as the whole epochs that fit ``trainer.max_time``; no-op without it."""

    def __init__(self, margin: float = 0.02) -> None:
        self.margin = margin
        self._start = self._epoch_start = 0.0
        self._durations: list[float] = []
        self.planned_epochs: int | None = None

    @staticmethod
    def _budget(trainer: L.Trainer) -> float | None:
        timer = find_callback(trainer, Timer)
        if timer is None or timer.time_remaining("train") is None:
            return None
        return timer.time_elapsed("train") + timer.time_remaining("train")

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start, self._first_epoch = time.monotonic(), trainer.current_epoch

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epoch_start = time.monotonic()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        budget = self._budget(trainer)
        if budget is None:
            return
        self._durations.append(time.monotonic() - self._epoch_start)
        per_epoch, done = self._per_epoch(), len(self._durations)
        fit = max(done, int((budget * (1 - self.margin)) / per_epoch))
        if trainer.max_epochs and trainer.max_epochs > 0:
            fit = min(fit, trainer.max_epochs - self._first_epoch)
        if fit != self.planned_epochs:
            log.info("time budget %.1f min: %.0f s per epoch -> %d epochs", budget / 60, per_epoch, fit)
        self.planned_epochs = fit
        if done >= fit:
            trainer.should_stop = True  # after this epoch's validation, not in the middle of the next one

    def _per_epoch(self) -> float:
        return sum(self._durations) / len(self._durations)

    def progress(self) -> float | None:
        """Share of the planned run done (by time), for the learning-rate schedule."""
        if not self.planned_epochs or not self._durations:
            return None
        return min(1.0, (time.monotonic() - self._start) / (self._per_epoch() * self.planned_epochs))
