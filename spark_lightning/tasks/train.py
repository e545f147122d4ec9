"""``python -m spark_lightning.train``: resolve the run's plan, build from it, fit."""

from __future__ import annotations

import contextlib
import inspect
import logging
from pathlib import Path
from typing import Any

import lightning as L
import torch
from omegaconf import DictConfig

from spark_lightning.atomic import clean_stale_temps
from spark_lightning.run.builders import build_datamodule, build_module, build_trainer
from spark_lightning.callbacks import MetricsJson
from spark_lightning.checkpoints import load_weights
from spark_lightning.errors import ConfigError
from spark_lightning.tracking import log_best, log_hyperparams
from spark_lightning.run.plan import resolve_train
from spark_lightning.run.run_dir import clear_markers, run_dir_lock
from spark_lightning.run.runtime import task_wrapper
from spark_lightning.search.trial import TrialLink

log = logging.getLogger(__name__)


def _best_metrics(trainer: L.Trainer, cfg: DictConfig) -> dict[str, float]:
    """The best epoch's metrics (from the MetricsJson callback, in memory); the optimised metric
    must be among them, or a sweeper would optimise nothing."""
    callback = next((c for c in trainer.callbacks if isinstance(c, MetricsJson)), None)
    final = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
    best = callback.best if callback is not None and callback.history else final
    name = cfg.get("optimized_metric")
    validated = sum(trainer.num_val_batches or [0]) > 0
    if name and name not in best and validated:
        logged = sorted(k for k in best if k.startswith("val/"))
        raise ConfigError(f"optimized_metric={name} was never logged; logged metrics: {', '.join(logged)}.")
    return best


@task_wrapper
def run_train(cfg: DictConfig) -> dict[str, Any]:
    """Train and validate; return ``{"metrics": best-epoch metrics, "trainer", "module", ...,
    "value"}`` (``value``: what sweepers get, the best ``optimized_metric``)."""
    output_dir = Path(cfg.paths.output_dir)
    with run_dir_lock(output_dir):
        plan = resolve_train(cfg)
        clear_markers(output_dir)  # this training continues or replaces whatever ran here before
        for folder in (output_dir, output_dir / "checkpoints"):  # temps of a run killed mid-save
            for stale in clean_stale_temps(folder):
                log.info("removed %s, left by a run killed while saving", stale)
        trial = TrialLink.open(plan)  # None unless an Optuna search launched this job
        with trial.alive() if trial else contextlib.nullcontext():
            result = _fit(plan, [trial.callback(plan.optimized_metric)] if trial else [])
    best, trainer = result["metrics"], result["trainer"]
    value = best.get(plan.get("optimized_metric"))
    log_best(trainer, plan, best)
    if trial is not None and trial.pruned_at is not None:
        (output_dir / "PRUNED").write_text(f"pruned after epoch {trial.pruned_at}\n")
    log.info("best %s: %s (run dir %s)", plan.get("optimized_metric"), value, output_dir)
    return {**result, "plan": plan, "value": trial.result(value) if trial else value}


def _fit(plan: DictConfig, callbacks: list) -> dict[str, Any]:
    if plan.get("seed") is not None:
        L.seed_everything(plan.seed, workers=True)
    datamodule = build_datamodule(plan)
    module = build_module(plan, datamodule.classes)
    if plan.get("init_from") and plan.get("ckpt_path") is None:  # fine-tune: weights only, a fresh optimizer
        load_weights(module.net, plan.init_from, plan.get("init_from_strict", True))
    side = plan.data.get("crop") or plan.data.get("size")
    if side:  # the model summary then counts real FLOPs at the training size
        module.example_input_array = torch.zeros(1, 3, side, side, dtype=torch.uint8)
    trainer = build_trainer(plan, callbacks=callbacks)
    log_hyperparams(trainer, plan)
    # The plan opened ckpt_path as data only (checkpoints.read_checkpoint); Lightning opens it so too.
    safe = {"weights_only": True} if "weights_only" in inspect.signature(trainer.fit).parameters else {}
    trainer.fit(module, datamodule=datamodule, ckpt_path=plan.get("ckpt_path"), **safe)
    best = _best_metrics(trainer, plan)
    final = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
    return {"metrics": best, "final": final, "trainer": trainer, "module": module, "datamodule": datamodule}
