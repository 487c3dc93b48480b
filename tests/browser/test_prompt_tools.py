"""The tools around the prompt boxes in real Chromium: a style applied and saved, the style expanded at Generate
time, Ctrl+Up/Down on a selected word, and the token counter crossing 75."""

from __future__ import annotations

from tests.browser.helpers import dropdown_options, fill_small_txt2img, open_tab, wait_for_result

STYLES_CSV = ("name,prompt,negative_prompt\n"
              'Rainy,"{prompt}, in the rain",sunny\n'
              'Broken,"never closed\n')


def _styles_file(server):
    return server.outputs.parent / "styles.csv"  # the server's --data-dir


def _pick_style(page, tab: str, name: str) -> None:
    page.locator(f"#{tab}_styles input").click()
    page.locator(f"#{tab}_styles").get_by_role("option", name=name, exact=True).click()
    page.keyboard.press("Escape")
    page.wait_for_function("([el, v]) => el.innerText.includes(v)",
                           arg=[page.locator(f"#{tab}_styles").element_handle(), name])


def _wait_value(page, selector: str, value: str) -> None:
    page.wait_for_function("([el, v]) => el.value === v", arg=[page.locator(selector).element_handle(), value])


def test_a_style_is_applied_saved_and_expanded_at_generate(page, server, shots):
    _styles_file(server).write_text(STYLES_CSV, encoding="utf-8")
    page.locator("#txt2img_style_refresh").click()
    page.wait_for_function("el => el.innerText.includes('styles.csv line 3')",
                           arg=page.locator("#txt2img_style_problems").element_handle())
    assert dropdown_options(page, "txt2img_styles") == ["Rainy"]

    # 📋 writes the expanded prompts into the boxes and clears the selection.
    page.locator("#txt2img_prompt textarea").fill("a cat")
    _pick_style(page, "txt2img", "Rainy")
    page.locator("#txt2img_style_apply").click()
    _wait_value(page, "#txt2img_prompt textarea", "a cat, in the rain")
    _wait_value(page, "#txt2img_neg_prompt textarea", "sunny")
    page.wait_for_function("el => !el.innerText.includes('Rainy')",
                           arg=page.locator("#txt2img_styles").element_handle())

    # 💾 saves the current prompts under the new name, keeps the other rows, and every tab lists it.
    page.locator("#txt2img_style_name input, #txt2img_style_name textarea").first.fill("Saved one")
    page.locator("#txt2img_style_save").click()
    page.wait_for_function("el => el.value === ''",
                           arg=page.locator("#txt2img_style_name input, #txt2img_style_name textarea").first
                           .element_handle())
    text = _styles_file(server).read_text(encoding="utf-8")
    assert text.startswith(STYLES_CSV) and text.endswith('Saved one,"a cat, in the rain",sunny\n')
    assert dropdown_options(page, "txt2img_styles") == ["Rainy", "Saved one"]
    open_tab(page, "img2img")
    assert dropdown_options(page, "img2img_styles") == ["Rainy", "Saved one"]
    open_tab(page, "txt2img")

    # At Generate, the selected styles are applied to the prompts: the infotext keeps the expanded text.
    fill_small_txt2img(page, "a dog", seed=1)
    page.locator("#txt2img_neg_prompt textarea").fill("")
    _pick_style(page, "txt2img", "Rainy")
    page.screenshot(path=str(shots / "prompt_tools_styles.png"))
    page.locator("#txt2img_generate").click()
    infotext = wait_for_result(page, "txt2img")
    assert infotext.startswith("a dog, in the rain\nNegative prompt: sunny\n")
    assert page.locator("#txt2img_prompt textarea").input_value() == "a dog"  # the box keeps the user's text


def _select(page, box: str, start: int, end: int) -> None:
    page.locator(box).evaluate("(el, [s, e]) => { el.focus(); el.setSelectionRange(s, e); }", [start, end])


