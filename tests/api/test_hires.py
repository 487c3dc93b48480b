"""Hires fix through /sdapi/v1/txt2img with A1111's fields, and the list of latent upscale modes."""

from __future__ import annotations

import json

import requests

from tests.api.test_routes import decode

HIRES = {"prompt": "a lighthouse", "width": 64, "height": 64, "steps": 2, "seed": 99, "enable_hr": True,
         "hr_scale": 2, "hr_second_pass_steps": 2, "denoising_strength": 0.5}


def test_txt2img_with_enable_hr_returns_the_hires_image_with_a1111s_keys(api_server):
    r = requests.post(api_server.api("txt2img"), json={**HIRES, "hr_upscaler": "Latent (bicubic)",
                                                       "hr_sampler_name": "DPM++ 2M", "hr_scheduler": "karras",
                                                       "hr_prompt": "a lighthouse at night"}, timeout=120)
    assert r.status_code == 200, r.text
    image = decode(r.json()["images"][0])
    assert image.size == (128, 128)
    text = image.info["parameters"]
    for key in ("Size: 64x64", "Denoising strength: 0.5", "Hires upscale: 2", "Hires steps: 2",
                "Hires upscaler: Latent (bicubic)", "Hires sampler: DPM++ 2M", "Hires schedule type: Karras",
                "Hires prompt: a lighthouse at night"):
        assert key in text, text
    info = json.loads(r.json()["info"])
    assert info["infotexts"][0] == text and info["width"] == 64


def test_use_same_choices_and_resize_fields(api_server):
    r = requests.post(api_server.api("txt2img"), json={
        **HIRES, "hr_resize_x": 96, "hr_resize_y": 80, "hr_checkpoint_name": "Use same checkpoint",
        "hr_sampler_name": "Use same sampler", "hr_scheduler": "Use same scheduler", "hr_upscaler": None}, timeout=120)
    assert r.status_code == 200, r.text
    image = decode(r.json()["images"][0])
    assert image.size == (96, 80)
    text = image.info["parameters"]
    assert "Hires resize: 96x80" in text and "Hires upscaler: Latent" in text and "Hires sampler" not in text


def test_the_same_request_gives_the_same_pixels(api_server):
    first, second = (requests.post(api_server.api("txt2img"), json=HIRES, timeout=120) for _ in range(2))
    assert first.status_code == second.status_code == 200
    assert decode(first.json()["images"][0]).tobytes() == decode(second.json()["images"][0]).tobytes()


def test_latent_upscale_modes_are_listed_as_a1111_lists_them(api_server):
    r = requests.get(api_server.api("latent-upscale-modes"), timeout=30)
    assert r.status_code == 200
    assert [m["name"] for m in r.json()] == ["Latent", "Latent (antialiased)", "Latent (bicubic)",
                                              "Latent (bicubic antialiased)", "Latent (nearest)",
                                              "Latent (nearest-exact)"]
