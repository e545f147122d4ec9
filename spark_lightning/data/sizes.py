"""What an image side may be, one rule for data.size, data.crop, data.predict_size, predict.size,
predict.tile and the renderer's size: read by the run's value checks, the data module and the
prediction options alike."""

from __future__ import annotations

from typing import Any

from spark_lightning.errors import ConfigError

MIN_SIDE = 16  # the smallest image side any network here can see; frames below it are refused too


def is_side(value: Any) -> bool:
    """A whole number of pixels >= MIN_SIDE (True and 1.5 are not)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= MIN_SIDE


def side_rule(null: str | None = None) -> str:
    """What is allowed, in words; ``null``: what null means, where null is allowed."""
    return f"a whole number of pixels >= {MIN_SIDE}" + (f", or null ({null})" if null else "")


def check_side(key: str, value: Any, null: str) -> None:
    """One line naming ``key`` when ``value`` is neither null nor a side."""
    if value is not None and not is_side(value):
        raise ConfigError(f"{key}={value}: give {side_rule(null)}.")
