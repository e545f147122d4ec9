"""Model factory: (arch, encoder) -> a network taking uint8/float images, returning logits.

Any segmentation_models_pytorch architecture/encoder pair works (timm encoders as
``tu-<name>``), plus ``arch=tv_deeplabv3_mnv3``: torchvision's DeepLabV3-MobileNetV3-Large,
the seed baseline. Every network is wrapped in ``SegmentationNet``, which normalises pixels,
pads to the encoder stride and crops back, so callers feed any image size and raw pixels.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F
from torch import nn

from spark_lightning.errors import ConfigError
from spark_lightning.models import shipped

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TORCHVISION_ARCHS = ("tv_deeplabv3_mnv3",)
OWN_ARCHS = ("tiny",)  # our own networks (models/tiny.py)


class SegmentationNet(nn.Module):
    """Pixels (B, 3, H, W) in [0, 255] -> logits (B, C, H, W) for any H, W.

    With a classification head (``craft_classes`` > 0, SPARK 2026's spacecraft class), ``forward``
    still returns the mask logits only (prediction, export and TTA see a segmentation network);
    ``forward_both`` returns (mask logits, class logits (B, K)).
    """

    def __init__(self, model: nn.Module, stride: int = 32, channels_last: bool = False, is_dict_output: bool = False,
                 mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD,
                 craft_classes: int = 0):
        super().__init__()
        self.model = model
        self.craft_classes = craft_classes
        self.stride = stride
        self.channels_last = channels_last
        self.is_dict_output = is_dict_output
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1) * 255, persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1) * 255, persistent=False)
        if channels_last:
            self.model.to(memory_format=torch.channels_last)

    @property
    def encoder(self) -> nn.Module | None:
        """The pretrained-able part: smp's ``encoder`` or torchvision's ``backbone``."""
        for name in ("encoder", "backbone"):
            if isinstance(getattr(self.model, name, None), nn.Module):
                return getattr(self.model, name)
        return None

    def forward_both(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(mask logits (B, C, H, W), class logits (B, K) or None without a head)."""
        h, w = x.shape[-2:]
        x = (x.float() - self.mean) / self.std
        # Always pad (often by 0): no shape-dependent branch, so exported graphs stay valid for any size.
        x = F.pad(x, (0, -w % self.stride, 0, -h % self.stride), mode="replicate")
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        out = self.model(x)
        if self.is_dict_output:
            out = out["out"]
        out, labels = out if isinstance(out, tuple) else (out, None)
        return out[..., :h, :w], labels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_both(x)[0]


def _torchvision_deeplab(num_classes: int, pretrained_backbone: bool) -> nn.Module:
    from torchvision.models import MobileNet_V3_Large_Weights
    from torchvision.models.segmentation import deeplabv3_mobilenet_v3_large

    weights = MobileNet_V3_Large_Weights.IMAGENET1K_V1 if pretrained_backbone else None
    return deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=weights, num_classes=num_classes, aux_loss=False)


def _check_names(arch: str, encoder: str) -> None:
    archs = [a.lower() for a in smp.create_model.__globals__["MODEL_ARCHITECTURES_MAPPING"]]
    if arch.lower() not in archs:
        raise ConfigError(
            f"model.arch={arch!r} is not a known architecture. Valid: {sorted(archs) + list(TORCHVISION_ARCHS + OWN_ARCHS)}"
        )
    if encoder.startswith("tu-"):
        import timm

        if not timm.list_models(encoder[3:]):
            raise ConfigError(f"model.encoder={encoder!r}: timm has no model {encoder[3:]!r} (see timm.list_models()).")
        return
    names = smp.encoders.get_encoder_names()
    if encoder not in names:
        raise ConfigError(
            f"model.encoder={encoder!r} is not a known encoder. Use 'tu-<timm model>' or one of: {', '.join(names)}"
        )


