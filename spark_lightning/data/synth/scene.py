"""Synthetic SPARK-like scenes, written in the exact SPARK 2024 Stream 1 layout.

Each spacecraft is a few 3-D parts (a box or faceted cylinder body, dishes, booms and
antennas, flat solar-panel wings with a cell grid) under a random rotation, scale and sun
direction, projected orthographically and painted back to front. A per-pixel face-id buffer
drives both the picture and the mask, so the mask is pixel-exact to what was drawn; only
then are camera blur, sensor noise and JPEG compression applied, as on the real data.

Every image draws from its own ``np.random.default_rng([seed, index])``, so a data set is
the same whatever the number of worker processes.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from spark_lightning.data.spark import SPACECRAFT

RENDER_VERSION = 1  # part of the cached set's folder name: bump when the pictures change

# Materials: base RGB colour, texture strength, specular sparkle.
MATERIALS = {
    "gold": ((200, 150, 60), 0.45, 0.6),
    "silver": ((185, 185, 190), 0.35, 0.7),
    "white": ((210, 210, 205), 0.12, 0.2),
    "dark": ((60, 60, 65), 0.15, 0.1),
    "cells_blue": ((35, 45, 105), 0.08, 0.3),
    "cells_green": ((70, 85, 72), 0.08, 0.3),
    "panel_back": ((150, 150, 150), 0.1, 0.1),
}


@dataclass(frozen=True)
class CraftType:
    """Shape parameters of one spacecraft type (lengths relative to the body)."""

    body: str  # "box" or "cyl"
    dims: tuple[float, float, float]  # box: x, y, z; cyl: radius, length, sides
    material: str
    wings: int  # 0, 1 or 2 solar-panel wings along +-x
    wing: tuple[float, float] = (1.2, 0.8)  # length, width of a wing
    segments: int = 1
    dish: bool = False
    antennas: int = 1


CRAFT_TYPES = {
    "VenusExpress": CraftType("box", (1.0, 1.0, 0.9), "gold", 2, (1.5, 0.9), 1, dish=True),
    "Cheops": CraftType("cyl", (0.55, 1.0, 6), "silver", 1, (1.0, 1.0), 1, antennas=0),
    "LisaPathfinder": CraftType("cyl", (1.0, 0.45, 8), "gold", 0, antennas=2),
    "ObservationSat1": CraftType("box", (0.8, 0.8, 1.3), "white", 2, (2.2, 0.7), 3),
    "Proba2": CraftType("box", (0.7, 0.7, 0.7), "dark", 2, (0.9, 0.7), 1, antennas=2),
    "Proba3": CraftType("box", (1.0, 0.8, 0.8), "silver", 1, (1.2, 0.8), 2),
    "Proba3ocs": CraftType("cyl", (1.0, 0.3, 12), "silver", 0, antennas=1),
    "Smart1": CraftType("box", (0.9, 0.9, 0.9), "gold", 2, (2.4, 0.7), 3),
    "Soho": CraftType("box", (1.0, 1.0, 1.4), "gold", 2, (1.3, 0.8), 1, dish=True),
    "XMM Newton": CraftType("cyl", (0.45, 3.0, 12), "silver", 2, (1.2, 0.6), 1),
}

BODY, PANEL = 1, 2


@dataclass
class Part:
    """A flat convex polygon (or a line when ``width`` > 0) in object coordinates."""

    verts: np.ndarray  # (k, 3)
    cls: int
    material: str
    back_material: str | None = None  # two-sided parts (panels, dishes)
    grid: tuple[int, int] | None = None  # solar cells along the quad's two edges
    width: float = 0.0


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q = rng.normal(size=4)
    w, x, y, z = q / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def _box(dx: float, dy: float, dz: float, material: str) -> list[Part]:
    s = np.array([dx, dy, dz]) / 2
    corners = np.array([[i, j, k] for i in (-1, 1) for j in (-1, 1) for k in (-1, 1)]) * s
    faces = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    return [Part(corners[list(f)], BODY, material) for f in faces]


def _cylinder(radius: float, length: float, sides: int, material: str) -> list[Part]:
    a = np.linspace(0, 2 * np.pi, sides, endpoint=False)
    ring = np.stack([radius * np.cos(a), radius * np.sin(a), np.zeros(sides)], 1)
    lo, hi = ring - [0, 0, length / 2], ring + [0, 0, length / 2]
    parts = [Part(lo[::-1], BODY, material), Part(hi, BODY, material)]
    for i in range(sides):
        j = (i + 1) % sides
        parts.append(Part(np.stack([lo[i], lo[j], hi[j], hi[i]]), BODY, material))
    return parts


def _wing(side: int, body_half: float, ct: CraftType, rng: np.random.Generator) -> list[Part]:
    """A solar-panel wing along +x or -x, turned about its axis (often edge-on)."""
    length, width = ct.wing
    length *= rng.uniform(0.8, 1.2)
    width *= rng.uniform(0.8, 1.2)
    angle = rng.uniform(0, np.pi)
    axis_dir = np.array([0.0, np.cos(angle), np.sin(angle)]) * width / 2
    boom = 0.15 + 0.2 * rng.random()
    gap = 0.04
    seg = (length - gap * (ct.segments - 1)) / ct.segments
    material = "cells_blue" if rng.random() < 0.7 else "cells_green"
    grid = (int(rng.integers(3, 7)), int(rng.integers(3, 9)))
    x0 = body_half + boom
    parts = [Part(np.array([[side * body_half, 0, 0], [side * x0, 0, 0]]), BODY, "silver", width=1.0)]
    for s in range(ct.segments):
        a, b = x0 + s * (seg + gap), x0 + s * (seg + gap) + seg
        p0, p1 = np.array([side * a, 0, 0]), np.array([side * b, 0, 0])
        quad = np.stack([p0 - axis_dir, p1 - axis_dir, p1 + axis_dir, p0 + axis_dir])
        parts.append(Part(quad, PANEL, material, "panel_back", grid=grid))
    return parts


def build_craft(ct: CraftType, rng: np.random.Generator) -> list[Part]:
    """All parts of one spacecraft instance, with per-instance jitter of the proportions."""
    jitter = rng.uniform(0.85, 1.15, size=3)
    if ct.body == "box":
        dims = np.array(ct.dims) * jitter
        parts = _box(*dims, ct.material)
        half_x, half_z = dims[0] / 2, dims[2] / 2
    else:
        radius, length, sides = ct.dims[0] * jitter[0], ct.dims[1] * jitter[1], int(ct.dims[2])
        parts = _cylinder(radius, length, sides, ct.material)
        half_x, half_z = radius, length / 2
    if ct.material in ("gold", "silver") and rng.random() < 0.5:
        # A dark equipment box on one face breaks up the foil.
        off = np.array([0, 0, half_z + 0.1])
        parts += [Part(p.verts * 0.4 + off, BODY, "dark") for p in _box(1, 1, 0.5, "dark")]
    for side in (1, -1)[: ct.wings]:
        parts += _wing(side, half_x, ct, rng)
    if ct.dish:
        n = 16
        a = np.linspace(0, 2 * np.pi, n, endpoint=False)
        r = rng.uniform(0.25, 0.45)
        disc = np.stack([r * np.cos(a), np.zeros(n), r * np.sin(a)], 1) + [0, -0.9, 0]
        parts.append(Part(disc, BODY, "white", "panel_back"))
        parts.append(Part(np.array([[0, -0.4, 0], [0, -0.9, 0]]), BODY, "silver", width=1.0))
    for _ in range(ct.antennas):
        d = rng.normal(size=3)
        d /= np.linalg.norm(d)
        start = d * 0.4
        parts.append(Part(np.stack([start, start + d * rng.uniform(0.6, 1.4)]), BODY, "silver", width=1.0))
    return parts


def _noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    small = rng.normal(size=(cells, cells)).astype(np.float32)
    return cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Dark-grey sensor noise with faint stars; sometimes an Earth limb or a bright sky."""
    level = rng.uniform(15, 55)
    img = np.full((size, size, 3), level, np.float32)
    img += rng.normal(0, rng.uniform(1, 6), size=(size, size, 1)).astype(np.float32)
    n_stars = int(rng.poisson(size * size / 4000))
    ys, xs = rng.integers(0, size, n_stars), rng.integers(0, size, n_stars)
    img[ys, xs] += rng.uniform(20, 200, size=(n_stars, 1)).astype(np.float32)
    kind = rng.random()
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    if kind < 0.2:  # Earth limb: a huge disc entering from one side, with clouds.
        angle = rng.uniform(0, 2 * np.pi)
        radius = rng.uniform(1.5, 4.0)
        cx = 0.5 + np.cos(angle) * (radius + rng.uniform(-0.4, 0.3))
        cy = 0.5 + np.sin(angle) * (radius + rng.uniform(-0.4, 0.3))
        dist = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2) - radius
        earth = np.clip(-dist * 30, 0, 1)[..., None]
        clouds = np.clip(_noise(rng, size, 12) + 0.5 * _noise(rng, size, 40), 0, None)[..., None]
        ocean = np.array([20, 55, 120], np.float32) * rng.uniform(0.6, 1.4)
        surface = ocean + 90 * clouds
        glow = np.exp(-np.abs(dist) * 80)[..., None] * np.array([60, 110, 200], np.float32)
        img = img * (1 - earth) + surface * earth + glow * rng.uniform(0.3, 1.0)
    elif kind < 0.3:  # Bright, smooth background (sunlit haze / lens flare).
        gx, gy = rng.normal(size=2)
        grad = (xx * gx + yy * gy - (gx + gy) / 2)[..., None]
        img += rng.uniform(40, 120) * (0.6 + 0.4 * grad)
    return img


