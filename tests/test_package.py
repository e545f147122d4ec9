"""What importing spark_lightning sets up before torch and the hub libraries load."""

from __future__ import annotations

import spark_lightning


def test_busy_means_three_quarters_of_the_cores_loaded():
    assert spark_lightning.busy_cpu(load=1.5, cores=2) and spark_lightning.busy_cpu(load=6.0, cores=8)
    assert not spark_lightning.busy_cpu(load=1.4, cores=2) and not spark_lightning.busy_cpu(load=0.2, cores=2)


def test_a_busy_machine_gets_sleeping_openmp_threads_unless_you_chose(monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.delenv("SPARK_LIGHTNING_BUSY_CPU", raising=False)
    monkeypatch.setattr(spark_lightning, "busy_cpu", lambda: True)
    spark_lightning._set_thread_defaults()
    import os

    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE" and os.environ["SPARK_LIGHTNING_BUSY_CPU"] == "1"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")  # yours wins
    spark_lightning._set_thread_defaults()
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


def test_an_idle_machine_keeps_torch_defaults(monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.setattr(spark_lightning, "busy_cpu", lambda: False)
    spark_lightning._set_thread_defaults()
    import os

    assert "OMP_WAIT_POLICY" not in os.environ


def test_console_commands_are_the_python_m_commands():
    """pyproject's [project.scripts]: spark-train etc. call the same main() as python -m."""
    import importlib
    from pathlib import Path

    import tomllib

    scripts = tomllib.loads((Path(spark_lightning.__file__).parents[1] / "pyproject.toml").read_text())["project"][
        "scripts"]
    assert set(scripts) == {f"spark-{n}" for n in ("train", "predict", "evaluate", "export", "pseudo", "synth",
                                                   "report")}
    for name, target in scripts.items():
        module, attr = target.split(":")
        assert module == f"spark_lightning.{name.removeprefix('spark-')}"
        assert callable(getattr(importlib.import_module(module), attr))


def test_the_ignore_label_is_one_fact():
    """Configs read it through ${spark:ignore_index}; code through data.formats.IGNORE."""
    from omegaconf import OmegaConf

    from spark_lightning.data.formats import IGNORE

    assert OmegaConf.create({"x": "${spark:ignore_index}"}).x == IGNORE == spark_lightning.IGNORE_INDEX
