"""Which recipe a training run gets: the embedded demo or the real-data recipe.

``python -m spark_lightning.train`` with no ``data.root`` trains the embedded demo: the
10-minute CPU recipe on the generated synthetic set (``experiment=cpu_default``, the default
experiment), with any group override on top. Once the user points ``data.root`` at data
(whichever data group), the demo's time cap, scale and network must not leak into the run:
the config is composed again without that default experiment, so ``conf/train.yaml``'s groups
and the data group's real-data defaults apply, with the user's overrides. An experiment the
user names (``experiment=spark2024_segformer_b5``) is always kept.

On a machine without the real-data recipe's pretrained weights (no hub cache), the plan asks
``apply_fallback_model`` for ``recipe.fallback_model``, a network whose weights install with the
project, unless the user chose ``model=`` (``recipe.model_chosen``, recorded when composing).

The CLI entry point and the tests compose through here, so both get the same recipe.
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

log = logging.getLogger(__name__)


def names_experiment(overrides: list[str]) -> bool:
    """Whether the user chose (or removed) an experiment themselves."""
    return any(o.lstrip("+~").split("=", 1)[0] == "experiment" for o in overrides)


def for_data(cfg: DictConfig, overrides: list[str], config_name: str = "train") -> DictConfig:
    """``cfg``, or with a ``data.root`` and the demo only there by default, the same overrides
    composed without the demo. Needs an initialised Hydra (``@hydra.main`` or ``initialize``)."""
    demo = bool((cfg.get("recipe") or {}).get("demo"))
    if not demo or not (cfg.get("data") or {}).get("root") or names_experiment(overrides):
        return cfg
    from hydra import compose

    log.info("data.root is set: the real-data recipe (conf/%s.yaml's groups, the data group's defaults, your "
             "overrides), not the embedded CPU demo", config_name)
    real = compose(config_name=config_name, overrides=[*overrides, "~experiment"])
    with open_dict(real):  # the plan may swap in recipe.fallback_model only where you did not choose one
        real.recipe.model_chosen = any(o.lstrip("+~").split("=", 1)[0] == "model" for o in overrides)
    return real


def compose_run(config_name: str, overrides: list[str]) -> DictConfig:
    """Compose a training config as the command line would (inside ``initialize_config_dir``)."""
    from hydra import compose

    return for_data(compose(config_name=config_name, overrides=overrides), overrides, config_name)


def cli_overrides() -> list[str]:
    """This job's overrides from the command line (or the sweep)."""
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def for_cli(cfg: DictConfig) -> DictConfig:
    """``for_data`` with this command line's overrides (the train command's ``prepare`` step)."""
    return for_data(cfg, cli_overrides())


def apply_fallback_model(plan: DictConfig) -> None:
    """The real-data recipe without pretrained weights for its network (nothing in the hub
    cache, no hub): train ``recipe.fallback_model`` with its shipped weights instead, unless you
    chose the network yourself."""
    from spark_lightning import CONF_DIR
    from spark_lightning.models.factory import resolve_weights

    recipe, model = plan.get("recipe") or {}, plan.model
    name = recipe.get("fallback_model")
    if not name or recipe.get("model_chosen") is not False or model.get("weights_path"):
        return
    if model.get("encoder_weights") != "auto" or resolve_weights(model.arch, model.get("encoder"), "auto")[0]:
        return
    fallback = OmegaConf.load(Path(CONF_DIR) / "model" / f"{name}.yaml")
    log.info("no ImageNet weights for %s/%s here: the real-data recipe trains model=%s (recipe.fallback_model), "
             "whose ImageNet weights install with the project; choose model=... to decide yourself",
             model.arch, model.get("encoder"), name)
    plan.model = fallback
    plan.recipe.fallback_used = name