def render_scene(rng: np.random.Generator, size: int, craft: int) -> tuple[np.ndarray, np.ndarray]:
    """Render one image (uint8 RGB, size x size) and its exact class-index mask.

    Like every real SPARK image, each one shows its spacecraft: a pose that leaves no body
    pixel (possible for the tiniest scales) is drawn again.
    """
    for _ in range(20):
        image, mask = _render_once(rng, size, craft)
        if (mask == BODY).any():
            break
    return image, mask


def _render_once(rng: np.random.Generator, size: int, craft: int) -> tuple[np.ndarray, np.ndarray]:
    ct = CRAFT_TYPES[SPACECRAFT[craft]]
    parts = build_craft(ct, rng)
    rot = _random_rotation(rng)
    extent = max(np.linalg.norm(p.verts, axis=1).max() for p in parts)
    # Projected diameter from a few dozen pixels to larger than the frame (cut by the border).
    diameter = max(12.0, size * np.exp(rng.uniform(np.log(0.06), np.log(1.6))))
    scale = diameter / (2 * extent)
    center = rng.uniform(0.2, 0.8, size=2) * size
    light = rng.normal(size=3)
    light[2] -= 0.5  # the sun is more often behind the camera than behind the target
    light /= np.linalg.norm(light)
    sun = rng.uniform(0.5, 1.3)
    ambient = rng.uniform(0.03, 0.15)

    face_id = np.full((size, size), -1, np.int32)
    colours, classes, textures, grids = [], [], [], []
    order = sorted(parts, key=lambda p: -(p.verts @ rot.T)[:, 2].mean())  # far to near
    thickness = max(1, round(size / 400))
    for part in order:
        world = part.verts @ rot.T
        screen = world[:, :2] * scale + center
        pts = np.round(screen * 16).astype(np.int32)  # 4 bits of sub-pixel precision
        fid = len(colours)
        if part.width:
            cv2.line(face_id, tuple(pts[0]), tuple(pts[1]), fid, thickness, cv2.LINE_8, shift=4)
            normal = np.array([0.0, 0.0, -1.0])
            material = part.material
        else:
            normal = np.cross(world[1] - world[0], world[2] - world[0])
            norm = np.linalg.norm(normal)
            if norm < 1e-9:
                continue
            normal /= norm
            if normal[2] > 0:  # facing away from the camera
                if part.back_material is None:
                    continue
                normal, material = -normal, part.back_material
            else:
                material = part.material
            cv2.fillConvexPoly(face_id, pts, fid, cv2.LINE_8, shift=4)
        base, texture, sparkle = MATERIALS[material]
        diffuse = max(0.0, float(-normal @ light))
        spec = sparkle * diffuse**8
        colours.append(np.array(base, np.float32) * (ambient + sun * diffuse) + 255 * spec)
        classes.append(part.cls)
        textures.append(texture)
        grid = None
        if part.grid and material != "panel_back":
            e1, e2 = screen[1] - screen[0], screen[3] - screen[0]
            m = np.array([e1, e2]).T
            if abs(np.linalg.det(m)) > 1e-6:
                grid = (np.linalg.inv(m), screen[0], part.grid)
        grids.append(grid)

    img = _background(rng, size)
    mask = np.zeros((size, size), np.uint8)
    if colours:
        drawn = face_id >= 0
        fid = face_id[drawn]
        colour_lut = np.stack(colours)
        tex = _noise(rng, size, max(4, size // 32)) + 0.5 * _noise(rng, size, max(8, size // 6))
        tex_lut = np.array(textures, np.float32)
        pix = colour_lut[fid] * (1 + tex_lut[fid] * tex[drawn])[:, None]
        # Solar-cell grid lines in each panel's own (u, v) coordinates.
        ys, xs = np.nonzero(drawn)
        for i, grid in enumerate(grids):
            if grid is None:
                continue
            sel = fid == i
            inv, origin, (nu, nv) = grid
            uv = (np.stack([xs[sel], ys[sel]], 1) - origin) @ inv.T
            lines = (np.mod(uv[:, 0] * nu, 1) < 0.06) | (np.mod(uv[:, 1] * nv, 1) < 0.06)
            pix[np.flatnonzero(sel)[lines]] = colour_lut[i] * 1.8 + 15
        img[drawn] = pix
        mask[drawn] = np.array(classes, np.uint8)[fid]

    exposure = rng.uniform(0.45, 1.0)
    img *= exposure
    blur = rng.uniform(0, 1.5) * size / 512
    if blur > 0.3:
        img = cv2.GaussianBlur(img, (0, 0), blur)
    img += rng.normal(0, rng.uniform(1, 4), size=img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8), mask
