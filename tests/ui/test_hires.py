"""txt2img's Hires. fix controls: the size line, PNG info's Send to with hires keys, and the real endpoint."""

from __future__ import annotations

import gradio as gr
import pytest
from gradio_client import Client
from PIL import Image

from sdui.params import GenerationParams
from sdui.ui import hires as hires_ui
from sdui.ui.pnginfo import infotext_updates
from tests.ui.conftest import PASSWORD, USER, listing_ctx


@pytest.mark.parametrize("changes, text", [
    ({}, "from 512x512 to 1024x1024"),
    ({"width": 520, "hr_scale": 1.5}, "from 520x512 to 776x768"),
    ({"hr_resize_x": 1024, "hr_resize_y": 768}, "from 512x512 to 1024x768"),
    ({"width": 2048, "hr_scale": 4.0}, "from 2048x512 to 8192x2048 (too large: each side at most 4096)"),
])
def test_the_size_line_says_what_the_hires_pass_will_make(changes, text):
    assert hires_ui.size_text(GenerationParams(**changes)) == text


def _ctx_with_upscalers(tmp_path):
    ctx = listing_ctx(tmp_path)
    (ctx.settings.esrgan_dir / "sub").mkdir(parents=True)
    (ctx.settings.esrgan_dir / "sub" / "4x-UltraSharp.pth").write_bytes(b"listed, never read")
    ctx.manager.upscalers.refresh()
    return ctx


def _txt2img(ctx, tmp_path):
    from sdui.ui import panel as panel_ui
    from sdui.ui import topbar

    with gr.Blocks():
        bar = topbar.build(ctx)
        panel = panel_ui.build("txt2img", tmp_path, below_steps=lambda: hires_ui.build(ctx))
    return panel, bar


def _send(ctx, text, panel, bar):
    updates, pasted = infotext_updates(ctx, text, panel, bar, ctx.catalog.find("mine").title, "Automatic")
    return updates, pasted.warnings


INFOTEXT = ("a castle\nSteps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 5, Size: 512x768, "
            "Model: mine, Denoising strength: 0.45, Hires upscale: 1.5, Hires steps: 12, Hires upscaler: {up}, "
            "Hires checkpoint: {ckpt}, Hires prompt: a castle at dusk")


def test_send_to_txt2img_restores_the_hires_settings(tmp_path):
    ctx = _ctx_with_upscalers(tmp_path)
    panel, bar = _txt2img(ctx, tmp_path / "outputs")
    assert "4x-UltraSharp" in panel.fields["hr_upscaler"].choices[-1]
    updates, notes = _send(ctx, INFOTEXT.format(up="4x-UltraSharp", ckpt="mine"), panel, bar)
    f = panel.fields
    assert notes == []
    assert updates[f["enable_hr"]] is True and updates[f["hr_scale"]] == 1.5
    assert updates[f["hr_second_pass_steps"]] == 12 and updates[f["denoising_strength"]] == 0.45
    assert updates[f["hr_upscaler"]].value == "4x-UltraSharp"
    assert updates[f["hr_checkpoint"]].value == "mine.safetensors" and updates[f["hr_prompt"]] == "a castle at dusk"
    assert updates[f["hr_sampler"]] == "" and updates[f["hr_schedule"]] == ""  # the same as the first pass


def test_send_of_an_uninstalled_upscaler_and_checkpoint_says_so(tmp_path):
    ctx = _ctx_with_upscalers(tmp_path)
    panel, bar = _txt2img(ctx, tmp_path / "outputs")
    updates, notes = _send(ctx, INFOTEXT.format(up="R-ESRGAN 4x+ Anime6B", ckpt="elsewhere"), panel, bar)
    assert updates[panel.fields["hr_upscaler"]].value == "Lanczos"  # a pixel upscaler, as the model would be
    assert updates[panel.fields["hr_checkpoint"]].value == ""
    assert len(notes) == 2 and "'elsewhere' is not installed" in notes[0]
    assert "'R-ESRGAN 4x+ Anime6B' is not installed: used Lanczos" in notes[1]
    plain, _ = _send(ctx, "a dog\nSteps: 3, Sampler: Euler, Seed: 1, Size: 64x64", panel, bar)
    assert plain[panel.fields["enable_hr"]] is False  # a picture without hires keys turns it off, as A1111


def test_the_txt2img_endpoint_runs_hires_fix(auth_server):
    client = Client(auth_server.url, auth=(USER, PASSWORD), verbose=False)
    result = client.predict(prompt="a hill", seed=3, steps=2, width=64, height=64, sampler="Euler", enable_hr=True,
                            hr_scale=2, hr_second_pass_steps=2, hr_upscaler="Lanczos", api_name="/txt2img")
    gallery = result[2]
    image = Image.open(gallery[0]["image"])
    assert image.size == (128, 128)
    text = image.info["parameters"]
    assert "Size: 64x64" in text and "Hires upscaler: Lanczos" in text and "Denoising strength: 0.7" in text
