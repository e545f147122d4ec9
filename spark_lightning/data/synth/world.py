"""The SPARK 2024 world behind the craft, in the shares seen in real frames: space (stars, often
the Milky Way), the Earth's limb across the frame, or terrain filling it; and how often the
sun's glare is in view."""

from __future__ import annotations

import numpy as np

from spark_lightning.data.synth import earth, sky


# What lies behind the craft (SPARK 2024: the Earth in 12 of 20 frames, as a limb or as terrain
# filling the frame), how often the Milky Way crosses the space that shows, and the sun's glare.
WORLDS = {"space": 0.36, "limb": 0.4, "ground": 0.24}
MILKY_WAY = {"space": 0.6, "limb": 0.4, "ground": 0.0}
SUN_GLARE = 0.2


def background(rng: np.random.Generator, size: int) -> tuple[np.ndarray, str]:
    """Radiance (H, W, 3) behind the craft, and which world it is."""
    world = str(rng.choice(list(WORLDS), p=list(WORLDS.values())))
    background = sky.stars(rng, size)
    if rng.random() < MILKY_WAY[world]:
        background += sky.milky_way(rng, size)
    if world != "space":
        colour, cover = earth.earth(rng, size, world)
        background = background * (1 - cover) + colour
    return background, world
