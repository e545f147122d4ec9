"""Which networks predict, and where: checkpoints (one, or a list for an ensemble) loaded as
``Predictor``s with the options each predicts with, and the device."""

from __future__ import annotations

from pathlib import Path

import torch

from spark_lightning.errors import ConfigError
from spark_lightning.inference.probabilities import PredictOptions, Predictor


def pick_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("predict.device=cuda but no CUDA GPU is available: use predict.device=auto or cpu.")
    if name not in ("cpu", "cuda"):
        raise ConfigError(f"predict.device={name!r}: use auto, cpu or cuda.")
    return name


def checkpoint_list(ckpt: str | list | None) -> list[str]:
    """``ckpt=a.ckpt`` or ``ckpt=[a.ckpt,b.ckpt]`` (an ensemble)."""
    if not ckpt:
        return []
    return [str(ckpt)] if isinstance(ckpt, (str, Path)) else [str(c) for c in ckpt]


def ensemble_crafts(predictors: list[Predictor]) -> tuple[str, ...]:
    """The spacecraft the ensemble's classifiers name (one list: load_predictors checks), or ()."""
    return next((p.info["crafts"] for p in predictors if p.info.get("crafts")), ())


def box_mode(setting: str | None, predictors: list[Predictor]) -> str:
    """How a box follows from a predicted mask: ``setting`` when given, else the classifier's own
    ``head.box`` (what its validation scored), else union. One rule for predict and evaluate, so
    a checkpoint and the folder predicted from it score alike."""
    return setting or next((p.info["box"] for p in predictors if p.info.get("box")), None) or "union"


def load_predictors(ckpt: str | list, settings, device: str) -> list[Predictor]:
    """One Predictor per checkpoint; ``settings`` is the ``predict`` config (null = from the
    checkpoint: its ``data.predict_size`` or training ``data.size``, and ``data.crop``)."""
    from spark_lightning.checkpoints import load_network

    predictors = []
    for path in checkpoint_list(ckpt):
        net, info = load_network(path, device)
        options = PredictOptions(
            mode=settings.mode, size=settings.size or info.get("predict_size") or info["size"],
            tile=settings.tile or info["crop"] or info["size"], overlap=settings.overlap, tta=settings.tta,
            scales=tuple(float(s) for s in (settings.get("scales") or (1.0,))),
        )
        predictors.append(Predictor(net, options, str(path), info))
    classes = {p.info["classes"] for p in predictors}
    if len(classes) > 1:
        raise ConfigError(f"the checkpoints of an ensemble must predict the same classes, got {sorted(classes)}.")
    crafts = {p.info["crafts"] for p in predictors if p.info.get("crafts")}
    if len(crafts) > 1:
        raise ConfigError(f"the checkpoints of an ensemble must classify the same spacecraft, got {sorted(crafts)}.")
    return predictors

