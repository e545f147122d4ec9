"""Reading our checkpoints: data, never code; checks with one clear message; the network.

A checkpoint holds the module's hyperparameters (network, loss, optimizer, classes) and the
data module's (format, ``size``, ``crop``), so prediction needs no Hydra config. Checkpoints
written before 0.2 kept the training scale under the module's ``inference`` argument; they
still load.

Opening one never runs code: it is unpickled with ``weights_only=True`` (tensors and plain
data, plus the exact types Lightning stores, ``_safe_globals``), and every ``_target_`` its
hyperparameters name is checked (``check_targets``) before anything is built from it: a
network, loss, optimizer, schedule, augmentation or data format of ours or of our libraries,
never an arbitrary callable such as ``builtins.open``.
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path
from typing import Any

import torch
from torch import nn

from spark_lightning.errors import CheckpointError
from spark_lightning.targets import check_targets, renamed

log = logging.getLogger(__name__)


def _safe_globals() -> list:
    from lightning.fabric.utilities.data import AttributeDict

    return [AttributeDict]  # Lightning's hparams container; everything else we store is plain data


def _load(path: Path) -> Any:
    with torch.serialization.safe_globals(_safe_globals()):
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)


def _unsafe_globals(path: Path) -> list[str]:
    """The globals a pickle would import beyond what we allow, read from its opcodes (not run)."""
    allowed = {f"{g.__module__}.{g.__qualname__}" for g in _safe_globals()}
    try:
        return [g for g in torch.serialization.get_unsafe_globals_in_checkpoint(path) if g not in allowed]
    except Exception:  # noqa: BLE001 - a file too damaged to scan is simply damaged
        return []


def other_checkpoints(folder: Path, exclude: Path | None = None) -> list[Path]:
    """The other ``*.ckpt`` files in ``folder``, newest first, by name only: none is opened
    (a file the user did not name is never unpickled)."""
    found = [p for p in folder.glob("*.ckpt") if p != exclude and p.is_file() and p.name != "best.ckpt"]
    return sorted(found, key=lambda p: -p.stat().st_mtime)


def read_checkpoint(path: str | Path) -> dict:
    """The checkpoint dict, opened as data only; one clear line for a missing, empty, damaged,
    foreign or unsafe file."""
    path = Path(path).expanduser()
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist.")
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a folder: give the .ckpt file inside it.")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes): a save was interrupted; use another checkpoint.")
    try:
        data = _load(path)
    except pickle.UnpicklingError as err:
        unsafe = _unsafe_globals(path)
        if unsafe:
            raise CheckpointError(
                f"checkpoint {path} holds Python objects that are not plain data ({', '.join(unsafe[:3])}): opening "
                "it could run code, so it was not opened. Use a checkpoint written by spark_lightning's train "
                "command.") from err
        raise _damaged(path, err) from err
    except Exception as err:  # noqa: BLE001 - torch raises many types for damaged files
        raise _damaged(path, err) from err
    if not isinstance(data, dict) or "state_dict" not in data or "hyper_parameters" not in data:
        raise CheckpointError(f"{path} is not a spark_lightning checkpoint (no state_dict/hyper_parameters).")
    for part in ("hyper_parameters", "datamodule_hyper_parameters"):
        renamed(data.get(part))
    check_targets(data, f"checkpoint {path}")
    bad = [k for k, v in data["state_dict"].items() if torch.is_tensor(v) and v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"checkpoint {path} holds non-finite weights ({len(bad)} tensors with NaN or inf, e.g. "
                              f"{bad[0]}): its run diverged. Use an earlier checkpoint, or train again with a lower "
                              "optimizer.lr or trainer.gradient_clip_val.")
    return data


def _damaged(path: Path, err: Exception) -> CheckpointError:
    others = other_checkpoints(path.parent, exclude=path)
    hint = (f" Other checkpoints beside it (not opened; newest first): {', '.join(p.name for p in others[:3])}."
            if others else "")
    return CheckpointError(f"checkpoint {path} is damaged or not a checkpoint ({type(err).__name__}).{hint}")


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
    from spark_lightning.training.module import SegmentationModule

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
            "crafts": tuple(module.hparams.get("crafts") or ()), "box": (module.hparams.get("head") or {}).get("box"),
            "predict_size": dm.get("predict_size"), "dataset": dm.get("dataset")}
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
