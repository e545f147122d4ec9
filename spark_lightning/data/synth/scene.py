"""Render one synthetic SPARK-like image and its exact mask.

A spacecraft (``craft.py``) is placed before a perspective camera, its faces painted back to
front into a face-id buffer, then shaded by a hard sun with cast shadows (a second id buffer
seen from the sun), soft fill light (earthshine when the Earth is in view), foil crinkle and
glints, and solar cells with gaps and gold frames. The same face-id buffer gives the mask, so
the mask is exact. Behind the craft lies the SPARK 2024 world: stars and the Milky Way
(``sky.py``), or the Earth as a limb or as terrain filling the frame (``earth.py``); over it
all, sometimes, the sun's glare and flares, and bloom from bright parts (``sun.py``); then the
sensor's black level and noise (``sky.py``) and JPEG (``writer.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from spark_lightning.data.spark import SPACECRAFT
from spark_lightning.data.synth import sky, world
from spark_lightning.data.synth import sun as sun_glare
from spark_lightning.data.synth.craft import build_craft
from spark_lightning.data.synth.shapes import BODY, Part

RENDER_VERSION = 8  # part of the cached set's folder name: bump when the pictures change

# albedo (RGB, 0..1), texture strength, specular strength, shininess
MATERIALS = {
    "gold_foil": ((0.95, 0.66, 0.26), 0.6, 0.9, 12),
    "orange_foil": ((0.92, 0.45, 0.12), 0.5, 0.8, 12),  # LISA Pathfinder's orange blankets
    "black": ((0.035, 0.035, 0.04), 0.1, 0.5, 40),  # black-painted buses (Proba-3)
    "silver_foil": ((0.78, 0.78, 0.82), 0.55, 0.9, 12),
    "white": ((0.80, 0.80, 0.78), 0.08, 0.15, 8),
    "dark": ((0.09, 0.09, 0.10), 0.15, 0.4, 30),
    "metal": ((0.55, 0.55, 0.58), 0.12, 0.6, 30),
    "cells_dark": ((0.09, 0.10, 0.13), 0.05, 0.7, 60),
    "cells_blue": ((0.07, 0.11, 0.28), 0.05, 0.7, 60),
    "cells_grey": ((0.26, 0.27, 0.29), 0.05, 0.6, 60),
    "panel_back": ((0.50, 0.50, 0.50), 0.12, 0.1, 8),
}
GAP, FRAME = np.array([0.55, 0.56, 0.6], np.float32), np.array([0.85, 0.62, 0.25], np.float32)


@dataclass
class Camera:
    rot: np.ndarray  # object -> camera rotation
    shift: np.ndarray  # object origin in camera space
    focal: float
    size: int

    def to_camera(self, verts: np.ndarray) -> np.ndarray:
        return verts @ self.rot.T + self.shift

    def to_screen(self, cam: np.ndarray) -> np.ndarray:
        return self.focal * cam[:, :2] / cam[:, 2:3] + self.size / 2


def _rotation(rng: np.random.Generator) -> np.ndarray:
    w, x, y, z = (q := rng.normal(size=4)) / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


# Framing (SPARK 2024, 20 real frames): the craft's box covers a median 8 % of the frame
# (10th-90th percentile 3-20 %) and touches the border in about 3 of 10 frames.
RADIUS_MEDIAN, RADIUS_SPREAD = 0.28, 0.32  # bounding-sphere radius / frame side: log-normal


def _camera(rng: np.random.Generator, parts: list[Part], size: int, rot: np.ndarray) -> Camera:
    """Random pose and framing: the craft's bounding sphere spans a log-normal share of the
    frame, its centre anywhere, so a large craft is sometimes cut by the border."""
    extent = max(np.linalg.norm(p.verts, axis=1).max() for p in parts)
    focal = size / (2 * np.tan(np.radians(rng.uniform(25, 45)) / 2))
    radius_px = size * float(np.exp(rng.normal(np.log(RADIUS_MEDIAN), RADIUS_SPREAD)))
    distance = max(focal * extent / radius_px, 1.6 * extent)
    centre = (rng.uniform(0.15, 0.85, 2) - 0.5) * size
    return Camera(rot, np.array([*(centre * distance / focal), distance]), focal, size)


@dataclass
class Face:
    cls: int
    material: str
    normal: np.ndarray  # camera space, towards the camera
    offset: float  # plane: normal . p = offset
    grid: tuple | None  # (origin, axis_u, axis_v, cells) for solar cells


def _face(part: Part, cam_verts: np.ndarray) -> Face | None:
    normal = np.cross(cam_verts[1] - cam_verts[0], cam_verts[2] - cam_verts[0])
    if (norm := np.linalg.norm(normal)) < 1e-12:
        return None
    normal /= norm
    front = normal @ cam_verts.mean(0) < 0
    if not front:
        normal = -normal
    material = part.material if front or part.back is None else part.back
    grid = None
    if part.grid and material == part.material:
        u = (cam_verts[1] - cam_verts[0]) / np.linalg.norm(cam_verts[1] - cam_verts[0])
        v = np.cross(normal, u)
        pu, pv = (cam_verts - cam_verts[0]) @ u, (cam_verts - cam_verts[0]) @ v
        origin = cam_verts[0] + pu.min() * u + pv.min() * v
        grid = (origin, u / np.ptp(pu), v / np.ptp(pv), part.grid)
    return Face(part.cls, material, normal, float(normal @ cam_verts[0]), grid)


def _rasterise(parts: list[Part], cam: Camera) -> tuple[np.ndarray, list[Face], list[np.ndarray]]:
    """Face ids (-1: sky) by painting faces far to near; each face's data and camera-space vertices."""
    face_id = np.full((cam.size, cam.size), -1, np.int32)
    cam_parts = [(cam.to_camera(p.verts), p) for p in parts]
    faces, face_verts = [], []
    for verts, part in sorted(cam_parts, key=lambda item: -item[0][:, 2].mean()):
        face = _face(part, verts)
        if face is None:
            continue
        pts = np.round(cam.to_screen(verts) * 16).astype(np.int32)
        cv2.fillConvexPoly(face_id, pts, len(faces), cv2.LINE_8, shift=4)
        faces.append(face)
        face_verts.append(verts)
    return face_id, faces, face_verts


