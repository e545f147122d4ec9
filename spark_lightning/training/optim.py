"""Learning-rate schedules with linear warmup (stepped every optimizer step), param groups.

Configs give schedules as ``_partial_`` callables; the LightningModule supplies the optimizer,
``total_steps`` (``trainer.estimated_stepping_batches``) and ``steps_per_epoch``, so one
config fits any run length. Warmup is given in steps or in epochs. With a time budget
(``trainer.max_time``) the module also passes ``clock``, the share of the budget used: the
schedule then follows whichever runs out first, steps or time, so a run cut by its time limit
on a slow machine still ends at its final learning rate.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable

from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

from spark_lightning.errors import ConfigError

log = logging.getLogger(__name__)


def _warmup_steps(warmup_steps: int, warmup_epochs: float, steps_per_epoch: int, total_steps: int) -> int:
    """Warmup length in steps; a warmup as long as the whole run (a short debug run with the
    default one-epoch warmup) is cut to half the run, with a warning, rather than failing."""
    steps = warmup_steps or round(warmup_epochs * steps_per_epoch)
    if steps < 0:
        raise ConfigError(f"scheduler warmup of {steps} steps: scheduler.warmup_steps/warmup_epochs must be >= 0.")
    if steps and steps >= total_steps:
        log.warning("scheduler warmup of %d steps >= the run's %d optimizer steps: warming up for %d",
                    steps, total_steps, total_steps // 2)
        steps = total_steps // 2
    return steps


Clock = Callable[[], float]  # share of the time budget used so far, 0..1


def _warmup_then(optimizer: Optimizer, total_steps: int, warmup: int, decay: Callable[[float], float],
                 clock: Clock | None = None, start: float | None = None, warmup_share: float = 0.0) -> LambdaLR:
    """Linear warmup (from ``start`` x lr, default 1/warmup) over ``warmup`` steps, or over
    ``warmup_share`` of the run; then ``decay(t)`` with t going 0 -> 1. The run's progress is
    counted in steps, or by ``clock`` (the time budget) if that is further along."""

    def factor(step: int) -> float:
        progress = max(step / max(1, total_steps), clock() if clock else 0.0)
        if warmup_share:
            if progress < warmup_share:
                return (start or 0.0) + (1 - (start or 0.0)) * progress / warmup_share
            return decay(min(1.0, (progress - warmup_share) / (1 - warmup_share)))
        if step < warmup:
            if start is None:
                return (step + 1) / warmup
            return start + (1 - start) * step / max(1, warmup - 1)
        t = (step - warmup) / max(1, total_steps - warmup)
        return decay(min(1.0, max(t, clock() if clock else 0.0)))

    return LambdaLR(optimizer, factor)


def poly(optimizer: Optimizer, total_steps: int, power: float = 0.9, warmup_steps: int = 0,
         warmup_epochs: float = 0, steps_per_epoch: int = 1, clock: Clock | None = None) -> LambdaLR:
    """lr * (1 - t)^power after a linear warmup."""
    warmup = _warmup_steps(warmup_steps, warmup_epochs, steps_per_epoch, total_steps)
    return _warmup_then(optimizer, total_steps, warmup, lambda t: (1 - t) ** power, clock)


def _cosine(floor: float) -> Callable[[float], float]:
    return lambda t: floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))


def cosine(optimizer: Optimizer, total_steps: int, warmup_steps: int = 0, warmup_epochs: float = 0,
           min_lr_ratio: float = 0.0, steps_per_epoch: int = 1, clock: Clock | None = None) -> LambdaLR:
    """Cosine decay from lr to lr * min_lr_ratio after a linear warmup."""
    warmup = _warmup_steps(warmup_steps, warmup_epochs, steps_per_epoch, total_steps)
    return _warmup_then(optimizer, total_steps, warmup, _cosine(min_lr_ratio), clock)


def onecycle(optimizer: Optimizer, total_steps: int, warmup_steps: int = 0, warmup_epochs: float = 0,
             steps_per_epoch: int = 1, div_factor: float = 25.0, final_div_factor: float = 1e4,
             clock: Clock | None = None) -> LambdaLR:
    """One cycle (as torch's OneCycleLR, linear rise, cosine fall): from lr / div_factor up to
    each group's configured lr over the warmup (30 % of the run when not given), then down to
    lr / (div_factor * final_div_factor)."""
    warmup = _warmup_steps(warmup_steps, warmup_epochs, steps_per_epoch, total_steps)
    return _warmup_then(optimizer, total_steps, warmup, _cosine(1 / (div_factor * final_div_factor)), clock,
                        start=1 / div_factor, warmup_share=0.0 if warmup else 0.3)


def param_groups(net: nn.Module, lr: float, encoder_lr_mult: float = 1.0) -> list[dict] | Iterable:
    """Encoder parameters at ``lr * encoder_lr_mult``, the rest at ``lr``.

    A pretrained encoder usually wants a smaller learning rate than the fresh decoder.
    """
    if encoder_lr_mult == 1.0:
        return net.parameters()
    encoder = getattr(net, "encoder", None)
    if encoder is None:
        raise ConfigError("optimizer.encoder_lr_mult needs a network with an encoder; this one has none.")
    enc_ids = {id(p) for p in encoder.parameters()}
    rest = [p for p in net.parameters() if id(p) not in enc_ids]
    return [{"params": list(encoder.parameters()), "lr": lr * encoder_lr_mult}, {"params": rest, "lr": lr}]


def build_optimizer(config: dict, net: nn.Module) -> Optimizer:
    """Instantiate a ``_partial_`` optimizer config for ``net``, honouring ``encoder_lr_mult``."""
    from hydra.utils import instantiate

    config = dict(config)
    mult = config.pop("encoder_lr_mult", 1.0)
    return instantiate(config)(params=param_groups(net, config["lr"], mult))
