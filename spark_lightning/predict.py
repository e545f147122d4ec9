"""``python -m spark_lightning.predict ...``: see conf/predict.yaml for the options."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from spark_lightning import CONF_DIR
from spark_lightning.runtime import run_cli
from spark_lightning.tasks import run_predict


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="predict")
def main(cfg: DictConfig) -> None:
    run_cli(run_predict, cfg)


if __name__ == "__main__":
    main()
