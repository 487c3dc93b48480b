"""Settings that persist, in real Chromium: a setting changed in the Settings tab survives a restart of the server
(shown in the tab and in effect), config.json's problems are shown, and ui-config.json's values reach the page.

These tests start their own servers on one data dir (not the shared session server): its files must survive them.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from sdui.models.tiny import DEMO_NAME
from sdui.options import CONFIG_NAME
from sdui.ui.ui_config import UI_CONFIG_NAME
from tests.browser.helpers import choose_option, fill_small_txt2img, open_tab, set_slider, wait_for_result
from tests.ui.server import running_app


SECOND_MODEL = "second-tiny"


def stored(data_dir: Path) -> dict:
    return json.loads((data_dir / CONFIG_NAME).read_text())


@pytest.fixture(scope="module")
def data_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """A data dir with a bad value and an A1111-only key in config.json and one value in ui-config.json."""
    work = tmp_path_factory.mktemp("settings-data")
    shutil.copytree(tiny_model_dir / DEMO_NAME, work / "models" / DEMO_NAME)
    shutil.copytree(tiny_model_dir / DEMO_NAME, work / "models" / SECOND_MODEL)
    (work / CONFIG_NAME).write_text(json.dumps({"CLIP_stop_at_last_layers": 50, "img2img_color_correction": True}))
    (work / UI_CONFIG_NAME).write_text(json.dumps({"txt2img/Sampling steps/value": 7}))
    return work


@pytest.fixture(scope="module")
def first_run(data_dir):
    with running_app(data_dir / "models", data_dir) as (url, _outputs):
        yield url


def wait_until_stored(data_dir: Path, name: str, value, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while stored(data_dir).get(name) != value:
        assert time.monotonic() < deadline, f"{name} is {stored(data_dir).get(name)!r} in config.json, not {value!r}"
        time.sleep(0.1)


def open_page(browser, url):
    context = browser.new_context(viewport={"width": 1400, "height": 1100})
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(url)
    page.wait_for_selector("#txt2img_generate")
    return context, page


def number(page, elem_id: str) -> str:
    return page.locator(f"#{elem_id} input[type=number]").input_value()


def test_a_ui_config_value_shows_after_start(browser, first_run, data_dir):
    context, page = open_page(browser, first_run)
    try:
        assert number(page, "txt2img_steps") == "7"
    finally:
        context.close()
    written = json.loads((data_dir / UI_CONFIG_NAME).read_text())
    # topped up with the other widgets' built-in defaults at start (as A1111 does)
    assert written["img2img/Sampling steps/value"] == 20 and "txt2img/Prompt/value" in written


def test_a_setting_survives_a_restart(browser, first_run, data_dir):
    context, page = open_page(browser, first_run)
    try:
        open_tab(page, "Settings")
        messages = page.locator("#settings_messages")
        assert "CLIP_stop_at_last_layers" in messages.inner_text() and "50" in messages.inner_text()
        assert number(page, "setting_CLIP_stop_at_last_layers") == "1"  # the bad value fell back
        set_slider(page, "setting_CLIP_stop_at_last_layers", 3)
        page.locator("#setting_samples_format").get_by_label("jpg", exact=True).check()
        page.locator("#settings_submit").click()
        result = page.locator("#settings_result")
        result.get_by_text("Saved 2 setting(s)").wait_for()
        assert "CLIP_stop_at_last_layers" in result.inner_text() and "samples_format" in result.inner_text()
        assert number(page, "clip_skip") == "3"  # the top bar follows at once
        choose_option(page, "checkpoint", SECOND_MODEL)  # as A1111: the top bar's choice is sd_model_checkpoint
        page.wait_for_function("() => document.querySelector('#model_status').innerText.includes('loads')")
        choose_option(page, "randn_source", "NV")  # the bar's other quick settings are kept too
        page.locator("#eta_noise_seed_delta input").fill("31337")
        wait_until_stored(data_dir, "eta_noise_seed_delta", 31337)
    finally:
        context.close()
    assert stored(data_dir) == {"CLIP_stop_at_last_layers": 3, "img2img_color_correction": True,
                                "samples_format": "jpg", "sd_model_checkpoint": SECOND_MODEL, "randn_source": "NV",
                                "eta_noise_seed_delta": 31337}

    with running_app(data_dir / "models", data_dir) as (url, outputs):
        context, page = open_page(browser, url)
        try:
            assert number(page, "clip_skip") == "3"
            assert page.locator("#checkpoint input").input_value() == SECOND_MODEL
            assert page.locator("#randn_source input").input_value() == "NV"
            assert page.locator("#eta_noise_seed_delta input").input_value() == "31337"
            fill_small_txt2img(page, "kept after a restart")
            set_slider(page, "txt2img_steps", 1)
            page.locator("#txt2img_generate").click()
            infotext = wait_for_result(page, "txt2img")
            assert "Clip skip: 3" in infotext and f"Model: {SECOND_MODEL}" in infotext
            assert "RNG: NV" in infotext and "ENSD: 31337" in infotext
            open_tab(page, "Settings")
            assert number(page, "setting_CLIP_stop_at_last_layers") == "3"
            assert page.locator("#setting_samples_format").get_by_label("jpg", exact=True).is_checked()
            messages = page.locator("#settings_messages")
            assert not messages.is_visible(), messages.inner_text()  # the files are clean now
            page.locator("#settings_save_ui_defaults").click()  # txt2img's prompt, 1 step, 64x64 become defaults
            page.locator("#settings_defaults_result").get_by_text("default(s)").wait_for()
        finally:
            context.close()
        assert [p.suffix for p in outputs.glob("txt2img-images/*/*") if p.is_file()] == [".jpg"]
    ui_defaults = json.loads((data_dir / UI_CONFIG_NAME).read_text())
    assert ui_defaults["txt2img/Sampling steps/value"] == 1 and ui_defaults["txt2img/Width/value"] == 64
    assert ui_defaults["txt2img/Prompt/value"] == "kept after a restart"
