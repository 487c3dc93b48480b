"""Extra networks cards, the SD VAE dropdown and job warnings in real Chromium against the real server."""

from __future__ import annotations

from tests.browser.conftest import ODD_LORA, SEEDED_EMBEDDING, SEEDED_VAE
from tests.browser.helpers import (choose_option, dropdown_options, gallery_image, open_tab, save_with_parameters,
                                   set_slider, upload, wait_for_result)


def open_networks(page, tab: str = "txt2img") -> None:
    """Open the tab's Extra networks and wait for its Lora cards."""
    page.locator(f"#{tab}_extra_networks").get_by_text("Extra networks", exact=True).click()
    page.locator(f"#{tab}_extra_lora_cards .sdui-card").first.wait_for()


def show_page(page, label: str, tab: str = "txt2img") -> None:
    page.locator(f"#{tab}_extra_networks").get_by_role("tab", name=label, exact=True).click()


def card_names(page, kind: str, tab: str = "txt2img") -> list[str]:
    return page.locator(f"#{tab}_extra_{kind}_cards .sdui-card").evaluate_all("els => els.map(e => e.dataset.name)")


def wait_card_names(page, kind: str, names: list[str], tab: str = "txt2img") -> None:
    page.wait_for_function("([sel, names]) => JSON.stringify([...document.querySelectorAll(sel)]"
                           ".map(e => e.dataset.name)) === JSON.stringify(names)",
                           arg=[f"#{tab}_extra_{kind}_cards .sdui-card", names])


def card(page, kind: str, name: str, tab: str = "txt2img"):
    return page.locator(f"#{tab}_extra_{kind}_cards .sdui-card").filter(has_text=name)


def textarea(page, elem_id: str):
    return page.locator(f"#{elem_id} textarea")


def small_job(page, prompt: str, tab: str = "txt2img") -> None:
    textarea(page, f"{tab}_prompt").fill(prompt)
    for name, value in (("steps", 2), ("width", 64), ("height", 64)):
        set_slider(page, f"{tab}_{name}", value)


def test_cards_list_search_and_go_into_the_prompt_that_had_focus_last(page, server):
    open_networks(page)
    assert card_names(page, "lora") == [ODD_LORA, "detail"]  # by path: characters/… first
    assert card(page, "lora", ODD_LORA).inner_text().startswith(ODD_LORA)  # shown as written, not as markup
    page.locator("#txt2img_extra_search textarea").fill("DET")
    wait_card_names(page, "lora", ["detail"])
    page.locator("#txt2img_extra_search textarea").fill("")
    wait_card_names(page, "lora", [ODD_LORA, "detail"])

    prompt, negative = textarea(page, "txt2img_prompt"), textarea(page, "txt2img_neg_prompt")
    prompt.fill("a cat")
    card(page, "lora", "detail").click()
    assert prompt.input_value() == "a cat <lora:detail:1>"
    negative.click()  # the negative prompt had focus last: an embedding goes there
    show_page(page, "Textual Inversion")
    card(page, "embedding", SEEDED_EMBEDDING).click()
    assert negative.input_value() == SEEDED_EMBEDDING and prompt.input_value() == "a cat <lora:detail:1>"
    prompt.click()
    prompt.evaluate("el => el.setSelectionRange(0, 0)")  # the cursor at the start: the tag goes there
    show_page(page, "Lora")
    card(page, "lora", ODD_LORA).click()
    assert prompt.input_value() == f"<lora:{ODD_LORA}:1> a cat <lora:detail:1>"

    # A checkpoint put in the models folder while the server runs: refresh lists it, its card selects it.
    (server.ckpt_dir / "zz-added.safetensors").write_bytes(b"placeholder: listed, never loaded")
    page.locator("#txt2img_extra_refresh").click()
    show_page(page, "Checkpoints")
    card(page, "checkpoint", "zz-added").click()
    page.wait_for_function("() => document.querySelector('#checkpoint input').value === 'zz-added.safetensors'")
    assert "loads when the next job starts" in page.locator("#model_status").inner_text()


def test_a_lora_added_while_running_applies_and_a_missing_one_is_a_warning(page, server, tiny_pipeline):
    from tests.networks.lora_files import write_kohya_lora

    open_networks(page)  # the folder is listed now: a file added after it shows only after a refresh
    write_kohya_lora(server.lora_dir / "fresh.safetensors", tiny_pipeline)
    page.locator("#txt2img_extra_search textarea").fill("fresh")
    page.get_by_text("Nothing matches “fresh”").wait_for()
    page.locator("#txt2img_extra_refresh").click()
    wait_card_names(page, "lora", ["fresh"])

    small_job(page, "a fox <lora:missing:1>")
    card(page, "lora", "fresh").click()
    textarea(page, "txt2img_neg_prompt").click()
    show_page(page, "Textual Inversion")
    page.locator("#txt2img_extra_search textarea").fill("")
    card(page, "embedding", SEEDED_EMBEDDING).click()
    page.locator("#txt2img_generate").click()
    infotext = wait_for_result(page, "txt2img")
    assert infotext.startswith(f"a fox <lora:missing:1> <lora:fresh:1>\nNegative prompt: {SEEDED_EMBEDDING}\n")
    assert '"fresh: ' in infotext and "Lora hashes" in infotext and f"{SEEDED_EMBEDDING}: " in infotext
    warnings = page.locator("#txt2img_warnings")
    assert "LoRA 'missing' not found" in warnings.inner_text() and "fresh" not in warnings.inner_text()
    assert gallery_image(page, "txt2img").size == (64, 64), "the image is made all the same"

    textarea(page, "txt2img_prompt").fill("a fox <lora:fresh:1>")
    page.locator("#txt2img_generate").click()
    page.wait_for_function("() => document.querySelector('#txt2img_infotext textarea').value"
                           ".startsWith('a fox <lora:fresh:1>\\n')")
    assert warnings.inner_text().strip() == "", "the next job clears the warnings"


def test_vae_dropdown_refresh_generate_and_png_info_sets_it_back(page, server, tiny_pipeline, tmp_path):
    from tests.networks.vae_files import finetuned, write_ldm_safetensors

    assert dropdown_options(page, "sd_vae") == ["Automatic", "None", SEEDED_VAE]
    write_ldm_safetensors(finetuned(tiny_pipeline.vae), server.vae_dir / "tiny-ft.safetensors")
    page.locator("#refresh_vae").click()
    page.wait_for_function("() => document.querySelector('#model_status').innerText.includes('2 VAE(s)')")
    choose_option(page, "sd_vae", "tiny-ft.safetensors")
    small_job(page, "a red kite")
    page.locator("#txt2img_generate").click()
    infotext = wait_for_result(page, "txt2img")
    assert "VAE: tiny-ft.safetensors" in infotext and "VAE hash: " in infotext

    save_with_parameters(gallery_image(page, "txt2img"), tmp_path / "made.png")
    choose_option(page, "sd_vae", "Automatic")
    open_tab(page, "PNG info")
    upload(page, "pnginfo_image", tmp_path / "made.png")
    page.wait_for_function("() => document.querySelector('#pnginfo_text textarea').value"
                           ".includes('VAE: tiny-ft.safetensors')")
    page.locator("#pnginfo_send_to_txt2img").click()
    page.wait_for_function("() => document.querySelector('#sd_vae input').value === 'tiny-ft.safetensors'")
