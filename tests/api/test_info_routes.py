"""The descriptive routes against the real server: models, refresh, options (switching the model), samplers,
schedulers, flags, memory, the empty extras and the OpenAPI schema."""

from __future__ import annotations

import json
import shutil

import requests

from sdui.models.tiny import DEMO_NAME
from tests.api.conftest import BROKEN_MODEL, SECOND_MODEL


def test_sd_models_and_refresh(api_server, api_models_dir):
    models = requests.get(api_server.api("sd-models"), timeout=60).json()
    names = [m["model_name"] for m in models]
    assert DEMO_NAME in names and SECOND_MODEL in names
    demo = models[names.index(DEMO_NAME)]
    assert demo["filename"].endswith(DEMO_NAME) and demo["title"].split(" [")[0] == DEMO_NAME
    r = requests.post(api_server.api("txt2img"), json={"prompt": "x", "steps": 1, "width": 64, "height": 64},
                      timeout=120)
    assert r.status_code == 200, r.text
    # The first image hashed the model (its infotext has the hash); from then on sd-models reports it.
    demo = requests.get(api_server.api("sd-models"), timeout=60).json()[names.index(DEMO_NAME)]
    assert len(demo["hash"]) == 10 and demo["sha256"].startswith(demo["hash"])
    assert f"Model hash: {demo['hash']}" in json.loads(r.json()["info"])["infotexts"][0]
    shutil.copytree(api_models_dir / SECOND_MODEL, api_models_dir / "third-tiny")
    try:
        assert requests.post(api_server.api("refresh-checkpoints"), timeout=60).status_code == 200
        names = [m["model_name"] for m in requests.get(api_server.api("sd-models"), timeout=60).json()]
        assert "third-tiny" in names
    finally:
        shutil.rmtree(api_models_dir / "third-tiny")
        requests.post(api_server.api("refresh-checkpoints"), timeout=60)


def test_options_switch_the_default_model(api_server):
    options = requests.get(api_server.api("options"), timeout=60).json()
    assert options["sd_model_checkpoint"].split(" [")[0] == DEMO_NAME  # the hash shows once computed
    assert options["samples_format"] == "png" and options["CLIP_stop_at_last_layers"] == 1
    try:
        r = requests.post(api_server.api("options"), json={"sd_model_checkpoint": SECOND_MODEL}, timeout=120)
        assert r.status_code == 200, r.text
        current = requests.get(api_server.api("options"), timeout=60).json()["sd_model_checkpoint"]
        assert current.split(" [")[0] == SECOND_MODEL
        r = requests.post(api_server.api("txt2img"), json={"prompt": "on the second", "steps": 1, "width": 64,
                                                           "height": 64}, timeout=120)
        assert r.status_code == 200, r.text
        info = json.loads(r.json()["info"])
        assert info["sd_model_name"] == SECOND_MODEL and f"Model: {SECOND_MODEL}" in info["infotexts"][0]
        # a request's own override_settings wins over the default
        r = requests.post(api_server.api("txt2img"), timeout=120, json={
            "prompt": "override", "steps": 1, "width": 64, "height": 64,
            "override_settings": {"sd_model_checkpoint": DEMO_NAME}, "override_settings_restore_afterwards": True})
        assert r.status_code == 200, r.text
        assert json.loads(r.json()["info"])["sd_model_name"] == DEMO_NAME
        # posting back what GET returned is accepted (read-only options unchanged)
        same = {k: v for k, v in options.items() if k != "sd_model_checkpoint"}
        assert requests.post(api_server.api("options"), json=same, timeout=60).status_code == 200
    finally:
        r = requests.post(api_server.api("options"), json={"sd_model_checkpoint": DEMO_NAME}, timeout=120)
        assert r.status_code == 200, r.text


def test_options_refuse_a_model_that_does_not_load(api_server):
    before = requests.get(api_server.api("options"), timeout=60).json()["sd_model_checkpoint"]
    r = requests.post(api_server.api("options"), json={"sd_model_checkpoint": BROKEN_MODEL}, timeout=120)
    assert r.status_code in (400, 500) and BROKEN_MODEL in r.json()["detail"], r.text
    assert requests.get(api_server.api("options"), timeout=60).json()["sd_model_checkpoint"] == before


def test_samplers_and_schedulers(api_server):
    samplers = requests.get(api_server.api("samplers"), timeout=30).json()
    by_name = {s["name"]: s for s in samplers}
    assert {"Euler a", "Euler", "DPM++ 2M", "DDIM", "UniPC"} <= set(by_name)
    assert "k_euler_a" in by_name["Euler a"]["aliases"] and isinstance(by_name["Euler"]["options"], dict)
    schedulers = requests.get(api_server.api("schedulers"), timeout=30).json()
    assert {"name": "karras", "label": "Karras"}.items() <= next(s for s in schedulers if s["name"] == "karras").items()
    assert "sgm_uniform" in [s["name"] for s in schedulers]


def test_flags_memory_and_empty_extras(api_server):
    flags = requests.get(api_server.api("cmd-flags"), timeout=30).json()
    assert flags["api"] is True and flags["ckpt_dir"] == str(api_server.stack.settings.ckpt_dir)
    assert flags["api_auth"] is None and flags["port"] == 7860
    memory = requests.get(api_server.api("memory"), timeout=30).json()
    assert memory["ram"]["total"] > memory["ram"]["free"] > 0 and isinstance(memory["cuda"], dict)
    assert requests.get(api_server.api("scripts"), timeout=30).json() == {"txt2img": ["x/y/z plot"],
                                                                          "img2img": ["x/y/z plot"]}
    for route in ("sd-vae", "script-info", "prompt-styles", "face-restorers"):
        assert requests.get(api_server.api(route), timeout=30).json() == [], route
    upscalers = requests.get(api_server.api("upscalers"), timeout=30).json()
    assert [u["name"] for u in upscalers] == ["None", "Lanczos", "Nearest"]  # the built-ins, no model files
    assert requests.get(api_server.api("embeddings"), timeout=30).json() == {"loaded": {}, "skipped": {}}


def test_openapi_lists_the_routes(api_server):
    paths = requests.get(f"{api_server.url}/openapi.json", timeout=30).json()["paths"]
    for route in ("txt2img", "img2img", "png-info", "progress", "interrupt", "skip", "sd-models", "options",
                  "samplers", "schedulers", "refresh-checkpoints", "latent-upscale-modes"):
        assert f"/sdapi/v1/{route}" in paths, route
    assert "enable_hr" in json.dumps(requests.get(f"{api_server.url}/openapi.json", timeout=30).json())


def test_docs_when_the_host_app_has_none(api_stack):
    import fastapi

    from sdui.api import mount_api
    from tests.api.conftest import serve

    app = fastapi.FastAPI(docs_url=None, openapi_url=None)  # as Gradio builds its app
    mount_api(app, queue=api_stack.queue, manager=api_stack.manager, catalog=api_stack.catalog,
              settings=api_stack.settings)
    url, stop = serve(app)
    try:
        assert "swagger" in requests.get(f"{url}/docs", timeout=30).text.lower()
        paths = requests.get(f"{url}/sdapi/openapi.json", timeout=30).json()["paths"]
        assert "/sdapi/v1/txt2img" in paths and "/sdapi/v1/options" in paths
    finally:
        stop()
