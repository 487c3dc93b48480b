"""The whole page: top bar, the five tabs, and the wiring between them (Send to…, Ctrl+Enter, card clicks)."""

from __future__ import annotations

import gradio as gr

from sdui.ui import img2img, inpaint, networks, outpaint, pnginfo, topbar, txt2img
from sdui.ui import panel as panel_ui
from sdui.ui import results as results_ui
from sdui.ui.context import UIContext

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
            png = pnginfo.build()
        topbar.bind(ctx, bar)
        for name, module in GENERATE_TABS.items():
            module.bind(ctx, panels[name], bar)
        pnginfo.bind(ctx, png, tabs, panels, bar)
        for source in panels.values():
            _bind_send_to(source, tabs, panels)
        demo.load(None, js=page_js(CTRL_ENTER_JS, networks.CARDS_JS))
    return demo


def page_js(*scripts: str) -> str:
    """One function for `demo.load(js=...)` that runs each `() => {...}` script once, when the page loads."""
    return "() => {\n" + "".join(f"  ({script.strip()})();\n" for script in scripts) + "}"


def _bind_send_to(source: panel_ui.Panel, tabs: gr.Tabs, panels: dict[str, panel_ui.Panel]) -> None:
    """A result's "Send to X": its file into X's picture input, with the prompts, and switch to X."""
    for target, button in source.results.send.items():
        dest = panels[target]
        image_widget = pnginfo.image_input(dest)

        def send(data: dict | None, selected: int | None, prompt: str, negative: str, target: str = target):
            path = results_ui.selected_path(data, selected)
            if path is None:
                raise gr.Error("Nothing to send yet: generate an image first")
            return path, prompt, negative, gr.Tabs(selected=target)

        # Queued so its gr.Error shows a toast (Gradio 6 shows none for queue=False); no concurrency_id: runs at once.
        button.click(send, [source.results.data, source.results.selected, source.fields["prompt"],
                            source.fields["negative_prompt"]],
                     [image_widget, dest.fields["prompt"], dest.fields["negative_prompt"], tabs],
                     api_visibility="private", show_progress="hidden")
