"""The W&B run of one job: name/group/tags, start (or fall back to CSV), resume, summary, finish.

Nothing here imports wandb at module level: runs with ``logger=csv`` never load it.
"""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from lightning.pytorch.loggers import WandbLogger as LightningWandbLogger
from omegaconf import DictConfig, OmegaConf, open_dict

log = logging.getLogger(__name__)
PATH_KEYS = ("hydra.", "data.root", "data.cache_dir", "paths.")  # same for every job: not tags


def hydra_job() -> tuple[list[str], str | None]:
    """(this job's overrides, the sweep's name when running under --multirun)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return [], None
    hc = HydraConfig.get()
    sweep = Path(hc.sweep.dir).name if hc.mode == RunMode.MULTIRUN else None
    return list(hc.overrides.task), sweep


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
            wandb_cfg.tags = [o[:64] for o in overrides if not o.startswith(PATH_KEYS)]
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
        for key in ("spark_score", "spark_body", "spark_panel", "iou", "iou_background", "iou_body", "iou_panel"):
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


def flat_config(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as ``{"model.arch": "unet", ...}``: what W&B's sweep tables and
    parallel-coordinates plots compare across runs."""
    out: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{prefix}{key}.")
        else:
            out[prefix[:-1]] = node

    walk(OmegaConf.to_container(cfg, resolve=True), "")
    return out


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
