"""The training job's side of a search: its trial (from the sweeper's config), pruning from each
validation, and what it returns to the sweeper."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Any

import lightning as L
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


@dataclass
class TrialResult:
    """What a search job returns: its best value, and the epoch it was pruned at (if it was)."""

    value: float | None
    pruned_at: int | None = None


class TrialLink:
    """A job's handle on its Optuna trial: ``optuna.trial_id`` in the job's config (set by the
    sweeper), the study and pruner from the sweeper's config in the job's Hydra config."""

    def __init__(self, study: Any, trial_id: int, heartbeat: float) -> None:
        import optuna

        self.study, self.trial_id, self.heartbeat_interval = study, trial_id, heartbeat
        self.trial = optuna.trial.Trial(study, trial_id)
        self.pruned_at: int | None = None

    @classmethod
    def open(cls, cfg: DictConfig) -> TrialLink | None:
        trial_id = OmegaConf.select(cfg, "optuna.trial_id", default=None)
        if trial_id is None:
            return None
        import optuna
        from hydra.core.hydra_config import HydraConfig

        from spark_lightning.search.study import make_pruner, storage

        hydra_cfg = HydraConfig.get()
        sweeper = hydra_cfg.sweeper
        pruner = make_pruner(sweeper.get("pruner"))
        study = optuna.load_study(study_name=sweeper.study_name, storage=storage(sweeper.get("storage"), hydra_cfg.sweep.dir),
                                  pruner=pruner)
        return cls(study, int(trial_id), float(sweeper.get("heartbeat_interval", 30)))

    def alive(self):
        """Keep the trial's heartbeat fresh while the job runs."""
        from spark_lightning.search.study import Heartbeat

        return Heartbeat(self.study, [self.trial_id], self.heartbeat_interval)

    def callback(self, monitor: str) -> L.Callback:
        return OptunaPruning(self, monitor)

    def result(self, value: float | None) -> TrialResult:
        return TrialResult(value, self.pruned_at)


class OptunaPruning(L.Callback):
    """Report ``monitor`` to the trial after each validation (step = epoch, counted from 1) and
    stop the run after that epoch when the pruner says so: the job ends cleanly (checkpoints,
    metrics.json) and returns as pruned. Under DDP, rank 0 decides for every rank."""

    def __init__(self, link: TrialLink, monitor: str) -> None:
        self.link, self.monitor = link, monitor

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        value = trainer.callback_metrics.get(self.monitor)
        if trainer.sanity_checking or value is None:
            return
        epoch, prune = trainer.current_epoch + 1, False
        if trainer.is_global_zero:
            with contextlib.suppress(Exception):  # a NaN epoch is simply not reported
                self.link.trial.report(float(value), step=epoch)
            prune = self.link.trial.should_prune()
        if trainer.strategy.broadcast(prune, src=0):
            self.link.pruned_at = epoch
            trainer.should_stop = True
            log.info("trial %d pruned after epoch %d (%s %.4f): the pruner expects no better result",
                     self.link.trial.number, epoch, self.monitor, float(value))
