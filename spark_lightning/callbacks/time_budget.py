"""Whole epochs within ``trainer.max_time``, with the learning-rate schedule ending on time.

Lightning's own ``max_time`` stops a run in the middle of an epoch (which is then validated
and recorded as if whole), and a step-based schedule never reaches its final learning rate on
a slower machine. This callback takes the budget over: it measures the epochs (validation
included), plans how many whole epochs fit and sets the trainer's epoch limit to that (so the
progress bar and the log show the plan, and the run ends after a whole epoch), and tells the
schedule how far along the planned run it is; a revised plan spreads the rest of the schedule
over the steps it has left, so the schedule ends on the run's last step either way.

Its state (budget, time used, epoch times, plan) lives in the checkpoint: a resumed run plans
the *remaining* time and its schedule continues where it was. Under DDP, the plan is made on
rank 0 and broadcast, so every rank stops after the same epoch and follows the same schedule.
"""

from __future__ import annotations

import logging
import math
import time

import lightning as L
from lightning.pytorch.callbacks import Timer

log = logging.getLogger(__name__)


def find_callback(trainer: L.Trainer, kind: type) -> L.Callback | None:
    """The trainer's callback of this type."""
    return next((c for c in trainer.callbacks if isinstance(c, kind)), None)


def share_used(trainer: L.Trainer) -> float:
    """Share of the run done, for the learning-rate schedule: of the planned whole epochs
    (TimeBudget), else of Lightning's ``max_time``; 0 without a time limit."""
    budget = find_callback(trainer, TimeBudget)
    if budget is not None and budget.budget_s is not None:
        return budget.progress(trainer)
    timer = find_callback(trainer, Timer)
    if timer is None or timer.time_remaining("train") is None:
        return 0.0
    elapsed, remaining = timer.time_elapsed("train"), timer.time_remaining("train")
    return elapsed / max(1e-9, elapsed + remaining)


