"""Pasting an infotext into the tabs: Send to, ↙ (the prompt box), a dropped picture and Regenerate."""

from __future__ import annotations

import gradio as gr
import numpy as np
import piexif
import piexif.helper
import pytest
from PIL import Image

from sdui.params import Mode
from sdui.ui import img2img, inpaint, outpaint, pnginfo, topbar, txt2img
from sdui.ui.pnginfo import infotext_updates, prompt_updates, regenerate_updates
from tests.ui.conftest import listing_ctx

# As civitai shows it under a picture: A1111's keys, an extension's (ADetailer), a model that is not installed.
CIVITAI = (
    "masterpiece, a fox in the snow <lora:detail:0.5>\n"
    "Negative prompt: EasyNegative, blurry\n"
    "Steps: 3, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 1234567, Size: 64x96, "
    "Model hash: 0123456789, Model: realisticVision_v51, VAE hash: 735e4c3a44, VAE: vae-ft-mse.safetensors, "
    "Clip skip: 2, ENSD: 31337, RNG: NV, ADetailer model: face_yolov8n.pt, ADetailer confidence: 0.3, "
    'Lora hashes: "detail: 0123456789ab", Version: v1.10.1'
)
FAST = "Steps: 3, Sampler: Euler, CFG scale: 7, Seed: 5, Size: 64x64, Model: mine"
BY_MODE = {
    Mode.TXT2IMG: f"a fox\n{FAST}",
    Mode.IMG2IMG: f"a fox\n{FAST}, Denoising strength: 0.5",
    Mode.INPAINT: f"a fox\n{FAST}, Denoising strength: 0.5, Mask blur: 4",
    Mode.OUTPAINT: f"a fox\n{FAST}, Denoising strength: 0.9, Mask blur: 8, Outpaint extents: left 0 right 64 up 0 "
                   "down 0, Outpaint fill: edge",
}
INPAINT_MISSING = ("This picture was made with inpaint: its init image and mask are not stored in the PNG. Put the "
                   "original picture and the mask into the inpaint tab, then press Generate.")


@pytest.fixture
def page(tmp_path):
    """Every generation tab, the top bar and PNG info, built as blocks.py builds them (nothing is launched)."""
    ctx = listing_ctx(tmp_path)
    with gr.Blocks():
        bar = topbar.build(ctx)
        with gr.Tabs() as tabs:
            panels = {name: module.build(ctx) for name, module in
                      (("txt2img", txt2img), ("img2img", img2img), ("inpaint", inpaint), ("outpaint", outpaint))}
            png = pnginfo.build()
    return ctx, bar, tabs, panels, png


def _current(ctx) -> str:
    return ctx.catalog.find("mine").title


def _values(updates: dict, widgets: dict) -> dict:
    """updates by field name, a Dropdown update as its value."""
    return {name: getattr(updates[w], "value", updates[w]) for name, w in widgets.items() if w in updates}


def test_a_pasted_civitai_infotext_sets_every_field_and_the_top_bar_and_says_what_it_could_not(page):
    ctx, bar, _tabs, panels, _png = page
    panel = panels["txt2img"]
    updates, pasted = infotext_updates(ctx, CIVITAI, panel, bar, _current(ctx), "Automatic")
    fields = _values(updates, panel.fields)
    assert fields["prompt"] == "masterpiece, a fox in the snow <lora:detail:0.5>"
    assert fields["negative_prompt"] == "EasyNegative, blurry"
    assert (fields["steps"], fields["sampler"], fields["schedule"], fields["cfg_scale"]) == (3, "DPM++ 2M", "Karras",
                                                                                             6.5)
    assert (fields["seed"], fields["width"], fields["height"]) == (1234567, 64, 96)
    assert fields["lora_hashes"] == {"detail": "0123456789ab"} and fields["enable_hr"] is False
    top = _values(updates, bar.fields)
    assert top == {"checkpoint": _current(ctx), "vae": "vae-ft-mse.safetensors", "clip_skip": 2, "randn_source": "NV",
                   "eta_noise_seed_delta": 31337, "use_old_scheduling": False}
    box = updates[panel.results.warnings]
    assert "ADetailer model" in box and "realisticVision_v51" in box and _current(ctx) in box
    assert box.count("<li>") == len(pasted.warnings) and updates[panel.results.pasted_warnings] == []


def test_a_picture_without_rng_ensd_or_clip_skip_sets_a1111s_defaults_and_clears_old_warnings(page):
    ctx, bar, _tabs, panels, _png = page
    panel = panels["img2img"]
    updates, pasted = infotext_updates(ctx, BY_MODE[Mode.IMG2IMG], panel, bar, _current(ctx), "Automatic")
    assert _values(updates, bar.fields)["clip_skip"] == 1 and updates[bar.eta_noise_seed_delta] == 0
    assert updates[bar.randn_source] == "GPU"  # A1111 wrote no RNG key before it had the setting: GPU
    assert updates[panel.fields["denoising_strength"]] == 0.5
    assert pasted.warnings == [] and updates[panel.results.warnings] == ""


def test_png_info_sends_to_each_generation_tab_and_its_parameters_box_is_editable(page):
    *_, png = page
    assert list(png.send) == ["txt2img", "img2img", "inpaint", "outpaint"]
    assert png.text.interactive is not False


