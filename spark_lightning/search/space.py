"""Hydra's sweep syntax as Optuna distributions: ``choice(a,b)`` -> categorical, ``range(1,9)``
-> integers (with its step), ``interval(1e-4,1e-2)`` -> floats (integers when both ends are),
``tag(log, interval(...))`` -> on a log scale; anything else is a fixed value for every trial."""

from __future__ import annotations

import math
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep, Transformer

from spark_lightning.errors import ConfigError


def distribution(override: Override) -> Any:
    """The Optuna distribution of one sweep override (or its fixed value, as a string)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if not override.is_sweep_override():
        return override.get_value_element_as_str()
    value = override.value()
    key = override.get_key_element()
    if isinstance(value, ChoiceSweep) or (isinstance(value, RangeSweep) and value.shuffle):
        return CategoricalDistribution(list(override.sweep_iterator(transformer=Transformer.encode)))
    if isinstance(value, RangeSweep):  # range(start, stop, step): stop excluded, as in Python
        count = math.ceil((value.stop - value.start) / value.step - 1e-9)
        last = value.start + (count - 1) * value.step
        if any(isinstance(v, float) for v in (value.start, value.stop, value.step)):
            return FloatDistribution(value.start, last, step=value.step)
        return IntDistribution(int(value.start), int(last), step=int(value.step))
    if isinstance(value, IntervalSweep):
        log = "log" in value.tags
        if value.start is None or value.end is None or not value.start < value.end:
            raise ConfigError(f"hydra.sweeper.params.{key}: interval({value.start}, {value.end}) needs start < end.")
        if isinstance(value.start, int) and isinstance(value.end, int):
            return IntDistribution(value.start, value.end, log=log)
        return FloatDistribution(float(value.start), float(value.end), log=log)
    raise ConfigError(f"hydra.sweeper.params.{key}: {override.input_line} is not a sweep Optuna can sample "
                      "(use choice(...), range(...), interval(...) or tag(log, interval(...))).")


def parse(entries: list[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """``["lr=interval(1e-4,1e-2)", "loss=choice(ce,dice)", "trainer.max_epochs=3"]`` ->
    (name -> distribution, name -> fixed value). The sweeper's ``params`` come first, the command
    line after them, so ``data.batch_size=4`` on the command line fixes what params would search."""
    from optuna.distributions import BaseDistribution

    space, fixed = {}, {}
    for override in OverridesParser.create().parse_overrides(entries):  # a later entry replaces an earlier one
        key, value = override.get_key_element(), distribution(override)
        space.pop(key, None)
        fixed.pop(key, None)
        (space if isinstance(value, BaseDistribution) else fixed)[key] = value
    return space, fixed
