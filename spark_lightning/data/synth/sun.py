"""The sun in or near the frame, as a camera sees it: a white core with a wide halo, a star of
diffraction spikes, a horizontal bloom streak, and lens-flare discs and rings strung along the
line from the sun through the frame's centre. Also bloom streaks through the brightest parts
of the craft. All of it is light added over the picture: masks are not touched.
"""

from __future__ import annotations

import cv2
import numpy as np

TINT = np.array([0.92, 0.97, 1.0], np.float32)


def position(rng: np.random.Generator, size: int) -> np.ndarray:
    """Where the sun is: inside the frame, or up to a third of a frame beyond its border."""
    return rng.uniform(-0.3, 1.3, 2) * size if rng.random() < 0.5 else rng.uniform(0.05, 0.95, 2) * size


def glare(rng: np.random.Generator, size: int, centre: np.ndarray) -> np.ndarray:
    """Radiance (H, W, 3) of the sun at pixel ``centre`` (x, y), which may lie outside the frame."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    dx, dy = xx - float(centre[0]), yy - float(centre[1])
    r = np.sqrt(dx * dx + dy * dy) + 1e-3
    core_r = size * rng.uniform(0.006, 0.02)
    light = 400 * np.clip(1.5 - r / core_r, 0, 1)
    light += rng.uniform(60, 160) * np.exp(-r / (size * rng.uniform(0.02, 0.06)))
    light += rng.uniform(10, 45) * np.exp(-0.5 * (r / (size * rng.uniform(0.15, 0.4))) ** 2)
    # Diffraction spikes: n rays, each fading along its length and widening a little.
    n = int(rng.choice([4, 6, 8, 12, 16]))
    step = 2 * np.pi / n
    delta = np.mod(np.arctan2(dy, dx) - rng.uniform(0, step), step)
    perp = r * np.sin(np.minimum(delta, step - delta))
    length = size * rng.uniform(0.03, 0.12)
    light += rng.uniform(50, 160) * np.exp(-((perp / (0.8 + 0.015 * r)) ** 2)) * np.exp(-r / length)
    if rng.random() < 0.7:  # the sensor's horizontal bloom streak
        height = size * rng.uniform(0.001, 0.004)
        light += rng.uniform(40, 160) * np.exp(-((dy / height) ** 2)) * np.exp(-np.abs(dx) / (size * rng.uniform(0.15, 0.7)))
    out = light[..., None] * TINT
    return out + flares(rng, size, centre)


def flares(rng: np.random.Generator, size: int, sun: np.ndarray) -> np.ndarray:
    """Soft discs and a ring or two on the line from the sun through the frame's centre."""
    img = np.zeros((size, size, 3), np.float32)
    middle = np.array([size / 2, size / 2])
    for t in rng.uniform(-1.3, 0.7, int(rng.integers(2, 7))):
        x, y = middle + t * (sun - middle)
        radius = int(size * rng.uniform(0.01, 0.14))
        colour = tuple(float(c) for c in rng.uniform(3, 22) * rng.uniform(0.7, 1.2, 3))
        thickness = -1 if rng.random() < 0.75 else max(1, radius // 8)
        cv2.circle(img, (int(x), int(y)), radius, colour, thickness, cv2.LINE_AA)
    return cv2.GaussianBlur(img, (0, 0), size / 300)


def bloom(rng: np.random.Generator, image: np.ndarray, threshold: float = 200) -> np.ndarray:
    """Light bleeding from the brightest pixels: a soft glow and a horizontal streak."""
    size = image.shape[0]
    hot = np.clip(image.max(-1) - threshold, 0, None)
    if not hot.any():
        return image
    small = cv2.resize(hot, (size // 4, size // 4), interpolation=cv2.INTER_AREA)  # wide blurs at 1/4 scale
    glow = cv2.GaussianBlur(small, (0, 0), size / 1000) * rng.uniform(0.3, 0.8)
    glow = cv2.resize(glow, (size, size), interpolation=cv2.INTER_LINEAR)
    streak = cv2.GaussianBlur(hot, (0, 0), sigmaX=size * rng.uniform(0.02, 0.08) / 4, sigmaY=size / 1500) * rng.uniform(0.5, 2.0)
    return image + (glow + streak)[..., None] * TINT
