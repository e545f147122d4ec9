"""``python -m spark_lightning.export ckpt=PATH format=onnx``: ONNX with a parity check."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from spark_lightning.tasks import run_export


@hydra.main(version_base="1.3", config_path="../conf", config_name="export")
def main(cfg: DictConfig) -> None:
    run_export(cfg)


if __name__ == "__main__":
    main()
