"""PNG info's Regenerate (txt2img and inpaint: the same pixels again), a tab's ↙, a picture dropped on a prompt."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote

import numpy as np
from PIL import Image, PngImagePlugin

from tests.browser.helpers import (RESULT_TIMEOUT_MS, editor_zoom, fill_small_txt2img, gradient_picture, open_tab,
                                   set_slider, upload, upload_to_editor, wait_for_result)

PASTED = ("a paper boat, origami\nNegative prompt: blurry\n"
          "Steps: 3, Sampler: Euler, CFG scale: 5, Seed: 777, Size: 64x128, Model: sdui-tiny-demo, Clip skip: 2, "
          "RNG: NV, ENSD: 31337, ADetailer model: face_yolov8n.pt, ADetailer confidence: 0.3, Version: v1.10.1")

NEW_IMAGE_JS = "([sel, old]) => { const img = document.querySelector(sel); return img && img.src !== old; }"


def _gallery_file(page, tab: str, not_src: str | None = None) -> tuple[str, Path]:
    """The first gallery image's src and the saved file it shows (waits for one other than `not_src`)."""
    selector = f"#{tab}_gallery img[src*='file=']"
    page.wait_for_function(NEW_IMAGE_JS, arg=[selector, not_src or ""], timeout=RESULT_TIMEOUT_MS)
    src = page.locator(selector).first.get_attribute("src")
    return src, Path(unquote(src.split("file=", 1)[1]))


def _pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def _regenerate_from(page, path: Path) -> None:
    open_tab(page, "PNG info")
    upload(page, "pnginfo_image", path)
    page.wait_for_function("() => document.querySelector('#pnginfo_text textarea').value.includes('Steps:')")
    page.locator("#pnginfo_regenerate").click()


def test_regenerate_of_a_txt2img_picture_makes_the_same_pixels_again(page, server):
    fill_small_txt2img(page, "a lantern", seed=4242)
    page.locator("#txt2img_generate").click()
    wait_for_result(page, "txt2img")
    src, first = _gallery_file(page, "txt2img")
    page.locator("#txt2img_prompt textarea").fill("something else")  # Regenerate must bring the prompt back

    _regenerate_from(page, first)
    _, again = _gallery_file(page, "txt2img", not_src=src)
    assert page.get_by_role("tab", name="txt2img", exact=True).get_attribute("aria-selected") == "true"
    assert again != first and again.is_file(), "Regenerate really ran a new job"
    assert np.array_equal(_pixels(again), _pixels(first))
    assert page.locator("#txt2img_prompt textarea").input_value() == "a lantern"


def test_regenerate_of_an_inpaint_picture_uses_the_tabs_picture_and_mask(page, tmp_path):
    gradient_picture(tmp_path / "in.png")
    open_tab(page, "Inpaint")
    upload_to_editor(page, "inpaint_editor", tmp_path / "in.png")
    set_slider(page, "inpaint_steps", 3)
    page.locator("#inpaint_seed input").fill("99")
    page.locator("#inpaint_editor button[aria-label='Brush']").click()
    canvas = page.locator("#inpaint_editor canvas").first.bounding_box()
    scale = editor_zoom(page, "inpaint_editor")
    cx, cy = canvas["x"] + canvas["width"] / 2, canvas["y"] + canvas["height"] / 2
    page.mouse.move(cx - 8 * scale, cy)
    page.mouse.down()
    page.mouse.move(cx + 8 * scale, cy, steps=6)
    page.mouse.up()
    page.locator("#inpaint_prompt textarea").fill("a patch")
    page.locator("#inpaint_generate").click()
    wait_for_result(page, "inpaint")
    src, first = _gallery_file(page, "inpaint")
    assert not np.array_equal(_pixels(first), _pixels(tmp_path / "in.png")), "the stroke was repainted"

    _regenerate_from(page, first)
    _, again = _gallery_file(page, "inpaint", not_src=src)
    assert page.get_by_role("tab", name="Inpaint", exact=True).get_attribute("aria-selected") == "true"
    assert np.array_equal(_pixels(again), _pixels(first)), "the same picture, mask and seed"
    assert "Mask blur: 4" in Image.open(again).info["parameters"]


def _expect_pasted(page) -> None:
    prompt = page.locator("#txt2img_prompt textarea")
    page.wait_for_function("el => el.value === 'a paper boat, origami'", arg=prompt.element_handle())
    number = lambda elem_id: page.locator(f"#{elem_id} input[type=number]").input_value()  # noqa: E731
    assert page.locator("#txt2img_neg_prompt textarea").input_value() == "blurry"
    assert (number("txt2img_steps"), number("txt2img_width"), number("txt2img_height")) == ("3", "64", "128")
    assert page.locator("#txt2img_seed input").input_value() == "777"
    assert number("clip_skip") == "2" and page.locator("#eta_noise_seed_delta input").input_value() == "31337"
    assert page.locator("#randn_source input").input_value() == "NV"
    page.locator("#txt2img_warnings", has_text="ADetailer model").wait_for()


def test_the_paste_button_reads_an_infotext_from_the_prompt_box(page):
    page.locator("#txt2img_prompt textarea").fill(PASTED)
    page.locator("#txt2img_paste").click()
    _expect_pasted(page)


def test_a_picture_dropped_on_the_prompt_box_sends_its_parameters(page, tmp_path):
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", PASTED)
    Image.new("RGB", (64, 128), "teal").save(tmp_path / "shared.png", pnginfo=info)
    page.locator("#txt2img_prompt textarea").fill("typed before the drop")
    # What the browser dispatches when a file is dragged from the desktop onto the prompt box.
    page.evaluate("""(bytes) => {
      const files = new DataTransfer();
      files.items.add(new File([new Uint8Array(bytes)], "shared.png", { type: "image/png" }));
      const box = document.querySelector("#txt2img_prompt textarea");
      for (const type of ["dragenter", "dragover", "drop"]) {
        box.dispatchEvent(new DragEvent(type, { dataTransfer: files, bubbles: true, cancelable: true }));
      }
    }""", list((tmp_path / "shared.png").read_bytes()))
    _expect_pasted(page)
