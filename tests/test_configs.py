"""Every option of every config group composes, and instantiates into a working object."""

from __future__ import annotations

from pathlib import Path

import albumentations as A
import lightning as L
import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from spark_lightning.data.datamodule import SparkDataModule
from spark_lightning.data.synth import SyntheticSpark
from spark_lightning.errors import ConfigError
from spark_lightning.run.builders import build_module, instantiate_dict
from spark_lightning.run.plan import resolve_precision, resolve_train

from .conftest import CONF_DIR, compose_train

GROUPS = ["data", "aug", "model", "loss", "optimizer", "scheduler", "trainer", "logger", "callbacks", "experiment",
          "debug"]


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (Path(CONF_DIR) / group).glob("*.yaml"))


ALL = [(g, o) for g in GROUPS for o in options(g)]


def test_every_option_is_documented_and_every_documented_option_exists():
    """docs/reference.md's config-group table names exactly the options conf/ holds."""
    import re

    table = (Path(CONF_DIR).parent / "docs" / "reference.md").read_text()
    checked = 0
    for group, cell in re.findall(r"^\| `([\w/]+)` \| (.+?) \|", table, re.M):
        if not (Path(CONF_DIR) / group).is_dir():
            continue  # hydra/sweeper: a plugin of ours outside conf/
        named = {n for n in re.findall(r"`([^`]+)`", cell) if re.fullmatch(r"\w+", n)}
        assert named == set(options(group)), f"{group}: documented {sorted(named)}, in conf/ {options(group)}"
        checked += 1
    assert checked >= 12


