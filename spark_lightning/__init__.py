"""spark_lightning: Lightning + Hydra experiments for SPARK 2024 spacecraft segmentation.

Importing the package sets offline defaults *before* huggingface_hub, albumentations or wandb
are imported, so nothing hangs on a network these machines do not have. A value the user set
in the environment always wins.
"""

import os
from pathlib import Path

__version__ = "0.2.0"
# The label of pixels no loss or metric counts (padding, unsure pseudo-label pixels); configs
# read it as ${spark:ignore_index}, code as spark_lightning.data.formats.IGNORE.
IGNORE_INDEX = 255
# The Hydra configs (conf/ beside the package in a checkout or editable install); an absolute
# path, so the entry points also work when called in-process (tests) rather than as __main__.
CONF_DIR = str(Path(__file__).resolve().parents[1] / "conf")


def _set_offline_defaults() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    # W&B writes offline run files unless the user gave an API key (or chose a mode).
    if not os.environ.get("WANDB_API_KEY"):
        os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")


_set_offline_defaults()


def busy_cpu(load: float | None = None, cores: int | None = None) -> bool:
    """Whether other jobs keep this machine's cores busy (1-minute load >= 3/4 of the cores)."""
    try:
        load = os.getloadavg()[0] if load is None else load
    except OSError:  # no load average on this platform
        return False
    return load >= 0.75 * (cores or os.cpu_count() or 1)


def _set_thread_defaults() -> None:
    """On a busy machine, OpenMP threads that spin while they wait fight the other jobs for the
    cores: training ran 3x slower beside two busy processes on 2 cores, 1.2x with threads that
    sleep instead (bench/busy_machine.py). Sleeping threads cost a third of the speed on an idle
    machine, so they are chosen only when the machine is busy as the command starts; the plan
    says so. Must run before torch is imported; a value you set wins."""
    if "OMP_WAIT_POLICY" not in os.environ and busy_cpu():
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
        os.environ["SPARK_LIGHTNING_BUSY_CPU"] = "1"  # for the plan's device line


_set_thread_defaults()


def _register_resolvers() -> None:
    """``${job_dirname:${hydra.job.num},${hydra.job.override_dirname}}``: a sweep job's folder
    name, its overrides cut to a length every file system accepts (255 bytes), plus a hash."""
    import hashlib

    from omegaconf import OmegaConf

    def job_dirname(num: int, overrides: str, max_len: int = 120) -> str:
        overrides = overrides.replace("/", "_")  # a path in an override must not nest folders
        if len(overrides) > max_len:
            digest = hashlib.sha1(overrides.encode()).hexdigest()[:8]
            overrides = f"{overrides[: max_len - 9]}_{digest}"
        return f"{num}_{overrides}" if overrides else str(num)

    if not OmegaConf.has_resolver("job_dirname"):
        OmegaConf.register_new_resolver("job_dirname", job_dirname)
    facts = {"ignore_index": IGNORE_INDEX}  # ${spark:ignore_index}: the code's value, one fact
    if not OmegaConf.has_resolver("spark"):
        OmegaConf.register_new_resolver("spark", facts.__getitem__)


_register_resolvers()
