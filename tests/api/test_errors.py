"""Malformed requests, table-driven, against the real server: each gets a 4xx JSON reply naming the field
and the reason, nothing is saved, and the server still generates afterwards."""

from __future__ import annotations

import base64
import io
import json

import pytest
import requests
from PIL import Image

from sdui.api.errors import error_response
from sdui.engine.generate import GenerationError
from sdui.models.errors import BrokenModel, ModelNotFound, UnrecognizedModel, UnsafeModel

OK = {"prompt": "fine", "width": 64, "height": 64, "steps": 1, "save_images": True}


def png_b64(size=(64, 64)) -> str:
    buf = io.BytesIO()
    Image.new("RGB", size, (1, 2, 3)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


TEXT_B64 = base64.b64encode(b"this is plain text, not an image").decode()


def img2img(**fields) -> dict:
    return {**OK, "init_images": [png_b64()], **fields}


# (route, method, body or raw text, expected status, a word the field/detail must hold)
CASES = [
    ("txt2img", {**OK, "steps": "abc"}, 422, "steps"),
    ("txt2img", {**OK, "steps": 0}, 400, "steps"),
    ("txt2img", {**OK, "steps": 1000}, 400, "steps"),
    ("txt2img", {**OK, "steps": 2.5}, 422, "steps"),
    ("txt2img", {**OK, "width": 65}, 400, "width"),
    ("txt2img", {**OK, "width": -64}, 400, "width"),
    ("txt2img", {**OK, "height": "big"}, 422, "height"),
    ("txt2img", {**OK, "cfg_scale": 100}, 400, "cfg_scale"),
    ("txt2img", {**OK, "cfg_scale": "lots"}, 422, "cfg_scale"),
    ("txt2img", {**OK, "batch_size": 0}, 400, "batch_size"),
    ("txt2img", {**OK, "batch_size": 100}, 400, "batch_size"),
    ("txt2img", {**OK, "n_iter": 0}, 400, "n_iter"),
    ("txt2img", {**OK, "seed": -5}, 400, "seed"),
    ("txt2img", {**OK, "seed": 2**40}, 400, "seed"),
    ("txt2img", {**OK, "subseed_strength": 2}, 400, "subseed_strength"),
    ("txt2img", {**OK, "sampler_name": "Nope Sampler"}, 400, "sampler_name"),
    ("txt2img", {**OK, "scheduler": "wobbly"}, 400, "scheduler"),
    ("txt2img", {**OK, "prompt": 123}, 422, "prompt"),
    ("txt2img", {**OK, "send_images": "perhaps"}, 422, "send_images"),
    ("txt2img", "this is not json", 422, "JSON"),
    ("txt2img", [1, 2, 3], 422, "dictionary"),
    ("txt2img", {**OK, "enable_hr": True, "hr_scale": 0.5}, 400, "hr_scale"),
    ("txt2img", {**OK, "enable_hr": True, "hr_scale": 8, "width": 1024}, 400, "hires pass would make"),
    ("txt2img", {**OK, "enable_hr": True, "hr_upscaler": "4x-Nothing"}, 400, "hr_upscaler"),
    ("txt2img", {**OK, "enable_hr": True, "hr_sampler_name": "Nope"}, 400, "hr_sampler_name"),
    ("txt2img", {**OK, "enable_hr": True, "hr_checkpoint_name": "no-such-model"}, 404, "hr_checkpoint_name"),
    ("txt2img", {**OK, "script_name": "prompt matrix"}, 400, "script_name"),
    ("txt2img", {**OK, "alwayson_scripts": {"controlnet": {"args": [{}]}}}, 400, "alwayson_scripts"),
    ("txt2img", {**OK, "restore_faces": True}, 400, "restore_faces"),
    ("txt2img", {**OK, "tiling": True}, 400, "tiling"),
    ("txt2img", {**OK, "styles": ["cinematic"]}, 400, "styles"),
    ("txt2img", {**OK, "override_settings": {"sd_model_checkpoint": "../../etc/passwd"}}, 400, "sd_model_checkpoint"),
    ("txt2img", {**OK, "override_settings": {"sd_model_checkpoint": "/abs/model.safetensors"}}, 400,
     "sd_model_checkpoint"),
    ("txt2img", {**OK, "override_settings": {"sd_model_checkpoint": "no-such-model"}}, 404, "sd_model_checkpoint"),
    ("txt2img", {**OK, "override_settings": "not a dict"}, 422, "override_settings"),
    ("img2img", {**OK}, 400, "init_images"),
    ("img2img", img2img(init_images=["!!!not base64!!!"]), 400, "init_images"),
    ("img2img", img2img(init_images=[TEXT_B64]), 400, "init_images"),
    ("img2img", img2img(init_images="not a list"), 422, "init_images"),
    ("img2img", img2img(init_images=["A" * (3 * 2**20)]), 413, "init_images"),
    ("img2img", img2img(mask=TEXT_B64), 400, "mask"),
    ("img2img", img2img(mask="%%%"), 400, "mask"),
    ("img2img", img2img(inpainting_fill=7), 400, "inpainting_fill"),
    ("img2img", img2img(resize_mode=5), 400, "resize_mode"),
    ("img2img", img2img(denoising_strength=2), 400, "denoising_strength"),
    ("img2img", img2img(inpainting_mask_invert=3), 400, "inpainting_mask_invert"),
    ("img2img", img2img(subseed_strength=0.5), 400, "subseed_strength"),  # txt2img only: refused by validate()
    ("png-info", {"image": "%%%"}, 400, "image"),
    ("png-info", {}, 422, "image"),
    ("png-info", {"image": TEXT_B64}, 400, "image"),
    ("options", {"no_such_option": 1}, 422, "no_such_option"),
    ("options", {"sd_model_checkpoint": "../outside"}, 400, "sd_model_checkpoint"),
    ("options", {"sd_model_checkpoint": "no-such-model"}, 404, "sd_model_checkpoint"),
    ("options", {"samples_format": "gif"}, 400, "samples_format"),
    ("options", {"CLIP_stop_at_last_layers": 50}, 400, "CLIP_stop_at_last_layers"),
]


def saved(server) -> list:
    return sorted(p for p in server.stack.outputs.rglob("*") if p.is_file() and not p.name.startswith("."))


def test_at_least_thirty_cases():
    assert len(CASES) >= 30


@pytest.mark.parametrize("route, body, status, word", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_malformed_request_gets_a_reason(api_server, route, body, status, word):
    before = saved(api_server)
    if isinstance(body, str):
        r = requests.post(api_server.api(route), data=body, headers={"Content-Type": "application/json"}, timeout=60)
    else:
        r = requests.post(api_server.api(route), json=body, timeout=60)
    assert r.status_code == status, r.text
    reply = r.json()
    assert {"error", "detail", "errors"} <= set(reply)
    assert word.lower() in (f"{reply.get('field')} {reply['detail']}").lower(), reply
    assert reply["errors"] and reply["errors"][0]["message"]
    assert saved(api_server) == before


@pytest.mark.parametrize("error, status, kind", [
    (GenerationError("NaN in the images even after an fp32 VAE retry"), 500, "GenerationError"),
    (BrokenModel("x.safetensors: truncated"), 500, "BrokenModel"),
    (UnsafeModel("x.ckpt: pickle calls posix.system"), 400, "UnsafeModel"),
    (UnrecognizedModel("x.safetensors: not Stable Diffusion"), 400, "UnrecognizedModel"),
    (ModelNotFound("no checkpoint named 'x'"), 404, "ModelNotFound"),
    (ValueError("steps must be between 1 and 150; got 0"), 400, "ValueError"),
    (RuntimeError("something unexpected"), 500, "RuntimeError"),
])
def test_error_response_mapping(error, status, kind):
    reply = error_response(error)
    body = json.loads(reply.body)
    assert reply.status_code == status and body["error"] == kind and str(error) in body["detail"]


def test_progress_query_type_error(api_server):
    r = requests.get(api_server.api("progress"), params={"skip_current_image": "maybe"}, timeout=30)
    assert r.status_code == 422 and r.json()["field"] == "skip_current_image"


def test_server_still_generates_after_bad_requests(api_server):
    r = requests.post(api_server.api("txt2img"), json={**OK, "save_images": False, "seed": 31}, timeout=60)
    assert r.status_code == 200, r.text
    assert json.loads(r.json()["info"])["all_seeds"] == [31]
