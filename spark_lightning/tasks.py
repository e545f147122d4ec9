"""Plain task functions taking a composed config; the ``@hydra.main`` shims only call these.

Tests call them directly with configs composed in-process.
"""

from __future__ import annotations

import heapq
import json
import logging
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import LearningRateMonitor
from omegaconf import DictConfig, OmegaConf, open_dict
from rich.progress import track

from spark_lightning.budget import apply_budget
from spark_lightning.callbacks import AtomicCheckpointIO, write_json_atomic
from spark_lightning.data.spark import SPACECRAFT, Sample, SparkDataError, read_mask, read_rgb, scan_images, scan_split
from spark_lightning.inference import InferenceConfig, iter_predictions, load_network
from spark_lightning.metrics import per_image_iou, segmentation_metrics
from spark_lightning.module import SegmentationModule
from spark_lightning.outputs import (
    NPZ_SUFFIX,
    image_name,
    load_mask_npz,
    overlay,
    save_colour_mask,
    save_mask_npz,
    save_png,
    write_zip,
)

log = logging.getLogger(__name__)


def _container(cfg: DictConfig | None) -> Any:
    return OmegaConf.to_container(cfg, resolve=True) if cfg is not None else None


def instantiate_dict(cfg: DictConfig | None) -> list[Any]:
    """Instantiate every entry of a name -> config mapping (callbacks, loggers); skip nulls."""
    if not cfg:
        return []
    return [instantiate(value) for value in cfg.values() if value is not None]


def resolve_precision(precision: str | int | None, accelerator: str) -> str | int | None:
    """Mixed fp16 needs CUDA; on a CPU-only run fall back to 32-true and say so."""
    on_cpu = accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available())
    if on_cpu and precision is not None and str(precision).startswith("16"):
        log.info("trainer.precision=%s needs a CUDA GPU; this run is on CPU, using 32-true", precision)
        return "32-true"
    return precision


def build_module(cfg: DictConfig) -> SegmentationModule:
    return SegmentationModule(
        model=_container(cfg.model),
        loss=_container(cfg.loss),
        optimizer=_container(cfg.optimizer),
        scheduler=_container(cfg.get("scheduler")),
        inference={"size": cfg.data.get("size"), "crop": cfg.data.get("crop")},
    )


def _hydra_job() -> tuple[list[str], str | None]:
    """(this job's overrides, the sweep's name when running under --multirun)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return [], None
    hc = HydraConfig.get()
    sweep = Path(hc.sweep.dir).name if hc.mode == RunMode.MULTIRUN else None
    return list(hc.overrides.task), sweep


def configure_wandb(cfg: DictConfig) -> None:
    """One W&B run per job: group = the sweep, tags = the overrides, name = the run directory."""
    wandb_cfg = (cfg.get("logger") or {}).get("wandb")
    if wandb_cfg is None:
        return
    overrides, sweep = _hydra_job()
    with open_dict(cfg):
        if not wandb_cfg.get("group"):
            wandb_cfg.group = sweep
        if not wandb_cfg.get("tags"):
            wandb_cfg.tags = [o[:64] for o in overrides if not o.startswith(("hydra.", "data.root"))]
        if not wandb_cfg.get("name"):
            wandb_cfg.name = Path(cfg.paths.output_dir).name


def build_loggers(cfg: DictConfig) -> list[Any]:
    """Instantiate loggers; if W&B cannot start, warn and carry on with the others."""
    loggers = []
    for name, value in (cfg.get("logger") or {}).items():
        if value is None:
            continue
        try:
            logger = instantiate(value)
            if name == "wandb":
                _ = logger.experiment  # starts the run now, so a failure shows here
            loggers.append(logger)
        except Exception as err:
            if name != "wandb":
                raise
            log.warning("W&B could not start (%s: %s); continuing with the other loggers (CSV).",
                        type(err).__name__, err)
    return loggers


def build_trainer(cfg: DictConfig, **kwargs: Any) -> L.Trainer:
    callbacks = instantiate_dict(cfg.get("callbacks"))
    loggers = build_loggers(cfg)
    if not loggers:  # nothing to record learning rates to
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    precision = resolve_precision(cfg.trainer.get("precision"), cfg.trainer.get("accelerator", "auto"))
    return instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, precision=precision,
                       plugins=[AtomicCheckpointIO()], **kwargs)


def resume_checkpoint(cfg: DictConfig) -> str | None:
    """``ckpt_path`` if given; with ``resume=auto`` the run directory's last.ckpt (if any).

    When resuming, the W&B logger continues the run directory's previous W&B run id.
    """
    if cfg.get("resume") not in (None, "auto"):
        raise ValueError(f"resume={cfg.resume!r}: use resume=auto, or ckpt_path=PATH for a given checkpoint.")
    ckpt = cfg.get("ckpt_path")
    output_dir = Path(cfg.paths.output_dir)
    if ckpt is None and cfg.get("resume") == "auto":
        last = output_dir / "checkpoints" / "last.ckpt"
        if last.is_file():
            ckpt = str(last)
        else:
            log.info("resume=auto: no %s yet, starting from scratch", last)
    if ckpt is not None:
        if not Path(ckpt).is_file():
            raise FileNotFoundError(f"ckpt_path={ckpt} does not exist.")
        log.info("resuming from %s", ckpt)
        runs = sorted((output_dir / "wandb").glob("*run-*"))
        wandb_cfg = (cfg.get("logger") or {}).get("wandb")
        if runs and wandb_cfg is not None and wandb_cfg.get("id") is None:
            with open_dict(cfg):
                wandb_cfg.id = runs[-1].name.rsplit("-", 1)[-1]
                wandb_cfg.resume = "allow"
            log.info("continuing W&B run %s", wandb_cfg.id)
    return ckpt


def _finish_wandb() -> None:
    """End this job's W&B run so the next multirun job starts a new one."""
    import sys

    if "wandb" in sys.modules:
        import wandb

        if wandb.run is not None:
            wandb.finish()