def parse_duration(value: str | float | int | None) -> float | None:
    """``trainer.max_time`` as seconds: "DD:HH:MM:SS" (Lightning's form), or a number of seconds."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        parts = str(value).strip().split(":")
        if len(parts) != 4 or not all(p.strip().isdigit() for p in parts):
            raise ValueError(value)
        days, hours, minutes, secs = (int(p) for p in parts)
        seconds = ((days * 24 + hours) * 60 + minutes) * 60 + secs
    if not seconds > 0:
        raise ValueError(value)
    return seconds


class TimeBudget(L.Callback):
    """Plan the run as the whole epochs that fit ``max_time`` (seconds or "DD:HH:MM:SS");
    no-op when it is None.

    Args:
        max_time: the budget; the trainer is built without Lightning's own ``max_time``.
        margin: share of the budget kept free (epoch times vary).
        probe_batches: after this many batches of the first epoch, estimate the epoch's length
            and say at once when a single epoch does not fit.
    """

    def __init__(self, max_time: str | float | None = None, margin: float = 0.02, probe_batches: int = 20) -> None:
        self.budget_s = parse_duration(max_time)
        self.margin, self.probe_batches = margin, probe_batches
        self.used_before = 0.0  # seconds spent by earlier attempts of this run (from the checkpoint)
        self.durations: list[float] = []  # whole epochs, validation included
        self.planned_epochs: int | None = None  # total epochs of the run (counted from its very start)
        self._done_share = 0.0  # the schedule never goes backwards
        self._anchor = (0.0, 0)  # (share, global step) where the current plan took the schedule over
        self._start: float | None = None  # this process's training start
        self._epoch_start = 0.0
        self._limit: int | None = None  # the user's max_epochs
        self.first_plan: tuple[int, float] | None = None  # (epochs, s per epoch) planned after the first epoch

    def used(self) -> float:
        return self.used_before + (time.monotonic() - self._start if self._start is not None else 0.0)

    def remaining(self) -> float | None:
        return None if self.budget_s is None else max(0.0, self.budget_s - self.used())

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.budget_s is None:
            return
        self._start = time.monotonic()
        self._limit = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else None
        if self.used_before:
            log.info("time budget %.1f min: %.1f min used before this resume, %.1f min left", self.budget_s / 60,
                     self.used_before / 60, self.remaining() / 60)
        if self.durations:  # resumed: plan the remaining time at once
            self._plan(trainer, trainer.current_epoch, self.epoch_estimate())

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epoch_start = time.monotonic()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int) -> None:
        """Early in the first epoch: estimate it, and plan from the estimate."""
        if self.budget_s is None or self.durations or self.planned_epochs is not None:
            return
        n = trainer.num_training_batches
        k = min(self.probe_batches, max(1, int(n) // 10)) if math.isfinite(n) else self.probe_batches
        if batch_idx + 1 != k:
            return
        estimate = (time.monotonic() - self._epoch_start) / k * n * 1.1  # + about a tenth for validation
        if estimate > self.budget_s * (1 - self.margin) - (self.used() - (time.monotonic() - self._epoch_start)):
            log.warning("time budget %.1f min: one epoch takes about %.1f min here (estimated from %d of %d batches), "
                        "more than the budget: this run will train this one whole epoch and stop (epochs are never "
                        "cut); lower data.size or the number of images, or raise trainer.max_time.",
                        self.budget_s / 60, estimate / 60, k, n)
        self._plan(trainer, trainer.current_epoch, estimate)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.budget_s is None:
            return
        self.durations.append(time.monotonic() - self._epoch_start)
        self._plan(trainer, trainer.current_epoch + 1, self.epoch_estimate())
        if self.first_plan is None:
            self.first_plan = (int(self.planned_epochs), self.durations[-1])

    def epoch_estimate(self) -> float:
        """Seconds per epoch to plan with: the machine's recent speed, the last epoch or, when
        it was faster than the one before, the mean of the two. A machine that got busy shows
        in the last epoch at once; one that got quiet again is believed after two epochs. A
        revised plan keeps the schedule continuous (``progress``), so following the speed costs
        nothing, and a whole epoch that still fits is never left unused."""
        recent = self.durations[-2:]
        return max(self.durations[-1], sum(recent) / len(recent))

    def _plan(self, trainer: L.Trainer, done: int, per_epoch: float) -> None:
        """Total epochs that fit (at least ``done``, at least one), decided on rank 0 and set as
        the trainer's epoch limit."""
        left = self.budget_s * (1 - self.margin) - self.used()
        if done == trainer.current_epoch and not self.durations:  # mid-way through the first epoch
            left += time.monotonic() - self._epoch_start
        planned = max(done, 1, done + int(max(0.0, left) // max(per_epoch, 1e-9)))
        if self._limit is not None:
            planned = min(planned, self._limit)
        planned = int(trainer.strategy.broadcast(planned, src=0))
        if planned != self.planned_epochs:
            log.info("time budget %.1f min: %.0f s per epoch -> %d epochs", self.budget_s / 60, per_epoch, planned)
            if self.planned_epochs is not None:  # a revised plan: the schedule goes on from where it is
                self._anchor = (self.progress(trainer), int(trainer.global_step))
        self.planned_epochs = planned
        trainer.fit_loop.max_epochs = planned  # the run ends after a whole epoch; the bar shows the plan

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.budget_s is None:
            return
        log.info("time budget %.1f min: stopped after epoch %d of %s planned, %.1f min used (rank %d)",
                 self.budget_s / 60, trainer.current_epoch, self.planned_epochs, self.used() / 60, trainer.global_rank)
        shortfall = self.shortfall(trainer.current_epoch)
        if shortfall and trainer.global_rank == 0:
            log.warning(shortfall)

    def shortfall(self, epochs: int) -> str | None:
        """One paragraph when the run trained far less than it first planned (the machine got
        busy or slow mid-way): the plan, what happened, and what to do. None otherwise."""
        if self.first_plan is None or not self.durations:
            return None
        planned, first_s = self.first_plan
        if epochs >= 0.6 * planned:
            return None
        slowest = max(self.durations)
        return (f"time budget {self.budget_s / 60:.1f} min: this run trained {epochs} epochs where its plan after "
                f"the first epoch was {planned}: epochs took up to {slowest:.0f} s against {first_s:.0f} s at first "
                f"({slowest / max(first_s, 1e-9):.1f}x slower; another job on this machine?). Its learning-rate "
                "schedule still ended on its final value, but the model got "
                f"{100 * epochs / planned:.0f} % of the training planned, so expect weaker results than this recipe "
                "reaches: train again on a quieter machine, or give it more time (trainer.max_time).")

    def progress(self, trainer: L.Trainer) -> float:
        """Share of the planned run done, from optimizer steps (the same on every rank). When the
        plan is revised (the epochs got slower or faster), the rest of the schedule is spread over
        the steps the new plan has left, so it is continuous and ends on its last step."""
        if not self.planned_epochs:
            return self._done_share
        per_epoch = max(1.0, trainer.num_training_batches / max(1, trainer.accumulate_grad_batches))
        if not math.isfinite(per_epoch):
            return self._done_share
        share0, step0 = self._anchor
        left = max(1.0, per_epoch * self.planned_epochs - step0)
        share = min(1.0, share0 + (1.0 - share0) * (trainer.global_step - step0) / left)
        self._done_share = max(self._done_share, share)
        return self._done_share

    def state_dict(self) -> dict:
        return {"budget_s": self.budget_s, "used": self.used(), "durations": list(self.durations),
                "planned_epochs": self.planned_epochs, "done_share": self._done_share, "anchor": list(self._anchor),
                "first_plan": list(self.first_plan) if self.first_plan else None}

    def load_state_dict(self, state_dict: dict) -> None:
        if state_dict.get("budget_s") is None or self.budget_s is None:
            return  # a budget is not carried into a run that has none (or the other way round)
        if state_dict["budget_s"] != self.budget_s:
            log.info("time budget changed from %.1f to %.1f min on resume", state_dict["budget_s"] / 60, self.budget_s / 60)
        self.used_before = float(state_dict.get("used", 0.0))
        self.durations = list(state_dict.get("durations", []))
        self.planned_epochs = state_dict.get("planned_epochs")
        self._done_share = float(state_dict.get("done_share", 0.0))
        share0, step0 = state_dict.get("anchor", (0.0, 0))
        self._anchor = (float(share0), int(step0))
        first = state_dict.get("first_plan")
        self.first_plan = (int(first[0]), float(first[1])) if first else None
