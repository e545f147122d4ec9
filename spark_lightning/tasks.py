"""The four tasks, as plain functions of a composed config; the ``@hydra.main`` shims call these
and tests call them directly with configs composed in-process."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from spark_lightning import wandb_run
from spark_lightning.atomic import write_json_atomic
from spark_lightning.builders import build_datamodule, build_module, build_trainer, container
from spark_lightning.callbacks import MetricsJson
from spark_lightning.checkpoints import load_weights
from spark_lightning.data.datamodule import build_format
from spark_lightning.data.spark import SparkFormat
from spark_lightning.errors import ConfigError, SparkDataError
from spark_lightning.evaluation import breakdown_plot, evaluate_pairs, folder_pairs, print_table
from spark_lightning.inference import checkpoint_list, iter_predictions, load_predictors, pick_device
from spark_lightning.outputs import NPZ_SUFFIX, read_manifest, save_colour_mask, save_mask_npz, write_manifest, write_zip
from spark_lightning.plan import resolve_train
from spark_lightning.runtime import run_dir_lock, task_wrapper

log = logging.getLogger(__name__)


def _log_hyperparams(trainer: L.Trainer, cfg: DictConfig) -> None:
    """W&B gets the flattened config (its sweep tables compare ``model.arch`` etc.), others the tree."""
    from lightning.pytorch.loggers import WandbLogger

    for logger in trainer.loggers:
        logger.log_hyperparams(wandb_run.flat_config(cfg) if isinstance(logger, WandbLogger) else container(cfg))


def _best_metrics(trainer: L.Trainer, cfg: DictConfig) -> dict[str, float]:
    """The best epoch's metrics (from the MetricsJson callback, in memory); the optimised metric
    must be among them, or a sweeper would optimise nothing."""
    callback = next((c for c in trainer.callbacks if isinstance(c, MetricsJson)), None)
    final = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
    best = callback.best if callback is not None and callback.history else final
    name = cfg.get("optimized_metric")
    validated = sum(trainer.num_val_batches or [0]) > 0
    if name and name not in best and validated:
        logged = sorted(k for k in best if k.startswith("val/"))
        raise ConfigError(f"optimized_metric={name} was never logged; logged metrics: {', '.join(logged)}.")
    return best


@task_wrapper
def run_train(cfg: DictConfig) -> dict[str, Any]:
    """Train and validate; return ``{"metrics": best-epoch metrics, "trainer", "module", ...}``."""
    output_dir = Path(cfg.paths.output_dir)
    with run_dir_lock(output_dir):
        plan = resolve_train(cfg)
        if plan.get("seed") is not None:
            L.seed_everything(plan.seed, workers=True)
        datamodule = build_datamodule(plan)
        module = build_module(plan, datamodule.classes)
        if plan.get("init_from") and plan.get("ckpt_path") is None:  # fine-tune: weights only, a fresh optimizer
            load_weights(module.net, plan.init_from, plan.get("init_from_strict", True))
        side = plan.data.get("crop") or plan.data.get("size")
        if side:  # the model summary then counts real FLOPs at the training size
            module.example_input_array = torch.zeros(1, 3, side, side, dtype=torch.uint8)
        trainer = build_trainer(plan)
        _log_hyperparams(trainer, plan)
        trainer.fit(module, datamodule=datamodule, ckpt_path=plan.get("ckpt_path"))
        best = _best_metrics(trainer, plan)
    final = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
    log.info("best %s: %s (run dir %s)", plan.get("optimized_metric"), best.get(plan.get("optimized_metric")), output_dir)
    return {"metrics": best, "final": final, "trainer": trainer, "module": module, "datamodule": datamodule,
            "plan": plan}


def _prediction_format(predictors):
    """Read images the way the model's training data were read (the checkpoint's format)."""
    dataset = predictors[0].info.get("dataset")
    return build_format(dataset) if dataset else SparkFormat()


def _manifest(predictors) -> dict:
    ckpts = []
    for p in predictors:
        stat = Path(p.source).expanduser().stat()
        ckpts.append({"path": str(Path(p.source).expanduser().resolve()), "size": stat.st_size,
                      "mtime_ns": stat.st_mtime_ns})
    options = [{k: v for k, v in vars(p.options).items()} for p in predictors]
    return {"checkpoints": ckpts, "options": OmegaConf.to_container(OmegaConf.create({"o": options}))["o"]}


def _prepare_output(out: Path, manifest: dict, overwrite: bool) -> None:
    """Refuse to mix predictions of other checkpoints or settings into ``out``, unless overwrite."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output={out} is a file: give a folder for the predictions.")
    out.mkdir(parents=True, exist_ok=True)
    old = read_manifest(out)
    existing = list(out.glob(f"*{NPZ_SUFFIX}"))
    if old == manifest or not existing:
        return
    if not overwrite:
        made_by = ", ".join(c["path"] for c in old["checkpoints"]) if old else "an unknown checkpoint (no manifest)"
        raise ConfigError(f"output={out} holds {len(existing)} predictions made by {made_by} with other settings: "
                          "choose another output=, or set overwrite=true to replace them.")
    log.info("overwrite=true: removing %d earlier predictions from %s", len(existing), out)
    for path in existing:
        path.unlink()
        path.with_suffix(".png").unlink(missing_ok=True)


