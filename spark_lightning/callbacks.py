"""Callbacks and plugins of our own; everything else is stock Lightning, configured in conf/."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO


def write_json_atomic(path: str | Path, data: object) -> None:
    """Write JSON to a temp file and rename it, so readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def _floats(metrics: dict[str, torch.Tensor], prefix: str) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if k.startswith(prefix) and torch.as_tensor(v).numel() == 1}


class MetricsJson(L.Callback):
    """Keep every validation epoch's metrics; write ``final`` and ``best`` to a JSON file.

    Rewritten after each validation epoch, so a killed run still leaves its numbers.
    """

    def __init__(self, path: str, monitor: str = "val/spark_score", mode: str = "max") -> None:
        if mode not in ("max", "min"):
            raise ValueError(f"MetricsJson mode={mode!r}: use 'max' or 'min'.")
        self.path, self.monitor, self.mode = Path(path), monitor, mode
        self.history: list[dict[str, float]] = []

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        values = _floats(trainer.callback_metrics, "val/")
        if self.monitor not in values:
            return
        values.update(epoch=trainer.current_epoch, step=trainer.global_step)
        self.history.append(values)
        sign = 1 if self.mode == "max" else -1
        scored = [h for h in self.history if not math.isnan(h[self.monitor])]
        best = max(scored, key=lambda h: sign * h[self.monitor]) if scored else values
        write_json_atomic(self.path, {"monitor": self.monitor, "final": values, "best": best, "history": self.history})

    def state_dict(self) -> dict:
        return {"history": self.history}

    def load_state_dict(self, state_dict: dict) -> None:
        self.history = list(state_dict.get("history", []))


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written to a temp file, fsync'ed and renamed over the old one.

    Lightning's own writer streams into the final path, so a kill while saving can leave a
    truncated ``last.ckpt``; with a rename the old checkpoint survives until the new one is whole.
    """

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


class LastCheckpoint(L.Callback):
    """``last.ckpt`` after every training epoch and, optionally, every N optimizer steps.

    What ``resume=auto`` continues from. Lightning's ``ModelCheckpoint(save_last=True)`` only
    refreshes last.ckpt when it also saved a top-k checkpoint at that step, so a run whose
    score stopped improving would resume from a stale epoch; this one always writes.
    """

    def __init__(self, dirpath: str, every_n_train_steps: int | None = None, filename: str = "last.ckpt") -> None:
        if every_n_train_steps is not None and every_n_train_steps < 1:
            raise ValueError(f"every_n_train_steps={every_n_train_steps} must be >= 1 (or null).")
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
