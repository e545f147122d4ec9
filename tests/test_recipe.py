"""One composition: the recipe rule acts on the command line, so what ``--cfg job`` shows, what
Hydra saves in ``.hydra/``, the printed plan and ``config.yaml`` are the same run (apart from the
values the plan settles from the machine, which ``config.yaml`` lists under ``settled``)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from spark_lightning.run.recipe import cli_args, recipe_overrides


@pytest.mark.parametrize(("argv", "expected"), [
    ([], []),
    (["data.root=/d"], ["data.root=/d", "~experiment", "data=spark"]),
    (["--cfg", "job", "data.root=/d", "-m"], ["--cfg", "job", "data.root=/d", "~experiment", "data=spark", "-m"]),
    (["data=spark", "data.root=/d"], ["data=spark", "data.root=/d", "~experiment"]),
    (["experiment=seed_baseline", "data.root=/d"], ["experiment=seed_baseline", "data.root=/d"]),
    (["data.root=null"], ["data.root=null"]),
    (["-m", "model=unet_resnet34,deeplabv3_mnv3", "data.root=/d"],
     ["-m", "model=unet_resnet34,deeplabv3_mnv3", "data.root=/d", "~experiment", "data=spark",
      "recipe.fallback_model=null"]),
    (["model.encoder=resnet50"], ["model.encoder=resnet50", "recipe.fallback_model=null"]),
    (["model=tiny", "recipe.fallback_model=x"], ["model=tiny", "recipe.fallback_model=x"]),
    (["--info", "defaults", "loss=ce"], ["--info", "defaults", "loss=ce"]),
    (["data.root=[unclosed"], ["data.root=[unclosed"]),  # Hydra reports the bad override itself
])
def test_the_recipe_rule_on_the_command_line(argv, expected):
    assert cli_args(argv) == expected


def test_the_rule_adds_nothing_to_a_named_experiment_or_the_demo():
    assert recipe_overrides(["model=tiny", "loss=ce"]) == ["recipe.fallback_model=null"]
    assert recipe_overrides(["experiment=cpu_hour", "data.root=/d"]) == []


def _leaves(node, prefix=""):
    if isinstance(node, dict) and node:
        for key, value in node.items():
            yield from _leaves(value, f"{prefix}{key}.")
    else:
        yield prefix[:-1], node


CASES = {
    "demo": ([], "embedded CPU demo"),
    "real data": (["data.root={root}"], "conf/train.yaml's groups"),
    "an experiment": (["experiment=seed_baseline", "data.root={root}"], "the blog post's baseline"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_cfg_job_hydra_files_plan_and_config_yaml_agree(case, tiny_root, tmp_path):
    extra, about = CASES[case]
    run_dir = tmp_path / "run"
    args = [a.format(root=tiny_root) for a in extra] + [
        "debug=smoke", f"data.cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={run_dir}"]
    env = {**os.environ, "SPARK_LIGHTNING_CACHE": str(tmp_path / "cache")}
    command = [sys.executable, "-m", "spark_lightning.train", *args]
    shown = subprocess.run([*command, "--cfg", "job"], cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=300)
    assert shown.returncode == 0, shown.stderr[-2000:]
    ran = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert ran.returncode == 0, ran.stderr[-2000:]

    composed = OmegaConf.to_container(OmegaConf.create(shown.stdout))
    saved = OmegaConf.to_container(OmegaConf.load(run_dir / ".hydra" / "config.yaml"))
    assert saved == composed  # Hydra's saved composition is what --cfg job showed
    plan = OmegaConf.to_container(OmegaConf.load(run_dir / "config.yaml"))
    settled = plan.pop("settled")
    plan_leaves, composed_leaves = dict(_leaves(plan)), dict(_leaves(composed))
    for key, value in composed_leaves.items():
        if isinstance(value, str) and "${" in value:
            continue  # an interpolation: config.yaml holds its resolved value
        assert key in settled or plan_leaves.get(key, KeyError) == value, f"{key}: {value!r} vs {plan_leaves.get(key)!r}"
    assert set(plan_leaves) - set(composed_leaves) <= set(settled)
    assert composed["recipe"]["about"].startswith(about) or about in composed["recipe"]["about"]
    log = (run_dir / "train.log").read_text()
    printed = log[log.index("plan\n"):].split("\n[")[0]
    assert about in printed and "settled" in printed
    if case == "real data":
        assert composed["data"]["dataset"]["_target_"].endswith("SparkFormat")
        assert "predict_size" not in composed["data"] or composed["data"]["predict_size"] is None  # not the demo's
