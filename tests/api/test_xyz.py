"""The X/Y/Z plot through /sdapi/v1/txt2img and /img2img with A1111's script_name and script_args."""

from __future__ import annotations

import base64
import io
import json

import pytest
import requests
from PIL import Image

from sdui.api import convert
from sdui.api.errors import ApiError
from sdui.api.models import Txt2ImgRequest
from sdui.scripts.xyz import PlotParams
from tests.api.test_convert import NoCatalog
from tests.api.test_routes import decode

STEPS, CFG, PROMPT_SR, SAMPLER, CHECKPOINT = 4, 6, 7, 9, 11  # indices of A1111's txt2img axis list
SMALL = {"prompt": "a lighthouse", "width": 64, "height": 64, "steps": 1, "seed": 7, "sampler_name": "Euler"}


def request(args, **fields) -> Txt2ImgRequest:
    return Txt2ImgRequest(**{**SMALL, **fields, "script_name": "X/Y/Z Plot", "script_args": args})


def test_script_args_in_a1111s_order():
    plot = convert.txt2img_params(request([STEPS, "1-2", [], SAMPLER, "", ["Euler", "DDIM"], 0, "", [], False,
                                           True, False, True, False, False, False, 4, False]), NoCatalog())
    assert isinstance(plot, PlotParams)
    assert (plot.x.type, plot.x.values, plot.y.type, plot.y.values) == ("Steps", "1-2", "Sampler", "Euler,DDIM")
    assert (plot.draw_legend, plot.include_sub_images, plot.keep_random_seeds, plot.margin_size) == (False, True,
                                                                                                    True, 4)
    short = convert.txt2img_params(request([STEPS, "1-3"]), NoCatalog())  # the rest: A1111's UI defaults
    assert short.draw_legend and not short.include_sub_images and short.y.type == "Nothing"


@pytest.mark.parametrize("args, message", [
    ([SAMPLER, "Euler, Nope"], r"X axis \(Sampler\): sampler must be one of"),
    ([PROMPT_SR, "castle, tower"], r"X axis \(Prompt S/R\): did not find 'castle'"),
    ([99, "1"], r"script_args\[0\] \(x_type\): axis type index must be between 0 and"),
    ([STEPS, "1-2", [], 0, "", [], 0, "", [], "yes"], r"script_args\[9\] \(draw_legend\) must be true or false"),
    ([STEPS] + [""] * 20, "at most 18 args"),
])
def test_bad_script_args_are_400_naming_the_arg(args, message):
    with pytest.raises(ApiError, match=message) as e:
        convert.txt2img_params(request(args), NoCatalog())
    assert e.value.status == 400 and e.value.field == "script_args"


def test_txt2img_plot_returns_the_grid_then_the_cells(api_server):
    r = requests.post(api_server.api("txt2img"), json={
        **SMALL, "script_name": "x/y/z plot", "send_images": True, "save_images": True,
        "script_args": [STEPS, "1-2", [], CFG, "3, 7", [], 0, "", [], True, True]}, timeout=300)
    assert r.status_code == 200, r.text
    images = [decode(i) for i in r.json()["images"]]
    assert len(images) == 5 and images[0].width > 128 and images[0].height > 128
    assert all(i.size == (64, 64) for i in images[1:])
    texts = [i.info["parameters"] for i in images]
    assert "Script: X/Y/Z plot" in texts[0] and "X Type: Steps" in texts[0] and "Y Values: \"3, 7\"" in texts[0]
    assert ["Steps: 1," in t and "CFG scale: 3," in t for t in texts[1:]] == [True, False, False, False]
    assert "Steps: 2," in texts[4] and "CFG scale: 7," in texts[4]
    info = json.loads(r.json()["info"])
    assert info["infotexts"] == texts and info["seed"] == 7 and info["all_seeds"] == [7] * 5
    grids = list((api_server.stack.outputs / "txt2img-grids").rglob("xyz_grid-*.png"))
    assert len(grids) >= 1


def test_img2img_plot_over_denoising(api_server):
    picture = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 100, 50)).save(picture, "PNG")
    r = requests.post(api_server.api("img2img"), json={
        **SMALL, "steps": 2, "init_images": [base64.b64encode(picture.getvalue()).decode()],
        "script_name": "x/y/z plot", "script_args": [25, "0.5, 1", []]}, timeout=300)  # 25: img2img's Denoising
    assert r.status_code == 200, r.text
    images = [decode(i) for i in r.json()["images"]]
    assert len(images) == 1 and images[0].size[0] == 128 and images[0].height > 64  # the grid alone, legend on top
    assert "X Type: Denoising" in images[0].info["parameters"]


def test_unknown_checkpoint_is_400(api_server):
    r = requests.post(api_server.api("txt2img"), json={
        **SMALL, "script_name": "x/y/z plot", "script_args": [CHECKPOINT, "nope-model", []]}, timeout=60)
    assert r.status_code == 400 and "Checkpoint name" in r.json()["detail"] and "nope-model" in r.json()["detail"]
