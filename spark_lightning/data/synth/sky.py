"""Space behind the craft and the camera: a star field, the Milky Way, and the sensor's lifted,
noisy black level (which lies over the craft too). The Earth is in ``earth.py``, the sun's glare
in ``sun.py``.

Measured on real SPARK 2024 frames: dark frames sit on a lifted grey of about 34 +- 4 with
faint stars, often crossed by the Milky Way band.
"""

from __future__ import annotations

import cv2
import numpy as np


def smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Band-limited noise (about ``cells`` blobs across), zero mean, unit-ish amplitude."""
    small = rng.normal(size=(cells, cells)).astype(np.float32)
    return cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)


def fbm(rng: np.random.Generator, size: int, cells: float, octaves: int, gain: float = 0.5) -> np.ndarray:
    """Fractal noise (size x size): ``octaves`` layers of smooth noise, each twice as fine and
    ``gain`` times as strong as the last; about unit amplitude."""
    total, amp, norm = np.zeros((size, size), np.float32), 1.0, 0.0
    for k in range(octaves):
        n = max(2, int(cells * 2**k))
        if k and n >= size:  # finer than a pixel: done (a small image keeps at least one layer)
            break
        total += amp * smooth_noise(rng, size, min(n, size))
        norm += amp * amp
        amp *= gain
    return total / np.sqrt(norm)


def stars(rng: np.random.Generator, size: int) -> np.ndarray:
    """Star field (H, W, 3) on black: many faint 1 px stars, fewer bright ones with a halo."""
    img = np.zeros((size, size, 3), np.float32)
    density = rng.uniform(0.6, 2.5) * 1e-3  # per pixel
    n = int(rng.poisson(density * size * size))
    ys, xs = rng.integers(0, size, n), rng.integers(0, size, n)
    brightness = 20 + 230 * rng.power(0.3, n).astype(np.float32) * rng.uniform(0.4, 1.0)
    tint = 1 + rng.normal(0, 0.12, (n, 3)).astype(np.float32)  # reddish and bluish stars
    img[ys, xs] = brightness[:, None] * tint
    halo = brightness > 200
    if halo.any():
        glow = np.zeros_like(img)
        glow[ys[halo], xs[halo]] = img[ys[halo], xs[halo]]
        img += cv2.GaussianBlur(glow, (0, 0), max(0.8, size / 1024)) * 2.0
    return cv2.GaussianBlur(img, (0, 0), 0.35 * max(1.0, size / 1024))


def milky_way(rng: np.random.Generator, size: int) -> np.ndarray:
    """The Milky Way (H, W, 3): a broad band of faint, clumpy light with dark dust lanes and a
    crowd of faint stars, crossing the frame at any angle; bluish white with warm patches."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5
    angle, offset = rng.uniform(0, np.pi), rng.uniform(-0.5, 0.5)
    across = xx * np.sin(angle) - yy * np.cos(angle) - offset
    profile = np.exp(-0.5 * (across / rng.uniform(0.08, 0.3)) ** 2)
    clumps = np.clip(0.55 + 0.45 * fbm(rng, size, rng.uniform(4, 10), 5, 0.6), 0, None)
    dust = np.clip(fbm(rng, size, rng.uniform(3, 8), 4) - 0.2, 0, None)
    light = profile * clumps * np.clip(1 - 1.4 * dust, 0.1, 1) * rng.uniform(10, 40)
    warm = np.clip(0.5 + 0.5 * smooth_noise(rng, size, 6), 0, 1)[..., None]
    tint = np.array([0.75, 0.85, 1.1], np.float32) * (1 - warm) + np.array([1.1, 0.9, 0.85], np.float32) * warm
    crowd = np.zeros((size, size), np.float32)
    n = int(rng.poisson(rng.uniform(4, 12) * 1e-3 * size * size))
    ys, xs = rng.integers(0, size, n), rng.integers(0, size, n)
    keep = rng.random(n) < profile[ys, xs]
    crowd[ys[keep], xs[keep]] = rng.uniform(8, 45, int(keep.sum()))
    crowd = cv2.GaussianBlur(crowd, (0, 0), 0.4 * max(1.0, size / 1024))
    return (light[..., None] + crowd[..., None]) * tint


def sensor(rng: np.random.Generator, img: np.ndarray, lift: tuple[float, float] = (26, 38),
           noise: tuple[float, float] = (1.2, 5.0)) -> np.ndarray:
    """The camera: a lifted black level and noise over the whole frame (craft included), a slight
    colour cast, a little blur. Returns uint8. SPARK 2024's dark frames sit at about 34 +- 4."""
    size = img.shape[0]
    lift = rng.uniform(*lift)
    cast = 1 + rng.normal(0, 0.02, 3).astype(np.float32)
    sigma = rng.uniform(*noise)
    blur = rng.uniform(0.3, 1.2) * size / 1024
    if blur > 0.25:
        img = cv2.GaussianBlur(img, (0, 0), blur)
    noise = rng.standard_normal((size, size, 1), dtype=np.float32) * sigma
    half = max(1, size // 2)  # a little chroma noise, coarser than the grain (and a quarter of the draws)
    chroma = rng.standard_normal((half, half, 3), dtype=np.float32) * (sigma * 0.35)
    noise = noise + cv2.resize(chroma, (size, size), interpolation=cv2.INTER_NEAREST)
    out = (img + lift) * cast + noise
    return np.clip(out, 0, 255, out=out).astype(np.uint8)
