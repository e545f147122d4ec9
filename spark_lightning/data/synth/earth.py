"""The Earth behind the craft, as SPARK 2024 shows it: a limb curving across the frame (day-side
land, ocean and clouds under a thin bright-blue atmosphere) or terrain filling the whole frame
(orange, brown and green land, rivers, coasts, white clouds), at many scales and rotations.

A surface texture (land, ocean, rivers, clouds) is painted in its own coordinates and mapped
into the frame: on a sphere seen from orbit (the texture squeezed towards the limb, lit by the
sun with a soft terminator, hazier near the edge) or on the ground seen obliquely (a
perspective plane). Everything is band-limited noise (``sky.fbm``).
"""

from __future__ import annotations

import cv2
import numpy as np

from spark_lightning.data.synth.sky import fbm, smooth_noise

# Land colours (RGB, 0..1) seen in SPARK 2024 frames: desert orange, red-brown, dry grass, forest, sand.
LAND = np.array([[0.74, 0.42, 0.20], [0.52, 0.30, 0.16], [0.55, 0.48, 0.30], [0.20, 0.27, 0.12],
                 [0.80, 0.68, 0.48]], np.float32)
OCEAN_DEEP, OCEAN_SHALLOW = np.array([0.02, 0.07, 0.17], np.float32), np.array([0.06, 0.20, 0.30], np.float32)
CLOUD = np.array([0.93, 0.95, 0.98], np.float32)
HAZE = np.array([0.45, 0.65, 1.00], np.float32)
GLOW = np.array([0.30, 0.52, 1.00], np.float32)


def _smoothstep(lo: float, hi: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - lo) / (hi - lo), 0, 1)
    return t * t * (3 - 2 * t)


def hillshade(rng: np.random.Generator, size: int) -> np.ndarray:
    """Relief as real terrain shows it from orbit (H x W, about 0..1.3): a ridged multifractal
    height field (valleys that branch at every scale down to about two pixels, as erosion
    leaves them) lit by a low sun. Smooth noise alone reads as blobs; this fine, sharp relief is
    what pretrained features see in real frames."""
    height, weight, amp = np.zeros((size, size), np.float32), np.ones((size, size), np.float32), 1.0
    cells = rng.uniform(4, 10)
    for k in range(8):
        n = int(cells * 2**k)
        if n > size // 2:
            break
        ridge = 1 - np.abs(smooth_noise(rng, size, n))
        ridge = ridge * ridge * weight
        weight = np.clip(ridge * 2.0, 0.2, 1)  # detail follows the ridges, valleys stay smoother
        height += amp * ridge
        amp *= rng.uniform(0.45, 0.6)
    gy, gx = np.gradient(height * (size * rng.uniform(0.03, 0.06)))
    azimuth, elevation = rng.uniform(0, 2 * np.pi), rng.uniform(0.35, 0.9)
    lx, ly = float(np.cos(azimuth) * np.cos(elevation)), float(np.sin(azimuth) * np.cos(elevation))
    shade = (np.sin(elevation) - gx * lx - gy * ly) / np.sqrt(1 + gx * gx + gy * gy)
    return np.clip(0.35 + 0.9 * shade, 0.1, 1.3).astype(np.float32)


