"""Live progress and Interrupt in real Chromium: two browser sessions, each sees and stops only its own job."""

from __future__ import annotations

from tests.browser.helpers import RESULT_TIMEOUT_MS, set_slider, wait_for_result

STEP_TEXT = r"/Step \d+\/30/"
SECOND_STEP_TEXT = r"/Step \d+\/12/"  # the second job is shorter: it only has to run to its end


def _start_long_job(page, prompt: str, steps: int = 30) -> None:
    page.locator("#txt2img_prompt textarea").fill(prompt)
    set_slider(page, "txt2img_steps", steps)
    set_slider(page, "txt2img_width", 256)
    set_slider(page, "txt2img_height", 256)
    page.locator("#txt2img_generate").click()


def _progress_text(page) -> str:
    return page.locator("#txt2img_progress .sdui-progress-text").inner_text()


def _wait_progress(page, pattern: str, timeout: int = RESULT_TIMEOUT_MS) -> None:
    page.wait_for_function(
        f"() => {{ const t = document.querySelector('#txt2img_progress .sdui-progress-text');"
        f" return t && {pattern}.test(t.textContent); }}", timeout=timeout)


def test_each_session_follows_and_interrupts_only_its_own_job(browser, server, shots):
    contexts = [browser.new_context(viewport={"width": 1400, "height": 1100}) for _ in range(2)]
    try:
        first, second = (context.new_page() for context in contexts)
        for page in (first, second):
            page.set_default_timeout(30_000)
            page.goto(server.url)
            page.wait_for_selector("#txt2img_generate")
        _start_long_job(first, "first session")
        _wait_progress(first, STEP_TEXT)
        assert first.locator("#txt2img_progress .sdui-progress-bar").is_visible()
        first.screenshot(path=shots / "progress.png", full_page=True)
        _start_long_job(second, "second session", steps=12)
        # The device is busy with the first job: the second session sees its place in the line.
        second.locator("#txt2img_gallery").get_by_text("queue: 1/1").wait_for()
        assert "Step" not in second.locator("#txt2img_progress").inner_text()
        second.screenshot(path=shots / "progress-waiting.png", full_page=True)

        first.locator("#txt2img_interrupt").click()
        _wait_progress(first, "/Interrupted/")

        # The second session's job was not stopped: it shows its own steps and runs all 12.
        _wait_progress(second, SECOND_STEP_TEXT)
        second.locator("#txt2img_preview img").wait_for()  # the live preview of its own job
        second.screenshot(path=shots / "progress-second.png", full_page=True)
        infotext = wait_for_result(second, "txt2img")
        assert infotext.startswith("second session\n") and "Steps: 12" in infotext
        assert "Interrupted" not in _progress_text(second)
        assert _progress_text(second).startswith("Done")
        first_text = first.locator("#txt2img_infotext textarea").input_value()
        assert "second session" not in first_text
    finally:
        for context in contexts:
            context.close()
