"""Tracking: every experiment logger and what it gets beyond the per-step metrics (the same
names in all of them). The W&B run of one job (name/group/tags, start or fall back to CSV,
resume, best-value summaries, finish); TensorBoard's HParams entry and MLflow's best metrics;
the run's hyperparameters at the start and its best epoch's metrics at the end, so W&B's sweep
tables, TensorBoard's HParams view and MLflow's run comparison all line runs up by their best.
Loggers are configured in ``conf/logger/`` (``csv``, ``wandb``, ``tensorboard``, ``mlflow``, or
several: ``logger=[csv,tensorboard]`` / ``logger=many``). Nothing here imports wandb at module
level: runs with ``logger=csv`` never load it.
"""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path
from typing import Any

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.loggers import MLFlowLogger, TensorBoardLogger
from lightning.pytorch.loggers import WandbLogger as LightningWandbLogger
from omegaconf import DictConfig, OmegaConf, open_dict

from spark_lightning.errors import ConfigError
from spark_lightning.scores.metrics import HEADLINE

log = logging.getLogger(__name__)


def job_identity(overrides: list[str], exclude_keys: list[str]) -> list[str]:
    """The overrides that tell a job apart (W&B tags, the report's labels): without the keys
    ``hydra.job.config.override_dirname.exclude_keys`` names (paths, trial ids: conf/hydra/,
    the one list, also what keeps them out of folder names) and without Hydra's own settings.
    The experiment and search chosen still name a job: they stay out of folder names only
    because the sweep's folder already holds them."""
    keys = set(exclude_keys) - {"experiment", "hparams_search"}
    identity = []
    for override in overrides:
        key = override.lstrip("+~").split("=", 1)[0]
        if key not in keys and not key.startswith("hydra."):
            identity.append(override)
    return identity


def hydra_job() -> tuple[list[str], str | None]:
    """(the overrides that tell this job apart, the sweep's name when running under --multirun)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return [], None
    hc = HydraConfig.get()
    sweep = Path(hc.sweep.dir).name if hc.mode == RunMode.MULTIRUN else None
    return job_identity(list(hc.overrides.task), list(hc.job.config.override_dirname.exclude_keys)), sweep


def configure(cfg: DictConfig) -> None:
    """One W&B run per job: group = the sweep, tags = the overrides, name = the run directory;
    likewise one MLflow run per job in the sweep's experiment."""
    overrides, sweep = hydra_job()
    mlflow_cfg = (cfg.get("logger") or {}).get("mlflow")
    if mlflow_cfg is not None:
        with open_dict(cfg):
            mlflow_cfg.experiment_name = mlflow_cfg.get("experiment_name") or sweep or "spark_lightning"
            mlflow_cfg.run_name = mlflow_cfg.get("run_name") or Path(cfg.paths.output_dir).name
    wandb_cfg = (cfg.get("logger") or {}).get("wandb")
    if wandb_cfg is None:
        return
    with open_dict(cfg):
        if not wandb_cfg.get("group"):
            wandb_cfg.group = sweep
        if not wandb_cfg.get("tags"):
            wandb_cfg.tags = [o[:64] for o in overrides]
        if not wandb_cfg.get("name"):
            wandb_cfg.name = Path(cfg.paths.output_dir).name


RUN_DIR = re.compile(r"(?:offline-)?run-\d{8}_\d{6}-([a-z0-9]+)(?:-\d+)?$")


def run_ids(folder: Path) -> list[str]:
    """W&B run ids of the run folders in ``folder`` (oldest first); W&B adds ``-1`` to a folder
    name already taken (a resume within the same second)."""
    return [m.group(1) for p in sorted(folder.glob("*run-*")) if (m := RUN_DIR.match(p.name))]


def continue_run(cfg: DictConfig, output_dir: Path) -> None:
    """When resuming, log into the run directory's previous W&B run instead of a new one."""
    ids = run_ids(output_dir / "wandb")
    wandb_cfg = (cfg.get("logger") or {}).get("wandb")
    if ids and wandb_cfg is not None and wandb_cfg.get("id") is None:
        with open_dict(cfg):
            wandb_cfg.id = ids[-1]
            wandb_cfg.resume = "allow"
        log.info("continuing W&B run %s", wandb_cfg.id)