def _points(cam: Camera, faces: list[Face], fid: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Camera-space surface point under each pixel: the pixel's ray meets its face's plane."""
    rays = np.stack([(xs - cam.size / 2) / cam.focal, (ys - cam.size / 2) / cam.focal, np.ones(len(xs))], 1)
    normals = np.stack([f.normal for f in faces])[fid]
    offsets = np.array([f.offset for f in faces])[fid]
    return rays * (offsets / np.minimum((normals * rays).sum(1), -1e-6))[:, None]


def _lit(cam_verts: list[np.ndarray], sun: np.ndarray, points: np.ndarray, fid: np.ndarray) -> np.ndarray:
    """Cast shadows: paint the faces as seen from the sun; a point is lit where its own face
    (or, at its edges, a neighbour's pixel) wins there."""
    a = np.cross(sun, [0.0, 0.0, 1.0] if abs(sun[2]) < 0.9 else [1.0, 0.0, 0.0])
    a /= np.linalg.norm(a)
    b = np.cross(sun, a)
    allv = np.concatenate(cam_verts)
    lo, span, res = np.array([allv @ a, allv @ b]).min(1), np.ptp([allv @ a, allv @ b], 1).max() + 1e-9, 768
    light = np.full((res, res), -1, np.int32)
    for i in np.argsort([v.mean(0) @ sun for v in cam_verts]):  # far from the sun first
        uv = (np.stack([cam_verts[i] @ a, cam_verts[i] @ b], 1) - lo) / span * (res - 1)
        cv2.fillConvexPoly(light, np.round(uv * 16).astype(np.int32), int(i), cv2.LINE_8, shift=4)
    uv = np.round((np.stack([points @ a, points @ b], 1) - lo) / span * (res - 1)).astype(int)
    lit = np.zeros(len(fid), bool)
    for dy, dx in ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1)):
        lit |= light[np.clip(uv[:, 1] + dy, 0, res - 1), np.clip(uv[:, 0] + dx, 0, res - 1)] == fid
    return lit


