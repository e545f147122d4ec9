"""What is not the spacecraft: a dense star field, the camera's lifted, noisy black level, faint
lens flares, and (rarely) a realistic Earth limb.

Measured on real SPARK renders: the whole frame sits on a lifted grey (median 32-47) with
noise (MAD 4-9) and about a thousand stars per megapixel; no Earth in 18 renders. The lift and
noise apply to the craft too, so a hull in shadow is as grey as space around it: only the
missing stars and its lit edges give it away.
"""

from __future__ import annotations

import cv2
import numpy as np


def smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Band-limited noise (about ``cells`` blobs across), zero mean, unit-ish amplitude."""
    small = rng.normal(size=(cells, cells)).astype(np.float32)
    return cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)


def stars(rng: np.random.Generator, size: int) -> np.ndarray:
    """Star field (H, W, 3) on black: many faint 1 px stars, fewer bright ones with a halo."""
    img = np.zeros((size, size, 3), np.float32)
    density = rng.uniform(1.8, 3.0) * 1e-3  # per pixel
    n = int(rng.poisson(density * size * size))
    ys, xs = rng.integers(0, size, n), rng.integers(0, size, n)
    brightness = 30 + 230 * rng.power(0.35, n).astype(np.float32) * rng.uniform(0.5, 1.0)
    tint = 1 + rng.normal(0, 0.12, (n, 3)).astype(np.float32)  # reddish and bluish stars
    img[ys, xs] = brightness[:, None] * tint
    halo = brightness > 200
    if halo.any():
        glow = np.zeros_like(img)
        glow[ys[halo], xs[halo]] = img[ys[halo], xs[halo]]
        img += cv2.GaussianBlur(glow, (0, 0), max(0.8, size / 1024)) * 2.0
    return cv2.GaussianBlur(img, (0, 0), 0.35 * max(1.0, size / 1024))


def earth(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(colour, coverage) of a night/day Earth limb entering from one side: dark ocean, clouds,
    a thin atmosphere glow, dimming towards the terminator."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    angle, radius = rng.uniform(0, 2 * np.pi), rng.uniform(2.0, 5.0)
    reach = rng.uniform(0.1, 0.45)  # how far the disc comes into the frame
    cx, cy = 0.5 + np.cos(angle) * (radius + 0.5 - reach), 0.5 + np.sin(angle) * (radius + 0.5 - reach)
    dist = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2) - radius
    cover = np.clip(-dist * size / 2, 0, 1)[..., None]
    clouds = np.clip(smooth_noise(rng, size, 10) + 0.6 * smooth_noise(rng, size, 45) - 0.3, 0, 1.2)[..., None]
    ocean = np.array([12, 28, 55], np.float32) * (1 + 0.3 * smooth_noise(rng, size, 20)[..., None])
    light = np.clip(0.3 + (xx * np.cos(angle + 2) + yy * np.sin(angle + 2))[..., None], 0.1, 1)
    colour = (ocean + 150 * clouds) * light * rng.uniform(0.4, 0.9)
    glow = np.exp(-np.abs(dist) * size / 12)[..., None] * np.array([25, 45, 90], np.float32)
    return colour * cover + glow * (1 - cover), np.maximum(cover, np.exp(-np.abs(dist) * size / 12)[..., None])


def flares(rng: np.random.Generator, size: int) -> np.ndarray:
    """A few faint, soft discs on a line (internal reflections of a bright source)."""
    img = np.zeros((size, size), np.float32)
    start, end = rng.uniform(0, size, 2), rng.uniform(0, size, 2)
    for t in rng.uniform(0, 1, int(rng.integers(2, 5))):
        centre = tuple(int(v) for v in start + t * (end - start))
        cv2.circle(img, centre, int(size * rng.uniform(0.01, 0.05)), float(rng.uniform(3, 10)), -1, cv2.LINE_AA)
    return cv2.GaussianBlur(img, (0, 0), size / 400)[..., None]


def sensor(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """The camera: a lifted black level and noise over the whole frame (craft included), a slight
    colour cast, a little blur. Returns uint8."""
    size = img.shape[0]
    lift = rng.uniform(28, 48)
    cast = 1 + rng.normal(0, 0.02, 3).astype(np.float32)
    sigma = rng.uniform(5, 11)
    blur = rng.uniform(0.3, 0.9) * size / 1024
    if blur > 0.25:
        img = cv2.GaussianBlur(img, (0, 0), blur)
    noise = rng.normal(0, sigma, (size, size, 1)).astype(np.float32)
    noise = noise + rng.normal(0, sigma * 0.35, (size, size, 3)).astype(np.float32)  # a little chroma noise
    return np.clip((img + lift) * cast + noise, 0, 255).astype(np.uint8)
