"""``python -m spark_lightning.train [overrides]``: train one model (or a sweep with --multirun)."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from spark_lightning import CONF_DIR
from spark_lightning.recipe import cli_overrides, for_data
from spark_lightning.runtime import run_cli
from spark_lightning.tasks import run_train


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Return the best value of ``optimized_metric``: what sweepers (Optuna) optimise."""
    cfg = for_data(cfg, cli_overrides())
    return run_cli(run_train, cfg)["metrics"].get(cfg.optimized_metric)


if __name__ == "__main__":
    main()
