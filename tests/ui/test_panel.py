"""Widget values → GenerationParams by field name, and the tab-specific conversions and errors."""

from __future__ import annotations

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from sdui.params import MaskedContent, Mode
from sdui.ui import img2img, inpaint, outpaint, txt2img
from sdui.ui.panel import _follow_size, params_from_fields
from sdui.ui.results import progress_html, selected_path, selected_seed

WIDGETS = {"prompt": "a cat", "negative_prompt": None, "sampler": "DPM++ 2M", "schedule": "Karras", "steps": 12.0,
           "width": 64.0, "height": 128, "cfg_scale": 7, "seed": 5.0, "subseed": -1, "subseed_strength": 0,
           "batch_count": 2.0, "batch_size": 1, "checkpoint": ""}


def test_slider_floats_become_the_field_types():
    params = txt2img.to_params(dict(WIDGETS))
    params.validate()
    assert (params.steps, params.width, params.seed, params.batch_count) == (12, 64, 5, 2)
    assert isinstance(params.steps, int) and isinstance(params.cfg_scale, float)
    assert params.negative_prompt == "" and params.checkpoint is None and params.mode is Mode.TXT2IMG


def test_invalid_values_name_the_field():
    with pytest.raises(ValueError, match="steps must be a whole number; got 2.5"):
        params_from_fields({**WIDGETS, "steps": 2.5}).validate()
    with pytest.raises(ValueError, match="masked_content must be one of"):
        params_from_fields({**WIDGETS, "masked_content": "glitter"})


def test_img2img_without_a_picture_says_what_to_do():
    with pytest.raises(ValueError, match="img2img needs a picture"):
        img2img.to_params({**WIDGETS, "init_image": None})


def _editor(painted: bool) -> dict:
    layer = np.zeros((64, 64, 4), np.uint8)
    if painted:
        layer[10:20, 10:20, 3] = 255
    return {"background": np.full((64, 64, 3), 90, np.uint8), "layers": [layer], "composite": None}


def test_inpaint_reads_picture_mask_and_radios():
    params = inpaint.to_params({**WIDGETS, "editor": _editor(True), "mask_invert": 1, "inpaint_full_res": 0,
                                "masked_content": "latent noise", "mask_blur": 0.0})
    params.validate()
    assert params.mode is Mode.INPAINT and params.init_image.size == (64, 64)
    assert np.asarray(params.mask)[10:20, 10:20].min() == 255 and np.asarray(params.mask).sum() == 255 * 100
    assert params.mask_invert is True and params.inpaint_full_res is False
    assert params.masked_content is MaskedContent.LATENT_NOISE


def test_inpaint_errors_for_missing_picture_and_empty_mask():
    with pytest.raises(ValueError, match="inpaint needs a picture"):
        inpaint.to_params({**WIDGETS, "editor": None})
    with pytest.raises(ValueError, match="mask is empty"):
        inpaint.to_params({**WIDGETS, "editor": _editor(False)})


def test_outpaint_uses_the_picture_size_and_grows_in_the_preview():
    fields = {**WIDGETS, "editor": _editor(True), "outpaint_left": 0, "outpaint_right": 64.0, "outpaint_up": 8,
              "outpaint_down": 0, "outpaint_fill": "blur", "mask_blur": 8}
    params = outpaint.to_params(dict(fields))
    params.validate()
    assert (params.width, params.height, params.outpaint_right, params.outpaint_up) == (64, 64, 64, 8)
    assert params.mask is not None  # the refining strokes, in the picture's coordinates
    canvas = outpaint.preview(_editor(True), 0, 64, 8, 0)
    assert canvas.size == (128, 72)
    assert canvas.getpixel((40, 40))[:3] == (90, 90, 90)  # the picture, moved down by 8
    assert canvas.getpixel((100, 40)) == outpaint.NEW_AREA_COLOR
    assert canvas.getpixel((15, 23))[:3] != (90, 90, 90)  # a painted stroke is shown
    assert outpaint.preview(None, 0, 64, 0, 0) is None



