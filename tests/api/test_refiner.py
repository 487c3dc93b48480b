"""The refiner through /sdapi/v1/txt2img and img2img: A1111's request fields, its settings, refusals and info."""

from __future__ import annotations

import base64
import io
import json

import requests
from PIL import Image

from sdui.outputs.infotext import parse_infotext
from tests.api.conftest import SECOND_MODEL
from tests.api.test_routes import decode

JOB = {"prompt": "a lighthouse", "width": 64, "height": 64, "steps": 4, "seed": 5, "sampler_name": "Euler"}


def _post(api_server, route: str, payload: dict) -> requests.Response:
    return requests.post(api_server.api(route), json=payload, timeout=120)


def test_txt2img_switches_to_the_refiner_and_says_so_in_the_infotext_and_info(api_server):
    r = _post(api_server, "txt2img", {**JOB, "refiner_checkpoint": SECOND_MODEL, "refiner_switch_at": 0.6})
    assert r.status_code == 200, r.text
    text = decode(r.json()["images"][0]).info["parameters"]
    keys = parse_infotext(text)
    assert keys["Refiner"].startswith(f"{SECOND_MODEL} [") and keys["Refiner switch at"] == "0.6"
    info = json.loads(r.json()["info"])
    assert info["infotexts"][0] == text
    assert info["extra_generation_params"]["Refiner"] == keys["Refiner"]
    assert info["extra_generation_params"]["Refiner switch at"] == 0.6
    assert r.json()["parameters"]["refiner_checkpoint"] == SECOND_MODEL


def test_no_switch_point_is_a1111s_ui_default_and_none_means_no_refiner(api_server):
    r = _post(api_server, "txt2img", {**JOB, "refiner_checkpoint": SECOND_MODEL})
    assert parse_infotext(json.loads(r.json()["info"])["infotexts"][0])["Refiner switch at"] == "0.8"
    for none in ("None", "", None):
        r = _post(api_server, "txt2img", {**JOB, "refiner_checkpoint": none, "refiner_switch_at": 0.5})
        assert r.status_code == 200, r.text
        assert "Refiner" not in json.loads(r.json()["info"])["infotexts"][0]


def test_a1111s_refiner_settings_come_as_override_settings(api_server):
    r = _post(api_server, "txt2img", {**JOB, "enable_hr": True, "hr_scale": 2, "hr_second_pass_steps": 2,
                                       "denoising_strength": 0.5, "refiner_checkpoint": SECOND_MODEL,
                                       "refiner_switch_at": 0.5,  # by steps 0.8 of 4 is never reached: 3 / 4 < 0.8
                                       "override_settings": {"refiner_switch_by_sample_steps": True,
                                                             "hires_fix_refiner_pass": "first pass"}})
    assert r.status_code == 200, r.text
    info = json.loads(r.json()["info"])
    keys = parse_infotext(info["infotexts"][0])
    assert (keys["Refiner switch by sampling steps"], keys["Hires refiner"]) == ("True", "first pass")
    assert info["warnings"] == []


def test_img2img_takes_the_refiner_too(api_server):
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (90, 120, 40)).save(buffer, format="PNG")
    r = _post(api_server, "img2img", {**JOB, "init_images": [base64.b64encode(buffer.getvalue()).decode()],
                                       "denoising_strength": 0.5, "refiner_checkpoint": SECOND_MODEL})
    assert r.status_code == 200, r.text
    assert parse_infotext(json.loads(r.json()["info"])["infotexts"][0])["Refiner"].startswith(SECOND_MODEL)


def test_bad_refiner_fields_are_400s_naming_them(api_server):
    cases = [({"refiner_checkpoint": "not-installed"}, "refiner_checkpoint"),
             ({"refiner_checkpoint": "../outside"}, "refiner_checkpoint"),
             ({"refiner_checkpoint": SECOND_MODEL, "refiner_switch_at": 0}, "refiner_switch_at"),
             ({"refiner_checkpoint": SECOND_MODEL, "refiner_switch_at": 1.5}, "refiner_switch_at"),
             ({"override_settings": {"hires_fix_refiner_pass": "later"}}, "override_settings.hires_fix_refiner_pass"),
             ({"override_settings": {"refiner_switch_by_sample_steps": "yes"}},
              "override_settings.refiner_switch_by_sample_steps")]
    for fields, field in cases:
        r = _post(api_server, "txt2img", {**JOB, **fields})
        assert r.status_code == 400, (fields, r.text)
        assert r.json()["field"] == field, (fields, r.json())
    assert "not-installed" in _post(api_server, "txt2img", {**JOB, **cases[0][0]}).json()["detail"]


def test_an_infotext_with_a_refiner_fills_the_request(api_server):
    made = _post(api_server, "txt2img", {**JOB, "refiner_checkpoint": SECOND_MODEL, "refiner_switch_at": 0.6})
    text = json.loads(made.json()["info"])["infotexts"][0]
    again = _post(api_server, "txt2img", {"infotext": text})
    assert again.status_code == 200, again.text
    info = json.loads(again.json()["info"])
    assert info["warnings"] == [] and info["infotexts"][0] == text
    assert again.json()["images"][0] == made.json()["images"][0]


def test_override_settings_use_old_scheduling_reaches_the_job_and_its_infotext(api_server):
    job = {**JOB, "prompt": "a [cat:dog:2.0]", "steps": 2}
    plain = _post(api_server, "txt2img", job)
    old = _post(api_server, "txt2img", {**job, "override_settings": {"use_old_scheduling": True}})
    assert plain.status_code == old.status_code == 200, (plain.text, old.text)
    assert "Old prompt editing timelines" not in json.loads(plain.json()["info"])["infotexts"][0]
    assert "Old prompt editing timelines: True" in json.loads(old.json()["info"])["infotexts"][0]
    bad = _post(api_server, "txt2img", {**job, "override_settings": {"use_old_scheduling": "yes"}})
    assert bad.status_code == 400 and "use_old_scheduling" in bad.text
