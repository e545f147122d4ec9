"""Callbacks of our own; everything else is a stock Lightning callback in conf/callbacks/."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import lightning as L
import torch


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
