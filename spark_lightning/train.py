"""``python -m spark_lightning.train [overrides]``: train one model (or a sweep with --multirun)."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from spark_lightning.tasks import run_train


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Return the best validation SPARK score (what Hydra sweepers optimise)."""
    return run_train(cfg)["metrics"].get("val/spark_score")


if __name__ == "__main__":
    main()