def _weights_source(name: str, weights: str) -> tuple[str, str]:
    """(where the weights come from, the cache folder they land in) for a hint in errors."""
    if name == "mobilenet_v3_large":
        return "torchvision's IMAGENET1K_V1 download", "~/.cache/torch/hub/checkpoints"
    hub = os.environ.get("HF_HOME", "~/.cache/huggingface")
    repo = f"timm/{name[3:]}" if name.startswith("tu-") else f"smp-hub/{name}.{weights}"
    return f"the Hugging Face repo {repo}", f"{hub}/hub/models--{repo.replace('/', '--')}"


def weights_cached(arch: str, encoder: str, weights: str = "imagenet") -> bool:
    """Whether an encoder's pretrained weights are already in the local cache (no download)."""
    name = "mobilenet_v3_large" if arch in TORCHVISION_ARCHS else encoder
    if name == "mobilenet_v3_large":
        torch_home = Path(os.environ.get("TORCH_HOME", "~/.cache/torch")).expanduser()
        return any((torch_home / "hub" / "checkpoints").glob("mobilenet_v3_large-*.pth"))
    folder = Path(_weights_source(name, weights)[1]).expanduser()
    candidates = [folder] if not name.startswith("tu-") else list(folder.parent.glob(folder.name + "*"))
    return any(any((c / "snapshots").glob("*/*")) for c in candidates if (c / "snapshots").is_dir())


def resolve_weights(arch: str, encoder: str, weights: str | None) -> tuple[str | None, str]:
    """``encoder_weights``: "auto" becomes "shipped" when the project installs the encoder's
    weights (models/shipped.py), else "imagenet" when they are in the local hub cache, else None
    (random init); returns the value and a phrase for the run's plan."""
    if arch in OWN_ARCHS or weights is None:
        return None, "random init"
    if weights == "shipped" or (weights == "auto" and shipped.available(encoder)):
        if encoder not in shipped.SHIPPED:
            raise ConfigError(f"model.encoder_weights=shipped: no weights ship for encoder {encoder!r}; shipped: "
                              f"{sorted(shipped.SHIPPED)} (model=unet_efficientnet_lite0). Use auto, imagenet or null.")
        return "shipped", f"{shipped.SHIPPED[encoder].about}, sha256 checked"
    if weights != "auto":
        return weights, f"{weights} weights (model.encoder_weights={weights})"
    if weights_cached(arch, encoder):
        return "imagenet", "ImageNet weights (found in the local cache)"
    folder = _weights_source("mobilenet_v3_large" if arch in TORCHVISION_ARCHS else encoder, "imagenet")[1]
    return None, (f"random init: no ImageNet weights for {encoder} in the local cache ({folder}); copy them there, "
                  "set model.weights_path=FILE, or use model=unet_efficientnet_lite0 (its ImageNet weights install "
                  "with the project)")


def _pretrained_error(name: str, arch: str, weights: str, err: Exception, elapsed: float) -> ConfigError:
    source, folder = _weights_source(name, weights)
    fetch = (f"python -c \"from spark_lightning.models import build_model; "
             f"build_model(arch='{arch}', encoder='{name}', encoder_weights='{weights}')\"")
    return ConfigError(
        f"model.encoder_weights={weights!r}: could not load the weights of encoder {name!r} after {elapsed:.1f}s "
        f"({type(err).__name__}: {str(err).splitlines()[0][:120] if str(err) else ''}). They come from {source}, "
        f"and this machine is offline (HF_HUB_OFFLINE=1). To get them here: on a machine with internet run "
        f"`HF_HUB_OFFLINE=0 {fetch}`, then copy {folder} to the same path on this machine; or save "
        f"`build_model(...).model.encoder.state_dict()` there with torch.save and set model.weights_path=FILE; "
        "or train from scratch with model.encoder_weights=null."
    )