def surface(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(albedo H x W x 3 in 0..1, cloud cover H x W in 0..1) of a patch of Earth."""
    height = fbm(rng, size, rng.uniform(2, 6), 7, 0.55)
    sea = np.quantile(height[::4, ::4], rng.choice([0.0, rng.uniform(0.1, 0.75)], p=[0.35, 0.65]))
    moisture = fbm(rng, size, rng.uniform(2, 5), 4)
    # Mix two or three land colours by moisture and height, with relief detail on top.
    picks = LAND[rng.choice(len(LAND), 3, replace=False)] * rng.uniform(0.85, 1.15, (3, 1)).astype(np.float32)
    a = _smoothstep(-0.6, 0.6, moisture)[..., None]
    b = _smoothstep(0.3, 1.5, height - sea)[..., None]
    land = picks[0] * (1 - a) + picks[1] * a
    land = land * (1 - 0.6 * b) + picks[2] * 0.6 * b
    relief = fbm(rng, size, rng.uniform(12, 40), 5, 0.65)
    ridges = 1 - np.abs(fbm(rng, size, rng.uniform(20, 60), 3))
    land *= (0.75 + 0.3 * relief + 0.25 * ridges * ridges)[..., None]
    shaded = rng.uniform(0.5, 1.0)  # how much of the light comes from the relief's shading
    land *= (1 - shaded + shaded * hillshade(rng, size))[..., None]
    rivers = (np.abs(fbm(rng, size, rng.uniform(3, 8), 4)) < rng.uniform(0.006, 0.02)) & (height > sea + 0.05)
    land[rivers] = land[rivers] * 0.35 + OCEAN_SHALLOW * 0.5
    depth = _smoothstep(0.0, 0.6, sea - height)[..., None]
    ocean = OCEAN_SHALLOW * (1 - depth) + OCEAN_DEEP * depth
    coast = _smoothstep(-0.02, 0.02, height - sea)[..., None]
    albedo = ocean * (1 - coast) + land * coast
    # Clouds: a fractal field, thresholded to the chosen cover; sometimes stretched into streaks.
    field = fbm(rng, size, rng.uniform(3, 10), 6, 0.6)
    if rng.random() < 0.4:
        k = rng.uniform(1.5, 4)
        field = cv2.resize(cv2.resize(field, (size, int(size / k))), (size, size))
    cover = rng.choice([rng.uniform(0.0, 0.15), rng.uniform(0.15, 0.6)], p=[0.35, 0.65])
    level = np.quantile(field[::4, ::4], 1 - cover) if cover > 0 else field.max() + 1
    clouds = _smoothstep(level, level + rng.uniform(0.3, 1.0), field) * rng.uniform(0.75, 1.0)
    puffs = np.clip(0.75 + 0.35 * fbm(rng, size, rng.uniform(30, 80), 3), 0.3, 1.1)  # texture inside the clouds
    return albedo.astype(np.float32), (clouds * puffs).astype(np.float32)


def texture_side(size: int) -> int:
    """The side of the surface texture painted for a view of ``size`` px."""
    return max(32, size)


def _paint(albedo: np.ndarray, clouds: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The surface sampled at texture coordinates (u, v) in pixels: land and ocean under clouds."""
    colour = cv2.remap(albedo, u, v, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    cover = cv2.remap(clouds, u, v, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)[..., None]
    return colour * (1 - np.clip(cover, 0, 1)) + CLOUD * cover


def _to_texture(u: np.ndarray, v: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Scale surface coordinates into an n x n texture's pixels (keeping their aspect)."""
    lo = np.array([u.min(), v.min()])
    span = max(u.max() - lo[0], v.max() - lo[1], 1e-6)
    return ((u - lo[0]) / span * (n - 1)).astype(np.float32), ((v - lo[1]) / span * (n - 1)).astype(np.float32)


def limb(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(radiance H x W x 3 in 0..255, coverage H x W x 1) of the Earth as a sphere seen from
    orbit: its limb crosses the frame, its centre outside it."""
    radius = size * rng.uniform(0.9, 5.0)
    angle = rng.uniform(0, 2 * np.pi)
    inside = rng.uniform(-0.45, 0.5) * size  # where the limb passes, measured from the frame centre
    cx, cy = (float(size / 2 + v * (radius - inside)) for v in (np.cos(angle), np.sin(angle)))  # floats: float32 maths
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    dx, dy = xx - cx, yy - cy
    dist = np.sqrt(dx * dx + dy * dy)
    rho = np.clip(dist / radius, 0, 0.99999)
    mu = np.sqrt(1 - rho * rho)  # cos of the angle between the view and the surface normal
    arc = radius * np.arcsin(rho)  # distance along the surface from the point below the camera
    scale = arc / np.maximum(dist, 1e-6)
    u, v = _to_texture(cx + dx * scale, cy + dy * scale, texture_side(size))
    albedo, clouds = surface(rng, texture_side(size))
    colour = _paint(albedo, clouds, u, v)
    # Sunlight: mostly from the camera's side (SPARK shows the day side), with a soft terminator.
    sun = np.array([*rng.normal(0, 0.55, 2), -1.0])
    sun = [float(v) for v in sun / np.linalg.norm(sun)]  # floats: the pixel maths stays float32
    light = np.clip((dx / radius) * sun[0] + (dy / radius) * sun[1] - mu * sun[2], 0, 1)
    light = _smoothstep(-0.05, 0.35, light) * 0.85 + 0.15 * light
    haze = np.exp(-mu / rng.uniform(0.08, 0.3))[..., None] * rng.uniform(0.6, 1.0)
    colour = colour * (1 - haze) + HAZE * haze
    exposure = rng.uniform(170, 255)
    cover = np.clip(radius - dist + 0.5, 0, 1)[..., None]
    earth = colour * (light[..., None] * 0.95 + 0.03) * exposure * cover
    # The atmosphere's glow just outside the limb, brightest where the limb is lit.
    width = size * rng.uniform(0.005, 0.03)
    edge_light = np.clip((dx * sun[0] + dy * sun[1]) / np.maximum(dist, 1e-6) + 0.6, 0, 1)
    glow = np.exp(-np.clip(dist - radius, 0, None) / width) * (1 - cover[..., 0]) * edge_light
    glow_rgb = GLOW * glow[..., None] * exposure * rng.uniform(0.7, 1.5)
    return earth + glow_rgb, np.maximum(cover, np.clip(glow, 0, 1)[..., None] * 0.9)


def ground(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(radiance H x W x 3, coverage 1) of terrain filling the frame, seen obliquely (a plane in
    perspective: features shrink towards one side) and lit evenly, under a little haze."""
    tilt, turn = rng.uniform(0, 0.6), rng.uniform(0, 2 * np.pi)
    yy, xx = (np.mgrid[0:size, 0:size].astype(np.float32) / size) - 0.5
    a, b = xx * np.cos(turn) - yy * np.sin(turn), xx * np.sin(turn) + yy * np.cos(turn)
    depth = 1 + tilt * b  # farther (smaller features) along +b
    u, v = _to_texture(a / depth, b / depth, texture_side(size))
    albedo, clouds = surface(rng, texture_side(size))
    colour = _paint(albedo, clouds, u, v)
    haze = (rng.uniform(0.03, 0.25) + 0.3 * tilt * (b[..., None] + 0.5)).clip(0, 0.6)
    colour = colour * (1 - haze) + HAZE * haze
    exposure = rng.uniform(150, 250)
    return colour * exposure, np.ones((size, size, 1), np.float32)


def earth(rng: np.random.Generator, size: int, view: str) -> tuple[np.ndarray, np.ndarray]:
    """The Earth as ``view`` = "limb" or "ground": (radiance, coverage). Large frames are painted
    at half the side and enlarged (a quarter of the work; the limb's edge stays a smooth 2 px),
    which keeps generation above 5 images/s of 1024 px on 2 cores."""
    paint = limb if view == "limb" else ground
    if size < 256:
        return paint(rng, size)
    colour, cover = paint(rng, size // 2)
    colour = cv2.resize(colour, (size, size), interpolation=cv2.INTER_LINEAR)
    cover = cv2.resize(cover[..., 0], (size, size), interpolation=cv2.INTER_LINEAR)[..., None]
    return colour, cover
