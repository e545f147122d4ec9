"""``python -m spark_lightning.pseudo ckpt=... input=DIR output=DIR threshold=0.9``: see conf/pseudo.yaml."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from spark_lightning import CONF_DIR
from spark_lightning.pseudo_labels import run_pseudo
from spark_lightning.runtime import run_cli


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="pseudo")
def main(cfg: DictConfig) -> None:
    run_cli(run_pseudo, cfg)


if __name__ == "__main__":
    main()
