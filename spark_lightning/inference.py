"""Full-resolution prediction: resize or sliding-window inference, flip TTA, logits upsampling.

A model trained at ``data.size`` sees each image downscaled to that size; its class
probabilities (not labels) are upsampled back to the image's own resolution before argmax,
so boundaries stay smooth. Models trained on crops predict window by window (``slide``) with
overlapping tiles blended by a smooth (Hann) weight, so tile seams do not show.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from spark_lightning.data.spark import SparkDataError, read_rgb

MODES = ("resize", "slide")
TTAS = ("none", "flip")


@dataclass
class InferenceConfig:
    """How to predict: ``size`` the working scale (None = full resolution), ``tile`` the
    window side for ``slide`` mode, ``overlap`` its fraction, ``tta`` none or flip."""

    mode: str = "resize"
    size: int | None = None
    tile: int | None = None
    overlap: float = 0.25
    tta: str = "none"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"predict.mode={self.mode!r}: use one of {MODES}.")
        if self.tta not in TTAS:
            raise ValueError(f"predict.tta={self.tta!r}: use one of {TTAS}.")
        if not 0 <= self.overlap < 1:
            raise ValueError(f"predict.overlap={self.overlap} must be in [0, 1).")
        if self.mode == "slide" and not self.tile:
            raise ValueError("predict.mode=slide needs predict.tile (or a checkpoint trained with data.crop).")


def _flips(tta: str) -> list[tuple[int, ...]]:
    return [()] if tta == "none" else [(), (-1,), (-2,)]


def _probs(net: nn.Module, x: torch.Tensor, tta: str) -> torch.Tensor:
    """Softmax averaged over the TTA flips, all flips in one forward pass."""
    flips = _flips(tta)
    batch = torch.cat([x.flip(dims) if dims else x for dims in flips]) if len(flips) > 1 else x
    probs = net(batch).float().softmax(1).chunk(len(flips))
    out = sum(p.flip(dims) if dims else p for p, dims in zip(probs, flips))
    return out / len(flips)


def _starts(length: int, tile: int, stride: int) -> list[int]:
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, stride)) + [length - tile]
    return sorted(set(starts))


def _hann(tile: int, device: torch.device) -> torch.Tensor:
    w = torch.hann_window(tile + 2, periodic=False, device=device)[1:-1]
    return (w[:, None] * w[None, :]).clamp_min(1e-3)


def slide_probs(net: nn.Module, x: torch.Tensor, tile: int, overlap: float, tta: str,
                windows_per_pass: int = 8) -> torch.Tensor:
    """Sliding-window class probabilities over (B, 3, H, W), for any H, W (also not divisible by
    tile); windows go through the network ``windows_per_pass`` at a time."""
    b, _, h, w = x.shape
    stride = max(1, int(tile * (1 - overlap)))
    boxes = [(top, left) for top in _starts(h, tile, stride) for left in _starts(w, tile, stride)]
    th, tw = min(tile, h), min(tile, w)
    weight_tile = _hann(tile, x.device)[:th, :tw]
    total, weight = None, torch.zeros(1, 1, h, w, device=x.device)
    for i in range(0, len(boxes), windows_per_pass):
        chunk = boxes[i : i + windows_per_pass]
        windows = torch.cat([x[..., t : t + th, l : l + tw] for t, l in chunk])
        probs = _probs(net, windows, tta).split(b)
        if total is None:
            total = torch.zeros(b, probs[0].shape[1], h, w, device=x.device)
        for (t, l), p in zip(chunk, probs):
            total[..., t : t + th, l : l + tw] += p * weight_tile
            weight[..., t : t + th, l : l + tw] += weight_tile
    return total / weight


def working_probs(net: nn.Module, images: torch.Tensor, cfg: InferenceConfig) -> torch.Tensor:
    """Class probabilities (B, C, h, w) for a batch already at the working scale."""
    if cfg.mode == "slide":
        return slide_probs(net, images, cfg.tile, cfg.overlap, cfg.tta)
    return _probs(net, images, cfg.tta)


def upsample(probs: torch.Tensor, out_size: tuple[int, int]) -> torch.Tensor:
    """Probabilities (not labels) brought to the image's own resolution."""
    if tuple(probs.shape[-2:]) == tuple(out_size):
        return probs
    return F.interpolate(probs, size=tuple(out_size), mode="bilinear", align_corners=False)


class ImageFolder(Dataset):
    """Images read at the working scale, with their name and full-resolution size."""

    def __init__(self, paths: list[Path], size: int | None) -> None:
        self.paths, self.size = paths, size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict:
        path = self.paths[index]
        full = read_rgb(path)  # raises SparkDataError naming the file
        small = full if self.size is None else read_rgb(path, self.size)
        return {
            "image": torch.from_numpy(np.ascontiguousarray(small.transpose(2, 0, 1))),
            "full_size": full.shape[:2],
            "path": str(path),
        }


def _collate(items: list[dict]) -> list[dict]:
    return items


def iter_predictions(
    net: nn.Module, paths: list[Path], cfg: InferenceConfig, batch_size: int = 4, num_workers: int = 0,
    device: torch.device | str = "cpu", amp: bool = True,
) -> Iterator[tuple[Path, np.ndarray, np.ndarray]]:
    """Yield (path, label map uint8 at full resolution, probabilities C x H x W) per image."""
    device = torch.device(device)
    loader = DataLoader(ImageFolder(paths, cfg.size), batch_size=batch_size, num_workers=num_workers,
                        collate_fn=_collate)
    autocast = (torch.autocast("cuda", dtype=torch.float16) if amp and device.type == "cuda"
                else contextlib.nullcontext())
    net = net.to(device).eval()
    with torch.inference_mode(), autocast:
        for items in loader:
            shapes = {tuple(it["image"].shape) for it in items}
            groups = [items] if len(shapes) == 1 else [[it] for it in items]
            for group in groups:
                x = torch.stack([it["image"] for it in group]).to(device, non_blocking=True)
                probs = working_probs(net, x, cfg)
                for it, p in zip(group, probs):
                    full = upsample(p[None], it["full_size"])[0]
                    yield Path(it["path"]), full.argmax(0).to(torch.uint8).cpu().numpy(), full


def load_network(ckpt: str | Path, device: str = "cpu") -> tuple[nn.Module, dict]:
    """The network and training hyperparameters stored in a Lightning checkpoint.

    The weights come from the checkpoint, so pretrained-encoder downloads are switched off:
    a model trained with ``encoder_weights=imagenet`` predicts on a machine without the hub.
    """
    from spark_lightning.module import SegmentationModule

    ckpt = Path(ckpt).expanduser()
    if not ckpt.is_file():
        raise FileNotFoundError(f"checkpoint {ckpt} does not exist.")
    try:
        data = torch.load(ckpt, map_location=device, weights_only=False)
        hparams = dict(data["hyper_parameters"])
        hparams["model"] = {**hparams["model"], "encoder_weights": None, "weights_path": None}
        module = SegmentationModule(**hparams)
        module.load_state_dict(data["state_dict"])
    except (RuntimeError, KeyError, TypeError, ValueError) as err:
        raise SparkDataError(
            f"checkpoint {ckpt} does not match this version's SegmentationModule ({type(err).__name__}: "
            f"{str(err).splitlines()[0][:300]}). Was it written by spark_lightning's train command?"
        ) from err
    return module.net.to(device).eval(), hparams
