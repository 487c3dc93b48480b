"""Prompt styles over the API: `styles` expands the prompts (info and infotext keep the expanded text), an unknown
style is a 400 naming it, GET /sdapi/v1/prompt-styles lists styles.csv as A1111 does."""

from __future__ import annotations

import json

import pytest
import requests

from tests.api.conftest import start_server

STYLES_CSV = ("name,prompt,negative_prompt\n"
              'Rainy,"{prompt}, in the rain",sunny\n'
              "Best,masterpiece,\n"
              'Broken,"never closed\n')
SMALL = {"steps": 1, "width": 64, "height": 64, "seed": 3}


@pytest.fixture(scope="module")
def styled_server(api_stack, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("api-styles")
    (data_dir / "styles.csv").write_text(STYLES_CSV, encoding="utf-8")
    server, stop = start_server(api_stack, data_dir=data_dir)
    yield server
    stop()


def test_prompt_styles_lists_the_file(styled_server):
    r = requests.get(styled_server.api("prompt-styles"), timeout=30)
    assert r.status_code == 200, r.text
    assert r.json() == [{"name": "Rainy", "prompt": "{prompt}, in the rain", "negative_prompt": "sunny"},
                        {"name": "Best", "prompt": "masterpiece", "negative_prompt": ""}]


def test_styles_expand_the_prompts_that_run(styled_server):
    r = requests.post(styled_server.api("txt2img"), json={**SMALL, "prompt": "a cat", "negative_prompt": "blurry",
                                                          "styles": ["Rainy", "Best"]}, timeout=120)
    assert r.status_code == 200, r.text
    info = json.loads(r.json()["info"])
    assert info["prompt"] == "a cat, in the rain, masterpiece"
    assert info["negative_prompt"] == "blurry, sunny"
    assert info["styles"] == ["Rainy", "Best"]
    assert info["infotexts"][0].startswith("a cat, in the rain, masterpiece\nNegative prompt: blurry, sunny\n")
    assert r.json()["parameters"]["prompt"] == "a cat"  # the request as sent, as A1111 returns it
    # The row styles.csv could not read is reported with the job, not dropped silently.
    assert any("styles.csv line 4" in warning for warning in info["warnings"])


def test_an_unknown_style_is_a_400_naming_it(styled_server):
    r = requests.post(styled_server.api("txt2img"), json={**SMALL, "prompt": "a cat", "styles": ["Rainy", "Nope"]},
                      timeout=60)
    assert r.status_code == 400, r.text
    assert "'Nope'" in r.text and "styles" in r.text and "prompt-styles" in r.text
    # The server keeps working.
    assert requests.get(styled_server.api("prompt-styles"), timeout=30).status_code == 200


def test_an_xyz_plot_starts_from_the_styled_prompt(tmp_path):
    from sdui.api import convert
    from sdui.params import GenerationParams
    from sdui.scripts.xyz import PlotParams
    from sdui.styles import StyleStore

    (tmp_path / "styles.csv").write_text(STYLES_CSV, encoding="utf-8")
    plot, warnings = convert.with_styles(PlotParams(base=GenerationParams(prompt="a cat")), ["Rainy"],
                                         StyleStore.in_data_dir(tmp_path))
    assert (plot.base.prompt, plot.base.negative_prompt) == ("a cat, in the rain", "sunny")
    assert [w.split(":")[0] for w in warnings] == ["styles.csv line 4"]
