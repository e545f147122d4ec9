"""Geometric primitives of spacecraft: flat convex parts making boxes, prisms, discs, dishes,
booms and solar wings, in the craft's own frame."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BODY, PANEL = 1, 2


@dataclass
class Part:
    """A flat convex polygon in object coordinates, drawn front side ``material`` (and, when
    ``back`` is set, its back side too: panels, dishes, discs)."""

    verts: np.ndarray  # (k, 3)
    cls: int
    material: str
    back: str | None = None
    grid: tuple[int, int] | None = None  # solar cells along the polygon's first two edges


def frame(axis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors orthogonal to ``axis`` and to each other."""
    axis = axis / np.linalg.norm(axis)
    helper = np.array([1.0, 0, 0]) if abs(axis[0]) < 0.9 else np.array([0, 1.0, 0])
    u = np.cross(axis, helper)
    u /= np.linalg.norm(u)
    return u, np.cross(axis, u)


def box(center, size, material: str, cls: int = BODY) -> list[Part]:
    s = np.asarray(size, float) / 2
    corners = np.array([[i, j, k] for i in (-1, 1) for j in (-1, 1) for k in (-1, 1)]) * s + center
    faces = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    return [Part(corners[list(f)], cls, material) for f in faces]


def prism(p0, p1, radius: float, sides: int, material: str, cap: str | None = None) -> list[Part]:
    """A closed n-sided prism (a cylinder when n is large) from point p0 to p1."""
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    u, v = frame(p1 - p0)
    a = np.linspace(0, 2 * np.pi, sides, endpoint=False)
    ring = radius * (np.cos(a)[:, None] * u + np.sin(a)[:, None] * v)
    lo, hi = ring + p0, ring + p1
    parts = [Part(lo[::-1], BODY, cap or material), Part(hi, BODY, cap or material)]
    parts += [Part(np.stack([lo[i], lo[(i + 1) % sides], hi[(i + 1) % sides], hi[i]]), BODY, material)
              for i in range(sides)]
    return parts


def boom(p0, p1, radius: float, material: str = "metal") -> list[Part]:
    """A thin strut or antenna: a 4-sided prism (at a few pixels wide, its shape does not show)."""
    return prism(p0, p1, radius, 4, material)[2:]


def disc(center, normal, radius: float, sides: int, material: str, cls: int = BODY, back: str | None = "white",
         grid: tuple[int, int] | None = None) -> list[Part]:
    u, v = frame(np.asarray(normal, float))
    a = np.linspace(0, 2 * np.pi, sides, endpoint=False)
    ring = radius * (np.cos(a)[:, None] * u + np.sin(a)[:, None] * v) + center
    return [Part(ring, cls, material, back, grid)]


def dish(center, axis, radius: float, depth: float, material: str = "white", sides: int = 14) -> list[Part]:
    """A parabolic antenna as a fan of facets (its inside shades like a bowl) on a short feed."""
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    u, v = frame(axis)
    a = np.linspace(0, 2 * np.pi, sides + 1)
    rim = radius * (np.cos(a)[:, None] * u + np.sin(a)[:, None] * v) + center + depth * axis
    apex = np.asarray(center, float)
    parts = [Part(np.stack([apex, rim[i], rim[i + 1]]), BODY, material, "metal") for i in range(sides)]
    return parts + boom(apex + 0.15 * depth * axis, apex + (depth + radius * 0.6) * axis, radius * 0.04)


def wing(root, direction, normal, length: float, width: float, segments: int, material: str,
         cells: tuple[int, int], gap: float = 0.05) -> list[Part]:
    """A solar-panel wing: a yoke strut from ``root`` then ``segments`` panels along ``direction``."""
    d = np.asarray(direction, float) / np.linalg.norm(direction)
    n = np.asarray(normal, float) - np.dot(normal, d) * d
    across = np.cross(n / np.linalg.norm(n), d) * width / 2
    yoke = 0.25 * length / segments
    start = np.asarray(root, float) + yoke * d
    parts = boom(root, start, 0.03 * width)
    seg = (length - gap * (segments - 1)) / segments
    for i in range(segments):
        a, b = start + i * (seg + gap) * d, start + (i * (seg + gap) + seg) * d
        quad = np.stack([a - across, b - across, b + across, a + across])
        parts.append(Part(quad, PANEL, material, "panel_back", cells))
    return parts