def run_train(cfg: DictConfig) -> dict[str, Any]:
    """Train and validate; return ``{"metrics": best-epoch metrics, "trainer", "module", ...}``."""
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "FAILED").unlink(missing_ok=True)  # from an earlier attempt of a resumed run
    configure_wandb(cfg)
    OmegaConf.save(cfg, output_dir / "config.yaml", resolve=True)
    try:
        apply_budget(cfg, build_module)
        transform = instantiate(cfg.aug) if cfg.get("aug") else None
        datamodule = instantiate(cfg.data, train_transform=transform)
        module = build_module(cfg)
        ckpt_path = resume_checkpoint(cfg)
        trainer = build_trainer(cfg)
        for logger in trainer.loggers:
            logger.log_hyperparams(_container(cfg))
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
        best = metrics
        metrics_file = output_dir / "metrics.json"
        if metrics_file.exists():
            best = json.loads(metrics_file.read_text())["best"]
        log.info("best val/spark_score: %s (run dir %s)", best.get("val/spark_score"), output_dir)
        return {"metrics": best, "final": metrics, "trainer": trainer, "module": module, "datamodule": datamodule}
    except Exception as err:
        # A marker the sweep report reads; the exception still fails this job (and only it).
        cause = err
        while cause.__cause__ is not None:  # Hydra wraps errors raised in instantiated targets
            cause = cause.__cause__
        (output_dir / "FAILED").write_text(f"{type(cause).__name__}: {cause}\n")
        log.exception("training failed; run dir %s", output_dir)
        raise
    finally:
        _finish_wandb()


def _device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("predict.device=cuda but no CUDA GPU is available: use predict.device=auto or cpu.")
    return name


def _inference_config(pred: DictConfig, hparams: dict) -> InferenceConfig:
    trained = hparams.get("inference") or {}
    return InferenceConfig(
        mode=pred.mode,
        size=pred.size or trained.get("size"),
        tile=pred.tile or trained.get("crop") or trained.get("size"),
        overlap=pred.overlap,
        tta=pred.tta,
    )


def _predictions(cfg: DictConfig, paths: list[Path]):
    """(path, labels, probs) for each image, from the checkpoint in cfg.ckpt."""
    device = _device(cfg.predict.device)
    net, hparams = load_network(cfg.ckpt, device)
    icfg = _inference_config(cfg.predict, hparams)
    log.info("predicting %d images with %s (mode=%s, size=%s, tile=%s, tta=%s) on %s",
             len(paths), cfg.ckpt, icfg.mode, icfg.size, icfg.tile, icfg.tta, device)
    return iter_predictions(net, paths, icfg, cfg.predict.batch_size, cfg.predict.num_workers, device, cfg.predict.amp)


def run_predict(cfg: DictConfig) -> dict[str, Any]:
    """Write ``<name>_layer.npz`` for every ``*_img.jpg`` under cfg.input, skipping done ones."""
    out = Path(cfg.output).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    paths = scan_images(cfg.input)
    todo = [p for p in paths if not (out / f"{image_name(p)}{NPZ_SUFFIX}").exists()]
    if len(todo) < len(paths):
        log.info("skipping %d images already predicted in %s", len(paths) - len(todo), out)
    for path, labels, _ in track(_predictions(cfg, todo) if todo else [], total=len(todo), description="predict"):
        name = image_name(path)
        if cfg.save_png:
            save_colour_mask(out / f"{name}_layer.png", labels)
        save_mask_npz(out / f"{name}{NPZ_SUFFIX}", labels)  # last: its presence marks the image done
    archive = write_zip(out) if cfg.zip else None
    log.info("wrote %d predictions (%d skipped) to %s%s", len(todo), len(paths) - len(todo), out,
             f", {archive}" if archive else "")
    return {"written": len(todo), "skipped": len(paths) - len(todo), "zip": archive, "output": out}


