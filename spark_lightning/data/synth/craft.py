"""Spacecraft geometry: flat convex parts (boxes, prisms, dishes, booms, solar wings) in the
craft's own frame, and one recipe per SPARK 2024 spacecraft type.

The recipes are not replicas; each gives a type its silhouette family (a long tube, an occulter
disc, gold boxes with long wings, body-mounted panels...) with per-instance jitter. Booms and
antennas are long and thin on purpose: the real boxes are large and sparsely filled.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from spark_lightning.data.synth.shapes import PANEL, Part, box, boom, disc, dish, frame, prism, wing


def _panel_material(rng: np.random.Generator) -> str:
    return str(rng.choice(["cells_dark", "cells_blue", "cells_grey"], p=[0.45, 0.35, 0.2]))


def _instruments(rng: np.random.Generator, half: np.ndarray, count: int) -> list[Part]:
    """Small boxes and cylinders on the faces of a body of half-size ``half``."""
    parts = []
    for _ in range(count):
        axis = int(rng.integers(3))
        sign = rng.choice([-1, 1])
        pos = rng.uniform(-0.7, 0.7, 3) * half
        size = rng.uniform(0.1, 0.35, 3) * half.max()
        pos[axis] = sign * (half[axis] + size[axis] / 2)
        material = str(rng.choice(["dark", "metal", "silver_foil", "white", "black"]))
        if rng.random() < 0.5:
            parts += box(pos, size, material)
        else:
            end = pos.copy()
            end[axis] += sign * size[axis]
            parts += prism(pos, end, size.min() / 2, 8, material)
    return parts


def _antennas(rng: np.random.Generator, half: np.ndarray, count: int, reach: float) -> list[Part]:
    parts = []
    for _ in range(count):
        d = rng.normal(size=3)
        d /= np.linalg.norm(d)
        start = d * half
        parts += boom(start, start + d * reach * rng.uniform(0.4, 1.0), 0.012 * reach)
    return parts


def sun_facing(rng: np.random.Generator, axis: np.ndarray, sun: np.ndarray | None) -> np.ndarray:
    """A wing normal turned about ``axis`` towards the sun, give or take 30 degrees, as solar
    arrays are steered; any angle when the sun is unknown."""
    axis = np.asarray(axis, float)
    if sun is None or np.linalg.norm(flat := sun - (sun @ axis) * axis) < 1e-6:
        u, v = frame(axis)
        t = rng.uniform(0, np.pi)
        return np.cos(t) * u + np.sin(t) * v
    u = flat / np.linalg.norm(flat)
    v = np.cross(axis, u)
    t = rng.normal(0, np.radians(30))
    return np.cos(t) * u + np.sin(t) * v


def _box_craft(rng, sun, size, foil: str, wings: int, wing_len: float, wing_w: float, segments: int,
               extra: Callable | None = None) -> list[Part]:
    """A box bus with instruments, ``wings`` solar wings along +-x and a few antennas."""
    size = np.asarray(size) * rng.uniform(0.65, 0.95, 3)
    half = size / 2
    parts = box((0, 0, 0), size, foil) + _instruments(rng, half, int(rng.integers(2, 9)))  # real buses are busy
    normal = sun_facing(rng, np.array([1.0, 0.0, 0.0]), sun)
    cells = (int(rng.integers(6, 20)), int(rng.integers(4, 12)))
    material = _panel_material(rng)
    for side in (1, -1)[:wings]:
        parts += wing((side * half[0], 0, 0), (side, 0, 0), normal, wing_len * rng.uniform(0.8, 1.2),
                      wing_w * rng.uniform(0.3, 0.5), segments, material, cells)
    parts += _antennas(rng, half, int(rng.integers(0, 4)), 1.5 * size.max())
    return parts + (extra(rng, half) if extra else [])


def _venus_express(rng, sun):
    return _box_craft(rng, sun, (1.5, 1.3, 1.3), "gold_foil", 2, 3.4, 1.2, 1,
                      lambda r, h: dish((0, 0, h[2]), (0, 0, 1), 0.7, 0.25) + dish((h[0] * 0.5, h[1], 0), (0, 1, 0.3), 0.3, 0.1))


def _cheops(rng, sun):
    """A hexagonal sun shield whose walls are covered in cells (mostly panel), a white top
    with the telescope's dark baffle."""
    r, length = 0.55 * rng.uniform(0.9, 1.1), 0.7 * rng.uniform(0.85, 1.15)
    shield = prism((0, 0, -length / 2), (0, 0, length / 2), r, 6, _panel_material(rng), "white")
    for wall in shield[2:]:  # the caps stay body
        wall.cls, wall.back, wall.grid = PANEL, "panel_back", (int(rng.integers(6, 12)), int(rng.integers(4, 8)))
    parts = shield + prism((0.15, 0, length / 2), (0.15, 0, length / 2 + 0.45), 0.2, 12, "dark", "dark")
    parts += box((0, 0, -length / 2 - 0.12), (0.6, 0.6, 0.24), "silver_foil")
    return parts + _antennas(rng, np.array([r, r, length / 2]), int(rng.integers(0, 3)), 1.5)


