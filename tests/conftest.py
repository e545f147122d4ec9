"""Shared fixtures: one tiny synthetic SPARK set per session, in-process config composition.

Tiny runs use the ``debug=smoke`` config (tiny network, 2 batches, CSV only), the same one a
user gets from the command line; tests that are about a real network say so.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict

from spark_lightning.data.synth import generate

CONF_DIR = str(Path(__file__).resolve().parents[1] / "conf")
TINY = 64


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Default cache (samples, synthetic sets) inside pytest's temp area, never ~/.cache."""
    old = os.environ.get("SPARK_LIGHTNING_CACHE")
    os.environ["SPARK_LIGHTNING_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        os.environ.pop("SPARK_LIGHTNING_CACHE", None)
    else:
        os.environ["SPARK_LIGHTNING_CACHE"] = old


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory) -> Path:
    """30 labelled images (24 train, 6 val) of 64 x 64 in the SPARK layout."""
    return generate(tmp_path_factory.mktemp("data") / "spark", num_images=30, size=TINY, seed=3, num_test=3, workers=1)


def compose_train(overrides: list[str] | None = None, config_name: str = "train") -> DictConfig:
    """A config composed as the command line composes it (the real-data recipe once data.root is set)."""
    from spark_lightning.run.recipe import compose_run

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        if config_name == "train":
            return compose_run(config_name, overrides or [])
        return compose(config_name=config_name, overrides=overrides or [], return_hydra_config=False)


def smoke_args(root: Path, tmp_path: Path) -> list[str]:
    """The overrides of a seconds-long CPU run on ``root`` writing into ``tmp_path``."""
    return ["debug=smoke", f"data.root={root}", f"data.cache_dir={tmp_path / 'cache'}"]


def tiny_train_config(tiny_root: Path, tmp_path: Path, extra: list[str] | None = None) -> DictConfig:
    """Training config for a smoke run (CPU, tiny net, 2 train steps, CSV logging) into tmp_path/run."""
    cfg = compose_train([*smoke_args(tiny_root, tmp_path), *(extra or [])])
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path / "run")
    return cfg


@pytest.fixture
def cfg_tiny(tiny_root, tmp_path) -> DictConfig:
    return tiny_train_config(tiny_root, tmp_path)


@pytest.fixture(scope="session")
def trained_ckpt(tiny_root, tmp_path_factory) -> Path:
    """A tiny model trained for a few steps at 48 px (so prediction must upsample to 64)."""
    from spark_lightning.tasks import run_train

    tmp = tmp_path_factory.mktemp("trained")
    cfg = tiny_train_config(tiny_root, tmp, ["data.size=48", "trainer.max_epochs=2"])
    run_train(cfg)
    return tmp / "run" / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="session")
def multitask_run(tiny_root, tmp_path_factory) -> Path:
    """A tiny multi-task model (head=classify) trained for a few steps: its run directory."""
    from spark_lightning.tasks import run_train

    tmp = tmp_path_factory.mktemp("multitask")
    run_train(tiny_train_config(tiny_root, tmp, ["head=classify", "trainer.max_epochs=2", "cost.size=256"]))
    return tmp / "run"


@pytest.fixture
def root(tiny_root, tmp_path) -> Path:
    """A private copy of the tiny set, to damage."""
    import shutil

    return Path(shutil.copytree(tiny_root, tmp_path / "data"))


def prepare_datamodule(root: Path, tmp_path: Path, **kwargs):
    """A SPARK-layout data module on ``root`` (32 px, cache under tmp_path), prepared and set up."""
    from spark_lightning.data.datamodule import SparkDataModule

    dm = SparkDataModule({"_target_": "spark_lightning.data.spark.SparkFormat"}, root=str(root),
                         size=kwargs.pop("size", 32), num_workers=0, cache_dir=str(tmp_path / "cache"), **kwargs)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def long_smoke_run(tiny_root: Path, tmp_path: Path, epochs: int) -> tuple[Path, list[str], dict]:
    """(run dir, command, environment) of a smoke training that runs until it is stopped."""
    import sys

    run_dir = tmp_path / "run"
    env = {**os.environ, "SPARK_LIGHTNING_CACHE": str(tmp_path / "cache")}
    args = [sys.executable, "-m", "spark_lightning.train", "debug=smoke", f"data.root={tiny_root}",
            f"data.cache_dir={tmp_path / 'c'}", f"trainer.max_epochs={epochs}", f"hydra.run.dir={run_dir}"]
    return run_dir, args, env


def compose_task(name: str, overrides: list[str], output_dir: Path) -> DictConfig:
    """A predict/evaluate/export config composed in-process, writing into output_dir."""
    cfg = compose_train(overrides, config_name=name)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
    return cfg


def run_main(entry: str, args: list[str], monkeypatch) -> int:
    """Run ``python -m spark_lightning.<entry> ARGS`` in this process (no interpreter start-up):
    returns the exit code (0, or the one SystemExit gives)."""
    import importlib
    import sys

    module = importlib.import_module(f"spark_lightning.{entry}")
    monkeypatch.setattr(sys, "argv", [entry, *args])
    try:
        module.main()
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return 0
