"""Masks: reading, invert, empty, crop box, paste-back, fill, outpaint canvas."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from sdui.engine import masks
from sdui.params import MaskedContent, OutpaintFill

from .conftest import pixels


def test_brush_layer_alpha_is_the_mask_and_is_resized():
    layer = Image.new("RGBA", (32, 32), (0, 0, 0, 0))
    layer.paste((255, 0, 0, 255), (8, 8, 16, 16))
    mask = masks.read_mask(layer, (64, 64))
    assert mask.size == (64, 64) and mask.mode == "L"
    assert mask.getbbox() == (16, 16, 32, 32)
    assert set(np.unique(np.asarray(mask))) == {0, 255}


def test_black_and_white_image_and_invert(center_mask):
    mask = masks.read_mask(center_mask.convert("RGB"), (64, 64))
    assert np.array_equal(np.asarray(mask), np.asarray(center_mask))
    inverted = masks.read_mask(center_mask, (64, 64), invert=True)
    assert np.array_equal(np.asarray(inverted), 255 - np.asarray(center_mask))


def test_empty_mask_is_a_clear_error():
    with pytest.raises(ValueError, match="mask is empty"):
        masks.check_not_empty(Image.new("L", (8, 8)))


def test_crop_box_pads_keeps_aspect_and_clamps(center_mask):
    assert masks.crop_box(center_mask, 4, (64, 64)) == (20, 20, 44, 44)
    left, top, right, bottom = masks.crop_box(center_mask, 4, (128, 64))
    assert (right - left, bottom - top) == (48, 24) and left <= 20 and right >= 44
    edge = Image.new("L", (64, 64))
    edge.paste(255, (0, 0, 8, 8))
    assert masks.crop_box(edge, 16, (64, 64)) == (0, 0, 24, 24)
    wide = masks.crop_box(edge, 16, (256, 64))
    assert wide[0] == 0 and wide[2] <= 64 and wide[1] == 0


def test_paste_back_keeps_everything_outside_the_mask(photo, center_mask):
    generated = Image.new("RGB", (64, 64), (0, 255, 0))
    out = pixels(masks.paste_back(photo, generated, center_mask))
    keep = np.asarray(center_mask) == 0
    assert np.array_equal(out[keep], pixels(photo)[keep])
    assert (out[~keep] == (0, 255, 0)).all()


def test_blurred_mask_softens_only_near_the_edge(center_mask):
    blurred = np.asarray(masks.blur_mask(center_mask, 4))
    assert blurred[32, 32] > 200 and blurred[0, 0] == 0 and 0 < blurred[24, 22] < blurred[32, 32]
    assert np.array_equal(np.asarray(masks.blur_mask(center_mask, 0)), np.asarray(center_mask))


def test_fill_replaces_the_masked_area_with_surrounding_colours(center_mask):
    image = Image.new("RGB", (64, 64), (200, 40, 40))
    image.paste((0, 0, 255), (24, 24, 40, 40))  # what is under the mask must disappear
    filled = pixels(masks.prefill(image, center_mask, MaskedContent.FILL, seed=1))
    assert np.abs(filled[32, 32] - (200, 40, 40)).max() <= 2
    assert np.array_equal(filled[0:20], pixels(image)[0:20])


def test_latent_noise_and_nothing_prefills_differ_inside_only(photo, center_mask):
    noise_a = pixels(masks.prefill(photo, center_mask, MaskedContent.LATENT_NOISE, seed=1))
    noise_b = pixels(masks.prefill(photo, center_mask, MaskedContent.LATENT_NOISE, seed=2))
    nothing = pixels(masks.prefill(photo, center_mask, MaskedContent.LATENT_NOTHING, seed=1))
    inside = np.asarray(center_mask) > 0
    assert not np.array_equal(noise_a[inside], noise_b[inside])
    assert np.array_equal(noise_a[~inside], pixels(photo)[~inside])
    assert (nothing[inside] == 127).all()


@pytest.mark.parametrize("fill", list(OutpaintFill))
def test_outpaint_canvas_grows_and_keeps_the_original(photo, fill):
    canvas, generate, paste = masks.outpaint_canvas(photo, 64, 0, 0, 16, fill, feather=4, seed=3)
    assert canvas.size == generate.size == paste.size == (128, 80)
    assert np.array_equal(pixels(canvas)[0:64, 64:128], pixels(photo))
    paste_px, gen_px = np.asarray(paste), np.asarray(generate)
    assert (paste_px[0:64, 64:] == 0).all()  # the paste mask never reaches into the original
    assert paste_px[10, 0] == 255 and 0 < paste_px[10, 62] < 255  # feathered towards the seam
    assert (gen_px[0:64, 0:64] == 255).all() and (gen_px[0:60, 64:68] == 255).all()  # seam is regenerated
    assert (gen_px[0:60, 68:] == 0).all()
