"""The whole page: top bar, the tabs, and the wiring between them (Send to…, ↙, Ctrl+Enter, card clicks, drops)."""

from __future__ import annotations

import gradio as gr

from sdui.ui import extras, img2img, inpaint, networks, outpaint, pnginfo, topbar, txt2img
from sdui.ui import panel as panel_ui
from sdui.ui import prompt_tools
from sdui.ui import results as results_ui
from sdui.ui import settings_tab, ui_config
from sdui.ui.context import UIContext
from sdui.ui.notify import NOTIFY_JS

TITLE = "sdui"
GENERATE_TABS = {"txt2img": txt2img, "img2img": img2img, "inpaint": inpaint, "outpaint": outpaint}

# Ctrl+Enter (Cmd+Enter) inside a prompt box clicks that tab's Generate button.
CTRL_ENTER_JS = """
() => {
  document.addEventListener("keydown", (e) => {
    if (e.key !== "Enter" || !(e.ctrlKey || e.metaKey)) return;
    const box = e.target.closest && e.target.closest("[id$='_prompt']");
    if (!box) return;
    const tab = box.id.replace(/_(neg_)?prompt$/, "");
    const button = document.getElementById(tab + "_generate");
    if (button) { e.preventDefault(); button.click(); }
  });
}
"""


def build_ui(ctx: UIContext) -> gr.Blocks:
    """Build the Blocks app for `ctx`; nothing is launched here."""
    with gr.Blocks(title=TITLE, analytics_enabled=False) as demo:
        bar = topbar.build(ctx)
        with gr.Tabs() as tabs:
            panels = {name: module.build(ctx) for name, module in GENERATE_TABS.items()}
            extras_tab = extras.build(ctx)  # before PNG info, as in A1111
            png = pnginfo.build()
            settings = settings_tab.build(ctx) if getattr(ctx, "options", None) else None  # after PNG info, as A1111
        topbar.bind(ctx, bar)
        for name, module in GENERATE_TABS.items():
            module.bind(ctx, panels[name], bar)
            pnginfo.bind_paste(ctx, panels[name], bar)
        extras.bind(ctx, extras_tab)
        pnginfo.bind(ctx, png, tabs, panels, bar)
        extras.bind_send_to_extras(png.send_extras, lambda image: image, [png.image], tabs, extras_tab,
                                   "Nothing to send yet: drop a picture first")
        for source in panels.values():
            _bind_send_to(source.results, tabs, panels, extras_tab,
                          (source.fields["prompt"], source.fields["negative_prompt"]))
        _bind_send_to(extras_tab.results, tabs, panels, extras_tab)
        if settings is not None:
            settings_tab.bind(ctx, settings, bar, demo)
            # Once every widget exists: ui-config.json's defaults; its problems join config.json's in the tab.
            ui_config_path = ui_config.path_beside(ctx.options)
            report = ui_config.apply(demo, ui_config_path, skip_tabs=(settings_tab.TAB,))
            settings_tab.show_messages(settings, report.messages)
            settings_tab.bind_defaults(settings, report.widgets, ui_config_path)
        prompt_tools.bind(ctx, panels.values(), demo)
        demo.load(None, js=page_js(CTRL_ENTER_JS, networks.CARDS_JS, pnginfo.DROP_JS, NOTIFY_JS,
                                   prompt_tools.EDIT_ATTENTION_JS))
    return demo


def page_js(*scripts: str) -> str:
    """One function for `demo.load(js=...)` that runs each `() => {...}` script once, when the page loads."""
    return "() => {\n" + "".join(f"  ({script.strip()})();\n" for script in scripts) + "}"


def _bind_send_to(results: results_ui.Results, tabs: gr.Tabs, panels: dict[str, panel_ui.Panel],
                  extras_tab: extras.ExtrasTab, prompts: tuple[gr.Textbox, ...] = ()) -> None:
    """A result's "Send to X": its file into X's picture input, with the `prompts` (prompt, negative prompt) when
    the source tab has them, and switch to X."""
    nothing = "Nothing to send yet: generate an image first"
    for target, button in results.send.items():
        if target == extras.TAB:
            extras.bind_send_to_extras(button, results_ui.selected_path, [results.data, results.selected], tabs,
                                       extras_tab, nothing)
            continue
        dest = panels[target]
        image_widget = pnginfo.image_input(dest)
        dest_prompts = [dest.fields["prompt"], dest.fields["negative_prompt"]] if prompts else []

        def send(data: dict | None, selected: int | None, *texts: str, target: str = target):
            path = results_ui.selected_path(data, selected)
            if path is None:
                raise gr.Error(nothing)
            return path, *texts, gr.Tabs(selected=target)

        # Queued so its gr.Error shows a toast (Gradio 6 shows none for queue=False); no concurrency_id: runs at once.
        button.click(send, [results.data, results.selected, *prompts],
                     [image_widget, *dest_prompts, tabs], api_visibility="private", show_progress="hidden")
