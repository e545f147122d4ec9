"""Full-resolution class probabilities from one or several checkpoints.

A model trained at ``data.size`` sees each image downscaled to that size; its class
probabilities (not labels) are upsampled back to the image's own resolution before argmax, so
boundaries stay smooth. Models trained on crops predict window by window (``slide``) with
overlapping tiles blended by a smooth (Hann) weight, so seams do not show. Flip TTA, several
scales and several checkpoints (an ensemble, architectures and training sizes may differ) are
averaged as probabilities; memory holds one batch of full-resolution probabilities at a time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from spark_lightning.data.formats import SegmentationFormat, image_size
from spark_lightning.data.sizes import check_side
from spark_lightning.errors import ConfigError

MODES = ("resize", "slide")
TTAS = ("none", "flip", "flip4")


@dataclass(frozen=True)
class PredictOptions:
    """How to predict: ``size`` the working scale (None = full resolution), ``tile`` the window
    side for ``slide`` mode, ``overlap`` its fraction, ``tta`` none or flip, ``scales`` factors
    applied to the working scale (and tile) whose probabilities are averaged."""

    mode: str = "resize"
    size: int | None = None
    tile: int | None = None
    overlap: float = 0.25
    tta: str = "none"
    scales: tuple[float, ...] = (1.0,)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"predict.mode={self.mode!r}: use one of {MODES}.")
        if self.tta not in TTAS:
            raise ConfigError(f"predict.tta={self.tta!r}: use one of {TTAS}.")
        if not isinstance(self.overlap, (int, float)) or not 0 <= self.overlap < 1:
            raise ConfigError(f"predict.overlap={self.overlap} must be in [0, 1).")
        if self.mode == "slide" and not self.tile:
            raise ConfigError("predict.mode=slide needs predict.tile (or a checkpoint trained with data.crop).")
        if not self.scales or any(not isinstance(s, (int, float)) or s <= 0 for s in self.scales):
            raise ConfigError(f"predict.scales={list(self.scales)}: give positive factors, e.g. [0.75,1.0,1.25].")
        check_side("predict.size", self.size, "the checkpoint's")
        check_side("predict.tile", self.tile, "the checkpoint's")

    def at_scale(self, scale: float) -> PredictOptions:
        """The options of one scale: working size and tile multiplied, rounded to 8 px."""
        if scale == 1.0:
            return self
        def scaled(v: int | None) -> int | None:
            return None if v is None else max(16, int(round(v * scale / 8)) * 8)
        return replace(self, size=scaled(self.size), tile=scaled(self.tile), scales=(1.0,))


@dataclass
class Predictor:
    """One network with the options it predicts with (its own training scale)."""

    net: nn.Module
    options: PredictOptions
    source: str = ""
    info: dict = field(default_factory=dict)


def _flips(tta: str) -> list[tuple[int, ...]]:
    """none: the image; flip: + horizontal + vertical; flip4: + both at once."""
    return {"none": [()], "flip": [(), (-1,), (-2,)], "flip4": [(), (-1,), (-2,), (-2, -1)]}[tta]


Probs = tuple[torch.Tensor, torch.Tensor | None]  # class probabilities (B, C, H, W), spacecraft ones (B, K) or None


def _forward(net: nn.Module, x: torch.Tensor) -> Probs:
    """Mask logits and, from a network with a classification head (SPARK 2026), class logits."""
    return net.forward_both(x) if getattr(net, "craft_classes", 0) else (net(x), None)


def _probs(net: nn.Module, x: torch.Tensor, tta: str) -> Probs:
    """Softmax averaged over the TTA flips, all flips in one forward pass."""
    flips = _flips(tta)
    batch = torch.cat([x.flip(dims) if dims else x for dims in flips]) if len(flips) > 1 else x
    logits, craft = _forward(net, batch)
    probs = logits.float().softmax(1).chunk(len(flips))
    out = sum(p.flip(dims) if dims else p for p, dims in zip(probs, flips))
    if craft is not None:  # the spacecraft class does not flip: mean of every view
        craft = torch.stack(craft.float().softmax(1).chunk(len(flips))).mean(0)
    return out / len(flips), craft


def _starts(length: int, tile: int, stride: int) -> list[int]:
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, stride)) + [length - tile]
    return sorted(set(starts))


def _hann(tile: int, device: torch.device) -> torch.Tensor:
    w = torch.hann_window(tile + 2, periodic=False, device=device)[1:-1]
    return (w[:, None] * w[None, :]).clamp_min(1e-3)


def slide_probs(net: nn.Module, x: torch.Tensor, tile: int, overlap: float, tta: str,
                windows_per_pass: int = 8) -> Probs:
    """Sliding-window class probabilities over (B, 3, H, W), for any H, W (also not divisible by
    tile); windows go through the network ``windows_per_pass`` at a time. A spacecraft class is
    the mean over the windows."""
    b, _, h, w = x.shape
    stride = max(1, int(tile * (1 - overlap)))
    boxes = [(top, left) for top in _starts(h, tile, stride) for left in _starts(w, tile, stride)]
    th, tw = min(tile, h), min(tile, w)
    weight_tile = _hann(tile, x.device)[:th, :tw]
    total, weight, craft = None, torch.zeros(1, 1, h, w, device=x.device), None
    for i in range(0, len(boxes), windows_per_pass):
        chunk = boxes[i : i + windows_per_pass]
        windows = torch.cat([x[..., t : t + th, l : l + tw] for t, l in chunk])
        probs, crafts = _probs(net, windows, tta)
        if total is None:
            total = torch.zeros(b, probs.shape[1], h, w, device=x.device)
        for j, ((t, l), p) in enumerate(zip(chunk, probs.split(b))):
            total[..., t : t + th, l : l + tw] += p * weight_tile
            weight[..., t : t + th, l : l + tw] += weight_tile
            if crafts is not None:
                part = crafts[j * b : (j + 1) * b] / len(boxes)
                craft = part if craft is None else craft + part
    return total / weight, craft


def working_probs(net: nn.Module, images: torch.Tensor, options: PredictOptions) -> Probs:
    """Class probabilities (B, C, h, w) (and spacecraft ones) for a batch at the working scale."""
    if options.mode == "slide":
        return slide_probs(net, images, options.tile, options.overlap, options.tta)
    return _probs(net, images, options.tta)


def upsample(probs: torch.Tensor, out_size: tuple[int, int]) -> torch.Tensor:
    """Probabilities (not labels) brought to the image's own resolution."""
    if tuple(probs.shape[-2:]) == tuple(out_size):
        return probs
    return F.interpolate(probs, size=tuple(out_size), mode="bilinear", align_corners=False)


