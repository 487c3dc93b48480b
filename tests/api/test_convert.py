"""A1111 request -> GenerationParams, images over base64, and Result -> A1111 response (no server)."""

from __future__ import annotations

import base64
import io
import json
from datetime import datetime

import pytest
from PIL import Image

from sdui.api import convert
from sdui.api.errors import ApiError
from sdui.api.models import Img2ImgRequest, Txt2ImgRequest
from sdui.engine.result import Result
from sdui.params import MaskedContent, Mode, ResizeMode


class NoCatalog:
    def find(self, name):  # pragma: no cover - only reached by the checkpoint tests, which use the real one
        raise AssertionError("no checkpoint lookups expected here")


def b64(image: Image.Image, fmt: str = "PNG") -> str:
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    return base64.b64encode(buf.getvalue()).decode()


def test_decode_image_plain_data_url_jpeg_and_unpadded():
    img = Image.new("RGB", (16, 8), (10, 20, 30))
    png = b64(img)
    unpadded = b64(Image.new("RGB", (17, 9))).rstrip("=")
    for data in (png, "data:image/png;base64," + png, b64(img, "JPEG"), png[:40] + "\n" + png[40:]):
        assert convert.decode_image(data, "init_images[0]", 2**20).size == (16, 8)
    assert convert.decode_image(unpadded, "init_images[0]", 2**20).size == (17, 9)


@pytest.mark.parametrize("data, status, words", [
    ("", 400, "must be a base64-encoded image"),
    ("%%%not base64%%%", 400, "not valid base64"),
    (base64.b64encode(b"just some text, not pixels").decode(), 400, "not an image"),
    ("https://example.com/a.png", 400, "does not fetch URLs"),
    ("A" * 4000, 413, "larger than"),
])
def test_decode_image_refusals(data, status, words):
    with pytest.raises(ApiError) as e:
        convert.decode_image(data, "mask", 2000)
    assert e.value.status == status and words in e.value.detail and e.value.field == "mask"


def test_encode_png_carries_parameters():
    text = "a cat\nSteps: 3, Sampler: Euler, Seed: 5"
    img = Image.open(io.BytesIO(base64.b64decode(convert.encode_png(Image.new("RGB", (8, 8)), text))))
    assert img.format == "PNG" and img.info["parameters"] == text


def test_txt2img_fields_by_name():
    req = Txt2ImgRequest(prompt="p", negative_prompt="n", seed=5, subseed=6, subseed_strength=0.5,
                         sampler_name="DPM++ 2M", scheduler="karras", batch_size=2, n_iter=3, steps=7, cfg_scale=4.5,
                         width=64, height=128, override_settings={"CLIP_stop_at_last_layers": 2})
    p = convert.txt2img_params(req, NoCatalog())
    assert (p.mode, p.prompt, p.negative_prompt, p.seed, p.subseed, p.subseed_strength) == \
        (Mode.TXT2IMG, "p", "n", 5, 6, 0.5)
    assert (p.sampler, p.schedule, p.batch_size, p.batch_count, p.steps, p.cfg_scale, p.width, p.height) == \
        ("DPM++ 2M", "Karras", 2, 3, 7, 4.5, 64, 128)
    assert p.clip_skip == 2 and p.checkpoint is None


def test_a1111_defaults_and_old_sampler_names():
    p = convert.txt2img_params(Txt2ImgRequest(width=64, height=64), NoCatalog())
    assert (p.sampler, p.schedule, p.steps, p.cfg_scale, p.seed) == ("Euler", "Automatic", 50, 7.0, -1)
    p = convert.txt2img_params(Txt2ImgRequest(sampler_name="DPM++ 2M Karras", width=64, height=64), NoCatalog())
    assert (p.sampler, p.schedule) == ("DPM++ 2M", "Karras")
    p = convert.txt2img_params(Txt2ImgRequest(sampler_index="k_euler_a", scheduler="sgm_uniform",
                                              width=64, height=64), NoCatalog())
    assert (p.sampler, p.schedule) == ("Euler a", "SGM Uniform")


@pytest.mark.parametrize("fields, field", [
    ({"script_name": "sd upscale"}, "script_name"),
    ({"alwayson_scripts": {"controlnet": {"args": []}}}, "alwayson_scripts"),
    ({"restore_faces": True}, "restore_faces"), ({"tiling": True}, "tiling"),
])
def test_unsupported_features_are_named(fields, field):
    with pytest.raises(ApiError) as e:
        convert.txt2img_params(Txt2ImgRequest(width=64, height=64, **fields), NoCatalog())
    assert e.value.status == 400 and e.value.field == field and "not supported yet" in e.value.detail


def test_validation_errors_use_a1111_names():
    with pytest.raises(ApiError) as e:
        convert.txt2img_params(Txt2ImgRequest(n_iter=0, width=64, height=64), NoCatalog())
    assert e.value.field == "n_iter" and e.value.detail.startswith("n_iter must be between 1 and")
    with pytest.raises(ApiError) as e:
        convert.txt2img_params(Txt2ImgRequest(sampler_name="Nope", width=64, height=64), NoCatalog())
    assert e.value.field == "sampler_name" and "'Nope'" in e.value.detail
    with pytest.raises(ApiError) as e:
        convert.txt2img_params(Txt2ImgRequest(width=65, height=64), NoCatalog())
    assert e.value.field == "width" and "got 65" in e.value.detail


