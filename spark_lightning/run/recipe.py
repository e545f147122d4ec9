"""Which recipe a training run gets: the embedded demo or the real-data recipe, decided on the
command line so that Hydra composes once and ``--cfg job``, ``.hydra/``, the plan and
``config.yaml`` all show the recipe that runs.

``python -m spark_lightning.train`` with no ``data.root`` trains the embedded demo (the default
``experiment=cpu_default``) with any group override on top. Once ``data.root`` points at data
and no experiment is named, the demo's time cap, scale and network must not leak into the run:
the command line gets ``~experiment`` (and ``data=spark`` unless a data group was chosen, so the
config names the format that reads the folder), and ``conf/train.yaml``'s groups apply with the
user's overrides. An experiment the user names is always kept.

On a machine without the real-data recipe's pretrained weights (no hub cache), the plan asks
``apply_fallback_model`` for ``recipe.fallback_model``, a network whose weights install with the
project; any ``model=`` / ``model.*`` override sets it to null on the command line (the user
chose the network), and experiments with their own network set it to null in their file.
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

# Hydra's flags that take the next token as their value (not an override).
_VALUE_FLAGS = {"--cfg", "-c", "--package", "-p", "--config-name", "-cn", "--config-path", "-cp", "--config-dir",
                "-cd", "--experimental-rerun"}
_INFO_TOPICS = {"all", "config", "defaults", "defaults-tree", "plugins", "searchpath"}


def recipe_overrides(overrides: list[str]) -> list[str]:
    """What the recipe rule adds to a training's overrides (see the module docstring)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException:
        return []  # Hydra reports the bad override itself, in its own words
    keys = {o.key_or_group for o in parsed}
    root = next((o for o in parsed if o.key_or_group == "data.root" and not o.is_delete()), None)
    added = []
    if root is not None and root.value() not in (None, "") and "experiment" not in keys:
        added.append("~experiment")
        if "data" not in keys:
            added.append("data=spark")
    if any(k == "model" or k.startswith("model.") for k in keys) and "recipe.fallback_model" not in keys:
        added.append("recipe.fallback_model=null")
    return added


def cli_args(argv: list[str]) -> list[str]:
    """The train command's arguments with ``recipe_overrides`` added after the user's overrides
    (the ``rewrite`` step of ``runtime.command``, before Hydra parses them)."""
    overrides, last, skip = [], -1, False
    for i, arg in enumerate(argv):
        if skip:
            skip = False
        elif arg.startswith("-"):
            skip = arg in _VALUE_FLAGS or (arg in ("--info", "-i") and i + 1 < len(argv)
                                           and argv[i + 1] in _INFO_TOPICS)
        else:
            overrides.append(arg)
            last = i
    added = recipe_overrides(overrides)
    return [*argv[:last + 1], *added, *argv[last + 1:]] if added else argv


def compose_run(config_name: str, overrides: list[str]) -> DictConfig:
    """Compose a training config as the command line would (inside ``initialize_config_dir``)."""
    from hydra import compose

    extra = recipe_overrides(overrides) if config_name == "train" else []
    return compose(config_name=config_name, overrides=[*overrides, *extra])


def apply_fallback_model(plan: DictConfig) -> None:
    """The real-data recipe without pretrained weights for its network (nothing in the hub
    cache, no hub): train ``recipe.fallback_model`` with its shipped weights instead."""
    from spark_lightning import CONF_DIR
    from spark_lightning.models.factory import resolve_weights

    recipe, model = plan.get("recipe") or {}, plan.model
    name = recipe.get("fallback_model")
    if not name or model.get("weights_path"):
        return
    if model.get("encoder_weights") != "auto" or resolve_weights(model.arch, model.get("encoder"), "auto")[0]:
        return
    fallback = OmegaConf.load(Path(CONF_DIR) / "model" / f"{name}.yaml")
    log.info("no ImageNet weights for %s/%s here: the real-data recipe trains model=%s (recipe.fallback_model), "
             "whose ImageNet weights install with the project; choose model=... to decide yourself",
             model.arch, model.get("encoder"), name)
    plan.model = fallback
    plan.recipe.fallback_used = name
