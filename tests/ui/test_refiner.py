"""The Refiner accordion of the generation tabs: its widgets, the checkbox, and pasting an infotext into it."""

from __future__ import annotations

from functools import partial

import gradio as gr
from PIL import Image

from sdui.params import HIRES_REFINER_PASSES, Mode
from sdui.ui import img2img, txt2img
from sdui.ui import panel as panel_ui
from sdui.ui import refiner as refiner_ui
from sdui.ui import topbar
from sdui.ui.pnginfo import infotext_updates
from tests.ui.conftest import listing_ctx

REFINED = ("a castle\nSteps: 24, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 4.0, Seed: 1, Size: 64x64, "
           "Model: mine, Refiner: {name} [7440042bbd], Refiner switch at: 0.7")


def _tabs(tmp_path):
    ctx = listing_ctx(tmp_path)
    (ctx.settings.ckpt_dir / "sd_xl_refiner_1.0.safetensors").write_bytes(b"listed, never read")
    ctx.catalog.refresh()
    with gr.Blocks():
        bar = topbar.build(ctx)
        panels = {"txt2img": panel_ui.build("txt2img", tmp_path / "out",
                                            below_steps=partial(txt2img.below_steps, ctx)),
                  "img2img": panel_ui.build("img2img", tmp_path / "out",
                                            below_steps=partial(refiner_ui.build, ctx, "img2img"))}
    return ctx, bar, panels


def test_txt2img_and_img2img_have_a1111s_refiner_accordion(tmp_path):
    _, _, panels = _tabs(tmp_path)
    for tab, panel in panels.items():
        enable, checkpoint, switch_at = (panel.extras["enable_refiner"], panel.fields["refiner_checkpoint"],
                                         panel.fields["refiner_switch_at"])
        assert (enable.value, enable.elem_id) == (False, f"{tab}_enable_refiner")
        assert checkpoint.label == "Checkpoint" and checkpoint.value == ""
        assert [value for _, value in checkpoint.choices] == ["", "mine.safetensors", "sd_xl_refiner_1.0.safetensors"]
        assert (switch_at.label, switch_at.value, switch_at.minimum, switch_at.maximum) == ("Switch at", 0.8, 0.01, 1)
        assert panel.fields["refiner_switch_by_steps"].value is False
    assert panels["txt2img"].fields["hires_refiner_pass"].value == "second pass"
    assert [v for _, v in panels["txt2img"].fields["hires_refiner_pass"].choices] == list(HIRES_REFINER_PASSES)
    assert "hires_refiner_pass" not in panels["img2img"].fields


def test_the_checkbox_decides_whether_the_chosen_refiner_is_used():
    fields = {"prompt": "x", "refiner_checkpoint": "sd_xl_refiner_1.0.safetensors", "refiner_switch_at": 0.6,
              "enable_refiner": False}
    assert txt2img.to_params(fields).refiner_checkpoint == ""
    on = txt2img.to_params({**fields, "enable_refiner": True})
    assert (on.refiner_checkpoint, on.refiner_switch_at) == ("sd_xl_refiner_1.0.safetensors", 0.6)
    assert on.mode is Mode.TXT2IMG

    picture = {**fields, "enable_refiner": True, "init_image": Image.new("RGB", (64, 64))}
    assert img2img.to_params(picture).refiner_checkpoint == "sd_xl_refiner_1.0.safetensors"


def test_pasting_an_infotext_fills_the_accordion_or_says_the_refiner_is_missing(tmp_path):
    ctx, bar, panels = _tabs(tmp_path)
    for panel in panels.values():
        f = panel.fields
        updates, pasted = infotext_updates(ctx, REFINED.format(name="sd_xl_refiner_1.0"), panel, bar,
                                           ctx.catalog.find("mine").title, "Automatic")
        assert pasted.warnings == []
        assert updates[panel.extras["enable_refiner"]] is True
        assert updates[f["refiner_checkpoint"]].value == "sd_xl_refiner_1.0.safetensors"
        assert updates[f["refiner_switch_at"]] == 0.7 and updates[f["refiner_switch_by_steps"]] is False
        missing, pasted = infotext_updates(ctx, REFINED.format(name="gone"), panel, bar, "mine.safetensors",
                                           "Automatic")
        assert missing[panel.extras["enable_refiner"]] is False and missing[f["refiner_checkpoint"]].value == ""
        assert pasted.warnings == ["Refiner, Refiner switch at: 'gone [7440042bbd]' is not installed: the picture is "
                                   "made without a refiner"]
        plain, _ = infotext_updates(ctx, "a dog\nSteps: 3, Sampler: Euler, Seed: 1, Size: 64x64", panel, bar,
                                    "mine.safetensors", "Automatic")
        assert plain[panel.extras["enable_refiner"]] is False  # no Refiner key: no refiner, as A1111
