"""``python -m spark_lightning.train [overrides]``: train one model (or a sweep with --multirun)."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from spark_lightning.tasks import run_train


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Return the best value of ``optimized_metric`` (val/spark_score): what sweepers optimise."""
    return run_train(cfg)["metrics"].get(cfg.get("optimized_metric") or "val/spark_score")


if __name__ == "__main__":
    main()
