"""txt2img's Hires. fix in real Chromium: tick it, see the size it will make, generate, get the doubled image."""

from __future__ import annotations

from tests.browser.helpers import fill_small_txt2img, gallery_image, set_slider, wait_for_result


def test_hires_fix_doubles_the_image_and_writes_its_keys(page, server, shots):
    fill_small_txt2img(page, "a tiny castle")
    page.locator("#txt2img_hr").get_by_text("Hires. fix").first.click()  # open the accordion
    page.locator("#txt2img_enable_hr input[type=checkbox]").check()
    set_slider(page, "txt2img_hires_steps", 2)
    size_line = page.locator("#txt2img_hr_final_resolution")
    size_line.get_by_text("from 64x64 to 128x128").wait_for()
    set_slider(page, "txt2img_hr_scale", 1.5)
    size_line.get_by_text("from 64x64 to 96x96").wait_for()
    set_slider(page, "txt2img_hr_scale", 2)
    page.locator("#txt2img_generate").click()
    infotext = wait_for_result(page, "txt2img")
    image = gallery_image(page, "txt2img")
    page.screenshot(path=shots / "txt2img-hires.png", full_page=True)
    assert image.size == (128, 128)
    for key in ("Size: 64x64", "Denoising strength: 0.7", "Hires upscale: 2", "Hires steps: 2",
                "Hires upscaler: Latent"):
        assert key in infotext, infotext
    assert image.info["parameters"] == infotext
