"""``python -m spark_lightning.synth``: write a synthetic set; ``... synth compare``: compare
real frames with synthetic renders, statistic by statistic."""

from __future__ import annotations

import logging

from omegaconf import DictConfig

from spark_lightning.atomic import write_text_atomic
from spark_lightning.data.sizes import is_side, side_rule
from spark_lightning.run.checks import check_values, is_int
from spark_lightning.data.synth import generate
from spark_lightning.data.synth.stats import compare
from spark_lightning.run.runtime import task_wrapper

log = logging.getLogger(__name__)

SYNTH_RULES = [
    ("num_images", lambda v: is_int(v) and v >= 2, "a whole number >= 2 (one train, one val image at least)"),
    ("size", is_side, side_rule()),
    ("seed", lambda v: is_int(v) and v >= 0, "a whole number >= 0"),
    ("val_fraction", lambda v: isinstance(v, (int, float)) and 0 < v < 1, "a fraction strictly between 0 and 1"),
    ("num_test", lambda v: is_int(v) and v >= 0, "a whole number >= 0, or null (a tenth of num_images)"),
    ("workers", lambda v: is_int(v) and v >= 1, "a whole number >= 1, or null (one per core)"),
]


@task_wrapper
def run_generate(cfg: DictConfig) -> dict:
    check_values(cfg, SYNTH_RULES)
    log.info("plan: %d synthetic SPARK-like images of %d px (seed %d, %.0f %% val, %s test) into %s%s",
             cfg.num_images, cfg.size, cfg.seed, 100 * cfg.val_fraction,
             cfg.num_test if cfg.num_test is not None else "a tenth as many", cfg.out,
             ", replacing the synthetic set there" if cfg.overwrite else "")
    root = generate(cfg.out, cfg.num_images, cfg.size, cfg.seed, cfg.val_fraction, cfg.num_test, cfg.workers,
                    cfg.overwrite)
    print(root)
    return {"root": root}


@task_wrapper
def run_compare(cfg: DictConfig) -> dict:
    check_values(cfg, [r for r in SYNTH_RULES if r[0] in ("num_images", "size", "seed")] +
                 [("limit", lambda v: is_int(v) and v >= 1, "a whole number >= 1")])
    log.info("plan: statistics of the real frames in %s vs %s", cfg.real,
             cfg.synthetic or f"{cfg.num_images} fresh renders of {cfg.size} px")
    table = compare(cfg.real, cfg.synthetic, cfg.num_images, cfg.size, cfg.seed, cfg.limit)
    print(table)
    if cfg.out:
        write_text_atomic(cfg.out, table + "\n")
    return {"table": table}