def test_the_paste_button_reads_the_prompt_box_and_leaves_only_the_prompt_there(page):
    ctx, bar, _tabs, panels, _png = page
    panel = panels["inpaint"]
    updates = prompt_updates(ctx, panel, bar, CIVITAI, "", _current(ctx), "Automatic")
    fields = _values(updates, panel.fields)
    assert fields["prompt"] == "masterpiece, a fox in the snow <lora:detail:0.5>" and fields["seed"] == 1234567
    assert updates[bar.clip_skip] == 2
    assert "ADetailer model" in updates[panel.results.warnings]
    # An empty prompt box: the tab's last generation, as A1111's ↙.
    last = prompt_updates(ctx, panel, bar, "  ", BY_MODE[Mode.INPAINT], _current(ctx), "Automatic")
    assert last[panel.fields["prompt"]] == "a fox" and last[panel.fields["mask_blur"]] == 4


def test_the_paste_button_refuses_a_bare_prompt_and_an_empty_box(page):
    ctx, bar, _tabs, panels, _png = page
    panel = panels["txt2img"]
    with pytest.raises(gr.Error, match="no parameters line"):
        prompt_updates(ctx, panel, bar, "just a cat, sitting", "", _current(ctx), "Automatic")
    with pytest.raises(gr.Error, match="No parameters to read"):
        prompt_updates(ctx, panel, bar, "", "", _current(ctx), "Automatic")


def test_a_dropped_jpeg_is_read_from_its_exif(page, tmp_path):
    ctx, bar, _tabs, panels, _png = page
    path = tmp_path / "shared.jpg"
    exif = piexif.dump({"Exif": {piexif.ExifIFD.UserComment: piexif.helper.UserComment.dump(CIVITAI,
                                                                                          encoding="unicode")}})
    Image.new("RGB", (16, 16)).save(path, exif=exif)
    panel = panels["txt2img"]
    updates = pnginfo.dropped_updates(ctx, panel, bar, str(path), _current(ctx), "Automatic")
    assert updates[panel.fields["seed"]] == 1234567 and updates[bar.eta_noise_seed_delta] == 31337
    Image.new("RGB", (16, 16)).save(tmp_path / "plain.png")
    with pytest.raises(gr.Error, match="carries no generation parameters"):
        pnginfo.dropped_updates(ctx, panel, bar, str(tmp_path / "plain.png"), _current(ctx), "Automatic")


def _editor(painted: bool) -> dict:
    layer = np.zeros((64, 64, 4), np.uint8)
    if painted:
        layer[20:40, 20:40] = 255
    return {"background": np.full((64, 64, 3), 128, np.uint8), "layers": [layer], "composite": None}


PICTURES = {Mode.IMG2IMG: Image.new("RGB", (64, 64)), Mode.INPAINT: _editor(True), Mode.OUTPAINT: _editor(False)}


@pytest.mark.parametrize("mode", list(Mode))
def test_regenerate_goes_to_the_mode_the_picture_was_made_with_and_keeps_its_picture(page, mode):
    ctx, bar, tabs, panels, png = page
    text = BY_MODE[mode] + ", ADetailer model: face_yolov8n.pt"
    updates = regenerate_updates(ctx, text, panels, bar, _current(ctx), "Automatic", PICTURES, tabs=tabs,
                                 target_box=png.regenerate_tab)
    panel = panels[mode.value]
    assert updates[tabs].selected == mode.value and updates[png.regenerate_tab] == mode.value
    assert updates[panel.fields["prompt"]] == "a fox"
    assert pnginfo.image_input(panel) not in updates, "the picture in PNG info is the output, not the init image"
    carried = updates[panel.results.pasted_warnings]
    assert len(carried) == 1 and "ADetailer model" in carried[0], "shown again with the job's own warnings"
    others = [p for name, p in panels.items() if name != mode.value]
    assert not any(p.fields["prompt"] in updates for p in others)


@pytest.mark.parametrize("mode, pictures, message", [
    (Mode.INPAINT, {}, INPAINT_MISSING),
    (Mode.INPAINT, {Mode.INPAINT: _editor(False)}, "its mask is not stored in the PNG. Paint the mask over"),
    (Mode.IMG2IMG, {Mode.IMG2IMG: None}, "made with img2img: its init image is not stored in the PNG"),
    (Mode.OUTPAINT, {Mode.OUTPAINT: {"background": None, "layers": []}}, "made with outpaint: its init image"),
])
def test_regenerate_without_the_init_image_or_mask_says_what_to_add_and_does_not_generate(page, mode, pictures,
                                                                                           message):
    ctx, bar, tabs, panels, png = page
    with pytest.warns(UserWarning, match=message.split(":")[0]):
        updates = regenerate_updates(ctx, BY_MODE[mode], panels, bar, _current(ctx), "Automatic", pictures,
                                     tabs=tabs, target_box=png.regenerate_tab)
    panel = panels[mode.value]
    assert updates[png.regenerate_tab] == "", "no Generate click"
    assert updates[tabs].selected == mode.value and updates[panel.fields["seed"]] == 5  # filled, ready to go
    assert message in updates[panel.results.warnings] and updates[panel.results.pasted_warnings] == []


def test_send_of_an_unknown_vae_keeps_the_setting_and_says_so(page):
    ctx, bar, _tabs, panels, _png = page
    panel = panels["txt2img"]
    updates, _ = infotext_updates(ctx, f"a fox\n{FAST}, VAE: orangemix.vae.pt", panel, bar, _current(ctx), "None")
    assert updates[bar.vae].value == "None"
    assert "orangemix.vae.pt" in updates[panel.results.warnings]
    assert updates[panel.fields["lora_hashes"]] == {}  # a picture without them: none from an earlier one