def _summarise_best(experiment: Any, monitor: str | None, mode: str, prefixes: list[str]) -> None:
    """Run summaries show the best value of the validation metrics (of every validation set),
    not the last one."""
    summary = "max" if mode == "max" else "min"
    for prefix in prefixes:
        for key in HEADLINE:
            experiment.define_metric(f"{prefix}/{key}", summary=summary)
        experiment.define_metric(f"{prefix}/loss", summary="min")
    if monitor:
        experiment.define_metric(monitor, summary=summary)


class WandbLogger(LightningWandbLogger):
    """Lightning's W&B logger without its ``anonymous`` argument, which W&B now ignores with a
    warning on every run. (Importing this does not import wandb.)"""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._wandb_init.pop("anonymous", None)


def build_loggers(cfg: DictConfig) -> list[Any]:
    """Instantiate loggers; if W&B cannot start, warn and carry on with the others."""
    loggers = []
    for name, value in (cfg.get("logger") or {}).items():
        if value is None:
            continue
        try:
            logger = instantiate(value)
            if name == "wandb":
                experiment = logger.experiment  # starts the run now, so a failure shows here
                _summarise_best(experiment, cfg.get("optimized_metric"), cfg.get("optimized_mode", "max"),
                                val_prefixes(cfg))
            loggers.append(logger)
        except Exception as err:
            if name != "wandb":
                raise
            log.warning("W&B could not start (%s: %s); continuing with the other loggers (CSV).",
                        type(err).__name__, err)
    return loggers


def val_prefixes(cfg: DictConfig) -> list[str]:
    """The metric prefix of each validation set the run's data config asks for."""
    from spark_lightning.data.dataset import named_val_roots

    return ["val", *(f"val_{n}" for n in named_val_roots((cfg.get("data") or {}).get("extra_val_roots")))]


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """A nested plain dict as ``{"model.arch": "unet", ...}`` (lists and scalars are leaves)."""
    if not isinstance(node, dict):
        return {prefix[:-1]: node}
    return {k: v for key, value in node.items() for k, v in flatten(value, f"{prefix}{key}.").items()}


def flat_config(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config flattened: what W&B's sweep tables and parallel-coordinates plots
    compare across runs."""
    return flatten(OmegaConf.to_container(cfg, resolve=True))


def finish() -> None:
    """End this job's W&B run so the next multirun job starts a new one."""
    if "wandb" in sys.modules:
        import wandb

        if wandb.run is not None:
            wandb.finish()


def active_run() -> Any:
    """The running W&B run, or None (without importing wandb when nothing loaded it)."""
    if "wandb" not in sys.modules:
        return None
    import wandb

    return wandb.run


# -- what each logger gets beyond per-step metrics ---------------------------------------

BEST = (*HEADLINE, "loss")


def log_hyperparams(trainer: L.Trainer, cfg: DictConfig) -> None:
    """The flattened config (``model.arch``, ``optimizer.lr``...) to every logger but
    TensorBoard, whose HParams entry is written once, with the results, at the end."""
    flat = flat_config(cfg)
    for logger in trainer.loggers:
        if not isinstance(logger, TensorBoardLogger):
            logger.log_hyperparams(flat)


def best_summary(best: dict[str, float], prefixes: list[str]) -> dict[str, float]:
    """``best/<set>/<metric>``: the best epoch's headline metrics of every validation set."""
    return {f"best/{p}/{k}": float(best[f"{p}/{k}"]) for p in prefixes for k in BEST if f"{p}/{k}" in best}


def log_best(trainer: L.Trainer, cfg: DictConfig, best: dict[str, float]) -> None:
    """The best epoch's metrics: TensorBoard's HParams (hyperparameters with the results) and
    MLflow's run metrics; W&B summaries already show best values (_summarise_best)."""
    summary = best_summary(best, val_prefixes(cfg))
    if "epoch" in best:
        summary["best/epoch"] = float(best["epoch"])
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.log_hyperparams(flat_config(cfg), metrics=summary)
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