@task_wrapper
def run_predict(cfg: DictConfig) -> dict[str, Any]:
    """Write ``<name>_layer.npz`` for every image under cfg.input, skipping done ones."""
    out = Path(cfg.output).expanduser()
    predictors = load_predictors(cfg.ckpt, cfg.predict, pick_device(cfg.predict.device))
    fmt = _prediction_format(predictors)
    paths = fmt.find_images(cfg.input)
    manifest = _manifest(predictors)
    _prepare_output(out, manifest, cfg.get("overwrite", False))
    write_manifest(out, manifest)
    todo = [p for p in paths if not (out / f"{fmt.image_name(p)}{NPZ_SUFFIX}").exists()]
    if len(todo) < len(paths):
        log.info("skipping %d images already predicted in %s", len(paths) - len(todo), out)
    from rich.progress import track

    predictions = iter_predictions(predictors, todo, fmt, cfg.predict.batch_size, cfg.predict.num_workers,
                                   pick_device(cfg.predict.device), cfg.predict.amp) if todo else []
    for path, labels, _ in track(predictions, total=len(todo), description="predict"):
        name = fmt.image_name(path)
        if cfg.save_png:
            save_colour_mask(out / f"{name}_layer.png", labels)
        save_mask_npz(out / f"{name}{NPZ_SUFFIX}", labels)  # last: its presence marks the image done
    archive = write_zip(out) if cfg.zip else None
    log.info("wrote %d predictions (%d skipped) to %s%s", len(todo), len(paths) - len(todo), out,
             f", {archive}" if archive else "")
    return {"written": len(todo), "skipped": len(paths) - len(todo), "zip": archive, "output": out}


