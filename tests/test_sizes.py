"""One rule for image sides (spark_lightning/data/sizes.py), the same wherever a side is given."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from spark_lightning.data.datamodule import SparkDataModule
from spark_lightning.data.sizes import MIN_SIDE, is_side
from spark_lightning.errors import ConfigError
from spark_lightning.inference.probabilities import PredictOptions
from spark_lightning.run.checks import PREDICT_RULES, TRAIN_RULES, check_values


def test_what_a_side_is():
    assert is_side(MIN_SIDE) and is_side(1024)
    assert not any(is_side(v) for v in (MIN_SIDE - 1, True, 32.0, "64", None))


@pytest.mark.parametrize("bad", [8, 12.5, True])
def test_every_place_a_side_is_given_says_the_same_rule(bad):
    rule = rf"={bad}: give a whole number of pixels >= {MIN_SIDE}, or null \("
    for key, rules in (("data.size", TRAIN_RULES), ("data.crop", TRAIN_RULES), ("predict.tile", PREDICT_RULES)):
        cfg = OmegaConf.create({})
        OmegaConf.update(cfg, key, bad, force_add=True)
        with pytest.raises(ConfigError, match=rf"^{key}{rule}"):
            check_values(cfg, rules)
    with pytest.raises(ConfigError, match=rf"^data.size{rule}full resolution\)"):
        SparkDataModule(dataset={"_target_": "spark_lightning.data.spark.SparkFormat"}, size=bad)
    with pytest.raises(ConfigError, match=rf"^predict.size{rule}the checkpoint's\)"):
        PredictOptions(size=bad)