def _evaluation_pairs(cfg: DictConfig, samples: list[Sample]):
    """(sample, predicted labels) from a checkpoint or from a folder of npz files."""
    if cfg.ckpt:
        by_path = {s.image: s for s in samples}
        for path, labels, _ in _predictions(cfg, list(by_path)):
            yield by_path[path], labels
        return
    folder = Path(cfg.predictions).expanduser()
    if not folder.is_dir():
        raise SparkDataError(f"predictions={folder} is not a folder.")
    files = {p.name[: -len(NPZ_SUFFIX)]: p for p in folder.glob(f"*{NPZ_SUFFIX}")}
    names = {s.name for s in samples}
    missing, extra = sorted(names - set(files)), sorted(set(files) - names)
    if extra:
        log.warning("%d predictions in %s have no image in split %s (ignored), e.g. %s",
                    len(extra), folder, cfg.split, files[extra[0]].name)
    if missing and not cfg.allow_missing:
        raise SparkDataError(
            f"{len(missing)} of {len(samples)} images of split '{cfg.split}' have no prediction in {folder}, "
            f"e.g. {missing[0]}{NPZ_SUFFIX}. Predict them, or set allow_missing=true to score them as empty."
        )
    if missing:
        log.warning("%d images have no prediction: scored as empty masks", len(missing))
    for sample in samples:
        if sample.name in files:
            yield sample, load_mask_npz(files[sample.name])
        else:
            yield sample, None


def run_evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Score a checkpoint or a prediction folder against ground truth with the training metrics."""
    if bool(cfg.ckpt) == bool(cfg.predictions):
        raise ValueError("give exactly one of ckpt=PATH or predictions=DIR.")
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    samples = scan_split(datamodule.data_root, cfg.split)
    metrics = segmentation_metrics()
    per_image, worst = [], []  # worst: heap of the cfg.worst lowest-scoring (score, index, sample, pred)
    pairs = _evaluation_pairs(cfg, samples)
    for index, (sample, pred) in enumerate(track(pairs, total=len(samples), description="evaluate")):
        truth = read_mask(sample.mask)
        pred = np.zeros_like(truth) if pred is None else pred
        if pred.shape != truth.shape:
            raise SparkDataError(f"prediction for {sample.name} is {pred.shape}, its mask {sample.mask} is {truth.shape}.")
        p, t = torch.from_numpy(pred.astype(np.int64))[None], torch.from_numpy(truth.astype(np.int64))[None]
        metrics.update(p, t)
        ious = {k: v.item() for k, v in per_image_iou(p, t).items()}
        per_image.append({"name": sample.name, "spacecraft": SPACECRAFT[sample.spacecraft], **ious})
        scored = [ious["iou_body"]] + ([ious["iou_panel"]] if ious["panel_scored"] else [])
        heapq.heappush(worst, (-sum(scored) / len(scored), index, sample, pred))
        if len(worst) > cfg.worst:
            heapq.heappop(worst)  # drop the best of the kept ones
    summary = {k: float(v) for k, v in metrics.compute().items()}
    out = Path(cfg.paths.output_dir)
    folder = out / "worst"
    for rank, (_, _, sample, pred) in enumerate(sorted(worst, reverse=True)):
        folder.mkdir(parents=True, exist_ok=True)
        image = read_rgb(sample.image)
        save_png(folder / f"{rank:02d}_{sample.name}.png", overlay(image, read_mask(sample.mask), pred))
    write_json_atomic(out / "eval.json", {**summary, "split": cfg.split, "num_images": len(samples),
                                          "source": str(cfg.ckpt or cfg.predictions), "per_image": per_image})
    _print_table(summary)
    return {"metrics": summary, "per_image": per_image, "output": out}


def _print_table(summary: dict[str, float]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="SPARK evaluation")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in ("spark_score", "spark_body", "spark_panel", "iou", "iou_background", "iou_body", "iou_panel"):
        table.add_row(key, f"{summary[key]:.4f}")
    Console().print(table)


def run_export(cfg: DictConfig) -> dict[str, Any]:
    """Export a checkpoint's network to ONNX and check it against PyTorch."""
    if cfg.format != "onnx":
        raise ValueError(f"format={cfg.format!r}: only 'onnx' is supported.")
    from spark_lightning.onnx_export import export_onnx, onnx_parity

    net, hparams = load_network(cfg.ckpt)
    size = (hparams.get("inference") or {}).get("size") or 512
    out = Path(cfg.output or Path(cfg.ckpt).with_suffix(".onnx")).expanduser()
    dynamic = export_onnx(net, out, size, cfg.opset, cfg.dynamic_spatial)
    shapes = [(1, 3, size, size), (3, 3, size, size)] + ([(1, 3, size + 6, size - 10)] if dynamic else [])
    diff = onnx_parity(net, out, shapes)
    print(f"exported {out} (dynamic batch{', height, width' if dynamic else ''}); "
          f"max abs diff vs PyTorch: {diff:.3g} over inputs {shapes}")
    if diff > cfg.tolerance:
        raise RuntimeError(f"ONNX output differs from PyTorch by {diff:.3g} > tolerance {cfg.tolerance}: {out}")
    return {"path": out, "max_abs_diff": diff, "dynamic_spatial": dynamic}
