"""Our albumentations transforms (spark_lightning/data/augment.py)."""

from __future__ import annotations

import numpy as np

from spark_lightning.data.augment import BackgroundTexture, random_texture


def _frame() -> tuple[np.ndarray, np.ndarray]:
    image = np.full((96, 96, 3), 20, np.uint8)
    mask = np.zeros((96, 96), np.uint8)
    mask[30:60, 20:50], mask[30:60, 50:70], mask[0:4, :] = 1, 2, 255  # body, panel, ignored
    image[mask == 1], image[mask == 2] = 180, 90
    return image, mask


def test_background_texture_paints_only_the_background():
    image, mask = _frame()
    transform = BackgroundTexture(alpha=(1.0, 1.0), p=1.0)
    transform.set_random_seed(0)
    out = transform(image=image, mask=mask)
    assert np.array_equal(out["mask"], mask)
    assert np.array_equal(out["image"][mask != 0], image[mask != 0])  # craft and ignored pixels untouched
    assert np.abs(out["image"][mask == 0].astype(int) - 20).mean() > 10  # the background is repainted


def test_textures_carry_fine_detail_and_differ_per_draw():
    """The point of the transform: texture down to a few pixels, not smooth colour fields."""
    rng = np.random.default_rng(0)
    a, b = random_texture(rng, 128, 128), random_texture(rng, 128, 128)
    assert a.shape == (128, 128, 3) and a.dtype == np.float32 and 0 <= a.min() and a.max() <= 255
    grey = a.mean(-1)
    fine = np.abs(np.diff(grey, axis=1)).mean()  # neighbour differences: detail at the pixel scale
    assert fine > 1.0
    assert not np.allclose(a, b)


def test_background_texture_with_p_zero_changes_nothing():
    image, mask = _frame()
    out = BackgroundTexture(p=0.0)(image=image, mask=mask)
    assert np.array_equal(out["image"], image)