def _lisa_pathfinder(rng, sun):
    r, h = 0.75 * rng.uniform(0.9, 1.1), 0.35 * rng.uniform(0.9, 1.2)
    parts = prism((0, 0, -h / 2), (0, 0, h / 2), r, 8, str(rng.choice(["orange_foil", "gold_foil"])))
    parts += disc((0, 0, -h / 2 - 0.02), (0, 0, -1), r * 0.98, 8, _panel_material(rng), PANEL, "panel_back", (8, 8))
    parts += prism((0, 0, h / 2), (0, 0, h / 2 + 0.5), r * 0.6, 8, "gold_foil", "silver_foil")
    return parts + _instruments(rng, np.array([r * 0.6, r * 0.6, h]), 3) + _antennas(rng, np.array([r, r, h]), int(rng.integers(0, 3)), 1.5)


def _observation_sat(rng, sun):
    def boom_with_sensors(r, h):
        end = np.array([0.0, 0.0, -h[2]]) + rng.normal(size=3) * 0.3 + np.array([0, 0, -1]) * rng.uniform(3, 5)
        parts = boom((0, 0, -h[2]), end, 0.03)
        for t in rng.uniform(0.3, 1.0, 2):
            parts += box(np.array([0, 0, -h[2]]) * (1 - t) + end * t, (0.15, 0.15, 0.1), "metal")
        return parts
    return _box_craft(rng, sun, (1.0, 1.0, 1.6), str(rng.choice(["white", "silver_foil"])), 1, 4.5, 1.0, 3,
                      boom_with_sensors)


def _proba2(rng, sun):
    def body_panels(r, h):  # cells on one face of the bus
        corners = [(-1, -1), (1, -1), (1, 1), (-1, 1)]
        quad = np.array([[h[0] + 0.01, sy * h[1] * 0.85, sz * h[2] * 0.85] for sy, sz in corners])
        return [Part(quad, PANEL, _panel_material(rng), None, (5, 5))]
    return _box_craft(rng, sun, (0.8, 0.8, 0.8), str(rng.choice(["dark", "silver_foil"])), 2, 1.7, 0.8, 1, body_panels)


def _proba3(rng, sun):
    return _box_craft(rng, sun, (1.0, 0.8, 0.8), str(rng.choice(["black", "silver_foil"])), int(rng.integers(1, 3)), 2.6,
                      0.75, 2, lambda r, h: dish((0, 0, h[2]), (0, 0, 1), 0.55 * h[0] * 2, 0.08, "metal"))


def _proba3_ocs(rng, sun):
    r = 0.65 * rng.uniform(0.9, 1.1)
    parts = prism((0, 0, -0.04), (0, 0, 0.04), r, 24, "white", "white")
    parts += box((0, 0, 0.35), (0.5, 0.5, 0.55), "silver_foil") + _instruments(rng, np.array([0.4, 0.4, 0.8]), 3)
    return parts + _antennas(rng, np.array([0.3, 0.3, 0.6]), int(rng.integers(1, 4)), 2.0)


def _smart1(rng, sun):
    return _box_craft(rng, sun, (0.9, 0.9, 0.9), "gold_foil", 2, 4.2, 0.7, 3)


def _soho(rng, sun):
    return _box_craft(rng, sun, (1.0, 1.0, 1.5), str(rng.choice(["gold_foil", "white"])), 2, 3.4, 0.8, 2,
                      lambda r, h: box((0, 0, h[2] + 0.25), (0.7, 0.7, 0.5), "white") + dish((h[0], 0, 0), (1, 0, 0), 0.35, 0.12))


def _xmm_newton(rng, sun):
    length, r = 5.5 * rng.uniform(0.9, 1.1), 0.25 * rng.uniform(0.9, 1.1)
    parts = prism((0, 0, 0), (0, 0, length), r, 12, str(rng.choice(["silver_foil", "dark", "black"])), "dark")
    parts += box((0, 0, -0.35), (0.9, 0.9, 0.7), "silver_foil") + box((0, 0, length + 0.15), (0.7, 0.7, 0.3), "white")
    normal = sun_facing(rng, np.array([1.0, 0.0, 0.0]), sun)
    material = _panel_material(rng)
    for side in (1, -1):
        parts += wing((side * 0.45, 0, -0.35), (side, 0, 0), normal, 2.4, 0.5, 1, material, (6, 3))
    return parts


RECIPES: dict[str, Callable[[np.random.Generator, np.ndarray | None], list[Part]]] = {
    "VenusExpress": _venus_express, "Cheops": _cheops, "LisaPathfinder": _lisa_pathfinder,
    "ObservationSat1": _observation_sat, "Proba2": _proba2, "Proba3": _proba3, "Proba3ocs": _proba3_ocs,
    "Smart1": _smart1, "Soho": _soho, "XMM Newton": _xmm_newton,
}
HAS_PANELS = {name: name != "Proba3ocs" for name in RECIPES}


def build_craft(name: str, rng: np.random.Generator, sun: np.ndarray | None = None) -> list[Part]:
    """All parts of one instance of spacecraft type ``name``, centred on its bounding box;
    solar wings are steered towards ``sun`` (a unit vector in the craft's frame) when given."""
    parts = RECIPES[name](rng, sun)
    points = np.concatenate([p.verts for p in parts])
    middle = (points.min(0) + points.max(0)) / 2
    for p in parts:
        p.verts = p.verts - middle
    return parts
