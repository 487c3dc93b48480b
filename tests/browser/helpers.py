"""Small Playwright helpers shared by the browser tests (selectors follow the elem_ids in sdui/ui)."""

from __future__ import annotations

import io
import re

import numpy as np
from PIL import Image

RESULT_TIMEOUT_MS = 90_000


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name, exact=True).click()


def set_slider(page, elem_id: str, value: int | float) -> None:
    """Move a slider the way a user drags it (the range input), then check the number box followed."""
    page.locator(f"#{elem_id} input[type=range]").fill(str(value))
    number = page.locator(f"#{elem_id} input[type=number]")
    page.wait_for_function("([el, v]) => Number(el.value) === v", arg=[number.element_handle(), value])


def fill_small_txt2img(page, prompt: str, seed: int | None = None) -> None:
    """txt2img's prompt, 2 steps and 64x64 (and the seed when given): a job the tiny model finishes at once."""
    page.locator("#txt2img_prompt textarea").fill(prompt)
    set_slider(page, "txt2img_steps", 2)
    set_slider(page, "txt2img_width", 64)
    set_slider(page, "txt2img_height", 64)
    if seed is not None:
        page.locator("#txt2img_seed input").fill(str(seed))


def upload(page, elem_id: str, path) -> None:
    page.locator(f"#{elem_id} input[type=file]").first.set_input_files(str(path))


def fill_small_img2img(page, picture, steps: int) -> None:
    """img2img with a 64x64 gradient picture (written to `picture`; the size follows it) and `steps` steps."""
    gradient_picture(picture)
    open_tab(page, "img2img")
    upload(page, "img2img_image", picture)
    page.wait_for_function("() => document.querySelector('#img2img_width input[type=number]').value === '64'")
    set_slider(page, "img2img_height", 64)
    set_slider(page, "img2img_steps", steps)


def wait_for_result(page, tab: str) -> str:
    """Wait until the tab shows a finished job's infotext; return it."""
    box = page.locator(f"#{tab}_infotext textarea")
    page.wait_for_function("el => el.value.includes('Steps:')", arg=box.element_handle(),
                           timeout=RESULT_TIMEOUT_MS)
    return box.input_value()


def gallery_image(page, tab: str) -> Image.Image:
    """Download the first gallery image exactly as the browser gets it."""
    img = page.locator(f"#{tab}_gallery img[src*='file=']").first
    img.wait_for(timeout=RESULT_TIMEOUT_MS)
    reply = page.request.get(img.get_attribute("src"))
    assert reply.ok, reply.status
    return Image.open(io.BytesIO(reply.body()))


def gradient_picture(path) -> np.ndarray:
    """A 64x64 picture with structure, saved as PNG at `path`; returns its pixels."""
    y, x = np.mgrid[0:64, 0:64]
    pixels = np.stack([x * 4, y * 4, (x + y) * 2], axis=-1).astype(np.uint8)
    Image.fromarray(pixels, "RGB").save(path)
    return pixels


def editor_zoom(page, elem_id: str) -> float:
    """The editor's current zoom factor (its toolbar shows e.g. "559%")."""
    text = page.locator(f"#{elem_id}").inner_text()
    return int(re.search(r"(\d+)%", text).group(1)) / 100


def upload_to_editor(page, elem_id: str, path) -> None:
    """Drop a file into an ImageEditor once it is ready, and wait until it shows the picture."""
    # The editor (PixiJS) is ready when its toolbar shows the zoom; it re-zooms to fit a new picture.
    page.wait_for_function(f"() => /\\d+%/.test(document.querySelector('#{elem_id}').innerText)")
    empty_zoom = round(editor_zoom(page, elem_id) * 100)
    upload(page, elem_id, path)
    page.wait_for_function(f"z => !document.querySelector('#{elem_id}').innerText.includes(z + '%')",
                           arg=empty_zoom)


def choose_option(page, elem_id: str, option: str) -> None:
    """Pick `option` in a dropdown the way a user does (open it, click the option), and wait until it shows."""
    box = page.locator(f"#{elem_id} input")
    box.click()
    page.locator(f"#{elem_id}").get_by_role("option", name=option, exact=True).click()
    page.wait_for_function("([el, v]) => el.value === v", arg=[box.element_handle(), option])


def dropdown_options(page, elem_id: str) -> list[str]:
    """The choices a dropdown offers (opens it, reads them, closes it)."""
    page.locator(f"#{elem_id} input").click()
    options = page.locator(f"#{elem_id} [role=option]")
    options.first.wait_for()
    names = [name.strip() for name in options.evaluate_all("els => els.map(e => e.getAttribute('aria-label'))")]
    page.keyboard.press("Escape")
    return names


def save_with_parameters(image: Image.Image, path) -> None:
    """Save a downloaded PNG again with its `parameters` text chunk (Pillow drops it otherwise)."""
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", image.info["parameters"])
    image.save(path, pnginfo=info)
