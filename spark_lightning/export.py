"""``python -m spark_lightning.export ...``: see conf/export.yaml for the options."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from spark_lightning import CONF_DIR
from spark_lightning.runtime import run_cli
from spark_lightning.tasks import run_export


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="export")
def main(cfg: DictConfig) -> None:
    run_cli(run_export, cfg)


if __name__ == "__main__":
    main()
