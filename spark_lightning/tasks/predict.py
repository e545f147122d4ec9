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
from spark_lightning.inference import iter_predictions, load_predictors, pick_device
from spark_lightning.run.plan_text import format_plan, predictor_rows
from spark_lightning.outputs import MANIFEST, NPZ_SUFFIX, read_manifest, save_colour_mask, save_mask_npz, write_manifest, write_zip
from spark_lightning.run.runtime import task_wrapper

log = logging.getLogger(__name__)


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
    ours = [out / MANIFEST, out / "submission.zip"]  # written by predict beside the masks
    foreign = [p for p in [*ours, *out.glob("*_layer.*")] if p.is_file()] if old is None else []
    if foreign:  # masks or predictions that predict did not write: never overwritten, not even with overwrite=true
        raise ConfigError(f"output={out} holds {len(foreign)} files predict did not write (e.g. {foreign[0].name}; "
                          f"no {MANIFEST} of ours there): choose a new or empty folder for the predictions.")
    if old == manifest or not existing:
        return
    if not overwrite:
        made_by = ", ".join(c["path"] for c in old["checkpoints"])
        raise ConfigError(f"output={out} holds {len(existing)} predictions made by {made_by} with other settings: "
                          "choose another output=, or set overwrite=true to replace them.")
    log.info("overwrite=true: removing %d earlier predictions from %s", len(existing), out)
    for path in existing:
        path.unlink()
        path.with_suffix(".png").unlink(missing_ok=True)


@task_wrapper
def run_predict(cfg: DictConfig) -> dict[str, Any]:
    """Write ``<name>_layer.npz`` for every image under cfg.input, skipping done ones."""
    check_values(cfg, PREDICT_RULES)
    out = Path(cfg.output).expanduser()
    device = pick_device(cfg.predict.device)
    predictors = load_predictors(cfg.ckpt, cfg.predict, device)
    log.info("%s", format_plan([*predictor_rows(predictors, device), ("input", str(cfg.input)), ("output", str(out)),
                                ("writes", "<name>_layer.npz" + (" + colour PNGs" if cfg.save_png else "")
                                 + (" + submission.zip" if cfg.zip else ""))]))
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
