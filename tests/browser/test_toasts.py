"""Errors raised by instant (non-device) events reach the user as toasts."""

from __future__ import annotations

from tests.browser.helpers import gradient_picture, open_tab, upload


def toast(page, text: str):
    return page.locator(".toast-body", has_text=text)


def test_send_to_before_any_result_shows_a_toast(page):
    page.locator("#txt2img_send_to_img2img").click()
    toast(page, "Nothing to send yet").wait_for()


def test_png_info_send_without_parameters_shows_a_toast(page, tmp_path):
    gradient_picture(tmp_path / "plain.png")
    open_tab(page, "PNG info")
    upload(page, "pnginfo_image", tmp_path / "plain.png")
    page.wait_for_function("() => document.querySelector('#pnginfo_table').innerText.includes('(none)')")
    page.locator("#pnginfo_send_to_txt2img").click()
    toast(page, "No parameters to send").wait_for()
