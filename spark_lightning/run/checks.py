"""Config values checked where a run is resolved: one line naming the key, the value and what
is allowed, instead of a traceback from deep inside a library."""

from __future__ import annotations

import typing
from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig, OmegaConf

from spark_lightning.data.boxes import BOX_MODES
from spark_lightning.data.sizes import is_side, side_rule
from spark_lightning.errors import ConfigError


def _get(cfg: DictConfig, key: str) -> Any:
    return OmegaConf.select(cfg, key, default=None)


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _precisions() -> tuple[str, ...]:
    from lightning.fabric.connector import _PRECISION_INPUT_STR, _PRECISION_INPUT_STR_ALIAS

    return typing.get_args(_PRECISION_INPUT_STR) + typing.get_args(_PRECISION_INPUT_STR_ALIAS)


def _duration(v: Any) -> bool:
    from spark_lightning.callbacks.time_budget import parse_duration

    try:
        parse_duration(v)
        return True
    except ValueError:
        return False


Rule = tuple[str, Callable[[Any], bool], str]  # key, test of a non-null value, what is allowed
TRAIN_RULES: list[Rule] = [
    ("seed", lambda v: is_int(v) and v >= 0, "a whole number >= 0, or null"),
    ("data.batch_size", lambda v: is_int(v) and v >= 1, "a whole number >= 1"),
    ("data.num_workers", lambda v: is_int(v) and v >= 0, "a whole number >= 0 (0 loads in the main process)"),
    ("data.size", is_side, side_rule("full resolution")),
    ("data.crop", is_side, side_rule("no crops")),
    ("data.predict_size", is_side, side_rule("data.size")),
    ("optimizer.lr", lambda v: _is_number(v) and v > 0, "a number > 0, e.g. 1e-3"),
    ("optimizer.weight_decay", lambda v: _is_number(v) and v >= 0, "a number >= 0"),
    ("trainer.max_epochs", lambda v: is_int(v) and (v >= 1 or v == -1), "a whole number >= 1, or -1 (no limit)"),
    ("trainer.max_time", _duration, 'a duration "DD:HH:MM:SS" (e.g. "00:02:00:00"), a number of seconds, or null'),
    ("trainer.accumulate_grad_batches", lambda v: is_int(v) and v >= 1, "a whole number >= 1"),
    ("trainer.precision", lambda v: str(v) in _precisions(), "one of " + ", ".join(
        ("32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64-true"))),
    ("trainer.gradient_clip_val", lambda v: _is_number(v) and v > 0, "a number > 0, or null"),
    ("budget.vram_gb", lambda v: _is_number(v) and v > 0, "a number of GB > 0, or null"),
    ("budget.effective_batch_size", lambda v: is_int(v) and v >= 1, "a whole number >= 1, or null"),
    ("head.box", lambda v: v in BOX_MODES, " or ".join(BOX_MODES)),
]


def check_values(cfg: DictConfig, rules: list[Rule]) -> None:
    """One ConfigError naming the first bad key, its value and what is allowed."""
    for key, ok, allowed in rules:
        value = _get(cfg, key)
        if value is not None and not ok(value):
            raise ConfigError(f"{key}={value}: give {allowed}.")


def check_model(cfg: DictConfig) -> None:
    """An option the chosen network ignores is refused, not silently dropped (debug=smoke's tiny
    network has no encoder)."""
    model = cfg.get("model") or {}
    if model.get("arch") == "tiny" and str(model.get("encoder") or "none") != "none":
        raise ConfigError(f"model.encoder={model.get('encoder')} has no effect: this run trains the tiny network "
                          "(model=tiny, e.g. from debug=smoke). Drop debug=smoke (or choose model=...) to train "
                          "that encoder, or drop model.encoder.")


PREDICT_RULES: list[Rule] = [
    ("predict.batch_size", lambda v: is_int(v) and v >= 1, "a whole number >= 1"),
    ("predict.num_workers", lambda v: is_int(v) and v >= 0, "a whole number >= 0"),
    ("predict.size", is_side, side_rule("the checkpoint's")),
    ("predict.tile", is_side, side_rule("the checkpoint's")),
    ("predict.overlap", lambda v: _is_number(v) and 0 <= v < 1, "a fraction in [0, 1)"),
    *((key, lambda v: v in BOX_MODES, " or ".join(BOX_MODES) + ", or null (a classifier's head.box)")
      for key in ("box", "box_from_mask")),  # predict's, evaluate's
]
