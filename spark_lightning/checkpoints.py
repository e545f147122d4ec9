"""Reading our checkpoints: checks with one clear message, the network, and what training knew.

A checkpoint holds the module's hyperparameters (network, loss, optimizer, classes) and the
data module's (format, ``size``, ``crop``), so prediction needs no Hydra config. Checkpoints
written before 0.2 kept the training scale under the module's ``inference`` argument; they
still load.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from spark_lightning.errors import CheckpointError

log = logging.getLogger(__name__)


def _load(path: Path) -> Any:
    return torch.load(path, map_location="cpu", weights_only=False, mmap=True)


def last_good_checkpoint(folder: Path, exclude: Path | None = None) -> Path | None:
    """The newest checkpoint in ``folder`` that loads (a damaged disk or copy may leave a bad one);
    the file itself rather than ``best.ckpt``, its second name."""
    for path in sorted(folder.glob("*.ckpt"), key=lambda p: (p.name == "best.ckpt", -p.stat().st_mtime)):
        if path == exclude:
            continue
        try:
            _load(path)
            return path
        except Exception:  # noqa: BLE001 - any unreadable file is simply not a candidate
            continue
    return None


def read_checkpoint(path: str | Path) -> dict:
    """The checkpoint dict; one clear line for a missing, empty, damaged or foreign file."""
    path = Path(path).expanduser()
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist.")
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a folder: give the .ckpt file inside it.")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes): a save was interrupted; use another checkpoint.")
    try:
        data = _load(path)
    except Exception as err:  # noqa: BLE001 - torch raises many types for damaged files
        good = last_good_checkpoint(path.parent, exclude=path)
        hint = f" The newest readable checkpoint beside it: {good} (ckpt_path={good})." if good else ""
        raise CheckpointError(f"checkpoint {path} is damaged or not a checkpoint ({type(err).__name__}).{hint}") from err
    if not isinstance(data, dict) or "state_dict" not in data or "hyper_parameters" not in data:
        raise CheckpointError(f"{path} is not a spark_lightning checkpoint (no state_dict/hyper_parameters).")
    bad = [k for k, v in data["state_dict"].items() if torch.is_tensor(v) and v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"checkpoint {path} holds non-finite weights ({len(bad)} tensors with NaN or inf, e.g. "
                              f"{bad[0]}): its run diverged. Use an earlier checkpoint, or train again with a lower "
                              "optimizer.lr or trainer.gradient_clip_val.")
    return data


def describe_model(model: dict) -> str:
    return f"{model.get('arch')}/{model.get('encoder')}"


def check_same_model(data: dict, model: dict, path: Path, what: str = "this run") -> None:
    """Resuming into another network would fail with a page of state-dict keys: say it in one line."""
    saved = data["hyper_parameters"].get("model", {})
    if (saved.get("arch"), saved.get("encoder")) != (model.get("arch"), model.get("encoder")):
        raise CheckpointError(
            f"checkpoint {path} holds model {describe_model(saved)} but {what} asks for {describe_model(model)}: "
            f"choose model.arch={saved.get('arch')} model.encoder={saved.get('encoder')} or another checkpoint."
        )


def training_scale(data: dict) -> tuple[int | None, int | None]:
    """(data.size, data.crop) the checkpoint was trained with."""
    dm = data.get("datamodule_hyper_parameters") or {}
    if "size" in dm:
        return dm.get("size"), dm.get("crop")
    legacy = data["hyper_parameters"].get("inference") or {}
    return legacy.get("size"), legacy.get("crop")


def load_network(ckpt: str | Path, device: str = "cpu") -> tuple[nn.Module, dict]:
    """The network of a checkpoint, in eval mode, and what training knew about the data:
    ``{"model", "classes", "size", "crop", "dataset"}``.

    The weights come from the checkpoint, so pretrained-encoder downloads are switched off: a
    model trained with ``encoder_weights=imagenet`` predicts on a machine without the hub.
    """
    from spark_lightning.module import SegmentationModule

    path = Path(ckpt).expanduser()
    data = read_checkpoint(path)
    hparams = dict(data["hyper_parameters"])
    hparams["model"] = {**hparams["model"], "encoder_weights": None, "weights_path": None, "compile": False}
    try:
        module = SegmentationModule(**hparams)
        module.load_state_dict(data["state_dict"])
    except (RuntimeError, KeyError, TypeError, ValueError) as err:
        raise CheckpointError(
            f"checkpoint {path} does not match this version's SegmentationModule ({type(err).__name__}: "
            f"{str(err).splitlines()[0][:200]}). Was it written by spark_lightning's train command?"
        ) from err
    size, crop = training_scale(data)
    dm = data.get("datamodule_hyper_parameters") or {}
    info = {"model": hparams["model"], "classes": tuple(module.hparams.classes), "size": size, "crop": crop,
            "dataset": dm.get("dataset")}
    return module.net.to(device).eval(), info


def load_weights(net: nn.Module, path: str | Path, strict: bool = True) -> dict[str, list[str]]:
    """Fine-tuning: copy a checkpoint's network weights into ``net`` (nothing else: the optimizer,
    schedule and epoch counter start fresh). Strict by default, with one error listing what does
    not fit; ``strict=False`` loads the matching tensors (e.g. another head) and reports the rest."""
    path = Path(path).expanduser()
    data = read_checkpoint(path)
    state = {k.removeprefix("net."): v for k, v in data["state_dict"].items() if k.startswith("net.")}
    own = net.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    reshaped = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if strict and (missing or unexpected or reshaped):
        saved = describe_model(data["hyper_parameters"].get("model", {}))
        raise CheckpointError(
            f"init_from={path} (model {saved}) does not fit this network: {len(missing)} missing, "
            f"{len(unexpected)} unexpected, {len(reshaped)} of another shape; e.g. missing {missing[:3]}, "
            f"unexpected {unexpected[:3]}, reshaped {reshaped[:3]}. Set init_from_strict=false to load the "
            "tensors that fit (another head or number of classes), or choose the checkpoint's model."
        )
    net.load_state_dict({k: v for k, v in state.items() if k in own and k not in reshaped}, strict=False)
    loaded = len(set(own) & set(state)) - len(reshaped)
    log.info("init_from=%s: loaded %d of %d tensors%s", path, loaded, len(own),
             f" (left as initialised: {len(missing) + len(reshaped)})" if missing or reshaped else "")
    return {"missing": missing, "unexpected": unexpected, "reshaped": reshaped}
