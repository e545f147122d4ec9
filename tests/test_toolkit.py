"""The competition toolkit: fine-tuning, EMA, ensembles, pseudo-labels, per-spacecraft analysis,
early stopping, and sweeps that survive a diverging trial."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from PIL import Image

from spark_lightning.callbacks import TrainingDiverged
from spark_lightning.data.spark import SparkFormat
from spark_lightning.errors import CheckpointError
from spark_lightning.training.losses import float32_loss
from spark_lightning.scores.metrics import segmentation_metrics
from spark_lightning.tasks import run_evaluate, run_predict, run_train

from .conftest import CONF_DIR, compose_task, compose_train, run_main, smoke_args, tiny_train_config


def test_init_from_loads_weights_only_and_starts_fresh(cfg_tiny, tiny_root, tmp_path):
    cfg_tiny.trainer.max_epochs = 2
    first = run_train(cfg_tiny)
    ckpt = Path(cfg_tiny.paths.output_dir) / "checkpoints" / "last.ckpt"
    cfg = tiny_train_config(tiny_root, tmp_path / "ft", [f"init_from={ckpt}", "optimizer.lr=1e-5"])
    tuned = run_train(cfg)
    assert tuned["trainer"].global_step == 2 and tuned["trainer"].current_epoch == 1  # a fresh counter, 1 epoch
    start = torch.load(ckpt, weights_only=False)["state_dict"]
    params = dict(tuned["module"].named_parameters())
    moved = max(float((params[k] - v).abs().max()) for k, v in start.items() if k in params)
    assert moved < 0.01  # started from the checkpoint's weights, barely moved at lr 1e-5
    assert first["trainer"].optimizers[0] is not tuned["trainer"].optimizers[0]


def test_init_from_lists_what_does_not_fit(cfg_tiny, tiny_root, tmp_path):
    run_train(cfg_tiny)
    ckpt = torch.load(Path(cfg_tiny.paths.output_dir) / "checkpoints" / "last.ckpt", weights_only=False)
    head = [k for k in ckpt["state_dict"] if "head" in k]
    for key in head:  # another head: a checkpoint trained for something else
        ckpt["state_dict"][key.replace("head", "other_head")] = ckpt["state_dict"].pop(key)
    other = tmp_path / "other.ckpt"
    torch.save(ckpt, other)
    cfg = tiny_train_config(tiny_root, tmp_path / "a", [f"init_from={other}"])
    with pytest.raises(CheckpointError, match=r"2 missing, 2 unexpected.*model.head.weight.*init_from_strict=false"):
        run_train(cfg)
    cfg = tiny_train_config(tiny_root, tmp_path / "b", [f"init_from={other}", "init_from_strict=false"])
    assert run_train(cfg)["trainer"].global_step == 2


def _recompute_bn(module, batches):
    """Precise BN by hand: cumulative BatchNorm statistics of ``batches`` on the module's weights."""
    norms = [m for m in module.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    module.train()
    with torch.no_grad():
        for images in batches:
            module(images)
    return {n: b.clone() for n, b in module.named_buffers() if "running_mean" in n}


def test_ema_validates_and_checkpoints_averaged_weights_with_their_bn_statistics(tiny_root, tmp_path):
    cfg = tiny_train_config(tiny_root, tmp_path, ["callbacks=[default,ema]", "callbacks.ema.decay=0.5",
                                                  "trainer.max_epochs=2"])
    result = run_train(cfg)
    ckpt = torch.load(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt", weights_only=False)
    averaged, current = ckpt["state_dict"], ckpt["current_model_state"]
    assert any(not torch.equal(averaged[k], current[k]) for k in averaged if "weight" in k)
    precise = next(c for c in result["trainer"].callbacks if type(c).__name__ == "PreciseBatchNorm")
    module = result["module"]
    module.load_state_dict(averaged)
    expected = _recompute_bn(module, precise._recent)
    for name, mean in expected.items():  # BN statistics re-estimated for the averaged weights
        assert torch.allclose(averaged[name], mean, atol=1e-4), name
    cfg.trainer.max_epochs, cfg.resume = 3, "auto"  # resumes with the averaging state
    assert run_train(cfg)["trainer"].current_epoch == 3


def test_ensemble_of_different_models_and_sizes_with_scales(trained_ckpt, tiny_root, tmp_path):
    other_cfg = tiny_train_config(tiny_root, tmp_path, ["model.width=4", "data.size=64"])
    run_train(other_cfg)
    other = Path(other_cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    cfg = compose_task("predict", [f"ckpt=[{trained_ckpt},{other}]", f"input={tiny_root / 'stream-1-test'}",
                                   f"output={tmp_path / 'pred'}", "predict.scales=[0.75,1.0]", "predict.tta=flip",
                                   "predict.num_workers=0"], tmp_path / "h")
    assert run_predict(cfg)["written"] == 3
    manifest = json.loads((tmp_path / "pred" / "predictions.json").read_text())
    assert [o["size"] for o in manifest["options"]] == [48, 64] and len(manifest["checkpoints"]) == 2
    evaluation = run_evaluate(compose_task("evaluate", [f"data.root={tiny_root}", f"ckpt=[{trained_ckpt},{other}]",
                                                        "predict.num_workers=0"], tmp_path / "e"))
    assert evaluation["metrics"]["iou"] > 0


def test_pseudo_labels_then_training_with_them(trained_ckpt, tiny_root, tmp_path, monkeypatch):
    out = tmp_path / "pseudo"
    code = run_main("pseudo", [f"ckpt={trained_ckpt}", f"input={tiny_root / 'stream-1-test'}", f"output={out}",
                               "threshold=0.6", "predict.num_workers=0", f"hydra.run.dir={tmp_path / 'run'}"],
                    monkeypatch)
    assert code == 0
    masks = sorted(out.glob("mask/pseudo/train/*_layer.png"))
    assert len(masks) == 3 and len(list(out.glob("images/pseudo/train/*_img.jpg"))) == 3
    labels = np.concatenate([np.asarray(Image.open(m)).ravel() for m in masks])
    assert set(np.unique(labels)) <= {0, 1, 2, 255} and (labels == 255).any()  # unsure pixels left unlabelled
    manifest = json.loads((out / "pseudo.json").read_text())
    assert manifest["threshold"] == 0.6 and 0 < manifest["labelled_share"] < 1
    result = run_train(tiny_train_config(tiny_root, tmp_path, [f"data.extra_roots=[{out}]"]))
    assert len(result["datamodule"].train_set) == 24 + 3
    assert (SparkFormat(out).read_mask(masks[0]) == np.asarray(Image.open(masks[0]))).all()


def test_pseudo_never_replaces_corrected_masks_nor_writes_into_a_labelled_set(trained_ckpt, tiny_root, tmp_path,
                                                                             monkeypatch, capsys):
    out = tmp_path / "pseudo"

    def pseudo(output, *extra):
        return run_main("pseudo", [f"ckpt={trained_ckpt}", f"input={tiny_root / 'stream-1-test'}", f"output={output}",
                                   "predict.num_workers=0", f"hydra.run.dir={tmp_path / 'run'}", *extra], monkeypatch)

    assert pseudo(out) == 0
    corrected = sorted(out.glob("mask/pseudo/train/*_layer.png"))[0]
    corrected.write_bytes(b"corrected by hand")
    assert pseudo(out) == 1 and "holds an earlier pseudo-label round" in "".join(capsys.readouterr())
    assert corrected.read_bytes() == b"corrected by hand"
    train_images = sorted(tiny_root.glob("images/*/train/*"))
    assert pseudo(tiny_root) == 1
    assert "is not a pseudo-label round written by spark_lightning" in "".join(capsys.readouterr())
    assert sorted(tiny_root.glob("images/*/train/*")) == train_images and not (tiny_root / "images" / "pseudo").exists()
    assert pseudo(out, "overwrite=true") == 0 and corrected.read_bytes() != b"corrected by hand"


@pytest.mark.parametrize("option", sorted(p.stem for p in (Path(CONF_DIR) / "loss").glob("*.yaml")))
def test_ignored_pixels_change_neither_loss_nor_metrics(option):
    loss = instantiate(compose_train([f"loss={option}"]).loss)
    torch.manual_seed(0)
    target = torch.randint(0, 3, (2, 16, 16))
    target[:, :6] = 255  # unlabelled rows
    logits = torch.randn(2, 3, 16, 16)
    changed = logits.clone()
    changed[:, :, :6] = torch.randn(2, 3, 6, 16) * 10  # other predictions where nothing is labelled
    assert float(float32_loss(loss, logits, target)) == pytest.approx(float(float32_loss(loss, changed, target)), abs=1e-5)
    values = []
    for out in (logits, changed):
        metrics = segmentation_metrics(ignore_index=255)
        metrics.update(out.argmax(1), target)
        values.append({k: float(v) for k, v in metrics.compute().items()})
    assert values[0] == pytest.approx(values[1])


def test_breakdowns_by_spacecraft_and_size_in_training_evaluation_and_report(tiny_root, tmp_path):
    from spark_lightning.tasks.report import write_report

    cfg = tiny_train_config(tiny_root, tmp_path / "sweep" / "0")
    run_train(cfg)
    best = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())["best"]
    by_type = {k.split("/")[2] for k in best if k.startswith("val/by_spacecraft/")}
    assert len(by_type) >= 3 and any(k.startswith("val/by_size/") for k in best)
    write_report(tmp_path / "sweep")
    assert "## SPARK score by spacecraft" in (tmp_path / "sweep" / "report.md").read_text()
    assert (tmp_path / "sweep" / "by_spacecraft.png").stat().st_size > 1000
    ckpt = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    result = run_evaluate(compose_task("evaluate", [f"data.root={tiny_root}", f"ckpt={ckpt}", "predict.num_workers=0"],
                                       tmp_path / "e"))
    report = json.loads((tmp_path / "e" / "eval.json").read_text())
    assert sum(r["images"] for r in report["by_spacecraft"].values()) == 6 == len(report["per_image"])
    assert set(report["by_object_size"]) <= {"lt1pct", "1to5pct", "5to20pct", "gt20pct"}
    assert (tmp_path / "e" / "breakdown.png").stat().st_size > 1000
    assert json.loads(json.dumps(result["breakdowns"]["spacecraft"])) == report["by_spacecraft"]


def test_evaluate_logs_a_wandb_table(trained_ckpt, tiny_root, tmp_path, monkeypatch):
    from .wandb_files import history

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = compose_task("evaluate", [f"data.root={tiny_root}", f"ckpt={trained_ckpt}", "predict.num_workers=0",
                                    "wandb=true", "worst=2"], tmp_path / "e")
    assert run_evaluate(cfg)["wandb_table"]
    run = next((tmp_path / "e" / "wandb").glob("offline-run-*"))
    logged = history(run)
    assert logged["eval/per_image"]["_type"] == "table-file" and logged["eval/per_image"]["nrows"] == 6
    table = json.loads((run / "files" / logged["eval/per_image"]["path"]).read_text())
    assert [row[0] for row in table["data"]] == [r["name"] for r in json.loads((tmp_path / "e" / "eval.json")
                                                                              .read_text())["per_image"]]
    assert sum(row[-1] is not None for row in table["data"]) == 2  # the worst images carry their overlay
    assert logged["eval/worst"]["count"] == 2 and len(list(run.glob("files/media/images/eval/worst*.png"))) == 2
    assert logged["eval/spark_score"] == pytest.approx(json.loads((tmp_path / "e" / "eval.json").read_text())["spark_score"])


def test_early_stopping_reports_its_best_epoch(tiny_root, tmp_path):
    """Monitoring the validation loss for a *maximum*: training lowers it, so the first epoch is
    the best and early stopping ends the run soon after; the run must report that first epoch,
    not the last one."""
    cfg = tiny_train_config(tiny_root, tmp_path, ["callbacks=[default,early_stopping]", "callbacks.early_stopping.patience=1",
                                                  "optimized_metric=val/loss", "optimized_mode=max", "optimizer.lr=1e-2",
                                                  "scheduler=none", "trainer.max_epochs=8"])
    result = run_train(cfg)
    history = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())["history"]
    assert 2 <= len(history) < 8  # stopped early
    best = max(history, key=lambda h: h["val/loss"])
    assert best["epoch"] != history[-1]["epoch"] and best["val/loss"] != history[-1]["val/loss"]
    assert result["metrics"]["epoch"] == best["epoch"] and result["metrics"]["val/loss"] == best["val/loss"]


def test_nan_guard_names_the_step(tiny_root, tmp_path):
    cfg = tiny_train_config(tiny_root, tmp_path, ["optimizer=sgd", "optimizer.lr=1e12", "scheduler=none",
                                                  "callbacks.nan_guard.check_every_n_steps=1", "trainer.max_epochs=5"])
    with pytest.raises(TrainingDiverged, match=r"training loss became (nan|inf) at step \d+ \(epoch \d"):
        run_train(cfg)
    assert "TrainingDiverged" in (Path(cfg.paths.output_dir) / "FAILED").read_text()


@pytest.mark.slow
def test_a_diverging_trial_fails_and_the_optuna_search_goes_on(tiny_root, tmp_path, monkeypatch):
    import optuna

    sweep = tmp_path / "optuna"
    args = ["-m", "hparams_search=optuna", "hydra.sweeper.n_trials=4", "hydra.sweeper.sampler.n_startup_trials=4",
            "optimizer.lr=choice(0.001,1e12)", "optimizer=sgd",
            "scheduler=none", "callbacks.nan_guard.check_every_n_steps=1", "trainer.max_epochs=3",
            *smoke_args(tiny_root, tmp_path), f"hydra.sweep.dir={sweep}"]
    run_main("train", [*args, "hydra.sweeper.pruner=null"], monkeypatch)
    from spark_lightning.search.study import storage

    study = optuna.load_study(study_name="spark_search", storage=storage(None, sweep))
    states = {t.params["optimizer.lr"]: t.state.name for t in study.trials}
    assert len(study.trials) == 4 and states[1e12] == "FAIL" and states[0.001] == "COMPLETE"
    failed = [p for p in sweep.glob("*/FAILED")]
    assert failed and all("TrainingDiverged" in p.read_text() for p in failed)
    reasons = [t.user_attrs["fail_reason"] for t in study.trials if t.state.name == "FAIL"]
    assert reasons and all(r.startswith("TrainingDiverged: training loss became") for r in reasons)  # its one-line cause
