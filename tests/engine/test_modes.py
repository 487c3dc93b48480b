"""Inpaint and outpaint through the engine: exact pixels outside the mask, "only masked", invert, outpaint."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from sdui.engine import masks
from sdui.engine.generate import Engine
from sdui.models.catalog import Catalog
from sdui.models.manager import ModelManager
from sdui.params import MaskedContent
from sdui.settings import Settings

from .conftest import pixels, small


def changed(a: Image.Image, b: Image.Image) -> np.ndarray:
    return np.abs(pixels(a) - pixels(b)).max(axis=-1) > 0


def test_inpaint_with_blur_zero_keeps_every_pixel_outside_the_mask(engine, photo, center_mask):
    result = engine.run(small(mode="inpaint", init_image=photo, mask=center_mask, mask_blur=0, denoising_strength=1.0))
    diff = changed(result.images[0], photo)
    inside = np.asarray(center_mask) > 0
    assert not diff[~inside].any()
    assert diff[inside].mean() > 0.5  # and the masked square was really repainted


def test_invert_keeps_the_square_and_repaints_the_rest(engine, photo, center_mask):
    result = engine.run(small(mode="inpaint", init_image=photo, mask=center_mask, mask_blur=0, mask_invert=True,
                              denoising_strength=1.0))
    diff = changed(result.images[0], photo)
    inside = np.asarray(center_mask) > 0
    assert not diff[inside].any()
    assert diff[~inside].mean() > 0.5


def test_only_masked_touches_only_the_padded_box(engine, center_mask):
    big = Image.fromarray(np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8), "RGB")
    mask = Image.new("L", (128, 128))
    mask.paste(255, (40, 50, 56, 66))
    result = engine.run(small(mode="inpaint", init_image=big, mask=mask, inpaint_full_res=True,
                              inpaint_full_res_padding=8, mask_blur=2, denoising_strength=1.0))
    out = result.images[0]
    assert out.size == big.size  # "only masked" keeps the original size
    left, top, right, bottom = masks.crop_box(mask, 8, (64, 64))
    assert (left, top, right, bottom) == (32, 42, 64, 74)
    diff = changed(out, big)
    inside_box = np.zeros_like(diff)
    inside_box[top:bottom, left:right] = True
    assert not diff[~inside_box].any()
    assert diff[50:66, 40:56].mean() > 0.5


@pytest.mark.parametrize("content", list(MaskedContent))
def test_every_masked_content_mode_runs_and_keeps_the_outside(engine, photo, center_mask, content):
    result = engine.run(small(mode="inpaint", init_image=photo, mask=center_mask, mask_blur=0,
                              masked_content=content))
    assert not changed(result.images[0], photo)[np.asarray(center_mask) == 0].any()


def test_mask_of_another_size_is_resized(engine, photo):
    mask = Image.new("L", (32, 32))
    mask.paste(255, (12, 12, 20, 20))
    result = engine.run(small(mode="inpaint", init_image=photo, mask=mask, mask_blur=0, denoising_strength=1.0))
    diff = changed(result.images[0], photo)
    assert not diff[:24].any() and not diff[40:].any() and diff[24:40, 24:40].any()


def test_outpaint_64_left_grows_the_width_and_keeps_the_original(engine, photo):
    result = engine.run(small(mode="outpaint", init_image=photo, outpaint_left=64, mask_blur=4, denoising_strength=1.0))
    out = result.images[0]
    assert out.size == (128, 64)
    assert np.array_equal(pixels(out)[:, 64:], pixels(photo))
    edge = pixels(photo)[:, :1]  # edge extend: the new area starts from the original's left column
    assert np.abs(pixels(out)[:, :56] - edge).max() > 10  # and was generated, not just extended
    assert "Outpaint" in result.infotexts[0]


def test_outpaint_brushed_mask_repaints_that_part_of_the_original_too(engine, photo):
    brushed = Image.new("L", photo.size)
    brushed.paste(255, (40, 8, 56, 24))  # a square inside the original, in its own coordinates
    result = engine.run(small(mode="outpaint", init_image=photo, outpaint_right=64, mask=brushed, mask_blur=0,
                              denoising_strength=1.0))
    out = pixels(result.images[0])
    assert result.images[0].size == (128, 64)
    diff = np.abs(out[:, :64] - pixels(photo)).max(axis=-1) > 0
    assert diff[8:24, 40:56].mean() > 0.5  # the brushed square was generated
    untouched = np.ones_like(diff)
    untouched[8:24, 40:56] = False
    assert not diff[untouched].any()  # the rest of the original stays exact


def test_outpaint_on_all_sides(engine, photo):
    result = engine.run(small(mode="outpaint", init_image=photo, outpaint_left=8, outpaint_right=16,
                              outpaint_up=24, outpaint_down=32, outpaint_fill="noise"))
    out = result.images[0]
    assert out.size == (64 + 24, 64 + 56)
    assert np.array_equal(pixels(out)[24:88, 8:72], pixels(photo))


@pytest.fixture(scope="module")
def inpaint_engine(tmp_path_factory) -> Engine:
    """The engine over a tiny 9-channel inpainting UNet (latents + mask + masked-image latents)."""
    from sdui.models.tiny import save_tiny_model

    models = tmp_path_factory.mktemp("inpaint-models")
    save_tiny_model(models / "tiny-inpainting", in_channels=9)
    cache = tmp_path_factory.mktemp("inpaint-cache")
    manager = ModelManager(Catalog(models, cache), Settings.for_data_dir(cache, ckpt_dir=models, device="cpu",
                                                                         fast_path=False))
    return Engine(manager)


def test_nine_channel_inpainting_unet_works_and_keeps_the_outside(inpaint_engine, photo, center_mask):
    from sdui.models.manager import Task

    assert inpaint_engine.manager.get(None, Task.INPAINT).unet.config.in_channels == 9
    result = inpaint_engine.run(small(mode="inpaint", init_image=photo, mask=center_mask, mask_blur=0,
                                      denoising_strength=1.0))
    diff = changed(result.images[0], photo)
    inside = np.asarray(center_mask) > 0
    assert not diff[~inside].any() and diff[inside].mean() > 0.5
