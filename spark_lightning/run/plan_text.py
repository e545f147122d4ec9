"""The plan as text: the block every command prints before any work (what it trains or
predicts and how), one aligned line per item."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

def _short(target: Any) -> str:
    return str(target or "").rsplit(".", 1)[-1]


def _loss(loss: dict) -> str:
    if _short(loss.get("_target_")) == "WeightedSum":
        weights = loss.get("weights") or {}
        return " + ".join(f"{weights.get(k, 1.0):g} {_short(v.get('_target_'))}" for k, v in loss["losses"].items())
    return _short(loss.get("_target_"))


def _loggers(plan: DictConfig) -> str:
    names = []
    for name, value in (plan.get("logger") or {}).items():
        if value is None:
            continue
        if name == "wandb":
            mode = os.environ.get("WANDB_MODE", "online")
            names.append(f"W&B {mode}" + (" (wandb sync <run dir>/wandb/offline-run-* later)" if mode == "offline" else ""))
        else:
            names.append(name)
    return ", ".join(names) or "none"


def _data(plan: DictConfig) -> str:
    data = plan.data
    dataset = data.dataset
    if data.get("root"):
        from hydra.utils import get_class

        from spark_lightning.data.spark import SparkFormat

        spark = issubclass(get_class(dataset._target_), SparkFormat)
        return f"{data.root} ({'SPARK layout' if spark else 'format ' + _short(dataset._target_)})"
    if "num_images" in dataset:
        return (f"synthetic SPARK-like set, {dataset.num_images} renders of {dataset.size} px (seed {dataset.seed}), "
                "generated once into the cache")
    return f"format {_short(dataset._target_)}"


def _where(device: str, trainer: DictConfig) -> str:
    if device == "cuda":
        return f"cuda: {torch.cuda.get_device_name(0)} x {trainer.get('devices', 1)}"
    where = f"cpu ({os.cpu_count()} cores, {torch.get_num_threads()} threads)"
    if os.environ.get("SPARK_LIGHTNING_BUSY_CPU"):
        where += (f"; the machine was busy at start (load {os.getloadavg()[0]:.1f}): OpenMP threads sleep while "
                  "they wait (OMP_WAIT_POLICY=PASSIVE), about 2x faster beside other jobs")
    return where


def _start(plan: DictConfig) -> str:
    start = (f"resume from {plan.ckpt_path}" if plan.get("ckpt_path") else
             f"fine-tune from {plan.init_from} (weights only)" if plan.get("init_from") else "a fresh run")
    if not plan.get("ckpt_path") and plan.get("overwrite"):
        start += " (overwrite=true: replacing any earlier training in the run dir)"
    return start


def _task(plan: DictConfig) -> str:
    from spark_lightning.training.module import craft_names

    head = plan.get("head")
    if not head:
        return "segmentation (SPARK 2024)"
    return (f"segmentation + spacecraft class ({len(craft_names(head))} classes, loss weight "
            f"{head.get('weight', 1.0):g}) + box from the predicted mask ({head.get('box', 'union')}): SPARK 2026")


def describe(plan: DictConfig, device: str, notes: dict[str, str], budget: dict | None) -> str:
    """The plan as one block of lines, printed before any work."""
    from spark_lightning.data.dataset import named_val_roots

    data, trainer = plan.data, plan.trainer
    extra = named_val_roots(data.get("extra_val_roots"))
    where = _where(device, trainer)
    asked = notes.get("precision", trainer.precision)
    scale = f"{data.size} px" if data.get("size") else "full resolution"
    if data.get("crop"):
        scale += f", random {data.crop} px crops"
    if data.get("predict_size"):
        scale += f"; predict and evaluate at {data.predict_size} px by default (data.predict_size)"
    micro, acc = data.batch_size, trainer.get("accumulate_grad_batches", 1)
    batch = f"{micro} per step x {acc} accumulated = {micro * acc}"
    if budget:
        batch += f" (fits {budget['budget_gib']:.1f} GiB: peak {budget['peak_gib']:.2f} GiB)"
    length = f"{trainer.max_epochs} epochs" if trainer.get("max_epochs", -1) != -1 else "no epoch limit"
    if trainer.get("max_time"):
        length = f"whole epochs within {trainer.max_time} (at most {length})"
    schedule = _short((plan.get("scheduler") or {}).get("_target_")) or "constant"
    optimizer = plan.optimizer
    start = _start(plan)
    rows = [
        ("recipe", (plan.get("recipe") or {}).get("about") or "as configured"),
        ("task", _task(plan)),
        ("data", _data(plan)),
        ("validation", ", ".join([f"val ({data.get('val_split', 'val')} split)", *(f"val_{n} ({r})" for n, r in extra.items())])),
        ("scale", scale),
        ("model", f"{plan.model.get('arch')} / {plan.model.get('encoder')}, {notes.get('weights', 'random init')}"
                  + (f" (recipe.fallback_model={plan.recipe.fallback_used}: no ImageNet weights for the recipe's "
                     "own network here)" if (plan.get("recipe") or {}).get("fallback_used") else "")),
        ("cost", notes.get("cost", "not counted")),
        ("loss", _loss(plan.loss)),
        ("optimizer", f"{_short(optimizer._target_)} lr {optimizer.lr:g}"
                      + (f", weight decay {optimizer.weight_decay:g}" if optimizer.get("weight_decay") else "")
                      + f"; schedule {schedule}"),
        ("precision", f"{trainer.precision}" + ("" if str(trainer.precision) == str(asked) else f" (asked {asked})")),
        ("device", where),
        ("batch", batch),
        ("length", length),
        ("start", start),
        ("best by", f"{plan.get('optimized_metric')} ({plan.get('optimized_mode', 'max')})"),
        ("run dir", str(Path(plan.paths.output_dir).resolve())),
        ("loggers", _loggers(plan)),
        ("settled", "; ".join(f"{k} {v}" for k, v in (plan.get("settled") or {}).items()) or "nothing: as composed"),
    ]
    return format_plan(rows)


def format_plan(rows: list[tuple[str, str]]) -> str:
    """The "plan" block every command prints before any work: one aligned line per item."""
    width = max(len(k) for k, _ in rows)
    return "plan\n" + "\n".join(f"  {k:<{width}}  {v}" for k, v in rows)


def predictor_rows(predictors: list, device: str) -> list[tuple[str, str]]:
    """What a prediction run will do, for the plan block: each checkpoint and how it predicts."""
    rows = []
    for p in predictors:
        crop = f", {p.info['crop']} px crops" if p.info.get("crop") else ""
        rows.append(("checkpoint", f"{p.source}: {p.info['model'].get('arch')}/{p.info['model'].get('encoder')}, "
                                   f"trained at {p.info.get('size') or 'full'} px{crop}"))
    o = predictors[0].options
    at = f"{o.size} px" if o.size else "full resolution"
    rows.append(("predicts", f"{o.mode} at {at}" + (f" (windows of {o.tile} px)" if o.mode == "slide" else "")
                 + f", TTA {o.tta}, scales {list(o.scales)}" + (", ensemble mean" if len(predictors) > 1 else "")))
    for p in predictors:
        if p.info.get("crafts"):
            rows.append(("classifies", f"{len(p.info['crafts'])} spacecraft, read at {p.info.get('size') or 'full'} px "
                                       f"(its training scale); box from the predicted mask ({p.info.get('box')})"))
    rows.append(("device", device))
    return rows
