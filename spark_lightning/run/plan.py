"""Resolve once, then build.

Everything a training run decides from the machine and from earlier state is settled here,
in one place, before anything is built: values are checked (one line naming the key, the
value and what is allowed), the precision that will really run (16-mixed falls back to
32-true without CUDA), ``channels_last`` and ``encoder_weights`` "auto", the checkpoint to
resume from and the W&B run to continue, the W&B name/group/tags, and the VRAM budget's
micro-batch x accumulation. The result, the plan, is read-only: it is written as
``config.yaml`` and printed as one block, and the builders only read it.

Under DDP, ranks other than 0 do not resolve again: they read rank 0's ``config.yaml``, so
every rank builds the same run.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import torch
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf, open_dict

from spark_lightning import tracking
from spark_lightning.atomic import write_text_atomic
from spark_lightning.checkpoints import check_same_model, read_checkpoint
from spark_lightning.errors import ConfigError
from spark_lightning.models.cost import check_cost, describe_cost, meta_network, network_cost
from spark_lightning.models.factory import resolve_weights
from spark_lightning.run.builders import build_module, container
from spark_lightning.run.checks import TRAIN_RULES, check_model, check_values
from spark_lightning.run.plan_text import describe
from spark_lightning.run.recipe import apply_fallback_model
from spark_lightning.run.run_dir import effective_resume, is_rank_zero, slurm_requeued, start_point
from spark_lightning.training.module import craft_names
from spark_lightning.training.vram import apply_budget

log = logging.getLogger(__name__)


def _device(cfg: DictConfig) -> str:
    accelerator = str(cfg.trainer.get("accelerator", "auto"))
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ConfigError(f"trainer.accelerator={accelerator} but this machine has no CUDA GPU: use "
                              "trainer.accelerator=auto (or cpu).")
        return "cuda"
    return "cpu"


def resolve_precision(precision: Any, device: str) -> Any:
    """Mixed fp16 needs CUDA; on a CPU-only run fall back to 32-true and say so."""
    if device == "cpu" and precision is not None and str(precision).startswith("16"):
        log.info("trainer.precision=%s needs a CUDA GPU; this run is on CPU, using 32-true", precision)
        return "32-true"
    return precision


def resolve_train(cfg: DictConfig) -> DictConfig:
    """The plan of a training run (see the module docstring); writes ``config.yaml``."""
    output_dir = Path(cfg.paths.output_dir)
    if not is_rank_zero() and (output_dir / "config.yaml").is_file():
        plan = OmegaConf.load(output_dir / "config.yaml")
        OmegaConf.set_readonly(plan, True)
        return plan
    check_values(cfg, TRAIN_RULES)
    check_model(cfg)
    composed = OmegaConf.to_container(cfg, resolve=True)
    plan = copy.deepcopy(cfg)  # the caller's config stays as it was
    with open_dict(plan):
        device = _device(plan)
        notes = _resolve_model(plan, device)
        notes["cost"] = _cost(plan)
        notes["precision"] = str(plan.trainer.get("precision"))
        plan.trainer.precision = resolve_precision(plan.trainer.get("precision"), device)
        plan.ckpt_path = resume_checkpoint(plan)
        tracking.configure(plan)
        budget = _apply_budget(plan)
    OmegaConf.resolve(plan)
    with open_dict(plan):
        plan.settled = settled(composed, OmegaConf.to_container(plan))
    OmegaConf.set_readonly(plan, True)
    write_text_atomic(output_dir / "config.yaml", OmegaConf.to_yaml(plan))
    log.info("%s", describe(plan, device, notes, budget))
    return plan


def _resolve_model(plan: DictConfig, device: str) -> dict[str, str]:
    apply_fallback_model(plan)
    model = plan.model
    if model.get("channels_last") == "auto":
        model.channels_last = device == "cuda"
    notes = {}
    if model.get("weights_path"):
        notes["weights"] = f"encoder weights from {model.weights_path}"
    elif "encoder_weights" in model:
        model.encoder_weights, notes["weights"] = resolve_weights(model.arch, model.get("encoder"), model.encoder_weights)
    else:
        notes["weights"] = "random init"
    return notes


def _cost(plan: DictConfig) -> str:
    """The network's cost at ``cost.size`` (counted on the meta device), checked against the
    limits: a model above ``cost.max_params`` / ``cost.max_gflops`` stops here, before any work."""
    limits = plan.get("cost") or {}
    if not limits.get("size"):
        return "not counted (cost.size=null)"
    classes = getattr(get_class(plan.data.dataset._target_), "classes", None) or ()
    model = {**OmegaConf.to_container(plan.model, resolve=True), "channels_last": False}
    if plan.get("head"):  # the classification head counts too
        model["craft_classes"] = len(craft_names(plan.head))
    try:
        cost = network_cost(meta_network(model, len(classes) or 3), int(limits.size))
    except Exception as err:  # an op without a meta kernel: say so; a limit cannot then be checked
        if limits.get("max_params") is not None or limits.get("max_gflops") is not None:
            raise ConfigError(f"cost.max_params / cost.max_gflops are set but the cost of model "
                              f"{plan.model.get('arch')}/{plan.model.get('encoder')} could not be counted: {err}") from err
        return f"not counted ({type(err).__name__}: {err})"
    check_cost(cost, limits, f"model {plan.model.get('arch')}/{plan.model.get('encoder')}")
    return describe_cost(cost, limits.get("unit", "flops"))


def resume_checkpoint(cfg: DictConfig) -> str | None:
    """``ckpt_path`` if given; with ``resume=auto`` the run directory's last.ckpt (if any).

    When resuming, the W&B logger continues the run directory's previous W&B run id.
    """
    resume = effective_resume(cfg)
    if resume not in (None, "auto"):
        raise ConfigError(f"resume={cfg.resume!r}: use resume=auto, or ckpt_path=PATH for a given checkpoint.")
    output_dir = Path(cfg.paths.output_dir)
    ckpt = start_point(output_dir, cfg)
    if cfg.get("ckpt_path") is None and resume == "auto":
        if ckpt is None:
            log.info("resume=auto: no %s yet, starting from scratch", output_dir / "checkpoints" / "last.ckpt")
        if resume != cfg.get("resume"):
            log.info("SLURM requeued this job (SLURM_RESTART_COUNT=%d): continuing its run directory as with "
                     "resume=auto", slurm_requeued())
    if ckpt is not None:
        path = Path(ckpt).expanduser()
        check_same_model(read_checkpoint(path), container(cfg.model), path)
        log.info("resuming from %s", ckpt)
        tracking.continue_run(cfg, output_dir)
    return ckpt


def _apply_budget(plan: DictConfig) -> dict | None:
    return apply_budget(plan, build_module)


def settled(composed: dict, plan: dict) -> dict[str, str]:
    """Every value the plan settled differently from the composed config (what ``--cfg job`` and
    ``.hydra/config.yaml`` show), as ``key: "composed -> planned"``: the config.yaml of a run is
    the composition plus exactly these."""
    before, after = tracking.flatten(composed), tracking.flatten(plan)
    return {key: f"{before.get(key, '(unset)')} -> {after.get(key, '(unset)')}"
            for key in sorted(set(before) | set(after)) if before.get(key, KeyError) != after.get(key, KeyError)}
