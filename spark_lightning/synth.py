"""``python -m spark_lightning.synth out=DIR num_images=N size=S seed=K``: write a synthetic set."""

from __future__ import annotations

import logging

import hydra
from omegaconf import DictConfig

from spark_lightning import CONF_DIR
from spark_lightning.data.synth import generate

log = logging.getLogger(__name__)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="synth")
def main(cfg: DictConfig) -> None:
    root = generate(cfg.out, cfg.num_images, cfg.size, cfg.seed, cfg.val_fraction, cfg.num_test, cfg.workers, cfg.overwrite)
    print(root)


if __name__ == "__main__":
    main()