def test_outpaint_of_a_picture_over_the_size_limit_says_to_scale_it_down():
    big = {"background": np.zeros((2000, 3000, 3), np.uint8), "layers": []}
    fields = {**WIDGETS, "editor": big, "outpaint_left": 64, "outpaint_right": 0, "outpaint_up": 0,
              "outpaint_down": 0, "outpaint_fill": "edge", "mask_blur": 8}
    with pytest.raises(ValueError, match="up to 2048x2048.*is 3000x2000: scale it down"):
        outpaint.to_params(fields)

def test_uploaded_picture_sets_the_size_sliders_in_steps_of_64():
    assert _follow_size(Image.new("RGB", (100, 300)), None) == (128, 320, (100, 300))
    assert _follow_size({"background": np.zeros((20, 5000, 3), np.uint8)}, None)[:2] == (2048, 64)
    skipped = _follow_size(Image.new("RGB", (100, 300)), (100, 300))  # a brush stroke, not a new picture
    assert skipped[2] == (100, 300) and all(not isinstance(v, int) for v in skipped[:2])
    assert _follow_size({"background": None}, None)[2] is None



def test_uploaded_file_sets_the_size_and_a_non_picture_gets_a_clear_error(tmp_path):
    # With preprocess=False the handler gets Gradio's file payloads, for an Image and an ImageEditor.
    Image.new("RGB", (100, 300)).save(tmp_path / "a.png")
    assert _follow_size({"path": str(tmp_path / "a.png"), "url": "x"}, None) == (128, 320, (100, 300))
    assert _follow_size({"background": {"path": str(tmp_path / "a.png")}, "layers": []}, None)[:2] == (128, 320)
    (tmp_path / "notes.png").write_text("not a picture")
    for value in ({"path": str(tmp_path / "notes.png")}, {"background": {"path": str(tmp_path / "notes.png")}}):
        with pytest.raises(gr.Error, match="notes.png is not a picture.*PNG, JPEG or WEBP"):
            _follow_size(value, None)

def test_result_helpers():
    data = {"paths": ["/o/a.png", "/o/b.png"], "infotexts": ["a", "b"], "seeds": [7, 8]}
    assert selected_seed(data, 1) == 8 and selected_seed(data, 9) == 7 and selected_seed(None, 0) == -1
    assert selected_path(data, 1) == "/o/b.png" and selected_path({}, 0) is None
    html = progress_html(3, 30, "Step 3/30 <b>")
    assert 'max="30" value="3"' in html and "&lt;b&gt;" in html
    assert "<progress" not in progress_html(0, 0, "Queued…")


def test_field_updates_show_params_in_an_inpaint_panel(tmp_path):
    import gradio as gr

    from sdui.params import GenerationParams
    from sdui.ui import panel as panel_ui

    with gr.Blocks(), gr.Tabs(), gr.Tab("Inpaint"):
        panel = panel_ui.build("inpaint", tmp_path, extras=inpaint._extras)
    params = GenerationParams(prompt="p", steps=9, seed=77, mask_invert=True, inpaint_full_res=True,
                              masked_content=MaskedContent.FILL, sampler="DDIM")
    by_widget = panel_ui.field_updates(panel, params)
    updates = {name: by_widget[widget] for name, widget in panel.fields.items() if widget in by_widget}
    assert updates["prompt"] == "p" and updates["steps"] == 9 and updates["seed"] == 77
    assert updates["mask_invert"] == "Inpaint not masked" and updates["inpaint_full_res"] == "Only masked"
    assert updates["masked_content"] == "fill" and updates["sampler"] == "DDIM"


def test_the_top_bar_vae_and_the_pasted_lora_hashes_reach_the_params():
    params = txt2img.to_params({**WIDGETS, "vae": "vae-ft-mse.safetensors", "lora_hashes": {"old": "0123456789ab"}})
    assert params.vae == "vae-ft-mse.safetensors" and params.lora_hashes == {"old": "0123456789ab"}
    assert txt2img.to_params({**WIDGETS, "lora_hashes": None}).lora_hashes == {}
