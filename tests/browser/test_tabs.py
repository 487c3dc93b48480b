"""Each tab in real Chromium against the real server: type, upload, paint, generate, read the PNG back."""

from __future__ import annotations

import numpy as np
from PIL import Image

from tests.browser.helpers import (editor_zoom, fill_small_img2img, fill_small_txt2img, gallery_image, gradient_picture,
                                   open_tab, save_with_parameters, set_slider, upload, upload_to_editor,
                                   wait_for_result)


def test_txt2img_prompt_and_steps_reach_the_saved_png(page, server, shots):
    page.locator("#txt2img_prompt textarea").fill("a tiny red boat")
    set_slider(page, "txt2img_steps", 3)
    set_slider(page, "txt2img_width", 64)
    set_slider(page, "txt2img_height", 128)
    page.locator("#txt2img_generate").click()
    infotext = wait_for_result(page, "txt2img")
    image = gallery_image(page, "txt2img")
    page.screenshot(path=shots / "txt2img.png", full_page=True)
    assert image.format == "PNG" and image.size == (64, 128)
    parameters = image.info["parameters"]
    assert parameters.startswith("a tiny red boat\n") and "Steps: 3," in parameters
    assert parameters == infotext
    assert list(server.outputs.glob("txt2img-images/*/*.png")), "the file is saved under outputs/"

    page.locator("#txt2img_send_to_img2img").click()
    page.locator("#img2img_image img").wait_for()
    assert page.locator("#img2img_prompt textarea").input_value() == "a tiny red boat"


def test_img2img_upload_and_ctrl_enter_generate(page, shots, tmp_path):
    fill_small_img2img(page, tmp_path / "in.png", steps=3)
    prompt = page.locator("#img2img_prompt textarea")
    prompt.fill("watercolor")
    prompt.press("Control+Enter")
    infotext = wait_for_result(page, "img2img")
    image = gallery_image(page, "img2img")
    page.screenshot(path=shots / "img2img.png", full_page=True)
    assert image.size == (64, 64)
    assert "Denoising strength: 0.75" in infotext


def test_inpaint_brush_stroke_changes_only_near_the_stroke(page, shots, tmp_path):
    original = gradient_picture(tmp_path / "in.png").astype(int)
    open_tab(page, "Inpaint")
    upload_to_editor(page, "inpaint_editor", tmp_path / "in.png")
    set_slider(page, "inpaint_width", 64)
    set_slider(page, "inpaint_height", 64)
    set_slider(page, "inpaint_steps", 3)
    set_slider(page, "inpaint_mask_blur", 0)
    page.locator("#inpaint_editor button[aria-label='Brush']").click()
    canvas = page.locator("#inpaint_editor canvas").first.bounding_box()
    scale = editor_zoom(page, "inpaint_editor")
    cx, cy = canvas["x"] + canvas["width"] / 2, canvas["y"] + canvas["height"] / 2

    def screen(ix: float, iy: float) -> tuple[float, float]:  # picture pixel -> screen point
        return cx + (ix - 32) * scale, cy + (iy - 32) * scale

    page.mouse.move(*screen(24, 32))
    page.mouse.down()
    for ix in range(24, 41, 2):
        page.mouse.move(*screen(ix, 32), steps=2)
    page.mouse.up()
    page.screenshot(path=shots / "inpaint-stroke.png", full_page=True)
    page.locator("#inpaint_prompt textarea").fill("a patch")
    page.locator("#inpaint_generate").click()
    wait_for_result(page, "inpaint")
    result = np.asarray(gallery_image(page, "inpaint").convert("RGB")).astype(int)
    page.screenshot(path=shots / "inpaint.png", full_page=True)
    assert result.shape == original.shape
    y, x = np.mgrid[0:64, 0:64]
    far = (np.abs(y - 32) > 14) | (x < 24 - 14) | (x > 40 + 14)
    assert np.array_equal(result[far], original[far]), "pixels far from the stroke must stay exact"
    assert not np.array_equal(result[28:37, 24:41], original[28:37, 24:41]), "the stroke must be repainted"


def test_outpaint_adds_64_pixels_on_the_right(page, shots, tmp_path):
    original = gradient_picture(tmp_path / "in.png").astype(int)
    open_tab(page, "Outpaint")
    upload_to_editor(page, "outpaint_editor", tmp_path / "in.png")
    preview = page.locator("#outpaint_canvas_preview img")
    preview.wait_for()
    first_src = preview.get_attribute("src")
    set_slider(page, "outpaint_right", 64)
    set_slider(page, "outpaint_steps", 3)
    page.wait_for_function("src => document.querySelector('#outpaint_canvas_preview img').src !== src",
                           arg=first_src)
    page.locator("#outpaint_generate").click()
    wait_for_result(page, "outpaint")
    image = gallery_image(page, "outpaint")
    page.screenshot(path=shots / "outpaint.png", full_page=True)
    assert image.size == (128, 64)
    assert np.array_equal(np.asarray(image.convert("RGB")).astype(int)[:, :48], original[:, :48])


def test_png_info_shows_the_seed_and_sends_to_txt2img(page, shots, tmp_path):
    fill_small_txt2img(page, "a lantern, glowing", seed=4242)
    page.locator("#txt2img_generate").click()
    wait_for_result(page, "txt2img")
    path = tmp_path / "made.png"
    save_with_parameters(gallery_image(page, "txt2img"), path)
    page.reload()
    page.wait_for_selector("#txt2img_generate")
    open_tab(page, "PNG info")
    upload(page, "pnginfo_image", path)
    table = page.locator("#pnginfo_table")
    table.get_by_text("4242", exact=True).wait_for()
    page.screenshot(path=shots / "pnginfo.png", full_page=True)
    page.locator("#pnginfo_send_to_txt2img").click()
    prompt = page.locator("#txt2img_prompt textarea")
    prompt.wait_for()
    page.wait_for_function("el => el.value === 'a lantern, glowing'", arg=prompt.element_handle())
    assert page.locator("#txt2img_seed input").input_value() == "4242"
    assert page.locator("#txt2img_steps input[type=number]").input_value() == "2"

    # Regenerate: the same parameters through txt2img give the same picture again.
    open_tab(page, "PNG info")
    page.locator("#pnginfo_regenerate").click()
    wait_for_result(page, "txt2img")
    again = gallery_image(page, "txt2img")
    assert np.array_equal(np.asarray(again.convert("RGB")), np.asarray(Image.open(path).convert("RGB")))

