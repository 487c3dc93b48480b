"""The API's `infotext` field (A1111 1.10): a corpus of real infotexts, each key kept or named in the warnings."""

from __future__ import annotations

import base64
import io
import json

import pytest
import requests
from PIL import Image

from sdui.outputs.infotext import infotext_mode, parse_infotext
from sdui.params import Mode
from tests.outputs.infotext_corpus import CORPUS, IDS, OWN_KEYS, dropped_silently, small_fields

SMALL = {"width": 64, "height": 64, "steps": 2}


def b64_png(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def request_for(text: str) -> tuple[str, dict]:
    """The route and a small, fast request that carries `text` as its infotext."""
    payload = {"infotext": text, **small_fields(text)}
    mode = infotext_mode(parse_infotext(text))
    if mode is Mode.TXT2IMG:
        return "txt2img", payload
    payload["init_images"] = [b64_png(Image.new("RGB", (64, 64), (120, 90, 60)))]
    if mode is not Mode.IMG2IMG:
        mask = Image.new("L", (64, 64), 0)
        mask.paste(255, (16, 16, 48, 48))
        payload["mask"] = b64_png(mask)
    return "img2img", payload


def test_the_corpus_is_real_and_varied():
    assert len(CORPUS) >= 20
    assert all(entry["source"].startswith(("http", "github.com")) or "/" in entry["source"] for entry in CORPUS)
    modes = {infotext_mode(parse_infotext(entry["text"])) for entry in CORPUS}
    assert {Mode.TXT2IMG, Mode.IMG2IMG} <= modes or {Mode.TXT2IMG, Mode.INPAINT} <= modes


@pytest.mark.parametrize("entry", CORPUS, ids=IDS)
def test_every_key_of_a_real_infotext_is_kept_or_named_in_the_warnings(api_server, entry):
    route, payload = request_for(entry["text"])
    r = requests.post(api_server.api(route), json=payload, timeout=300)
    assert r.status_code == 200, r.text
    info = json.loads(r.json()["info"])
    own = {field: value for field, value in payload.items() if field in OWN_KEYS}
    dropped = dropped_silently(entry["text"], info["infotexts"][0], own, info["warnings"])
    assert not dropped, f"dropped silently: {dropped}; warnings: {info['warnings']}"


def test_request_fields_win_and_the_infotext_fills_the_rest(api_server):
    text = ("a red fox\nNegative prompt: blurry\nSteps: 3, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 5.5, "
            "Seed: 4242, Size: 64x64, Clip skip: 2, ENSD: 31337, RNG: NV, Version: v1.10.1")
    r = requests.post(api_server.api("txt2img"), json={"infotext": text, "seed": 7, "prompt": "a blue fox"},
                      timeout=120)
    assert r.status_code == 200, r.text
    info = json.loads(r.json()["info"])
    made = parse_infotext(info["infotexts"][0])
    assert (made["Prompt"], made["Seed"], made["Negative prompt"]) == ("a blue fox", "7", "blurry")
    assert (made["Steps"], made["Sampler"], made["Schedule type"], made["CFG scale"]) == ("3", "DPM++ 2M", "Karras",
                                                                                          "5.5")
    assert (made["Clip skip"], made["ENSD"], made["RNG"]) == ("2", "31337", "NV")
    assert info["warnings"] == []


def test_override_settings_win_over_the_infotext_and_unknown_ones_are_warned(api_server):
    text = "x\nSteps: 2, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 64x64, Clip skip: 2"
    r = requests.post(api_server.api("txt2img"), json={
        "infotext": text, "override_settings": {"CLIP_stop_at_last_layers": 3, "samples_format": "jpg",
                                                "img2img_fix_steps": True}}, timeout=120)
    assert r.status_code == 200, r.text
    info = json.loads(r.json()["info"])
    assert parse_infotext(info["infotexts"][0])["Clip skip"] == "3"
    assert info["warnings"] == ["override_settings: samples_format, img2img_fix_steps: not applied: sdui applies "
                                "only sd_model_checkpoint, sd_vae, CLIP_stop_at_last_layers, randn_source, "
                                "eta_noise_seed_delta, refiner_switch_by_sample_steps, hires_fix_refiner_pass, "
                                "use_old_scheduling"]


def test_a_missing_model_and_extension_keys_are_warned_by_name(api_server):
    text = ("portrait\nSteps: 2, Sampler: Euler a, CFG scale: 7, Seed: 9, Size: 64x64, Model hash: 15012c538f, "
            "Model: realisticVisionV51_v51VAE, ADetailer model: face_yolov8n.pt, ADetailer confidence: 0.3, "
            "Some extension knob: 5")
    r = requests.post(api_server.api("txt2img"), json={"infotext": text}, timeout=120)
    assert r.status_code == 200, r.text
    warnings = json.loads(r.json()["info"])["warnings"]
    assert any(w.startswith("Model, Model hash: 'realisticVisionV51_v51VAE' [15012c538f] is not installed: used ")
               for w in warnings), warnings
    assert "ADetailer model, ADetailer confidence: not applied: sdui has no ADetailer" in warnings
    assert "Some extension knob: 5: not applied: sdui does not know this key" in warnings


def test_img2img_takes_the_mask_keys_of_an_inpaint_infotext(api_server):
    text = ("a door\nSteps: 2, Sampler: Euler a, CFG scale: 7, Seed: 3, Size: 64x64, Denoising strength: 0.6, "
            "Mask blur: 2, Inpaint area: Only masked, Masked area padding: 8, Masked content: latent noise")
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (8, 8, 40, 40))
    payload = {"infotext": text, "init_images": [b64_png(Image.new("RGB", (64, 64), "gray"))], "mask": b64_png(mask)}
    r = requests.post(api_server.api("img2img"), json=payload, timeout=120)
    assert r.status_code == 200, r.text
    made = parse_infotext(json.loads(r.json()["info"])["infotexts"][0])
    assert (made["Denoising strength"], made["Mask blur"], made["Inpaint area"]) == ("0.6", "2", "Only masked")
    assert (made["Masked area padding"], made["Masked content"]) == ("8", "latent noise")


