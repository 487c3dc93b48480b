"""Init-image fitting by the three A1111 resize modes."""

from __future__ import annotations

import numpy as np
from PIL import Image

from sdui.engine.images import fit_image
from sdui.params import ResizeMode

from .conftest import pixels


def striped(w: int, h: int) -> Image.Image:
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[:, : w // 2] = (255, 0, 0)
    rgb[:, w // 2:] = (0, 0, 255)
    return Image.fromarray(rgb, "RGB")


def test_same_size_is_unchanged(photo):
    for mode in ResizeMode:
        assert np.array_equal(pixels(fit_image(photo, 64, 64, mode)), pixels(photo))


def test_just_resize_stretches():
    out = fit_image(striped(128, 32), 64, 64, ResizeMode.JUST_RESIZE)
    assert out.size == (64, 64) and tuple(out.getpixel((2, 2))) == (255, 0, 0)


def test_crop_and_resize_covers_and_crops_the_sides():
    out = fit_image(striped(256, 64), 64, 64, ResizeMode.CROP_AND_RESIZE)
    assert out.size == (64, 64)
    # The centre of a 4:1 image is kept: red on the left half, blue on the right.
    assert tuple(out.getpixel((5, 30))) == (255, 0, 0) and tuple(out.getpixel((60, 30))) == (0, 0, 255)


def test_resize_and_fill_fits_inside_and_stretches_the_borders():
    out = fit_image(striped(128, 32), 64, 64, ResizeMode.RESIZE_AND_FILL)
    assert out.size == (64, 64)
    assert tuple(out.getpixel((2, 0))) == (255, 0, 0) and tuple(out.getpixel((62, 63))) == (0, 0, 255)
