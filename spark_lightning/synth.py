"""Synthetic data from the command line.

    python -m spark_lightning.synth out=DIR num_images=N size=S seed=K     # write a set (SPARK layout)
    python -m spark_lightning.synth compare real=DIR [synthetic=DIR]       # statistics side by side
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from spark_lightning import CONF_DIR
from spark_lightning.atomic import write_text_atomic
from spark_lightning.data.synth import generate
from spark_lightning.data.synth.stats import compare
from spark_lightning.runtime import run_cli


def run_generate(cfg: DictConfig) -> dict:
    root = generate(cfg.out, cfg.num_images, cfg.size, cfg.seed, cfg.val_fraction, cfg.num_test, cfg.workers,
                    cfg.overwrite)
    print(root)
    return {"root": root}


def run_compare(cfg: DictConfig) -> dict:
    table = compare(cfg.real, cfg.synthetic, cfg.num_images, cfg.size, cfg.seed, cfg.limit)
    print(table)
    if cfg.out:
        write_text_atomic(cfg.out, table + "\n")
    return {"table": table}


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="synth")
def generate_main(cfg: DictConfig) -> None:
    run_cli(run_generate, cfg)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="synth_compare")
def compare_main(cfg: DictConfig) -> None:
    run_cli(run_compare, cfg)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "compare":
        del sys.argv[1]
        compare_main()
    else:
        generate_main()


if __name__ == "__main__":
    main()
