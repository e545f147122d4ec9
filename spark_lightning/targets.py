"""What a file may ask us to build: every ``_target_`` read from a checkpoint names a network,
loss, optimizer, schedule, augmentation or data format of ours or of our libraries, never an
arbitrary callable such as ``builtins.open``; modules that moved are read by their new names."""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from spark_lightning.errors import CheckpointError

# Packages whose classes a checkpoint may name (networks, losses, optimizers, augmentations);
# SPARK_LIGHTNING_TRUSTED_MODULES=mod1,mod2 adds your own (e.g. the module of a data format).
TRUSTED_PACKAGES = ("spark_lightning", "segmentation_models_pytorch", "timm", "torch", "torchvision", "albumentations")
# Functions (not classes) a config may target: our model factory and schedules.
TRUSTED_FUNCTIONS = {"spark_lightning.models.build_model", "spark_lightning.models.factory.build_model",
                     *(f"spark_lightning.training.optim.{name}" for name in ("poly", "cosine", "onecycle"))}
# Modules that moved (0.3: the training core into training/): checkpoints written before name the
# old ones; their ``_target_``s are read as the new names, before they are checked.
MOVED = {"spark_lightning.losses.": "spark_lightning.training.losses.",
         "spark_lightning.optim.": "spark_lightning.training.optim."}


def renamed(node: Any) -> Any:
    """Give every ``_target_`` of a moved module in ``node`` (in place) its new name."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "_target_" and isinstance(value, str):
                node[key] = next((new + value[len(old):] for old, new in MOVED.items() if value.startswith(old)), value)
            else:
                renamed(value)
    elif isinstance(node, list):
        for value in node:
            renamed(value)
    return node


def _targets(node: Any, key: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, value) of every ``_target_`` inside nested dicts and lists."""
    if isinstance(node, dict):
        for k, v in node.items():
            where = f"{key}.{k}" if key else str(k)
            if k == "_target_":
                yield where, v
            else:
                yield from _targets(v, where)
    elif isinstance(node, (list, tuple)):
        for i, v in enumerate(node):
            yield from _targets(v, f"{key}[{i}]")


def _trusted_modules() -> tuple[str, ...]:
    extra = os.environ.get("SPARK_LIGHTNING_TRUSTED_MODULES", "")
    return TRUSTED_PACKAGES + tuple(m.strip() for m in extra.split(",") if m.strip())


def _allowed_object(obj: Any) -> bool:
    """A class we build from configs: a network or loss, an optimizer, an augmentation, a data
    format; or one of our factory functions."""
    import albumentations as A

    from spark_lightning.data.formats import SegmentationFormat

    if isinstance(obj, type):
        return issubclass(obj, (nn.Module, torch.optim.Optimizer, A.BasicTransform, A.BaseCompose, SegmentationFormat))
    return f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', '')}" in TRUSTED_FUNCTIONS


def check_target(value: Any, source: str, key: str) -> None:
    """Refuse a ``_target_`` read from a file unless it names something we build (see
    ``_allowed_object``) in a trusted module; the module is only imported once its name passed
    (or when this process already imported it, e.g. your own data format)."""
    import sys

    name = str(value)
    module, _, attr = name.rpartition(".")
    top = module.split(".", 1)[0]
    trusted = top in _trusted_modules() or module in _trusted_modules() or module in sys.modules
    refuse = CheckpointError(
        f"{source} names {key}={name!r}, which is not a network, loss, optimizer, schedule, augmentation or "
        "data format of spark_lightning or its libraries: it is refused, not built (a checkpoint must never run "
        "code). If the class is your own (a data format of yours), add its module to "
        "SPARK_LIGHTNING_TRUSTED_MODULES; otherwise do not use this checkpoint.")
    if not module or not attr or not trusted:
        raise refuse
    try:
        obj = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as err:
        raise CheckpointError(f"{source} names {key}={name!r}, which does not exist here ({type(err).__name__}): "
                              "install the package that defines it, or use another checkpoint.") from err
    if not _allowed_object(obj):
        raise refuse


def check_targets(data: dict, source: str) -> None:
    """Every ``_target_`` in a checkpoint's hyperparameters, checked before anything is built."""
    for part in ("hyper_parameters", "datamodule_hyper_parameters"):
        for key, value in _targets(data.get(part) or {}, part):
            check_target(value, source, key)
