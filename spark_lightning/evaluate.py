"""``python -m spark_lightning.evaluate ...``: see conf/evaluate.yaml for the options."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from spark_lightning import CONF_DIR
from spark_lightning.runtime import run_cli
from spark_lightning.tasks import run_evaluate


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="evaluate")
def main(cfg: DictConfig) -> None:
    run_cli(run_evaluate, cfg)


if __name__ == "__main__":
    main()