@pytest.mark.parametrize(("payload", "field"), [
    ({"infotext": "   "}, "infotext"),
    ({"infotext": "x\nSteps: many, Sampler: Euler, Seed: 1"}, "infotext"),
    ({"override_settings": {"randn_source": "cuda"}}, "override_settings.randn_source"),
    ({"override_settings": {"eta_noise_seed_delta": -5}}, "override_settings.eta_noise_seed_delta"),
])
def test_bad_infotext_and_rng_settings_are_400s(api_server, payload, field):
    r = requests.post(api_server.api("txt2img"), json={**SMALL, **payload}, timeout=60)
    assert r.status_code == 400, r.text
    assert field in r.text


def test_rng_options_are_read_and_written(api_server):
    try:
        r = requests.post(api_server.api("options"), json={"randn_source": "NV", "eta_noise_seed_delta": 31337},
                          timeout=30)
        assert r.status_code == 200, r.text
        options = requests.get(api_server.api("options"), timeout=30).json()
        assert (options["randn_source"], options["eta_noise_seed_delta"]) == ("NV", 31337)
        r = requests.post(api_server.api("txt2img"), json={"prompt": "x", "seed": 1, **SMALL}, timeout=120)
        made = parse_infotext(json.loads(r.json()["info"])["infotexts"][0])
        assert (made["RNG"], made["ENSD"]) == ("NV", "31337")
        assert requests.post(api_server.api("options"), json={"randn_source": "AMD"}, timeout=30).status_code == 400
    finally:
        requests.post(api_server.api("options"), json={"randn_source": "CPU", "eta_noise_seed_delta": 0}, timeout=30)


def test_sampler_knobs_sdui_does_not_apply_are_named(api_server):
    defaults = {"eta": None, "s_churn": 0, "s_tmax": 0, "s_tmin": 0, "s_noise": 1, "firstphase_width": 0}
    r = requests.post(api_server.api("txt2img"), json={**SMALL, **defaults}, timeout=120)
    assert json.loads(r.json()["info"])["warnings"] == []
    r = requests.post(api_server.api("txt2img"), json={**SMALL, "eta": 0.5, "s_churn": 2, "firstphase_width": 256},
                      timeout=120)
    assert json.loads(r.json()["info"])["warnings"] == [
        "eta=0.5, s_churn=2.0, firstphase_width=256: not applied: sdui runs its samplers with their own settings "
        "(firstphase_width/height: set width/height and hr_resize_x/y)"]