def test_ctrl_up_and_down_change_the_selected_words_emphasis(page, server):
    box = "#txt2img_prompt textarea"
    page.locator(box).fill("a cat sitting")
    _select(page, box, 2, 5)
    page.keyboard.press("Control+ArrowUp")
    _wait_value(page, box, "a (cat:1.1) sitting")
    assert page.locator(box).evaluate("el => el.value.slice(el.selectionStart, el.selectionEnd)") == "cat"
    page.keyboard.press("Control+ArrowUp")
    _wait_value(page, box, "a (cat:1.2) sitting")
    for _ in range(3):
        page.keyboard.press("Control+ArrowDown")
    _wait_value(page, box, "a (cat:0.9) sitting")
    page.keyboard.press("Control+ArrowUp")
    _wait_value(page, box, "a cat sitting")  # back at 1.0 the brackets go

    # A1111's old-style ((cat)) (1.21) becomes explicit, rounded to 0.1, then moves by 0.1.
    page.locator(box).fill("a ((cat)) sitting")
    _select(page, box, 5, 5)
    page.keyboard.press("Control+ArrowUp")
    _wait_value(page, box, "a (cat:1.3) sitting")
    page.locator(box).fill("a cat sitting")

    # With nothing selected, the word under the caret; Gradio gets the new value (saved as a style here).
    _select(page, box, 8, 8)
    page.keyboard.press("Control+ArrowUp")
    _wait_value(page, box, "a cat (sitting:1.1)")
    page.locator("#txt2img_style_name input, #txt2img_style_name textarea").first.fill("Weighted")
    page.locator("#txt2img_style_save").click()
    page.wait_for_function("el => el.value === ''",
                           arg=page.locator("#txt2img_style_name input, #txt2img_style_name textarea").first
                           .element_handle())
    assert "Weighted,a cat (sitting:1.1)," in _styles_file(server).read_text(encoding="utf-8")


def test_the_token_counter_grows_past_75(page, server, shots):
    counter = page.locator("#txt2img_prompt_token_counter")
    box = page.locator("#txt2img_prompt textarea")
    box.fill("cat " * 74)
    page.wait_for_function("el => el.innerText.trim() === '74/75'", arg=counter.element_handle())
    box.press("End")
    page.keyboard.type("dog dog")  # typed key by key: the counter follows the last keystroke
    page.wait_for_function("el => el.innerText.trim() === '76/150'", arg=counter.element_handle())
    negative = page.locator("#txt2img_neg_prompt_token_counter")
    page.locator("#txt2img_neg_prompt textarea").fill("(blurry:1.4), ugly")
    page.wait_for_function("el => el.innerText.trim() === '3/75'", arg=negative.element_handle())
    page.screenshot(path=str(shots / "prompt_tools_counter.png"))


def _set_old_timeline(page, on: bool) -> None:
    open_tab(page, "Settings")
    box = page.locator("#setting_use_old_scheduling input")
    box.check() if on else box.uncheck()
    page.locator("#settings_submit").click()
    page.locator("#settings_result").get_by_text("use_old_scheduling").wait_for()
    open_tab(page, "txt2img")


def test_the_old_prompt_editing_timeline_from_the_settings_tab_reaches_the_job(page):
    fill_small_txt2img(page, "a [cat:dog:2.0]")
    _set_old_timeline(page, True)
    try:
        page.locator("#txt2img_generate").click()
        assert "Old prompt editing timelines: True" in wait_for_result(page, "txt2img")
    finally:
        _set_old_timeline(page, False)  # the session's server keeps its config.json for the other tests
    page.locator("#txt2img_prompt textarea").fill("a [cat:dog:3]")
    page.locator("#txt2img_generate").click()
    page.wait_for_function("() => document.querySelector('#txt2img_infotext textarea').value"
                           ".startsWith('a [cat:dog:3]')")
    assert "Old prompt editing" not in page.locator("#txt2img_infotext textarea").input_value()
