"""Reading ImageEditor values: the picture, and the mask as the OR of painted layer alpha."""

from __future__ import annotations

import numpy as np

from sdui.ui.editor import background, painted_mask


def _layer(box: tuple[int, int, int, int], size=(32, 48), alpha: int = 255, colour=(255, 255, 255)) -> np.ndarray:
    layer = np.zeros((*size, 4), np.uint8)
    y0, y1, x0, x1 = box
    layer[y0:y1, x0:x1] = (*colour, alpha)
    return layer


def test_mask_is_the_union_of_painted_pixels_over_all_layers():
    # Black paint counts (only alpha says what is painted); colour with zero alpha is no paint.
    value = {"background": np.zeros((32, 48, 4), np.uint8),
             "layers": [_layer((0, 4, 0, 4), colour=(0, 0, 0)), _layer((10, 12, 20, 30), alpha=1),
                        _layer((20, 30, 0, 10), alpha=0, colour=(255, 0, 0))]}
    mask = np.asarray(painted_mask(value, (48, 32)))
    assert mask.shape == (32, 48)
    assert mask[:4, :4].min() == 255 and mask[10:12, 20:30].min() == 255  # faint paint counts
    assert mask.sum() == 255 * (16 + 20)


def test_nothing_painted_gives_no_mask():
    assert painted_mask({"layers": [np.zeros((32, 48, 4), np.uint8)]}, (48, 32)) is None
    assert painted_mask({"layers": []}, (48, 32)) is None
    assert painted_mask(None, (48, 32)) is None


def test_layers_of_another_size_are_scaled_to_the_picture():
    mask = painted_mask({"layers": [_layer((0, 16, 0, 24))]}, (96, 64))
    assert mask.size == (96, 64)
    assert np.asarray(mask)[:32, :48].min() == 255 and np.asarray(mask)[32:, :].max() == 0


def test_background_is_rgb_and_transparent_pixels_become_white():
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:4, :, 3] = 255
    picture = background({"background": rgba})
    assert picture.mode == "RGB" and picture.size == (8, 8)
    assert picture.getpixel((0, 0)) == (200, 0, 0) and picture.getpixel((0, 7)) == (255, 255, 255)
    assert background({"background": None, "layers": []}) is None
    assert background(None) is None
