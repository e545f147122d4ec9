"""Fit a VRAM budget: largest micro-batch that fits, gradient accumulation for the rest.

``budget.effective_batch_size=B budget.vram_gb=16`` probes real training steps (forward,
backward, optimizer step, at the run's precision and image size) on the actual GPU, keeps a
safety margin, and sets ``data.batch_size`` x ``trainer.accumulate_grad_batches`` = B.
The search itself takes any ``probe(batch) -> peak bytes | None`` so it is tested on CPU with
a fake memory function.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
from omegaconf import DictConfig, open_dict

from spark_lightning.errors import ConfigError

log = logging.getLogger(__name__)
GiB = 1024**3

Probe = Callable[[int], "int | None"]  # peak bytes of one train step at this micro-batch; None = OOM


def largest_fitting_batch(probe: Probe, budget_bytes: float, max_batch: int) -> int:
    """Largest b <= max_batch with probe(b) <= budget_bytes: doubling, then bisection.

    Assumes peak memory grows with the batch (true of training steps). Raises ValueError when
    even a batch of 1 does not fit.
    """

    def fits(b: int) -> bool:
        peak = probe(b)
        return peak is not None and peak <= budget_bytes

    if not fits(1):
        raise ConfigError(
            f"a micro-batch of 1 does not fit {budget_bytes / GiB:.1f} GiB: lower data.size, use data.crop, "
            "a lighter model, trainer.precision=16-mixed or model.channels_last=true."
        )
    good = 1
    while good * 2 <= max_batch and fits(good * 2):
        good *= 2
    bad = min(good * 2, max_batch + 1)
    while bad - good > 1:
        mid = (good + bad) // 2
        good, bad = (mid, bad) if fits(mid) else (good, mid)
    return good


def split_batch(effective: int, micro_max: int) -> tuple[int, int]:
    """(micro, accumulation) with micro * accumulation == effective and micro <= micro_max, micro largest."""
    if effective < 1:
        raise ConfigError(f"budget.effective_batch_size={effective} must be at least 1.")
    micro = max(d for d in range(1, min(effective, micro_max) + 1) if effective % d == 0)
    return micro, effective // micro


def cuda_train_probe(module: torch.nn.Module, image_size: int, precision: str, optimizer: torch.optim.Optimizer,
                     loss_fn: Callable) -> Probe:
    """A probe running real train steps of ``module`` on random uint8 images on the GPU."""
    dtype = {"16": torch.float16, "bf16": torch.bfloat16}.get(str(precision).split("-")[0])

    def probe(batch: int) -> int | None:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        try:
            x = torch.randint(0, 255, (batch, 3, image_size, image_size), dtype=torch.uint8, device="cuda")
            y = torch.randint(0, 3, (batch, image_size, image_size), device="cuda")
            for _ in range(2):  # the second step includes optimizer state
                with torch.autocast("cuda", dtype=dtype or torch.float32, enabled=dtype is not None):
                    logits = module(x)
                loss = loss_fn(logits.float(), y)
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            torch.cuda.synchronize()
            return torch.cuda.max_memory_allocated()
        except torch.cuda.OutOfMemoryError:
            return None
        finally:
            optimizer.zero_grad(set_to_none=True)
            torch.cuda.empty_cache()

    return probe


def apply_budget(cfg: DictConfig, build_module: Callable[[DictConfig], torch.nn.Module] | None,
                 probe: Probe | None = None, total_bytes: float | None = None) -> dict | None:
    """Set data.batch_size and trainer.accumulate_grad_batches from the budget; log the choice.

    On CUDA the probe runs real train steps of ``build_module(cfg)``; ``probe`` and
    ``total_bytes`` stand in for the GPU elsewhere (the GPU check's dry run)."""
    budget = cfg.get("budget")
    effective = budget.get("effective_batch_size") if budget else None
    if not budget or budget.get("vram_gb") is None or effective is None:
        return None
    module = None
    if probe is None:
        if not torch.cuda.is_available():
            log.info("budget: no CUDA GPU, keeping data.batch_size=%s, accumulate_grad_batches=%s",
                     cfg.data.batch_size, cfg.trainer.accumulate_grad_batches)
            return None
        total_bytes = torch.cuda.get_device_properties(0).total_memory
        module = build_module(cfg).cuda()
        if cfg.model.get("channels_last"):
            module.to(memory_format=torch.channels_last)
        optimizer = torch.optim.AdamW(module.parameters())  # 2 states per weight: as heavy as any we ship
        size = cfg.data.get("crop") or cfg.data.size
        probe = cuda_train_probe(module.net, size, str(cfg.trainer.precision), optimizer, module.criterion)
    limit = min(budget.vram_gb * GiB, total_bytes or float("inf")) * (1 - budget.get("margin", 0.1))
    micro_max = largest_fitting_batch(probe, limit, min(effective, budget.get("max_micro_batch", 64)))
    peak = probe(micro_max)
    if module is not None:
        del module, optimizer
        torch.cuda.empty_cache()
    micro, accumulation = split_batch(effective, micro_max)
    with open_dict(cfg):
        cfg.data.batch_size = micro
        cfg.trainer.accumulate_grad_batches = accumulation
    choice = {"micro_batch": micro, "accumulate_grad_batches": accumulation, "peak_gib": (peak or 0) / GiB,
              "budget_gib": limit / GiB, "largest_fitting": micro_max}
    log.info("budget: %.1f GiB usable -> micro-batch %d x accumulation %d = %d (peak %.2f GiB at %d)",
             limit / GiB, micro, accumulation, effective, choice["peak_gib"], micro_max)
    return choice