def _leaves(node, prefix=""):
    """(dotted key, value) of every leaf of a plain config tree."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, f"{prefix}{key}.")
    else:
        yield prefix[:-1], node


# What a plan may settle (and lists under ``settled``): from the machine, precision without a GPU,
# channels-last on CPU, encoder weights not on disk, the micro-batch that fits; from the job, the
# logger names left null.
SETTLED = {"trainer.precision", "model.channels_last", "model.encoder_weights", "data.batch_size",
           "trainer.accumulate_grad_batches", "logger.wandb.name", "logger.wandb.group",
           "logger.mlflow.experiment_name", "logger.mlflow.run_name"}


@pytest.mark.parametrize(("group", "option"), ALL, ids=[f"{g}={o}" for g, o in ALL])
def test_a_chosen_option_is_what_runs(group, option, tiny_root, tmp_path):
    """``group=option`` on the command line: the option's values are in the run's plan (what the
    builders build and config.yaml records), unless the plan lists the key as settled from the
    machine. Fails when the recipe, an experiment's leftovers or the plan replace a user's choice.

    Composed without the default experiment (cpu_default), which by design overrides a few group
    values (optimizer.lr, trainer.max_time) the way any experiment does.
    """
    path = Path(CONF_DIR) / group / f"{option}.yaml"
    overrides = [f"{group}={option}", f"data.cache_dir={tmp_path / 'cache'}"]
    overrides += [] if group == "experiment" else ["~experiment"]
    overrides += [] if group == "logger" else ["logger=none"]
    cfg = compose_train(overrides)
    if cfg.data.dataset._target_.endswith("SparkFormat") and OmegaConf.select(cfg, "data.root") is None:
        cfg = compose_train([*overrides, f"data.root={tiny_root}"])  # a real-data option needs a folder
    cfg.paths.output_dir = str(tmp_path / "run")
    if cfg.trainer.get("accelerator") == "gpu" and not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU"):  # refused up front, in one line
            resolve_train(cfg)
        return
    plan = resolve_train(cfg)
    written = OmegaConf.load(tmp_path / "run" / "config.yaml")
    raw = OmegaConf.to_container(OmegaConf.load(path))
    raw.pop("defaults", None)
    is_global = "@package _global_" in path.read_text()
    checked = 0
    for key, value in _leaves(raw, "" if is_global else f"{group}."):
        if key.startswith("hydra.") or (isinstance(value, str) and "${" in value) or key in SETTLED & set(plan.settled):
            continue
        if key in ("data.root", "data.cache_dir"):  # given on this test's command line
            continue
        assert OmegaConf.select(plan, key) == value, f"{key}: {path.name} says {value!r}, the run has {OmegaConf.select(plan, key)!r}"
        assert OmegaConf.select(written, key) == value, f"{key}: config.yaml records {OmegaConf.select(written, key)!r}"
        checked += 1
    assert checked or option in ("none", "default") or group in ("logger", "experiment"), f"nothing to check in {path}"


@pytest.mark.parametrize("option", options("aug"))
def test_aug_keeps_mask_aligned(option):
    transform = instantiate(compose_train([f"aug={option}"]).aug)
    assert isinstance(transform, A.Compose)
    transform.set_random_seed(0)  # reproducible: blur can spread brightness past the mask edge
    image = np.zeros((64, 64, 3), np.uint8)
    mask = np.zeros((64, 64), np.uint8)
    image[10:30, 20:40] = 200
    mask[10:30, 20:40] = 1
    for _ in range(5):
        out = transform(image=image, mask=mask)
        assert out["image"].shape == (64, 64, 3) and out["mask"].shape == (64, 64)
        assert set(np.unique(out["mask"])) <= {0, 1}
        bright = out["image"].mean(-1) > 100
        if option == "texture":  # the background is repainted (bright or not); the craft keeps its pixels
            bright = (out["image"] == 200).all(-1)
        if bright.any() and out["mask"].any():  # geometry moved image and mask together
            assert (out["mask"][bright] == 1).mean() > 0.8


# segformer_mit_b5 (82 M weights, ~30 s here) is left to test_spark2024_recipes_train_a_step_without_weights,
# which trains it; its odd-size padding is segformer_mit_b2's, the same architecture.
@pytest.mark.parametrize("option", [o for o in options("model") if o != "segformer_mit_b5"])
def test_model_option_forward_backward_odd_size(option):
    """Any image size works (padded to the stride and cropped back), and gradients flow."""
    # Seeded: EfficientNet's stochastic depth drops whole blocks at random in train mode (their
    # parameters then get no gradient); unseeded, the share below depended on test order.
    torch.manual_seed(0)
    net = instantiate(compose_train([f"model={option}"]).model, num_classes=3).train()
    out = net(torch.randint(0, 255, (2, 3, 70, 58), dtype=torch.uint8))
    assert out.shape == (2, 3, 70, 58)
    out.square().mean().backward()
    params = [p for p in net.parameters() if p.requires_grad]
    with_grad = [p for p in params if p.grad is not None and p.grad.abs().sum() > 0]
    # Some encoders keep a few unused layers (EfficientNet's conv head): nearly all, not all.
    assert sum(p.numel() for p in with_grad) >= 0.9 * sum(p.numel() for p in params)


@pytest.mark.parametrize("option", options("loss"))
def test_loss_option(option):
    loss = instantiate(compose_train([f"loss={option}"]).loss)
    target = torch.randint(0, 3, (2, 16, 16))
    logits = torch.randn(2, 3, 16, 16, requires_grad=True)
    value = loss(logits, target)
    value.backward()
    assert torch.isfinite(value) and logits.grad.abs().sum() > 0
    perfect = 40 * torch.nn.functional.one_hot(target, 3).permute(0, 3, 1, 2).float() - 20  # softmax- and sigmoid-perfect
    assert loss(perfect, target) < 0.05 < value
    with torch.autocast("cpu", dtype=torch.bfloat16):  # our float32 path survives autocast
        from spark_lightning.training.losses import float32_loss

        assert float32_loss(loss, logits.bfloat16(), target).dtype == torch.float32


@pytest.mark.parametrize("option", options("optimizer"))
def test_optimizer_option(option):
    from spark_lightning.training.optim import build_optimizer

    cfg = compose_train([f"optimizer={option}", "optimizer.encoder_lr_mult=1.0"]).optimizer  # a net without encoder
    opt = build_optimizer(OmegaConf.to_container(cfg), torch.nn.Linear(2, 2))
    assert isinstance(opt, torch.optim.Optimizer) and opt.param_groups[0]["lr"] == cfg.lr


def test_every_callback_and_logger_instantiates(tmp_path):
    cfg = compose_train()
    cfg.paths.output_dir = str(tmp_path)
    callbacks = instantiate_dict(cfg.callbacks)
    assert all(isinstance(c, L.Callback) for c in callbacks) and len(callbacks) == len(cfg.callbacks)
    cfg.logger.wandb = None  # W&B itself is exercised in test_train
    loggers = instantiate_dict(cfg.logger)
    assert [type(lg).__name__ for lg in loggers] == ["CSVLogger"]


def test_data_default_is_synthetic():
    dm = instantiate(compose_train().data)
    assert isinstance(dm, SparkDataModule) and isinstance(dm.format, SyntheticSpark) and dm.format.generated
    assert dm.data_root.name.startswith("synthetic-r") and "-n1000-s512-seed0" in dm.data_root.name


def test_default_run_is_the_cpu_recipe_and_the_headline_overrides_it():
    """python -m spark_lightning.train runs experiment=cpu_default; model=/loss= still pick the network."""
    cfg = compose_train()
    assert cfg.model.encoder == "tu-tf_efficientnet_lite0" and cfg.loss.losses.keys() == {"ce", "dice"}
    assert cfg.trainer.max_time == "00:00:10:00" and cfg.scheduler._target_.endswith("onecycle")
    headline = compose_train(["model=unet_resnet34", "loss=jaccard"])
    assert headline.model.encoder == "resnet34" and headline.loss._target_.endswith("JaccardLoss")
    assert headline.trainer.max_time == "00:00:10:00"
    plain = compose_train(["experiment=spark2024_segformer_b5"])
    assert plain.trainer.get("max_time") is None  # another experiment replaces the 10-minute budget


@pytest.mark.parametrize("variant", [v for v in options("cpu_sweep") if not v.startswith("lite0")])
def test_cpu_sweep_variant_changes_one_thing_of_the_study_base(variant):
    """+cpu_sweep=base is the study's starting point (the default recipe as it was); every other
    variant of docs/recipes/cpu_default.md changes exactly the one thing it is named after."""
    def leaves(overrides):
        return dict(_leaves(OmegaConf.to_container(compose_train(overrides), resolve=False)))

    def changed(a, b):
        return {k for k in a.keys() | b.keys() if a.get(k) != b.get(k)}

    base = leaves(["+cpu_sweep=base"])
    diff = changed(base, leaves([f"+cpu_sweep={variant}"]))
    expected = {"base": set(), "size160": {"data.size"}, "size192": {"data.size"}, "size224": {"data.size"},
                "size256": {"data.size"}, "images2000": {"data.dataset.num_images"}, "lr_6e3": {"optimizer.lr"},
                "classweights": {"loss.losses.ce.weight"}}
    prefix = {"mnv2lite": "model.", "strongaug": "aug.", "lovasz": "loss."}
    own = variant.removeprefix("s192_")  # stage 2: one variant of stage 1 on top of 192 px
    if variant.startswith("s192_"):
        diff -= {"data.size"}
        assert leaves([f"+cpu_sweep={variant}"])["data.size"] == 192
    if own in expected:
        assert diff == expected[own]
    else:
        assert diff and all(k.startswith(prefix[own]) for k in diff), diff


STAGE4 = {  # variant: (its parent, what it changes)
    "lite0": ("s192_classweights", {"model.encoder", "model.encoder_weights", "model.decoder_channels"}),
    "lite0_texture": ("lite0", {"aug.transforms"}),
    "lite0_s288c192": ("lite0_texture", {"data.size", "data.crop"}),
    "lite0_enc01": ("lite0_texture", {"optimizer.encoder_lr_mult"}),
    "lite0_enc01_lovasz": ("lite0_enc01", {"loss.losses.ce.weight", "loss.losses.lovasz", "loss.losses.dice",
                                           "loss.weights.lovasz", "loss.weights.dice"}),
}


def _config_leaves(overrides):
    return dict(_leaves(OmegaConf.to_container(compose_train(overrides), resolve=False)))


def _changed(a, b):
    return {k for k in a.keys() | b.keys() if a.get(k) != b.get(k)}


@pytest.mark.parametrize("variant", sorted(STAGE4))
def test_stage4_variant_changes_one_thing_of_its_parent(variant):
    parent, expected = STAGE4[variant]
    diff = _changed(_config_leaves([f"+cpu_sweep={parent}"]), _config_leaves([f"+cpu_sweep={variant}"]))
    assert diff and all(any(k == e or k.startswith(e + ".") for e in expected) for k in diff), diff


def test_the_default_is_the_study_winner_predicting_at_288_px():
    """The demo is stage 4's lite0_enc01 (docs/recipes/cpu_default.md) plus data.predict_size=288."""
    assert _changed(_config_leaves([]), _config_leaves(["+cpu_sweep=lite0_enc01"])) == {"data.predict_size"}
    leaves = _config_leaves([])
    assert leaves["data.size"] == 192 and leaves["data.predict_size"] == 288
    assert leaves["model.encoder"] == "tu-tf_efficientnet_lite0" and leaves["model.encoder_weights"] == "auto"


def test_seed_baseline_is_the_blog_setup():
    cfg = compose_train(["experiment=seed_baseline"])
    assert cfg.model.arch == "tv_deeplabv3_mnv3"
    assert cfg.loss._target_ == "spark_lightning.training.losses.CrossEntropy"
    assert cfg.optimizer._target_ == "torch.optim.SGD"
    module = build_module(cfg)
    assert type(module.net.model).__name__ == "DeepLabV3"


def test_precision_falls_back_on_cpu():
    assert resolve_precision("16-mixed", "cpu") == "32-true"
    assert resolve_precision("bf16-mixed", "cpu") == "bf16-mixed"
    assert resolve_precision("16-mixed", "cuda") == "16-mixed"
