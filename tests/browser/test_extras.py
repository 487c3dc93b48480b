"""The Extras tab in real Chromium: upload a picture, upscale it 2x with the tiny ESRGAN, get the file and its chunks."""

from __future__ import annotations

import re

from PIL import Image, PngImagePlugin

from tests.browser.helpers import (RESULT_TIMEOUT_MS, choose_option, gallery_image, gradient_picture, open_tab,
                                   set_slider, upload)

PARAMETERS = "a red kite\nNegative prompt: fog\nSteps: 3, Sampler: Euler, CFG scale: 7, Seed: 11, Size: 64x64"
TABS = ["txt2img", "img2img", "Inpaint", "Outpaint", "Extras", "PNG info"]


def with_parameters(path, text: str) -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", text)
    Image.open(path).save(path, pnginfo=info)


def test_extras_upscales_one_picture_with_the_model_and_keeps_its_parameters(page, server, shots, tmp_path):
    source = tmp_path / "kite.png"
    gradient_picture(source)
    with_parameters(source, PARAMETERS)

    open_tab(page, "Extras")
    upload(page, "extras_image", source)
    page.locator("#extras_image img").wait_for()
    choose_option(page, "extras_upscaler_1", server.upscaler)
    set_slider(page, "extras_upscaling_resize", 2)
    page.locator("#extras_generate").click()
    box = page.locator("#extras_infotext textarea")
    page.wait_for_function("el => el.value.includes('Postprocess upscaler')", arg=box.element_handle(),
                           timeout=RESULT_TIMEOUT_MS)
    image = gallery_image(page, "extras")
    page.screenshot(path=shots / "extras.png", full_page=True)
    postprocessing = f"Postprocess upscale by: 2, Postprocess upscaler: {server.upscaler}"
    assert box.input_value() == postprocessing
    assert image.size == (128, 128)

    saved = sorted((server.outputs / "extras-images").glob("*.png"))
    assert saved and all(re.fullmatch(r"\d{5}\.png", path.name) for path in saved)  # no date folder, A1111's names
    with Image.open(saved[-1]) as file:
        assert file.size == (128, 128)
        assert file.text["parameters"] == PARAMETERS and file.text["postprocessing"] == postprocessing

    page.locator("#extras_send_to_img2img").click()  # the result goes on to img2img
    page.locator("#img2img_image img").wait_for()

    other = tmp_path / "other.png"  # other bytes: Gradio names an upload by its content
    Image.open(source).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(other)
    with_parameters(other, PARAMETERS.replace("a red kite", "a blue kite"))
    shown = page.locator("#extras_image img").get_attribute("src")
    open_tab(page, "PNG info")
    upload(page, "pnginfo_image", other)
    page.locator("#pnginfo_table").get_by_text("a blue kite", exact=True).wait_for()
    page.locator("#pnginfo_send_to_extras").click()  # PNG info hands the picture itself to Extras
    page.wait_for_function("src => { const img = document.querySelector('#extras_image img');"
                           " return img && img.src !== src && img.checkVisibility(); }", arg=shown)
    # Each tab button once (a stray component between gr.Tabs' tabs once made Gradio draw PNG info twice).
    names = page.get_by_role("tab").all_inner_texts()
    assert [name for name in names if name in TABS] == TABS
