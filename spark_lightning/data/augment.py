"""Augmentations of our own, written as albumentations transforms (``_target_`` in ``conf/aug/``).

``BackgroundTexture`` teaches a network that fine texture is not spacecraft. Pretrained
features respond to fine relief, and real Earth terrain behind the craft has it at every scale
(ridges, erosion, rivers, cloud edges) while rendered terrain is smoother: a pretrained U-Net
trained on renders paints real terrain as body. Painting random multi-scale textures over the
background pixels (the mask says which) during training removes texture as a cue for "craft".
"""

from __future__ import annotations

from typing import Any

import albumentations as A
import cv2
import numpy as np


def _noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """Smooth noise with about ``cells`` features across the longer side, in about -1..1."""
    grid = rng.standard_normal((max(2, cells * h // max(h, w)) + 1, max(2, cells * w // max(h, w)) + 1))
    return cv2.resize(grid.astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)


def random_texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """(H, W, 3) float32 in 0..255: two or three random colours mixed by broad noise, under
    ridged relief whose finest octave is a few pixels (the detail pretrained features see)."""
    colours = rng.uniform(0, 255, (3, 3)).astype(np.float32) * rng.uniform(0.3, 1.0)
    a = np.clip(0.5 + 0.5 * _noise(rng, h, w, int(rng.integers(2, 6))), 0, 1)[..., None]
    b = np.clip(0.5 + 0.5 * _noise(rng, h, w, int(rng.integers(3, 10))), 0, 1)[..., None]
    base = colours[0] * (1 - a) + colours[1] * a
    base = base * (1 - 0.5 * b) + colours[2] * 0.5 * b
    relief = np.zeros((h, w), np.float32)
    finest = int(rng.integers(max(h, w) // 6, max(h, w) // 2 + 1))  # features of 2-6 px at the finest
    amp, cells, decay = 1.0, max(4, finest // 32), rng.uniform(0.65, 0.95)
    while cells <= finest:
        octave = _noise(rng, h, w, cells)
        relief += amp * ((1 - 2 * np.abs(octave)) if rng.random() < 0.6 else octave)  # ridged or plain
        amp, cells = amp * decay, cells * 2
    relief -= relief.mean()
    relief /= max(1e-6, float(np.abs(relief).max()))
    contrast = rng.uniform(0.4, 1.0)
    return np.clip(base * (1 + contrast * relief[..., None]), 0, 255)


class BackgroundTexture(A.DualTransform):
    """Paint a random fine texture over the background pixels (mask value ``background``).

    Args:
        alpha: the texture's opacity is drawn from this range (1: the background replaced).
        background: the mask value of background pixels; other classes and ignored pixels stay.
        p: probability per sample.
    """

    def __init__(self, alpha: tuple[float, float] = (0.4, 1.0), background: int = 0, p: float = 0.5) -> None:
        super().__init__(p=p)
        self.alpha, self.background = tuple(alpha), background

    @property
    def targets_as_params(self) -> list[str]:
        return ["mask"]

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        mask = data["mask"]
        h, w = mask.shape[:2]
        rng = self.random_generator
        return {"texture": random_texture(rng, h, w), "opacity": float(rng.uniform(*self.alpha)),
                "where": (mask == self.background)}

    def apply(self, img: np.ndarray, texture: np.ndarray, opacity: float, where: np.ndarray, **params) -> np.ndarray:
        weight = (opacity * where.astype(np.float32))[..., None]
        out = img.astype(np.float32) * (1 - weight) + texture * weight
        return np.clip(out, 0, 255).astype(img.dtype)

    def apply_to_mask(self, mask: np.ndarray, **params) -> np.ndarray:
        return mask

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("alpha", "background")
