"""What each experiment logger gets beyond the per-step metrics (the same names in all of them):
the run's hyperparameters at the start and its best epoch's metrics at the end, so W&B's sweep
tables, TensorBoard's HParams view and MLflow's run comparison all line runs up by their best.
Loggers are configured in ``conf/logger/`` (``csv``, ``wandb``, ``tensorboard``, ``mlflow``,
or several: ``logger=[csv,tensorboard]`` / ``logger=many``)."""

from __future__ import annotations

import logging

import lightning as L
from lightning.pytorch.loggers import MLFlowLogger, TensorBoardLogger
from omegaconf import DictConfig

from spark_lightning import wandb_run
from spark_lightning.errors import ConfigError

log = logging.getLogger(__name__)
BEST = ("spark_score", "spark_body", "spark_panel", "iou", "iou_background", "iou_body", "iou_panel", "loss")


def log_hyperparams(trainer: L.Trainer, cfg: DictConfig) -> None:
    """The flattened config (``model.arch``, ``optimizer.lr``...) to every logger but
    TensorBoard, whose HParams entry is written once, with the results, at the end."""
    flat = wandb_run.flat_config(cfg)
    for logger in trainer.loggers:
        if not isinstance(logger, TensorBoardLogger):
            logger.log_hyperparams(flat)


def best_summary(best: dict[str, float], prefixes: list[str]) -> dict[str, float]:
    """``best/<set>/<metric>``: the best epoch's headline metrics of every validation set."""
    return {f"best/{p}/{k}": float(best[f"{p}/{k}"]) for p in prefixes for k in BEST if f"{p}/{k}" in best}


def log_best(trainer: L.Trainer, cfg: DictConfig, best: dict[str, float]) -> None:
    """The best epoch's metrics: TensorBoard's HParams (hyperparameters with the results) and
    MLflow's run metrics; W&B summaries already show best values (wandb_run)."""
    summary = best_summary(best, wandb_run.val_prefixes(cfg))
    if "epoch" in best:
        summary["best/epoch"] = float(best["epoch"])
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.log_hyperparams(wandb_run.flat_config(cfg), metrics=summary)
            logger.finalize("success")
        elif isinstance(logger, MLFlowLogger):
            logger.log_metrics(summary)


def _require(module: str, extra: str, logger: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise ConfigError(f"logger={logger} needs the {module} package, which is not installed: "
                          f"pip install -e '.[{extra}]' (or choose logger=csv / wandb).")


class TensorBoard(TensorBoardLogger):
    """Lightning's TensorBoard logger, with one clear line when TensorBoard is not installed."""

    def __init__(self, *args, **kwargs) -> None:
        import importlib.util

        if importlib.util.find_spec("tensorboard") is None and importlib.util.find_spec("tensorboardX") is None:
            _require("tensorboard", "tensorboard", "tensorboard")
        super().__init__(*args, **kwargs)


class MLflow(MLFlowLogger):
    """Lightning's MLflow logger on a local sqlite store by default (``outputs/mlflow/``), one
    clear line when MLflow is not installed."""

    def __init__(self, experiment_name: str | None = None, run_name: str | None = None,
                 tracking_uri: str | None = None, artifact_location: str | None = None, **kwargs) -> None:
        from pathlib import Path

        _require("mlflow", "mlflow", "mlflow")
        home = Path.cwd() / "outputs" / "mlflow"
        if tracking_uri is None:
            home.mkdir(parents=True, exist_ok=True)
            tracking_uri = f"sqlite:///{home / 'mlflow.db'}"
        super().__init__(experiment_name=experiment_name or "spark_lightning", run_name=run_name,
                         tracking_uri=tracking_uri, artifact_location=artifact_location or str(home / "artifacts"),
                         **kwargs)
