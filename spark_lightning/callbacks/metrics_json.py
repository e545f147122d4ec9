"""Every validation epoch's metrics in memory and in metrics.json; the best one by ``optimized_metric``."""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import torch

from spark_lightning.atomic import write_json_atomic
from spark_lightning.errors import ConfigError

def _floats(metrics: dict[str, torch.Tensor], prefix: str | tuple[str, ...]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if k.startswith(prefix) and torch.as_tensor(v).numel() == 1}


VAL_PREFIXES = ("val/", "val_")  # the main validation set, and extra ones (val_<name>/)


class MetricsJson(L.Callback):
    """Keep every validation epoch's metrics; write ``final`` and ``best`` to a JSON file.

    Rewritten after each validation epoch, so a killed run still leaves its numbers.
    """

    def __init__(self, path: str, monitor: str, mode: str = "max") -> None:
        if mode not in ("max", "min"):
            raise ConfigError(f"optimized_mode={mode!r}: use 'max' or 'min'.")
        self.path, self.monitor, self.mode = Path(path), monitor, mode
        self.history: list[dict[str, float]] = []

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        values = _floats(trainer.callback_metrics, (*VAL_PREFIXES, "cost/"))
        if self.monitor not in values:
            raise ConfigError(f"optimized_metric={self.monitor} is not logged; logged validation metrics: "
                              f"{', '.join(sorted(values))}.")
        values.update(epoch=trainer.current_epoch + 1, step=trainer.global_step)  # epochs count from 1
        self.history.append(values)
        if trainer.is_global_zero:
            self._write()

    @property
    def best(self) -> dict[str, float]:
        """The epoch with the best monitored value (NaN epochs never win)."""
        sign = 1 if self.mode == "max" else -1
        scored = [h for h in self.history if not math.isnan(h[self.monitor])]
        return max(scored, key=lambda h: sign * h[self.monitor]) if scored else self.history[-1]

    def _add_perf(self, trainer: L.Trainer) -> None:
        """Epoch-level ``perf/`` values are logged after validation, at the epoch's very end:
        attach them to their epoch when the next one starts (or training ends)."""
        perf = _floats(trainer.callback_metrics, "perf/")
        if self.history and perf and not any(k in self.history[-1] for k in perf):
            self.history[-1].update(perf)
            if trainer.is_global_zero:
                self._write()

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._add_perf(trainer)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._add_perf(trainer)

    def _write(self) -> None:
        write_json_atomic(self.path, {"monitor": self.monitor, "mode": self.mode, "final": self.history[-1],
                                      "best": self.best, "history": self.history, "first_epoch": 1})

    def state_dict(self) -> dict:
        return {"history": self.history}

    def load_state_dict(self, state_dict: dict) -> None:
        self.history = list(state_dict.get("history", []))