def test_img2img_and_inpaint_fields():
    init = Image.new("RGB", (64, 64), (200, 0, 0))
    mask = Image.new("RGBA", (32, 32), (0, 0, 0, 0))
    mask.paste((255, 255, 255, 255), (0, 0, 16, 32))
    req = Img2ImgRequest(init_images=["data:image/png;base64," + b64(init)], denoising_strength=0.4,
                         resize_mode=1, width=64, height=64, steps=3)
    p = convert.img2img_params(req, NoCatalog())
    assert p.mode is Mode.IMG2IMG and p.resize_mode is ResizeMode.CROP_AND_RESIZE
    assert p.denoising_strength == 0.4 and p.init_image.getpixel((0, 0)) == (200, 0, 0) and p.mask is None
    req = Img2ImgRequest(init_images=[b64(init)], mask=b64(mask), inpainting_fill=2, inpainting_mask_invert=1,
                         mask_blur=9, inpaint_full_res=False, inpaint_full_res_padding=12, width=64, height=64)
    p = convert.img2img_params(req, NoCatalog())
    assert p.mode is Mode.INPAINT and p.masked_content is MaskedContent.LATENT_NOISE and p.mask_invert
    assert (p.mask_blur, p.inpaint_full_res, p.inpaint_full_res_padding) == (9, False, 12)
    # the alpha channel is the mask, scaled to the init image
    assert p.mask.mode == "L" and p.mask.size == (64, 64)
    assert p.mask.getpixel((5, 5)) == 255 and p.mask.getpixel((60, 5)) == 0


@pytest.mark.parametrize("fill, content", [
    (0, MaskedContent.FILL), (1, MaskedContent.ORIGINAL), (2, MaskedContent.LATENT_NOISE),
    (3, MaskedContent.LATENT_NOTHING),
])
def test_inpainting_fill_numbers_are_a1111s(fill, content):
    image = b64(Image.new("RGB", (64, 64)))
    req = Img2ImgRequest(init_images=[image], mask=image, inpainting_fill=fill, width=64, height=64)
    assert convert.img2img_params(req, NoCatalog()).masked_content is content


@pytest.mark.parametrize("number, mode", [
    (0, ResizeMode.JUST_RESIZE), (1, ResizeMode.CROP_AND_RESIZE), (2, ResizeMode.RESIZE_AND_FILL),
])
def test_resize_mode_numbers_are_a1111s(number, mode):
    req = Img2ImgRequest(init_images=[b64(Image.new("RGB", (64, 64)))], resize_mode=number, width=64, height=64)
    assert convert.img2img_params(req, NoCatalog()).resize_mode is mode


@pytest.mark.parametrize("fields, field", [
    ({"init_images": []}, "init_images"), ({"inpainting_fill": 4}, "inpainting_fill"),
    ({"resize_mode": 3}, "resize_mode"), ({"inpainting_mask_invert": 2}, "inpainting_mask_invert"),
    ({"mask": "bm90IGFuIGltYWdl"}, "mask"), ({"denoising_strength": 1.5}, "denoising_strength"),
])
def test_img2img_refusals(fields, field):
    data = {"init_images": [b64(Image.new("RGB", (64, 64)))], "width": 64, "height": 64, **fields}
    with pytest.raises(ApiError) as e:
        convert.img2img_params(Img2ImgRequest(**data), NoCatalog())
    assert e.value.field == field and e.value.status == 400


def test_response_shape():
    req = Txt2ImgRequest(prompt="cat", negative_prompt="dog", seed=10, batch_size=2, steps=3, width=64, height=64)
    params = convert.txt2img_params(req, NoCatalog()).replace(seed=10, subseed=99)
    images = [Image.new("RGB", (64, 64), (i, i, i)) for i in range(2)]
    result = Result(params=params, images=images, seeds=[10, 11], subseeds=[99, 100],
                    infotexts=["cat\nSeed: 10", "cat\nSeed: 11"], model_title="tiny [0123456789]",
                    model_name="tiny", model_hash="0123456789")
    resp = convert.build_response(req, result, datetime(2026, 1, 2, 3, 4, 5))
    info = json.loads(resp.info)
    assert info["all_seeds"] == [10, 11] and info["seed"] == 10 and info["all_subseeds"] == [99, 100]
    assert info["all_prompts"] == ["cat", "cat"] and info["all_negative_prompts"] == ["dog", "dog"]
    assert info["sd_model_name"] == "tiny" and info["sd_model_hash"] == "0123456789"
    assert info["job_timestamp"] == "20260102030405" and info["infotexts"] == result.infotexts
    assert resp.parameters["prompt"] == "cat" and resp.parameters["batch_size"] == 2
    texts = [Image.open(io.BytesIO(base64.b64decode(s))).info["parameters"] for s in resp.images]
    assert texts == result.infotexts
    req.send_images = False
    assert convert.build_response(req, result, datetime.now()).images == []


def test_model_name_is_the_catalogs_as_in_the_infotext(tmp_path):
    """sd_model_name is the catalog's name (the infotext's `Model:`), not one rebuilt from the title."""
    from sdui.models.catalog import Catalog

    (tmp_path / "sub").mkdir()
    for rel in ("v1-5-pruned.safetensors", "sub/foo.safetensors"):
        (tmp_path / rel).write_bytes(b"x")
    catalog = Catalog(tmp_path, tmp_path / "cache")
    assert [(i.title, i.name) for i in catalog.list()] == [("sub/foo.safetensors", "sub_foo"),
                                                           ("v1-5-pruned.safetensors", "v1-5-pruned")]
    req = Txt2ImgRequest(prompt="cat", width=64, height=64)
    params = convert.txt2img_params(req, NoCatalog()).replace(seed=1, subseed=1)
    for item in catalog.list():
        result = Result(params=params, model_title=item.title, model_name=item.name)
        assert json.loads(convert.info_json(result, datetime.now()))["sd_model_name"] == item.name