@task_wrapper
def run_evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Score a checkpoint (or ensemble) or a prediction folder against ground truth."""
    if bool(cfg.ckpt) == bool(cfg.predictions):
        raise ConfigError("give exactly one of ckpt=PATH (or a list) or predictions=DIR.")
    fmt = build_format(cfg.data.dataset, cfg.data.get("root"))
    fmt.prepare()
    samples = fmt.samples(cfg.split)
    if cfg.ckpt:
        predictors = load_predictors(cfg.ckpt, cfg.predict, pick_device(cfg.predict.device))
        by_path = {s.image: s for s in samples}
        predictions = iter_predictions(predictors, list(by_path), fmt, cfg.predict.batch_size,
                                       cfg.predict.num_workers, pick_device(cfg.predict.device), cfg.predict.amp)
        pairs = ((by_path[path], labels) for path, labels, _ in predictions)
    else:
        folder = Path(cfg.predictions).expanduser()
        pairs = folder_pairs(folder, samples, cfg.split, cfg.allow_missing, len(fmt.classes))
    evaluation = evaluate_pairs(pairs, fmt, len(samples), cfg.worst)
    summary = evaluation.summary()
    breakdowns = {"spacecraft": evaluation.breakdown("spacecraft"), "object size": evaluation.breakdown("size_bin")}
    out = Path(cfg.paths.output_dir)
    worst = evaluation.save_worst(out / "worst")
    breakdown_plot(out / "breakdown.png", breakdowns)
    source = checkpoint_list(cfg.ckpt) or str(cfg.predictions)
    report = {**summary, "split": cfg.split, "num_images": len(samples), "source": source,
              "data_root": str(fmt.root), "by_spacecraft": breakdowns["spacecraft"],
              "by_object_size": breakdowns["object size"], "per_image": evaluation.per_image}
    write_json_atomic(out / "eval.json", report)
    print_table(summary, breakdowns)
    log.info("wrote %s, %s and %d overlays of the worst images in %s", out / "eval.json", out / "breakdown.png",
             len(worst), out / "worst")
    wandb_table = _log_evaluation_to_wandb(cfg, evaluation, summary, worst)
    return {"metrics": summary, "per_image": evaluation.per_image, "output": out, "breakdowns": breakdowns,
            "wandb_table": wandb_table}


def _log_evaluation_to_wandb(cfg: DictConfig, evaluation, summary: dict, worst: list[Path]) -> bool:
    """With ``wandb=true`` (or a W&B run already active): the metrics, and a table of per-image
    IoUs with the worst images' overlays."""
    run = wandb_run.active_run()
    if run is None and not cfg.get("wandb"):
        return False
    import wandb

    if run is None:
        run = wandb.init(project=cfg.get("wandb_project", "spark_lightning"), job_type="evaluate",
                         dir=str(cfg.paths.output_dir), config=wandb_run.flat_config(cfg))

    by_name = {p.name.split("_", 1)[1].removesuffix(".png"): p for p in worst}
    columns = ["name", "spacecraft", "iou_body", "iou_panel", "panel_scored", "overlay"]
    table = wandb.Table(columns=columns, allow_mixed_types=True)  # only the worst rows have an overlay
    for row in evaluation.per_image:
        image = wandb.Image(str(by_name[row["name"]])) if row["name"] in by_name else None
        table.add_data(row["name"], row["spacecraft"], row["iou_body"], row["iou_panel"], row["panel_scored"], image)
    worst_images = [wandb.Image(str(p), caption=p.stem) for p in worst]
    run.log({"eval/per_image": table, "eval/worst": worst_images, **{f"eval/{k}": v for k, v in summary.items()}})
    return True


@task_wrapper
def run_export(cfg: DictConfig) -> dict[str, Any]:
    """Export a checkpoint's network to ONNX and check it against PyTorch."""
    if cfg.format != "onnx":
        raise ConfigError(f"format={cfg.format!r}: only 'onnx' is supported.")
    from spark_lightning.checkpoints import load_network
    from spark_lightning.onnx_export import export_onnx, onnx_parity

    net, info = load_network(cfg.ckpt)
    size = info.get("size") or 512
    out = Path(cfg.output or Path(cfg.ckpt).with_suffix(".onnx")).expanduser()
    if not out.parent.is_dir():
        raise SparkDataError(f"output={out}: folder {out.parent} does not exist; create it or choose another output=.")
    dynamic = export_onnx(net, out, size, cfg.opset, cfg.dynamic_spatial)
    inputs = [torch.rand(1, 3, size, size) * 255, torch.rand(3, 3, size, size) * 255, _parity_image(cfg, size)]
    if dynamic:
        inputs.append(torch.rand(1, 3, size + 6, size - 10) * 255)
    parity = onnx_parity(net, out, inputs)
    print(f"exported {out} ({out.stat().st_size / 2**20:.1f} MiB, dynamic batch{', height, width' if dynamic else ''}); "
          f"vs PyTorch on {len(inputs)} inputs incl. a {size}x{size} image: max abs diff {parity['max_abs_diff']:.3g} "
          f"({parity['max_rel_diff']:.2g} of the largest logit), argmax agreement {parity['argmax_agreement']:.4%}")
    if parity["max_rel_diff"] > cfg.tolerance or parity["argmax_agreement"] < cfg.min_argmax_agreement:
        raise RuntimeError(f"ONNX output differs from PyTorch beyond tolerance ({parity}): {out}")
    return {"path": out, **parity, "dynamic_spatial": dynamic}


def _parity_image(cfg: DictConfig, size: int) -> torch.Tensor:
    """A real image at the network's working size (``image=PATH``), else a 1024 px synthetic render."""
    from spark_lightning.data.formats import read_rgb, resize_image

    if cfg.get("image"):
        rgb = read_rgb(Path(cfg.image).expanduser(), size)
    else:
        from spark_lightning.data.synth import render_scene

        rgb = resize_image(render_scene(np.random.default_rng(0), 1024, 0)[0], size)
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None].float()
