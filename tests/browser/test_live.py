"""Live mode in real Chromium: the image follows a slider, one user's changes never pile up, Save writes the file."""

from __future__ import annotations

import re
import time
from pathlib import Path

from PIL import Image

from tests.browser.helpers import RESULT_TIMEOUT_MS, fill_small_img2img, fill_small_txt2img, set_slider

# Records every progress line the page shows, so the test sees each state the server reported.
RECORD_PROGRESS_JS = """
() => {
  window.sduiSeen = [];
  window.sduiTitles = [];
  const box = document.querySelector('#txt2img_progress');
  new MutationObserver(() => {
    window.sduiSeen.push([performance.now(), box.textContent]);
    window.sduiTitles.push(document.title);
  }).observe(box, { subtree: true, childList: true, characterData: true });
}
"""


def _files(outputs: Path) -> set[Path]:
    return {path for path in outputs.rglob("*") if path.is_file() and not path.name.startswith(".")}


def _wait_cfg(page, cfg: str) -> str:
    box = page.locator("#txt2img_infotext textarea")
    page.wait_for_function("([el, v]) => el.value.includes('CFG scale: ' + v + ',')", arg=[box.element_handle(), cfg],
                           timeout=RESULT_TIMEOUT_MS)
    return box.input_value()


def _wait_live_done(page) -> None:
    page.wait_for_function("() => /Live · Done/.test(document.querySelector('#txt2img_progress').textContent)",
                           timeout=RESULT_TIMEOUT_MS)


def test_live_follows_the_slider_and_saves_only_on_save(page, server, shots):
    before = _files(server.outputs)
    fill_small_txt2img(page, "live mode", seed=321)
    page.locator("#txt2img_live input").check()  # turning Live on starts the first live image
    first = _wait_cfg(page, "7")
    assert "Steps: 2," in first and "Seed: 321," in first

    page.evaluate(RECORD_PROGRESS_JS)
    latencies = []
    for cfg in (4.5, 3, 9.5):
        changed = page.evaluate("performance.now()")
        started = time.monotonic()
        set_slider(page, "txt2img_cfg_scale", cfg)
        infotext = _wait_cfg(page, f"{cfg:g}")
        latencies.append(time.monotonic() - started)
        assert "Steps: 2," in infotext and "Seed: 321," in infotext
        # When the job started on the server (its first "Starting"/"Step" line reached the page).
        running = next(t for t, text in page.evaluate("window.sduiSeen")
                       if t > changed and re.search(r"Live · (Starting|Step)", text))
        print(f"\nlive: slider change -> job running {running - changed:.0f} ms (300 ms pause included) -> "
              f"new image with its infotext {latencies[-1] * 1000:.0f} ms (2 steps, 64x64)")
        _wait_live_done(page)
    assert page.locator("#txt2img_gallery img").count() == 1  # the newest image replaced the old one

    # Changes that come faster than the jobs finish (each ~1 s at 20 steps of 256x256): each one supersedes.
    set_slider(page, "txt2img_width", 256)
    set_slider(page, "txt2img_height", 256)
    set_slider(page, "txt2img_steps", 20)
    page.evaluate("window.sduiSeen = []; window.sduiTitles = []")
    for cfg in (5, 5.5, 6, 6.5, 8):
        set_slider(page, "txt2img_cfg_scale", cfg)
        page.wait_for_timeout(450)  # past the 300 ms pause: every change reaches the server
    infotext = _wait_cfg(page, "8")
    assert "Steps: 20," in infotext and "Size: 256x256," in infotext
    _wait_live_done(page)
    seen = page.evaluate("window.sduiSeen")
    waiting = [int(n) for _, text in seen for n in re.findall(r"(\d+) waiting", text)]
    assert waiting and max(waiting) == 1, seen  # a change did wait, and never more than one at a time
    titles = page.evaluate("window.sduiTitles")
    assert any(re.match(r"\[\d+%\] sdui$", title) for title in titles), titles  # progress in the page title
    assert page.title() == "sdui"  # and back when the job is done

    assert _files(server.outputs) == before  # nothing written by live mode
    page.locator("#txt2img_save").click()
    page.locator("#txt2img_saved").get_by_text("Saved:").wait_for()
    new = _files(server.outputs) - before
    assert len(new) == 1
    (path,) = new
    assert str(path) in page.locator("#txt2img_saved").inner_text()
    page.screenshot(path=shots / "live-saved.png", full_page=True)
    with Image.open(path) as saved:
        assert "CFG scale: 8," in saved.info["parameters"] and "Size: 256x256," in saved.info["parameters"]

    page.locator("#txt2img_save").click()  # the same image again: no second copy
    page.locator("#txt2img_saved").get_by_text("Already saved:").wait_for()
    assert _files(server.outputs) - before == new
    page.locator("#txt2img_live input").uncheck()


def test_img2img_live_follows_the_denoising_slider_without_saving(page, server, tmp_path):
    fill_small_img2img(page, tmp_path / "in.png", steps=2)
    page.locator("#img2img_prompt textarea").fill("live watercolor")
    before = _files(server.outputs)
    page.locator("#img2img_live input").check()
    box = page.locator("#img2img_infotext textarea")
    for strength in ("0.75", "0.5"):
        if strength != "0.75":
            set_slider(page, "img2img_denoising_strength", float(strength))
        page.wait_for_function("([el, v]) => el.value.includes('Denoising strength: ' + v)",
                               arg=[box.element_handle(), strength], timeout=RESULT_TIMEOUT_MS)
        assert "live watercolor" in box.input_value() and "Steps: 2," in box.input_value()
    assert _files(server.outputs) == before  # live images are not saved
