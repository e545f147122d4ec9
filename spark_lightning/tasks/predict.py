"""``python -m spark_lightning.predict``: ``<name>_layer.npz`` for every image of a folder, and the
submission zip; never over files it did not write, never mixing checkpoints or settings."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from spark_lightning.data.datamodule import build_format
from spark_lightning.data.spark import SparkFormat
from spark_lightning.errors import ConfigError
from spark_lightning.run.checks import PREDICT_RULES, check_values
from spark_lightning.inference.probabilities import iter_predictions
from spark_lightning.inference.predictors import box_mode, ensemble_crafts, load_predictors, pick_device
from spark_lightning.run.plan_text import format_plan, predictor_rows
from spark_lightning.data.boxes import format_box, predicted_box
from spark_lightning.inference.writers import (DETECTIONS, MANIFEST, NPZ_SUFFIX, read_detections, read_manifest, save_colour_mask,
                                     save_mask_npz, write_detections, write_manifest, write_zip)
from spark_lightning.run.runtime import task_wrapper
from spark_lightning.scores.spark2026 import ensemble_cost

log = logging.getLogger(__name__)


def _prediction_format(predictors):
    """Read images the way the model's training data were read (the checkpoint's format)."""
    dataset = predictors[0].info.get("dataset")
    return build_format(dataset) if dataset else SparkFormat()


def _manifest(predictors, cost: dict | None) -> dict:
    """Which checkpoints and settings made the predictions, and what their networks cost (SPARK
    2026's final score in evaluate reads it: the sum over an ensemble's networks, one view each)."""
    ckpts = []
    for p in predictors:
        stat = Path(p.source).expanduser().stat()
        ckpts.append({"path": str(Path(p.source).expanduser().resolve()), "size": stat.st_size,
                      "mtime_ns": stat.st_mtime_ns})
    options = [{k: v for k, v in vars(p.options).items()} for p in predictors]
    manifest = {"checkpoints": ckpts, "options": OmegaConf.to_container(OmegaConf.create({"o": options}))["o"]}
    if network := ensemble_cost([p.net for p in predictors], cost):
        manifest["cost"] = network
    return manifest


def _settings(manifest: dict | None) -> dict:
    """What makes predictions alike: checkpoints and options (the recorded cost is not a setting)."""
    return {k: v for k, v in (manifest or {}).items() if k != "cost"}


def _prepare_output(out: Path, manifest: dict, overwrite: bool) -> None:
    """Refuse to mix predictions of other checkpoints or settings into ``out``, unless overwrite."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output={out} is a file: give a folder for the predictions.")
    out.mkdir(parents=True, exist_ok=True)
    old = read_manifest(out)
    existing = list(out.glob(f"*{NPZ_SUFFIX}"))
    ours = [out / MANIFEST, out / "submission.zip", out / DETECTIONS]  # written by predict beside the masks
    foreign = [p for p in [*ours, *out.glob("*_layer.*")] if p.is_file()] if old is None else []
    if foreign:  # masks or predictions that predict did not write: never overwritten, not even with overwrite=true
        raise ConfigError(f"output={out} holds {len(foreign)} files predict did not write (e.g. {foreign[0].name}; "
                          f"no {MANIFEST} of ours there): choose a new or empty folder for the predictions.")
    if not existing or _settings(old) == _settings(manifest):
        return
    if not overwrite:
        made_by = ", ".join(c["path"] for c in old["checkpoints"])
        raise ConfigError(f"output={out} holds {len(existing)} predictions made by {made_by} with other settings: "
                          "choose another output=, or set overwrite=true to replace them.")
    log.info("overwrite=true: removing %d earlier predictions from %s", len(existing), out)
    for path in existing:
        path.unlink()
        path.with_suffix(".png").unlink(missing_ok=True)
    (out / DETECTIONS).unlink(missing_ok=True)


@task_wrapper
def run_predict(cfg: DictConfig) -> dict[str, Any]:
    """Write ``<name>_layer.npz`` for every image under cfg.input, skipping done ones."""
    check_values(cfg, PREDICT_RULES)
    out = Path(cfg.output).expanduser()
    device = pick_device(cfg.predict.device)
    predictors = load_predictors(cfg.ckpt, cfg.predict, device)
    crafts = ensemble_crafts(predictors)
    log.info("%s", format_plan([*predictor_rows(predictors, device), ("input", str(cfg.input)), ("output", str(out)),
                                ("writes", "<name>_layer.npz" + (" + colour PNGs" if cfg.save_png else "")
                                 + (f" + {DETECTIONS} (class, box)" if crafts else "")
                                 + (" + submission.zip" if cfg.zip else ""))]))
    fmt = _prediction_format(predictors)
    paths = fmt.find_images(cfg.input)
    manifest = _manifest(predictors, cfg.get("cost") if crafts else None)  # the cost serves the 2026 score
    _prepare_output(out, manifest, cfg.get("overwrite", False))
    write_manifest(out, manifest)
    detections = read_detections(out / DETECTIONS) if crafts else {}
    todo = [p for p in paths if not (out / f"{fmt.image_name(p)}{NPZ_SUFFIX}").exists()
            or (crafts and p.name not in detections)]  # a detection is part of a classifier's prediction
    if len(todo) < len(paths):
        log.info("skipping %d images already predicted in %s", len(paths) - len(todo), out)
    from rich.progress import track

    box = box_mode(cfg.get("box"), predictors)
    predictions = iter_predictions(predictors, todo, fmt, cfg.predict.batch_size, cfg.predict.num_workers,
                                   device, cfg.predict.amp) if todo else []
    try:
        for path, labels, _, craft in track(predictions, total=len(todo), description="predict"):
            name = fmt.image_name(path)
            if cfg.save_png:
                save_colour_mask(out / f"{name}_layer.png", labels)
            save_mask_npz(out / f"{name}{NPZ_SUFFIX}", labels)  # its presence marks the image done
            if craft is not None:
                detections[path.name] = (crafts[int(craft.argmax())], format_box(predicted_box(labels, box)))
    finally:  # the detections of every finished image, also when stopped part-way
        if crafts and detections:
            write_detections(out / DETECTIONS, detections)
    archive = write_zip(out) if cfg.zip else None
    log.info("wrote %d predictions (%d skipped) to %s%s", len(todo), len(paths) - len(todo), out,
             f", {archive}" if archive else "")
    return {"written": len(todo), "skipped": len(paths) - len(todo), "zip": archive, "output": out,
            "detections": out / DETECTIONS if crafts else None}
