"""Opening checkpoints (spark_lightning/checkpoints.py): data only, never code, whoever opens it.

Every command that opens a checkpoint is tried with two hostile files built here: a pickle
whose unpickling runs a shell command, and a pure-data checkpoint whose saved config names a
callable that writes a file. Neither may run, and each is refused in one line naming the file.
"""

from __future__ import annotations

import os
import re
import shutil
import warnings
from pathlib import Path

import pytest
import torch

from spark_lightning.checkpoints import load_network, read_checkpoint
from spark_lightning.errors import CheckpointError
from spark_lightning.tasks import run_evaluate, run_export, run_predict, run_train

from .conftest import compose_task, tiny_train_config


class RunsCode:
    """Unpickling this runs ``touch MARKER``: what a hostile checkpoint does."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _hostile_pickle(good: Path, path: Path, marker: Path) -> Path:
    data = torch.load(good, weights_only=False)
    data["extra"] = RunsCode(marker)
    torch.save(data, path)
    return path


def _hostile_target(good: Path, path: Path, victim: Path, where: str) -> Path:
    data = torch.load(good, weights_only=True)
    if where == "loss":
        data["hyper_parameters"]["loss"] = {"_target_": "builtins.open", "file": str(victim), "mode": "w"}
    else:  # our own atomic writer: a function of ours, but nothing a checkpoint may build
        data["datamodule_hyper_parameters"]["dataset"] = {
            "_target_": "spark_lightning.atomic.write_text_atomic", "path": str(victim), "text": "overwritten"}
    torch.save(data, path)
    return path


def _commands(tiny_root: Path, tmp_path: Path, ckpt: Path) -> dict:
    """Every way a checkpoint is opened, as a function that runs it."""
    test_images = tiny_root / "stream-1-test"

    def train(extra: list[str], run: str = "run"):
        cfg = tiny_train_config(tiny_root, tmp_path / run, extra)
        return run_train(cfg)

    def resume_auto():
        run_dir = tmp_path / "resumed" / "run" / "checkpoints"
        run_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy(ckpt, run_dir / "last.ckpt")
        return train(["resume=auto"], "resumed")

    return {
        "predict": lambda: run_predict(compose_task("predict", [f"ckpt={ckpt}", f"input={test_images}",
                                                                f"output={tmp_path / 'pred'}"], tmp_path / "p")),
        "evaluate": lambda: run_evaluate(compose_task("evaluate", [f"ckpt={ckpt}", f"data.root={tiny_root}",
                                                                   "predict.num_workers=0"], tmp_path / "e")),
        "export": lambda: run_export(compose_task("export", [f"ckpt={ckpt}", f"output={tmp_path / 'm.onnx'}"],
                                                  tmp_path / "x")),
        "init_from": lambda: train([f"init_from={ckpt}"], "fine"),
        "ckpt_path": lambda: train([f"ckpt_path={ckpt}"], "cont"),
        "resume=auto": resume_auto,
    }


COMMANDS = ["predict", "evaluate", "export", "init_from", "ckpt_path", "resume=auto"]


@pytest.mark.parametrize("command", COMMANDS)
def test_a_pickle_that_runs_code_is_refused_unopened(trained_ckpt, tiny_root, tmp_path, command):
    marker = tmp_path / "code_ran"
    hostile = _hostile_pickle(trained_ckpt, tmp_path / "hostile.ckpt", marker)
    with pytest.raises(CheckpointError, match=r"\.ckpt holds Python objects that are not plain data \(.*system"):
        _commands(tiny_root, tmp_path, hostile)[command]()
    assert not marker.exists()


@pytest.mark.parametrize("where", ["loss", "dataset"])
@pytest.mark.parametrize("command", ["predict", "evaluate", "export", "init_from", "resume=auto"])
def test_a_saved_config_naming_a_callable_is_refused_before_anything_is_built(trained_ckpt, tiny_root, tmp_path,
                                                                             command, where):
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me")
    hostile = _hostile_target(trained_ckpt, tmp_path / "hostile.ckpt", victim, where)
    key = "hyper_parameters.loss._target_" if where == "loss" else "datamodule_hyper_parameters.dataset._target_"
    with pytest.raises(CheckpointError, match=rf"\.ckpt names {key}=.* it is refused, not built"):
        _commands(tiny_root, tmp_path, hostile)[command]()
    assert victim.read_text() == "keep me"


def test_neighbours_of_a_damaged_checkpoint_are_named_never_opened(trained_ckpt, tmp_path):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    marker = tmp_path / "code_ran"
    _hostile_pickle(trained_ckpt, folder / "epoch=0-step=2.ckpt", marker)
    (folder / "last.ckpt").write_bytes(trained_ckpt.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match=r"last.ckpt is damaged .* beside it \(not opened; newest first\): "
                                              r"epoch=0-step=2.ckpt\.$"):
        read_checkpoint(folder / "last.ckpt")
    assert not marker.exists()


def test_a_checkpoint_of_the_previous_format_still_loads(trained_ckpt, tmp_path):
    """Before 0.2 the training scale lived in the module's ``inference`` argument, the class
    count in ``num_classes``, and there were no data-module hyperparameters."""
    data = torch.load(trained_ckpt, weights_only=True)
    dm = data.pop("datamodule_hyper_parameters")
    data.pop("datamodule_hparams_name", None)
    hp = data["hyper_parameters"]
    hp["inference"] = {"size": dm["size"], "crop": dm["crop"]}
    hp["num_classes"] = len(hp.pop("classes"))
    old = tmp_path / "old.ckpt"
    torch.save(data, old)
    net, info = load_network(old)
    assert info["size"] == 48 and info["classes"] == ("background", "body", "panel")
    with torch.no_grad():
        assert net(torch.zeros(1, 3, 48, 48, dtype=torch.uint8)).shape == (1, 3, 48, 48)


def test_a_checkpoint_naming_modules_that_moved_still_loads_and_trains_on(trained_ckpt, tiny_root, tmp_path):
    """Before 0.3 losses and schedules lived in spark_lightning.losses / .optim: their
    ``_target_``s are read as the new names, and init_from trains from such a checkpoint."""
    data = torch.load(trained_ckpt, weights_only=True)
    text = repr(data["hyper_parameters"])
    assert "spark_lightning.training.losses." in text and "spark_lightning.training.optim." in text

    def old_names(node):
        if isinstance(node, dict):
            return {k: v.replace("spark_lightning.training.", "spark_lightning.") if k == "_target_" else old_names(v)
                    for k, v in node.items()}
        return node

    data["hyper_parameters"] = old_names(dict(data["hyper_parameters"]))
    assert "spark_lightning.losses." in repr(data["hyper_parameters"])
    old = tmp_path / "old.ckpt"
    torch.save(data, old)
    assert "spark_lightning.training.optim." in repr(read_checkpoint(old)["hyper_parameters"])
    net, info = load_network(old)
    assert info["size"] == 48
    run_train(tiny_train_config(tiny_root, tmp_path, [f"init_from={old}"]))
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()


def test_torch_security_warnings_are_not_silenced():
    from spark_lightning.run.runtime import quiet_libraries

    quiet_libraries()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        quiet_libraries()
        warnings.warn("You are using `torch.load` with `weights_only=False`", FutureWarning)
    assert any("weights_only" in str(w.message) for w in caught)


@pytest.mark.parametrize(("make", "message"), [
    (lambda p: p.write_bytes(b""), r"is empty \(0 bytes\): a save was interrupted"),
    (lambda p: p.write_bytes(b"garbage" * 10), r"is damaged or not a checkpoint"),
    (lambda p: p.mkdir(), r"is a folder: give the .ckpt file inside it"),
    (lambda p: torch.save({"weights": 1}, p), r"is not a spark_lightning checkpoint"),
    (lambda p: None, r"does not exist"),
])
def test_bad_checkpoints_for_predict(trained_ckpt, tiny_root, tmp_path, make, message):
    bad = tmp_path / "bad.ckpt"
    make(bad)
    cfg = compose_task("predict", [f"ckpt={bad}", f"input={tiny_root / 'stream-1-test'}", f"output={tmp_path / 'o'}"],
                       tmp_path / "h")
    with pytest.raises(CheckpointError, match=message):
        run_predict(cfg)


def test_resume_from_damaged_last_names_the_other_checkpoints(cfg_tiny):
    run_train(cfg_tiny)
    folder = Path(cfg_tiny.paths.output_dir) / "checkpoints"
    good = next(folder.glob("epoch*.ckpt"))
    (folder / "last.ckpt").write_bytes((folder / "last.ckpt").read_bytes()[:1000])
    cfg_tiny.resume = "auto"
    with pytest.raises(CheckpointError, match=rf"last.ckpt is damaged .* beside it \(not opened; newest first\): "
                                              rf"{re.escape(good.name)}"):
        run_train(cfg_tiny)


def test_resume_with_checkpoint_of_another_model_says_which(cfg_tiny, tmp_path):
    run_train(cfg_tiny)
    cfg_tiny.ckpt_path = str(Path(cfg_tiny.paths.output_dir) / "checkpoints" / "last.ckpt")
    cfg_tiny.model.arch, cfg_tiny.model.encoder = "unet", "resnet18"
    with pytest.raises(CheckpointError, match=r"holds model tiny/none but this run asks for unet/resnet18"):
        run_train(cfg_tiny)


def _diverged(ckpt: Path, tmp_path: Path) -> Path:
    data = torch.load(ckpt, weights_only=False)
    data["state_dict"] = {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v
                          for k, v in data["state_dict"].items()}
    path = tmp_path / "nan.ckpt"
    torch.save(data, path)
    return path


def test_non_finite_checkpoints_are_refused(trained_ckpt, tiny_root, tmp_path):
    bad = _diverged(trained_ckpt, tmp_path)
    cfg = compose_task("predict", [f"ckpt={bad}", f"input={tiny_root / 'stream-1-test'}", f"output={tmp_path / 'o'}"],
                       tmp_path / "p")
    with pytest.raises(CheckpointError, match="holds non-finite weights .*its run diverged"):
        run_predict(cfg)
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").glob("*.npz"))


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
