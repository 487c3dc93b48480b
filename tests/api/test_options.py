"""/sdapi/v1/options on an options store kept in config.json: POST persists, GET (and a restart) reads it back,
the value is in effect, and an option a command-line flag fixes is refused with the flag's name."""

from __future__ import annotations

import json
from dataclasses import replace

import fastapi
import requests

from sdui.api import mount_api
from sdui.options import CONFIG_NAME, Options
from tests.api.conftest import serve


def start(stack, settings, data_dir):
    """The API on the shared stack with a store in `data_dir`/config.json, as app.py mounts it."""
    options = Options.for_data_dir(replace(settings, data_dir=data_dir))
    app = fastapi.FastAPI()
    mount_api(app, queue=stack.queue, manager=stack.manager, catalog=stack.catalog, settings=settings,
              options=options)
    url, stop = serve(app)
    return f"{url}/sdapi/v1/", stop


def test_post_persists_and_survives_a_restart(api_stack, tmp_path):
    url, stop = start(api_stack, api_stack.settings, tmp_path)
    try:
        r = requests.post(url + "options", json={"CLIP_stop_at_last_layers": 2, "eta_noise_seed_delta": 31337,
                                                 "samples_format": "webp"}, timeout=60)
        assert r.status_code == 200, r.text
        assert json.loads((tmp_path / CONFIG_NAME).read_text()) == {
            "CLIP_stop_at_last_layers": 2, "eta_noise_seed_delta": 31337, "samples_format": "webp"}
        got = requests.get(url + "options", timeout=60).json()
        assert (got["CLIP_stop_at_last_layers"], got["eta_noise_seed_delta"]) == (2, 31337)
        # a refused value changes nothing, on disk or in GET
        r = requests.post(url + "options", json={"CLIP_stop_at_last_layers": 3, "randn_source": "AMD"}, timeout=60)
        assert r.status_code == 400 and r.json()["field"] == "randn_source", r.text
        assert requests.get(url + "options", timeout=60).json()["CLIP_stop_at_last_layers"] == 2
    finally:
        stop()
    url, stop = start(api_stack, api_stack.settings, tmp_path)  # a new store read from the same file
    try:
        got = requests.get(url + "options", timeout=60).json()
        assert (got["CLIP_stop_at_last_layers"], got["samples_format"]) == (2, "webp")
        r = requests.post(url + "txt2img", json={"prompt": "kept", "steps": 1, "width": 64, "height": 64,
                                                 "save_images": False}, timeout=120)
        assert r.status_code == 200, r.text
        infotext = json.loads(r.json()["info"])["infotexts"][0]
        assert "Clip skip: 2" in infotext and "ENSD: 31337" in infotext
    finally:
        stop()


def test_an_option_fixed_by_a_flag_is_refused(api_stack, tmp_path):
    (tmp_path / CONFIG_NAME).write_text(json.dumps({"samples_format": "webp", "img2img_fix_steps": True}))
    flagged = replace(api_stack.settings, save_format="jpg", flags_given=frozenset({"save_format"}))
    url, stop = start(api_stack, flagged, tmp_path)
    try:
        assert requests.get(url + "options", timeout=60).json()["samples_format"] == "jpg"  # the flag wins
        r = requests.post(url + "options", json={"samples_format": "png"}, timeout=60)
        assert r.status_code == 400 and r.json()["field"] == "samples_format", r.text
        assert "--save-format" in r.json()["detail"]
        assert requests.post(url + "options", json={"samples_format": "jpg"}, timeout=60).status_code == 200
        # the file keeps its own value (for runs without the flag) and A1111's other keys
        assert json.loads((tmp_path / CONFIG_NAME).read_text()) == {"samples_format": "webp",
                                                                    "img2img_fix_steps": True}
    finally:
        stop()