class ImageFolder(Dataset):
    """Each image read once per working size (the same decoding as training), with its name
    and full-resolution size (from the file header)."""

    def __init__(self, paths: list[Path], fmt: SegmentationFormat, sizes: list[int | None]) -> None:
        self.paths, self.fmt, self.sizes = paths, fmt, sorted(set(sizes), key=lambda s: s or 0)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict:
        path = self.paths[index]
        width, height = image_size(path)
        inputs = {size: torch.from_numpy(np.ascontiguousarray(self.fmt.read_image(path, size).transpose(2, 0, 1)))
                  for size in self.sizes}
        return {"inputs": inputs, "full_size": (height, width), "path": str(path)}


def _collate(items: list[dict]) -> list[dict]:
    return items


def class_size(pred: Predictor) -> int | None:
    """The scale a classifier reads the spacecraft class at: its training scale. Its head pools
    the deepest features, which change with the scale: read at another (the demo predicts at
    288 px after training at 192), the class is often wrong."""
    return pred.info.get("size", pred.options.size)


def _groups(items: list[dict], size: int | None) -> list[list[int]]:
    """Items batched together when their inputs at ``size`` have one shape, else one by one."""
    shapes = {tuple(it["inputs"][size].shape) for it in items}
    return [list(range(len(items)))] if len(shapes) == 1 else [[i] for i in range(len(items))]


def _stack(items: list[dict], group: list[int], size: int | None, device: torch.device) -> torch.Tensor:
    return torch.stack([items[i]["inputs"][size] for i in group]).to(device, non_blocking=True)


def _batch_probs(predictors: list[Predictor], items: list[dict], device: torch.device) -> list[Probs]:
    """Average full-resolution probabilities of each item over every predictor and scale; the
    spacecraft class over the predictors that classify, each read at its ``class_size`` (from
    the pass at that scale, or one more pass of the whole image)."""
    totals: list[torch.Tensor | None] = [None] * len(items)
    crafts: list[torch.Tensor] = [0] * len(items)
    count = craft_count = 0
    for pred in predictors:
        at, own, passes = class_size(pred), [0] * len(items), 0
        for scale in pred.options.scales:
            options = pred.options.at_scale(scale)
            for group in _groups(items, options.size):
                probs, craft = working_probs(pred.net, _stack(items, group, options.size, device), options)
                for k, (i, p) in enumerate(zip(group, probs)):
                    full = upsample(p[None], items[i]["full_size"])[0]
                    totals[i] = full if totals[i] is None else totals[i].add_(full)
                    if craft is not None and options.size == at:
                        own[i] = own[i] + craft[k]
            passes += int(options.size == at)
            count += 1
        if getattr(pred.net, "craft_classes", 0):
            if not passes:  # no pass at the class scale: the whole image at it, with the same flips
                for group in _groups(items, at):
                    craft = _probs(pred.net, _stack(items, group, at, device), pred.options.tta)[1]
                    for k, i in enumerate(group):
                        own[i] = craft[k]
                passes = 1
            crafts = [c + o / passes for c, o in zip(crafts, own)]
            craft_count += 1
    return [(t / count, c / craft_count if craft_count else None) for t, c in zip(totals, crafts)]


def iter_predictions(
    predictors: list[Predictor], paths: list[Path], fmt: SegmentationFormat, batch_size: int = 4,
    num_workers: int = 0, device: torch.device | str = "cpu", amp: bool = True,
) -> Iterator[tuple[Path, np.ndarray, torch.Tensor]]:
    """Yield (path, label map uint8 at full resolution, probabilities C x H x W, spacecraft class
    probabilities (K,) or None without a classification head) per image."""
    device = torch.device(device)
    sizes = [p.options.at_scale(s).size for p in predictors for s in p.options.scales]
    sizes += [class_size(p) for p in predictors if getattr(p.net, "craft_classes", 0)]
    loader = DataLoader(ImageFolder(paths, fmt, sizes), batch_size=batch_size, num_workers=num_workers,
                        collate_fn=_collate)
    def autocast():
        return (torch.autocast("cuda", dtype=torch.float16) if amp and device.type == "cuda"
                else contextlib.nullcontext())

    for pred in predictors:
        pred.net.to(device).eval()
    for items in loader:
        # Inference mode per batch, not across the yields: the caller's code must not run in it,
        # nor stay in it when it stops early (a full disk) and leaves this generator suspended.
        with torch.inference_mode(), autocast():
            done = [(Path(item["path"]), probs.argmax(0).to(torch.uint8).cpu().numpy(), probs, craft)
                    for item, (probs, craft) in zip(items, _batch_probs(predictors, items, device))]
        yield from done
