"""A1111's upscale and resize rules with the built-in upscalers: target sizes and the exact resampling steps."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tests.upscalers.conftest import TINY_4X, noise_image

LANCZOS, NEAREST = Image.Resampling.LANCZOS, Image.Resampling.NEAREST


def same(a: Image.Image, b: Image.Image) -> bool:
    return a.size == b.size and np.array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("size, scale, target", [((100, 60), 2.5, (248, 144)), ((512, 512), 2, (1024, 1024)),
                                                 ((512, 768), 1.5, (768, 1152)), ((77, 33), 1.3, (96, 40)),
                                                 ((64, 64), 0.5, (32, 32))])
def test_upscale_targets_int_w_times_scale_down_to_a_multiple_of_8(make_upscalers, size, scale, target):
    upscalers = make_upscalers()
    image = noise_image(*size)
    for name in ("None", "Lanczos", "Nearest"):
        assert upscalers.upscale(image, scale, name).size == target, name


def test_upscale_steps_are_a1111s(make_upscalers):
    upscalers = make_upscalers()
    image = noise_image(100, 60)
    # Lanczos: resize by the scale (250x150), then Lanczos to the multiple-of-8 target.
    assert same(upscalers.upscale(image, 2.5, "Lanczos"), image.resize((250, 150), LANCZOS).resize((248, 144), LANCZOS))
    # Nearest: resize by the scale with nearest; already on target, nothing more.
    assert same(upscalers.upscale(image, 2, "Nearest"), image.resize((200, 120), NEAREST))
    # None: changes nothing itself; the final Lanczos resize does it all.
    assert same(upscalers.upscale(image, 2.5, "None"), image.resize((248, 144), LANCZOS))


def test_resize_upscales_by_the_larger_ratio_then_lanczos_to_the_exact_size(make_upscalers):
    upscalers = make_upscalers()
    image = noise_image(64, 64)
    # scale = max(100 / 64, 80 / 64) = 1.5625: Nearest to 100x100, Lanczos to the 96x96 target, Lanczos to 100x80.
    expected = image.resize((100, 100), NEAREST).resize((96, 96), LANCZOS).resize((100, 80), LANCZOS)
    assert same(upscalers.resize(image, 100, 80, "Nearest"), expected)
    assert same(upscalers.resize(image, 100, 80, "None"), image.resize((100, 80), LANCZOS))
    assert same(upscalers.resize(image, 128, 128, "Nearest"), image.resize((128, 128), NEAREST))


def test_resize_without_enlarging_or_of_grayscale_never_runs_a_model(make_upscalers):
    upscalers = make_upscalers()
    image = noise_image(64, 48)
    assert same(upscalers.resize(image, 40, 30, TINY_4X), image.resize((40, 30), LANCZOS))
    assert same(upscalers.resize(image, 64, 48, TINY_4X), image)
    gray = image.convert("L")  # A1111 resizes "L" images with Lanczos whatever the upscaler
    assert same(upscalers.resize(gray, 128, 96, TINY_4X), gray.resize((128, 96), LANCZOS))
    assert upscalers.load_count == 0


def test_bad_names_and_sizes_are_refused_before_any_work(make_upscalers):
    upscalers = make_upscalers()
    image = noise_image(16, 16)
    with pytest.raises(ValueError, match="^upscaler: no upscaler 'Bicubic'; known: None, Lanczos, Nearest, "):
        upscalers.resize(image, 32, 32, "Bicubic")
    with pytest.raises(ValueError, match="^upscaler: no upscaler"):
        upscalers.upscale(image, 2, "4x-nothing")
    for scale in (0, -1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="^scale must be a number above 0"):
            upscalers.upscale(image, scale, "Lanczos")
    with pytest.raises(ValueError, match="under 8 pixels"):
        upscalers.upscale(noise_image(6, 6), 1, "Lanczos")
    with pytest.raises(ValueError, match="width and height must be at least 1, got 0x16"):
        upscalers.resize(image, 0, 16, "Lanczos")
    assert upscalers.load_count == 0
