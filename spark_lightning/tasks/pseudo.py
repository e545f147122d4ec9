"""``python -m spark_lightning.pseudo``: a pseudo-labelling round: a trained model labels unlabelled images where it is confident.

Writes a SPARK-layout folder (``images/pseudo/train/<name>_img.jpg`` and
``mask/pseudo/train/<name>_layer.png``, class ids with 255 where the model was unsure) and a
``pseudo.json`` manifest, which also tells the reader that 255 means "unlabelled". Train on it
beside the labelled set with ``data.extra_roots=[DIR]``; the losses and metrics skip 255.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig
from PIL import Image

from spark_lightning.atomic import write_with
from spark_lightning.run.checks import PREDICT_RULES, check_values
from spark_lightning.data.formats import IGNORE, IMAGE_MARK
from spark_lightning.data.spark import PSEUDO_MANIFEST, SparkFormat
from spark_lightning.errors import ConfigError
from spark_lightning.inference.probabilities import iter_predictions
from spark_lightning.inference.predictors import checkpoint_list, load_predictors, pick_device
from spark_lightning.inference.writers import read_stamped_json, write_stamped_json
from spark_lightning.run.plan_text import format_plan, predictor_rows
from spark_lightning.run.runtime import task_wrapper

log = logging.getLogger(__name__)
GROUP = "pseudo"
GENERATOR, SCHEMA = "spark_lightning.pseudo", 1  # what marks pseudo.json as ours


def check_output(out: Path, overwrite: bool) -> None:
    """A pseudo-label round goes into a new or empty folder. An earlier round of ours is replaced
    only with overwrite=true (its masks may have been corrected by hand since); a labelled data
    set or any other folder never (its training split would silently gain unlabelled frames)."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output={out} is a file: give a folder for the pseudo-labelled set.")
    if not out.exists() or not any(out.iterdir()):
        return
    if read_stamped_json(out / PSEUDO_MANIFEST, GENERATOR, SCHEMA) is None:
        raise ConfigError(f"output={out} is not empty and is not a pseudo-label round written by spark_lightning (a "
                          "labelled data set would gain the unlabelled frames in its training split): choose a new "
                          "or empty folder.")
    if not overwrite:
        raise ConfigError(f"output={out} holds an earlier pseudo-label round (its masks may have been corrected by "
                          "hand): choose another output=, or set overwrite=true to replace it.")


def confident_labels(probs, threshold: float) -> np.ndarray:
    """Argmax labels, IGNORE where the top probability is below ``threshold``."""
    top, labels = probs.max(0)
    labels = labels.to("cpu").numpy().astype(np.uint8)
    labels[(top < threshold).to("cpu").numpy()] = IGNORE
    return labels


@task_wrapper
def run_pseudo(cfg: DictConfig) -> dict[str, Any]:
    """Label every image under cfg.input where the model is at least cfg.threshold sure."""
    if not 0 < cfg.threshold <= 1:
        raise ConfigError(f"threshold={cfg.threshold}: give a probability in (0, 1], e.g. 0.9.")
    out = Path(cfg.output).expanduser()
    check_output(out, bool(cfg.get("overwrite")))
    check_values(cfg, PREDICT_RULES)
    device = pick_device(cfg.predict.device)
    predictors = load_predictors(cfg.ckpt, cfg.predict, device)
    log.info("%s", format_plan([*predictor_rows(predictors, device), ("input", str(cfg.input)), ("output", str(out)),
                                ("labels", f"pixels at least {cfg.threshold} sure; the rest 255 (unlabelled)")]))
    fmt = SparkFormat()
    paths = fmt.find_images(cfg.input)
    images, masks = out / "images" / GROUP / "train", out / "mask" / GROUP / "train"
    images.mkdir(parents=True, exist_ok=True)
    masks.mkdir(parents=True, exist_ok=True)
    confident = []
    for path, _, probs, _ in iter_predictions(predictors, paths, fmt, cfg.predict.batch_size, cfg.predict.num_workers,
                                          device, cfg.predict.amp):
        name = fmt.image_name(path)
        labels = confident_labels(probs, cfg.threshold)
        write_with(masks / f"{name}_layer.png", lambda f, lab=labels: Image.fromarray(lab).save(f, format="PNG"))
        write_with(images / f"{name}{IMAGE_MARK}{path.suffix.lower()}", lambda f, p=path: f.write(p.read_bytes()))
        confident.append(float((labels != IGNORE).mean()))
    share = float(np.mean(confident))
    write_stamped_json(out / PSEUDO_MANIFEST, GENERATOR, SCHEMA,
                       {"checkpoints": checkpoint_list(cfg.ckpt), "threshold": cfg.threshold, "images": len(paths),
                        "labelled_share": share, "ignore": IGNORE})
    log.info("pseudo-labelled %d images into %s: %.1f %% of their pixels confident (>= %.2f); train with "
             "data.extra_roots=[%s]", len(paths), out, 100 * share, cfg.threshold, out)
    return {"output": out, "images": len(paths), "labelled_share": share}
