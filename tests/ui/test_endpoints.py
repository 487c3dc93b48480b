"""The named endpoints (txt2img, img2img, inpaint, outpaint, png_info) called with gradio_client."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from sdui.models.catalog import Catalog
from tests.ui.conftest import BROKEN_NAME, PASSWORD, USER

FAST = {"steps": 3, "width": 64, "height": 64, "sampler": "Euler"}


@pytest.fixture(scope="module")
def client(auth_server):
    return Client(auth_server.url, auth=(USER, PASSWORD), verbose=False)


@pytest.fixture(scope="module")
def picture(tmp_path_factory) -> Path:
    """A 64x64 picture with structure (gradient + square) so pasted-back pixels can be compared."""
    y, x = np.mgrid[0:64, 0:64]
    pixels = np.stack([x * 4, y * 4, (x + y) * 2], axis=-1).astype(np.uint8)
    pixels[20:40, 20:40] = (250, 30, 30)
    path = tmp_path_factory.mktemp("inputs") / "picture.png"
    Image.fromarray(pixels, "RGB").save(path)
    return path


def _images(result) -> list[Image.Image]:
    _progress, _preview, gallery, infotext, data, _warnings, _saved = result
    assert gallery, f"no images; infotext={infotext!r}"
    return [Image.open(item["image"]) for item in gallery]


def test_txt2img_returns_saved_pngs_with_parameters(client, auth_server):
    outputs = auth_server.outputs
    result = client.predict(prompt="a lighthouse at dawn", negative_prompt="fog", seed=1234, batch_size=2,
                            api_name="/txt2img", **FAST)
    images = _images(result)
    assert [im.size for im in images] == [(64, 64), (64, 64)]
    text = images[0].info["parameters"]
    assert text.startswith("a lighthouse at dawn\nNegative prompt: fog\n")
    assert "Steps: 3" in text and "Seed: 1234" in text and "Size: 64x64" in text
    assert "Seed: 1235" in images[1].info["parameters"]
    data = result[4]
    assert data["seeds"] == [1234, 1235] and result[3] == data["infotexts"][0]
    assert all(Path(p).is_file() and Path(p).is_relative_to(outputs) for p in data["paths"])


def test_every_generate_endpoint_takes_the_top_bar_settings(client):
    endpoints = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    for name in ("/txt2img", "/img2img", "/inpaint", "/outpaint"):
        parameters = {p["parameter_name"]: p for p in endpoints[name]["parameters"]}
        assert {"checkpoint", "vae", "clip_skip", "randn_source", "eta_noise_seed_delta"} <= set(parameters), name
        defaults = {key: parameters[key]["parameter_default"] for key in ("vae", "clip_skip", "randn_source",
                                                                          "eta_noise_seed_delta")}
        assert defaults == {"vae": "Automatic", "clip_skip": 1, "randn_source": "CPU", "eta_noise_seed_delta": 0}
        # gr.States, set by pasting an infotext, not API parameters
        assert "lora_hashes" not in parameters and "pasted_warnings" not in parameters


def test_clip_skip_and_ensd_reach_the_saved_infotext(client):
    result = client.predict(prompt="a kite", seed=9, clip_skip=2, eta_noise_seed_delta=31337,
                            api_name="/txt2img", **{**FAST, "sampler": "Euler a"})
    text = _images(result)[0].info["parameters"]
    assert "Clip skip: 2" in text and "ENSD: 31337" in text and "RNG: CPU" in text


def test_txt2img_takes_the_vae_and_returns_what_it_did_not_apply(client):
    result = client.predict(prompt="a kite <lora:missing:1>", vae="None", seed=9, api_name="/txt2img", **FAST)
    (image,) = _images(result)
    assert "VAE:" not in image.info["parameters"]  # "None": the checkpoint's own VAE
    assert result[4]["warnings"] == ["LoRA 'missing' not found in the LoRA folders (by name): not applied"]
    assert "LoRA &#x27;missing&#x27; not found" in result[5]
    clean = client.predict(prompt="a kite", api_name="/txt2img", **FAST)
    assert clean[4]["warnings"] == [] and clean[5] == "", "a job with nothing left out shows no warnings"


def test_img2img_uses_the_uploaded_picture(client, picture):
    result = client.predict(prompt="oil painting", init_image=handle_file(str(picture)), denoising_strength=0.5,
                            seed=7, api_name="/img2img", **FAST)
    (image,) = _images(result)
    assert image.size == (64, 64)
    assert "Denoising strength: 0.5" in image.info["parameters"]


def test_inpaint_changes_only_the_painted_area(client, picture, tmp_path):
    layer = np.zeros((64, 64, 4), np.uint8)
    layer[24:40, 24:40] = 255  # a painted white square
    layer_path = tmp_path / "layer.png"
    Image.fromarray(layer, "RGBA").save(layer_path)
    editor = {"background": handle_file(str(picture)), "layers": [handle_file(str(layer_path))],
              "composite": handle_file(str(picture)), "id": None}
    result = client.predict(prompt="a blue square", editor=editor, mask_blur=0, seed=3, api_name="/inpaint", **FAST)
    (image,) = _images(result)
    out, src = np.asarray(image.convert("RGB")).astype(int), np.asarray(Image.open(picture)).astype(int)
    outside = np.ones((64, 64), bool)
    outside[16:48, 16:48] = False  # leave a margin around the stroke
    assert np.array_equal(out[outside], src[outside])
    assert np.abs(out[26:38, 26:38] - src[26:38, 26:38]).sum() > 0, "the painted area must be regenerated"


def test_outpaint_grows_the_canvas(client, picture):
    editor = {"background": handle_file(str(picture)), "layers": [], "composite": handle_file(str(picture)),
              "id": None}
    result = client.predict(prompt="more sky", editor=editor, outpaint_right=64, seed=5, api_name="/outpaint",
                            **{**FAST, "width": 512, "height": 512})
    (image,) = _images(result)
    assert image.size == (128, 64)
    src = np.asarray(Image.open(picture)).astype(int)
    assert np.array_equal(np.asarray(image.convert("RGB")).astype(int)[:, :48], src[:, :48])


def test_png_info_reads_a_generated_file(client):
    result = client.predict(prompt="a red bicycle", seed=42, api_name="/txt2img", **FAST)
    path = result[4]["paths"][0]
    text, table = client.predict(image=handle_file(path), api_name="/png_info")
    assert text.startswith("a red bicycle\n")
    assert ["Seed", "42"] in table["data"]


def test_missing_picture_and_empty_mask_are_clear_errors_and_the_next_job_runs(client, picture):
    with pytest.raises(AppError, match="needs a picture"):
        client.predict(prompt="x", init_image=None, api_name="/img2img", **FAST)
    editor = {"background": handle_file(str(picture)), "layers": [], "composite": handle_file(str(picture)),
              "id": None}
    with pytest.raises(AppError, match="mask is empty"):
        client.predict(prompt="x", editor=editor, api_name="/inpaint", **FAST)
    with pytest.raises(AppError, match="width must be a multiple of 8.*got 100"):
        client.predict(prompt="x", api_name="/txt2img", **{**FAST, "width": 100})
    assert _images(client.predict(prompt="still works", api_name="/txt2img", **FAST))


def test_broken_checkpoint_is_a_clear_error_and_the_ui_goes_on(client, auth_server, tmp_path):
    broken = Catalog(auth_server.ckpt_dir, tmp_path).find(BROKEN_NAME).title
    with pytest.raises(AppError, match="checkpoint could not be used.*Pick another checkpoint"):
        client.predict(prompt="x", checkpoint=broken, api_name="/txt2img", **FAST)
    assert _images(client.predict(prompt="next job", api_name="/txt2img", **FAST))
