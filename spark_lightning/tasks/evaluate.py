"""``python -m spark_lightning.evaluate``: score a checkpoint (or ensemble) or a folder of
predictions against ground truth, with the training metric, breakdowns and overlays."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from spark_lightning import tracking
from spark_lightning.atomic import write_json_atomic
from spark_lightning.data.datamodule import build_format
from spark_lightning.errors import ConfigError
from spark_lightning.run.checks import PREDICT_RULES, check_values, is_int
from spark_lightning.inference.probabilities import iter_predictions
from spark_lightning.inference.predictors import box_mode, checkpoint_list, ensemble_crafts, load_predictors, pick_device
from spark_lightning.run.plan_text import format_plan, predictor_rows
from spark_lightning.inference.writers import read_manifest
from spark_lightning.scores.spark2026 import ensemble_cost
from spark_lightning.run.runtime import task_wrapper
from spark_lightning.scores.evaluation import breakdown_plot, evaluate_pairs, folder_pairs, print_table

log = logging.getLogger(__name__)


@task_wrapper
def run_evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Score a checkpoint (or ensemble) or a prediction folder against ground truth."""
    if bool(cfg.ckpt) == bool(cfg.predictions):
        raise ConfigError("give exactly one of ckpt=PATH (or a list) or predictions=DIR.")
    check_values(cfg, PREDICT_RULES + [("worst", lambda v: is_int(v) and v >= 0, "a whole number >= 0")])
    fmt = build_format(cfg.data.dataset, cfg.data.get("root"))
    rows = [("data", f"{cfg.data.get('root') or 'the generated synthetic set'}, split {cfg.split}")]
    predictors = []
    if cfg.ckpt:
        device = pick_device(cfg.predict.device)
        predictors = load_predictors(cfg.ckpt, cfg.predict, device)
        log.info("%s", format_plan([*rows, *predictor_rows(predictors, device), ("output", str(cfg.paths.output_dir))]))
        fmt.prepare()
        samples = fmt.samples(cfg.split)
        by_path = {s.image: s for s in samples}
        predictions = iter_predictions(predictors, list(by_path), fmt, cfg.predict.batch_size,
                                       cfg.predict.num_workers, device, cfg.predict.amp)
        crafts = ensemble_crafts(predictors)
        pairs = ((by_path[path], labels, (crafts[int(craft.argmax())], None) if craft is not None else None)
                 for path, labels, _, craft in predictions)
        network = ensemble_cost([p.net for p in predictors], cfg.get("cost")) if crafts else None  # for the final score
    else:
        log.info("%s", format_plan([*rows, ("predictions", str(cfg.predictions)), ("output", str(cfg.paths.output_dir))]))
        fmt.prepare()
        samples = fmt.samples(cfg.split)
        folder = Path(cfg.predictions).expanduser()
        pairs = folder_pairs(folder, samples, cfg.split, cfg.allow_missing, len(fmt.classes))
        network = (read_manifest(folder) or {}).get("cost")  # what predict counted, if it did
    evaluation = evaluate_pairs(pairs, fmt, len(samples), cfg.worst, box_mode(cfg.box_from_mask, predictors),
                                (network, cfg.get("cost")))
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
    run = tracking.active_run()
    if run is None and not cfg.get("wandb"):
        return False
    import wandb

    if run is None:
        run = wandb.init(project=cfg.wandb_project, job_type="evaluate",
                         dir=str(cfg.paths.output_dir), config=tracking.flat_config(cfg))

    by_name = {p.name.split("_", 1)[1].removesuffix(".png"): p for p in worst}
    columns = ["name", "spacecraft", "iou_body", "iou_panel", "panel_scored", "overlay"]
    table = wandb.Table(columns=columns, allow_mixed_types=True)  # only the worst rows have an overlay
    for row in evaluation.per_image:
        image = wandb.Image(str(by_name[row["name"]])) if row["name"] in by_name else None
        table.add_data(row["name"], row["spacecraft"], row["iou_body"], row["iou_panel"], row["panel_scored"], image)
    worst_images = [wandb.Image(str(p), caption=p.stem) for p in worst]
    run.log({"eval/per_image": table, "eval/worst": worst_images, **{f"eval/{k}": v for k, v in summary.items()}})
    return True