def _network(arch: str, encoder: str, num_classes: int, load_hub: str | None, head: dict | None,
             **kwargs) -> tuple[nn.Module, nn.Module, bool, int]:
    """(network, its encoder, whether it returns a dict, its output stride); ``head``: smp's
    ``aux_params`` of a classification head on the encoder's deepest features, or None."""
    start = time.monotonic()
    if arch == "tiny":
        from spark_lightning.models.tiny import TinyNet

        model = TinyNet(num_classes, craft_classes=head["classes"] if head else 0, **kwargs)
        return model, model.encoder, False, 4
    if head and arch in TORCHVISION_ARCHS:
        raise ConfigError(f"head=classify needs a segmentation_models_pytorch network (or model=tiny); model.arch={arch} "
                          "has no classification head: choose e.g. model=unet_mobilenet_v3.")
    if head:
        kwargs["aux_params"] = head
    if arch in TORCHVISION_ARCHS:
        try:
            model = _torchvision_deeplab(num_classes, load_hub is not None)
        except Exception as err:  # torch hub download failure offline
            raise _pretrained_error("mobilenet_v3_large", arch, str(load_hub), err, time.monotonic() - start) from err
        return model, model.backbone, True, 32
    _check_names(arch, encoder)
    try:
        model = smp.create_model(arch, encoder_name=encoder, encoder_weights=load_hub, classes=num_classes, **kwargs)
    except (OSError, RuntimeError, ValueError) as err:
        if load_hub is None:
            raise
        raise _pretrained_error(encoder, arch, load_hub, err, time.monotonic() - start) from err
    return model, model.encoder, False, max(32, getattr(model.encoder, "output_stride", 32) or 32)


def _load_encoder_weights(encoder_module: nn.Module, weights_path: str, encoder: str) -> None:
    path = Path(weights_path).expanduser()
    if not path.is_file():
        raise ConfigError(f"model.weights_path={path} does not exist.")
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = state.get("state_dict", state)
    expected = encoder_module.state_dict().keys()
    if not set(state) & set(expected):
        raise ConfigError(
            f"model.weights_path={path} shares no weight names with encoder {encoder!r} "
            f"(file has e.g. {list(state)[:3]}, encoder expects e.g. {list(expected)[:3]})."
        )
    encoder_module.load_state_dict(state, strict=False)


def build_model(
    arch: str = "unet",
    encoder: str = "resnet34",
    num_classes: int = 3,
    encoder_weights: str | None = None,
    weights_path: str | None = None,
    channels_last: bool | str = False,
    compile: bool = False,
    craft_classes: int = 0,
    head_dropout: float = 0.2,
    **kwargs,
) -> SegmentationNet:
    """Build a segmentation network; names are checked first so a typo fails at once.

    ``weights_path`` loads a local encoder state dict (takes precedence over downloading);
    ``compile`` compiles in place (state-dict keys unchanged, so checkpoints stay portable).
    ``channels_last="auto"`` turns NHWC on when a CUDA GPU is present (where it pays off).
    ``craft_classes`` > 0 adds a classification head of that many classes (smp's ``aux_params``:
    pooled deepest encoder features, dropout ``head_dropout``, a linear layer).
    """
    if channels_last == "auto":
        channels_last = torch.cuda.is_available()
    elif not isinstance(channels_last, bool):
        raise ConfigError(f"model.channels_last={channels_last!r}: use true, false or auto.")
    if encoder_weights in ("auto", "shipped"):
        encoder_weights, _ = resolve_weights(arch, encoder, encoder_weights)
    load_hub = encoder_weights if weights_path is None and encoder_weights != "shipped" else None
    head = {"classes": int(craft_classes), "dropout": head_dropout} if craft_classes else None
    model, encoder_module, dict_output, stride = _network(arch, encoder, num_classes, load_hub, head, **kwargs)
    if weights_path is not None:
        _load_encoder_weights(encoder_module, weights_path, encoder)
    elif encoder_weights == "shipped":
        shipped.load_into(encoder_module, encoder)
    # Pixels are normalised as the encoder's pretrained weights expect (ImageNet's statistics,
    # or those of the shipped weights): fixed by the encoder's name, so checkpoints agree.
    mean, std = shipped.normalization(encoder) or (IMAGENET_MEAN, IMAGENET_STD)
    net = SegmentationNet(model, stride=stride, channels_last=channels_last, is_dict_output=dict_output,
                          mean=mean, std=std, craft_classes=int(craft_classes))
    if compile:
        net.model.compile()
    return net
