"""Hydra (not Lightning) callbacks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig


class CreateSweepDir(Callback):
    """Create the sweep directory before the sweeper starts.

    The Optuna sweeper opens its sqlite study (``<sweep dir>/optuna.db``, kept there so a rerun
    continues the search) before Hydra has created that directory.
    """

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        Path(config.hydra.sweep.dir).mkdir(parents=True, exist_ok=True)