def _crinkle(rng: np.random.Generator, size: int) -> np.ndarray:
    """Creased-foil texture: thin bright ridges at two scales over a mottled base (mean ~0.6)."""
    ridges = sum(w * (1 - np.minimum(np.abs(sky.smooth_noise(rng, size, max(4, size // c))), 1)) ** 8
                 for w, c in ((1.0, 14), (0.7, 5)))
    return 0.45 + 0.25 * np.abs(sky.smooth_noise(rng, size, max(4, size // 40))) + ridges


def _cells(face: Face, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(gap, frame) flags of points on a solar panel: the cell grid and the gold border."""
    origin, au, av, (nu, nv) = face.grid
    u, v = (points - origin) @ au, (points - origin) @ av
    frame = (u < 0.02) | (u > 0.98) | (v < 0.03) | (v > 0.97)
    gap = (np.mod(u * nu, 1) < 0.07) | (np.mod(v * nv, 1) < 0.07)
    return gap & ~frame, frame


def _sun(rng: np.random.Generator) -> np.ndarray:
    """Direction to the sun, camera space: more often behind the camera than behind the craft."""
    sun = rng.normal(size=3) + [0, 0, -0.5]
    return sun / np.linalg.norm(sun)


def _lit_share(face_id: np.ndarray, faces: list, sun: np.ndarray) -> float:
    """Share of the craft's pixels on faces turned towards the sun (shadows aside)."""
    counts = np.bincount(face_id[face_id >= 0], minlength=len(faces))
    lit = np.array([f.normal @ sun > 0.3 for f in faces])
    return float(counts[lit].sum() / max(1, counts.sum()))


def _shade(rng: np.random.Generator, cam: Camera, face_id: np.ndarray, faces: list[Face],
           face_verts: list[np.ndarray], sun: np.ndarray, fill: float) -> np.ndarray:
    """Radiance (H, W, 3) of the craft, 0 elsewhere: ambient ``fill`` + sun (with shadows) +
    specular; each material's colour varies a little from craft to craft."""
    ys, xs = np.nonzero(face_id >= 0)
    fid = face_id[ys, xs]
    points = _points(cam, faces, fid, ys, xs)
    lit = _lit(face_verts, sun, points, fid)
    tint = {m: 1 + rng.normal(0, 0.07, 3) for m in sorted({f.material for f in faces})}
    albedo = np.array([np.clip(np.multiply(MATERIALS[f.material][0], tint[f.material]), 0, 1) for f in faces],
                      np.float32)[fid]
    texture, spec, shine = (np.array([MATERIALS[f.material][k] for f in faces], np.float32)[fid] for k in (1, 2, 3))
    normals = np.stack([f.normal for f in faces])[fid]
    view = -points / np.linalg.norm(points, axis=1, keepdims=True)
    half = (view + sun) / np.linalg.norm(view + sun, axis=1, keepdims=True)
    crinkle = _crinkle(rng, cam.size)[ys, xs]
    for i, face in enumerate(faces):
        if face.grid is not None and (sel := fid == i).any():
            gap, frame = _cells(face, points[sel])
            albedo[np.flatnonzero(sel)[gap]] = GAP
            albedo[np.flatnonzero(sel)[frame]] = FRAME
    diffuse = np.clip((normals * sun).sum(1), 0, None) * lit
    glint = spec * np.clip((normals * half).sum(1), 0, None) ** (shine / (1 + texture * 3 * crinkle)) * lit
    shade = albedo * (fill + diffuse[:, None]) * (1 + texture * (crinkle - 0.75))[:, None]
    out = np.zeros((cam.size, cam.size, 3), np.float32)
    out[ys, xs] = (shade + glint[:, None]) * 255 * rng.uniform(0.35, 0.95)
    return out


def render_scene(rng: np.random.Generator, size: int, craft: int) -> tuple[np.ndarray, np.ndarray]:
    """One image (uint8 RGB, size x size) and its class-index mask, for SPARK type ``craft``.

    Like every real SPARK image, each shows its spacecraft, dark hull and all, with some part of
    it in sunlight: a pose that leaves no body pixel in the frame, or under 10 % of the craft
    facing the sun, is drawn again.
    """
    for _ in range(20):
        rot, sun = _rotation(rng), _sun(rng)
        cam = _camera(rng, parts := build_craft(SPACECRAFT[craft], rng, rot.T @ sun), size, rot)
        face_id, faces, face_verts = _rasterise(parts, cam)
        mask = np.zeros((size, size), np.uint8)
        drawn = face_id >= 0
        mask[drawn] = np.array([f.cls for f in faces], np.uint8)[face_id[drawn]]
        if (mask == BODY).any() and _lit_share(face_id, faces, sun) >= 0.1:
            break
    background, kind = world.background(rng, size)
    fill = rng.uniform(0.04, 0.3) + (rng.uniform(0.05, 0.2) if kind != "space" else 0.0)  # + earthshine
    craft_light = _shade(rng, cam, face_id, faces, face_verts, sun, fill)
    image = np.where(drawn[..., None], craft_light, background)
    if rng.random() < world.SUN_GLARE:
        image += sun_glare.glare(rng, size, sun_glare.position(rng, size))
    image = sun_glare.bloom(rng, image)
    return sky.sensor(rng, image), mask
