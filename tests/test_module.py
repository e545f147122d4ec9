"""The LightningModule's SPARK 2026 multi-task mode (head=classify): what one validation epoch
logs, that the head learns, and that bad class lists or CSV rows stop the run with one line."""

from __future__ import annotations

import csv
import json
import shutil

import pytest
import torch

from spark_lightning.checkpoints import load_network
from spark_lightning.data.boxes import format_box, parse_box
from spark_lightning.data.spark import SPACECRAFT
from spark_lightning.errors import ConfigError, SparkDataError
from spark_lightning.scores.spark2026 import final_score
from spark_lightning.tasks import run_train

from .conftest import tiny_train_config

MULTITASK = ("cls_accuracy", "detection", "accuracy", "final")


def test_a_multitask_epoch_logs_the_2026_scores_with_the_network_cost(multitask_run):
    best = json.loads((multitask_run / "metrics.json").read_text())["best"]
    for key in MULTITASK:
        assert 0 <= best[f"val/{key}"] <= 1
    assert best["val/accuracy"] == pytest.approx(0.2 * best["val/cls_accuracy"] + 0.4 * best["val/detection"]
                                                 + 0.4 * best["val/spark_score"], abs=1e-6)
    net, info = load_network(multitask_run / "checkpoints" / "best.ckpt")
    params = sum(p.numel() for p in net.parameters())
    assert best["cost/params"] == params and best["cost/gflops"] > 0
    assert best["val/final"] == pytest.approx(final_score(best["val/accuracy"], params, best["cost/gflops"]), abs=1e-6)
    assert info["crafts"] == SPACECRAFT and info["box"] == "union" and net.craft_classes == len(SPACECRAFT)
    by_craft = [k for k in best if k.startswith("val/by_spacecraft/") and k.endswith("/cls_accuracy")]
    assert by_craft and all(best[k] in (0.0, 0.5, 1.0) or 0 <= best[k] <= 1 for k in by_craft)
    plan = (multitask_run / "config.yaml").read_text()
    assert "head:" in plan and "box: union" in plan


def test_plain_segmentation_logs_no_2026_scores(trained_ckpt):
    best = json.loads((trained_ckpt.parents[1] / "metrics.json").read_text())["best"]
    assert not any(f"val/{k}" in best for k in MULTITASK) and "val/spark_score" in best
    assert load_network(trained_ckpt)[1]["crafts"] == ()


@pytest.mark.slow
def test_the_head_learns_the_spacecraft(tiny_root, tmp_path):
    """Over 30 epochs on 24 frames the classification loss falls below what knowing only the
    class frequencies gives (their entropy): the head learns from the images."""
    import math
    from collections import Counter

    from spark_lightning.data.spark import SparkFormat

    cfg = tiny_train_config(tiny_root, tmp_path, ["head=classify", "head.dropout=0", "trainer.max_epochs=30",
                                                  "trainer.limit_train_batches=null", "optimizer.lr=0.02",
                                                  "scheduler=none", "model.width=32", "aug=none"])
    run_train(cfg)
    rows = list(csv.DictReader(open(next((tmp_path / "run" / "csv").rglob("metrics.csv")))))
    losses = [float(r["train/loss_cls_epoch"]) for r in rows if r.get("train/loss_cls_epoch")]
    counts = Counter(s.group for s in SparkFormat(tiny_root).samples("train")).values()
    prior = -sum(c / sum(counts) * math.log(c / sum(counts)) for c in counts)
    assert len(losses) == 30 and sum(losses[-5:]) / 5 < 0.9 * prior < losses[0]


def test_a_spacecraft_folder_the_head_does_not_know_is_one_line(tiny_root, tmp_path):
    cfg = tiny_train_config(tiny_root, tmp_path, ["head=classify", "head.classes=[Cheops,Soho]"])
    with pytest.raises(ConfigError, match=r"head=classify: spacecraft folder\(s\) \[.*\] are not among the head's "
                                          r"classes \['Cheops', 'Soho'\]; set head.classes"):
        run_train(cfg)


def test_a_csv_row_that_disagrees_with_its_mask_stops_a_multitask_run(tiny_root, tmp_path):
    """A folder in the real layout with the real CSV columns: training reads the boxes and checks
    each against its mask; a row moved 20 px off is one line naming the CSV line and the mask."""
    root = tmp_path / "set"
    shutil.copytree(tiny_root, root)
    rows = list(csv.reader(open(root / "train.csv", newline="")))
    assert rows[0] == ["Class", "Image name", "Mask name", "Bounding box"]
    box = parse_box(rows[3][3], "row")
    rows[3][3] = format_box((box[0] + 20, box[1], box[2] + 20, box[3]))
    with open(root / "train.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    cfg = tiny_train_config(root, tmp_path, ["head=classify"])
    with pytest.raises(SparkDataError, match=rf"train.csv line 4: bounding box .* disagrees with the craft pixels "
                                             rf"of .*{rows[3][2]}"):
        run_train(cfg)


def test_the_classification_loss_adds_with_its_weight(tiny_root, tmp_path):
    """loss = segmentation loss + head.weight x cross-entropy of the spacecraft class."""
    from spark_lightning.run.builders import build_module

    cfg = tiny_train_config(tiny_root, tmp_path, ["head=classify", "head.weight=0.25", "head.dropout=0"])
    module = build_module(cfg, ("background", "body", "panel"))
    batch = {"image": torch.randint(0, 255, (2, 3, 32, 32), dtype=torch.uint8), "mask": torch.randint(0, 3, (2, 32, 32)),
             "group": ["Soho", "Cheops"]}
    module.eval()
    logged = {}
    module.log = lambda name, value, **_: logged.__setitem__(name, float(value))
    loss = module._step(batch, "train")
    masks, crafts = module.net.forward_both(batch["image"])
    seg = module.criterion(masks, batch["mask"])
    cls = torch.nn.functional.cross_entropy(crafts, torch.tensor([SPACECRAFT.index("Soho"), SPACECRAFT.index("Cheops")]))
    assert float(loss) == pytest.approx(float(seg + 0.25 * cls), rel=1e-5)
    assert logged["train/loss_cls"] == pytest.approx(float(cls), rel=1e-5)


def test_a_multitask_run_on_the_generated_synthetic_set(tmp_path, monkeypatch):
    """Without data.root (the generated set, data=synthetic_small under debug=smoke) the head
    trains and validation logs the SPARK 2026 scores; the checkpoint predicts a class."""
    from omegaconf import open_dict

    from .conftest import compose_train

    monkeypatch.setenv("SPARK_LIGHTNING_CACHE", str(tmp_path / "cache"))
    cfg = compose_train(["debug=smoke", "head=classify", "cost.size=128"])
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path / "run")
    assert "num_images" in cfg.data.dataset  # the generated set, not a folder
    run_train(cfg)
    best = json.loads((tmp_path / "run" / "metrics.json").read_text())["best"]
    assert all(0 <= best[f"val/{k}"] <= 1 for k in MULTITASK)
    net, info = load_network(tmp_path / "run" / "checkpoints" / "last.ckpt")
    with torch.no_grad():
        masks, crafts = net.forward_both(torch.zeros(2, 3, 64, 64, dtype=torch.uint8))
    assert masks.shape == (2, 3, 64, 64) and crafts.shape == (2, len(info["crafts"]))
