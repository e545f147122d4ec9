"""Losses beyond what torch and smp ship: weighted sums, computed in float32.

Single losses are plain configs (``torch.nn.CrossEntropyLoss``, smp's ``JaccardLoss`` ...);
this module only adds what they lack.
"""

from __future__ import annotations

import torch
from torch import nn

from spark_lightning.errors import ConfigError


class CrossEntropy(nn.CrossEntropyLoss):
    """``nn.CrossEntropyLoss`` whose class weights may come from a config list."""

    def __init__(self, weight: list[float] | None = None, ignore_index: int | None = -100, **kwargs) -> None:
        tensor = torch.as_tensor(list(weight), dtype=torch.float32) if weight is not None else None
        super().__init__(weight=tensor, ignore_index=-100 if ignore_index is None else ignore_index, **kwargs)


class WeightedSum(nn.Module):
    """sum_i weight_i * loss_i(logits, target), e.g. CE + Jaccard.

    Args:
        losses: name -> loss module.
        weights: name -> weight (default 1.0 each); names must match ``losses``.
    """

    def __init__(self, losses: dict[str, nn.Module], weights: dict[str, float] | None = None) -> None:
        super().__init__()
        if not losses:
            raise ConfigError("loss.losses is empty: give at least one loss to sum.")
        weights = dict(weights or {})
        unknown = set(weights) - set(losses)
        if unknown:
            raise ConfigError(f"loss.weights names {sorted(unknown)} that are not in loss.losses {sorted(losses)}.")
        self.losses = nn.ModuleDict(losses)
        self.weights = {name: float(weights.get(name, 1.0)) for name in losses}

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return sum(self.weights[name] * loss(logits, target) for name, loss in self.losses.items())


def float32_loss(loss: nn.Module, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Evaluate ``loss`` in float32 with autocast off: fp16 Dice/Jaccard sums overflow to NaN."""
    with torch.autocast(device_type=logits.device.type, enabled=False):
        return loss(logits.float(), target)
