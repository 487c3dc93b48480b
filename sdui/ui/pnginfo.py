"""Putting a picture's parameters into the tabs: the PNG info tab (read, Send to, Regenerate), and each generation
tab's ↙ button and picture drop on its prompt box. Which infotext key becomes which field is outputs/paste.py's job.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import partial
from typing import Any

import gradio as gr

from sdui.models.extras import VAE_AUTOMATIC, VAE_NONE
from sdui.outputs.infotext import DEFAULTS, parse_infotext
from sdui.outputs.paste import Pasted, paste_infotext
from sdui.outputs.read import read_infotext
from sdui.params import GenerationParams, Mode
from sdui.ui import editor
from sdui.ui import hires as hires_ui
from sdui.ui import panel as panel_ui
from sdui.ui import refiner as refiner_ui
from sdui.ui import topbar
from sdui.ui.context import UIContext
from sdui.ui.results import warnings_html

SEND_TARGETS = ("txt2img", "img2img", "inpaint", "outpaint")
NOTHING_TO_SEND = "No parameters to send: drop a picture made by sdui or AUTOMATIC1111 first"
NOTHING_TO_READ = ("No parameters to read: paste an infotext (the text under a picture on civitai, or PNG info's "
                   "Parameters) into the prompt box first, or generate an image")

# A picture dropped on a tab's prompt box goes into that tab's hidden file input (panel.dropped): the server reads it
# with read_infotext (PNG text chunk, JPEG/WEBP EXIF) and pastes it as ↙ does. Dropped text stays plain text.
DROP_JS = """
() => {
  const TABS = ["txt2img", "img2img", "inpaint", "outpaint"];
  const tabOf = (e) => {
    const box = e.target.closest && e.target.closest("[id$='_prompt']");
    return box && TABS.find((t) => box.id === t + "_prompt" || box.id === t + "_neg_prompt");
  };
  const hasFiles = (e) => e.dataTransfer && Array.from(e.dataTransfer.types || []).includes("Files");
  document.addEventListener("dragover", (e) => {
    if (tabOf(e) && hasFiles(e)) { e.preventDefault(); e.dataTransfer.dropEffect = "copy"; }
  }, true);
  document.addEventListener("drop", (e) => {
    const tab = tabOf(e);
    const file = tab && hasFiles(e) && e.dataTransfer.files[0];
    const input = file && document.querySelector("#" + tab + "_dropped input[type=file]");
    if (!input) return;
    e.preventDefault();
    e.stopPropagation();
    const files = new DataTransfer();
    files.items.add(file);
    input.files = files.files;
    input.dispatchEvent(new Event("change", { bubbles: true }));
  }, true);
  // A1111's tooltip for ↙ (gr.Button has no tooltip of its own), set when the pointer first reaches it.
  document.addEventListener("mouseover", (e) => {
    const button = e.target.closest && e.target.closest(TABS.map((t) => "#" + t + "_paste").join(","));
    if (button && !button.title) button.title = TOOLTIP;
  });
}
""".replace("TOOLTIP", json.dumps(panel_ui.PASTE_TOOLTIP))

# Regenerate clicks the Generate button of the tab it filled (the hidden box names it; empty: nothing to start).
# Gradio mounts a tab's widgets when it is first shown: wait a little for the button of a tab never opened before.
CLICK_GENERATE_JS = """
(tab) => {
  if (!tab) return;
  const until = Date.now() + 5000;
  const click = () => {
    const button = document.getElementById(tab + "_generate");
    if (button) button.click(); else if (Date.now() < until) setTimeout(click, 50);
  };
  click();
}
"""

# What a mode needs that no infotext stores, and what to tell the user when the tab lacks it.
NEEDS = {
    Mode.IMG2IMG: "its init image is not stored in the PNG. Put the original picture into the img2img tab",
    Mode.INPAINT: "its init image and mask are not stored in the PNG. Put the original picture and the mask into "
                  "the inpaint tab",
    Mode.OUTPAINT: "its init image is not stored in the PNG. Put the original picture into the outpaint tab",
}
NEEDS_MASK = "its mask is not stored in the PNG. Paint the mask over the picture in the inpaint tab"


@dataclass
class PngInfo:
    image: gr.Image
    text: gr.Textbox
    table: gr.Dataframe
    send: dict[str, gr.Button]
    regenerate: gr.Button
    regenerate_tab: gr.Textbox  # hidden: the tab whose Generate Regenerate clicks ("" = none)
    send_extras: gr.Button  # the picture itself into Extras (wired by blocks.py)


def build() -> PngInfo:
    """Lay out the tab (call inside gr.Tabs)."""
    with gr.Tab("PNG info", id="pnginfo"):
        with gr.Row(equal_height=False):
            with gr.Column():
                # filepath + no image_mode: the uploaded file is read as is, its text chunks intact.
                image = gr.Image(label="Source", type="filepath", image_mode=None, sources=["upload", "clipboard"],
                                 height=420, elem_id="pnginfo_image")
            with gr.Column():
                text = gr.Textbox(label="Parameters", lines=6, max_lines=24, elem_id="pnginfo_text",
                                  placeholder="Drop a picture, or paste its parameters (e.g. from civitai) here")
                table = gr.Dataframe(headers=["Parameter", "Value"], interactive=False, wrap=True,
                                     elem_id="pnginfo_table")
                with gr.Row():
                    send = {t: gr.Button(f"Send to {t}", elem_id=f"pnginfo_send_to_{t}") for t in SEND_TARGETS}
                    send_extras = gr.Button("Send to extras", elem_id="pnginfo_send_to_extras")
                regenerate = gr.Button("Regenerate", variant="primary", elem_id="pnginfo_regenerate")
                regenerate_tab = gr.Textbox("", visible="hidden", elem_id="pnginfo_regenerate_tab")
    return PngInfo(image=image, text=text, table=table, send=send, regenerate=regenerate,
                   regenerate_tab=regenerate_tab, send_extras=send_extras)


def read(image: str | None) -> tuple[str, list[list[str]]]:
    """The infotext of the picture at `image` and its fields as (parameter, value) rows."""
    if image is None:
        return "", []
    text = _read_file(image)
    if not text:
        return "", [["(none)", "This picture carries no generation parameters"]]
    return text, rows(text)


def rows(text: str) -> list[list[str]]:
    """An infotext's fields as (parameter, value) rows; none for text that is not one."""
    try:
        return [[str(key), str(value)] for key, value in parse_infotext(text).items()] if text.strip() else []
    except ValueError:
        return []


def bind(ctx: UIContext, ui: PngInfo, tabs: gr.Tabs, panels: dict[str, panel_ui.Panel], bar: topbar.TopBar) -> None:
    """Wire reading (api_name "png_info"), the Send-to buttons and Regenerate."""
    # Queued so gr.Error shows a toast (Gradio 6 shows none for queue=False); no concurrency_id: they run at once.
    ui.image.change(read, ui.image, [ui.text, ui.table], api_name="png_info")
    ui.text.input(rows, ui.text, ui.table, queue=False, api_visibility="private", show_progress="hidden",
                  trigger_mode="always_last")  # the table follows pasted or edited parameters
    for target, button in ui.send.items():
        _bind_send(ctx, ui, button, tabs, panels[target], bar)
    pictures = {mode: image_input(panels[mode.value]) for mode in NEEDS}
    outputs = [*bar.fields.values(), tabs, ui.regenerate_tab]
    for panel in panels.values():
        outputs += [*panel.fields.values(), *refiner_ui.paste_outputs(panel), panel.results.warnings,
                    panel.results.pasted_warnings]

    def regenerate(text: str, checkpoint: str | None, vae: str | None, *values: Any) -> dict[Any, Any]:
        return regenerate_updates(ctx, text, panels, bar, checkpoint, vae, dict(zip(pictures, values)),
                                  tabs=tabs, target_box=ui.regenerate_tab)

    ui.regenerate.click(regenerate, [ui.text, bar.checkpoint, bar.vae, *pictures.values()], outputs,
                        api_visibility="private", show_progress="hidden").success(
        None, ui.regenerate_tab, None, js=CLICK_GENERATE_JS)


def bind_paste(ctx: UIContext, panel: panel_ui.Panel, bar: topbar.TopBar) -> None:
    """A tab's ↙ (the infotext in its prompt box, else its last job's, into every field) and a picture dropped on
    its prompt box (see DROP_JS)."""
    outputs = [*panel.fields.values(), *refiner_ui.paste_outputs(panel), *bar.fields.values(), panel.results.warnings,
               panel.results.pasted_warnings]
    panel.paste.click(partial(prompt_updates, ctx, panel, bar),
                      [panel.fields["prompt"], panel.results.infotext, bar.checkpoint, bar.vae], outputs,
                      api_visibility="private", show_progress="hidden")
    # Emptied afterwards, also after an error: the drop script needs the empty upload box for the next picture.
    panel.dropped.upload(partial(dropped_updates, ctx, panel, bar), [panel.dropped, bar.checkpoint, bar.vae],
                         outputs, api_visibility="private", show_progress="hidden").then(
        lambda: None, None, panel.dropped, queue=False, api_visibility="private")


def prompt_updates(ctx: UIContext, panel: panel_ui.Panel, bar: topbar.TopBar, prompt: str, last: str,
                   checkpoint: str | None, vae: str | None) -> dict[Any, Any]:
    """↙: the infotext pasted into the prompt box (or, when it is empty, the tab's last job's) into every field;
    the prompt box then holds only its prompt."""
    text = prompt if prompt and prompt.strip() else last
    if not text or not text.strip():
        raise gr.Error(NOTHING_TO_READ)
    return infotext_updates(ctx, text, panel, bar, checkpoint, vae)[0]


def dropped_updates(ctx: UIContext, panel: panel_ui.Panel, bar: topbar.TopBar, path: str | None,
                    checkpoint: str | None, vae: str | None) -> dict[Any, Any]:
    """A picture dropped on the prompt box: its parameters (PNG text chunk or JPEG/WEBP EXIF) into every field."""
    text = _read_file(path) if path else None
    if not text:
        raise gr.Error("This picture carries no generation parameters: drop a picture made by sdui or AUTOMATIC1111")
    return infotext_updates(ctx, text, panel, bar, checkpoint, vae)[0]


def _bind_send(ctx: UIContext, ui: PngInfo, button: gr.Button, tabs: gr.Tabs, panel: panel_ui.Panel,
               bar: topbar.TopBar) -> None:
    image_widget = image_input(panel)
    outputs = [*panel.fields.values(), *refiner_ui.paste_outputs(panel), *bar.fields.values(), panel.results.warnings,
               panel.results.pasted_warnings, tabs]
    outputs += [image_widget] if image_widget is not None else []

    def send(text: str, image: str | None, checkpoint: str | None, vae: str | None) -> dict[Any, Any]:
        updates, _ = infotext_updates(ctx, text, panel, bar, checkpoint, vae)
        updates[tabs] = gr.Tabs(selected=panel.tab)
        if image_widget is not None and image is not None:
            updates[image_widget] = image
        return updates

    button.click(send, [ui.text, ui.image, bar.checkpoint, bar.vae], outputs, api_visibility="private",
                 show_progress="hidden")


def infotext_updates(ctx: UIContext, text: str, panel: panel_ui.Panel, bar: topbar.TopBar, checkpoint: str | None,
                     vae: str | None) -> tuple[dict[Any, Any], Pasted]:
    """The widget values that show an infotext in `panel` and the top bar, with what could not be applied in the
    tab's warnings box; gr.Error when the text cannot be used.

    `checkpoint` and `vae` are the top bar's current choices: kept (and named in the warning) when the infotext's
    are not installed. Send to, ↙, a dropped picture and Regenerate all come through here.
    """
    pasted = _paste(ctx, text, Mode(panel.tab), checkpoint, vae)
    params = pasted.params
    updates: dict[Any, Any] = panel_ui.field_updates(panel, params)
    updates[bar.checkpoint] = topbar.checkpoint_update(ctx, params.checkpoint)
    choice = params.vae if params.vae in (VAE_AUTOMATIC, VAE_NONE) else topbar.vae_choice(ctx, params.vae)
    if choice:  # with the current choices: the file may have come after the page was built
        updates[bar.vae] = gr.Dropdown(choices=topbar.vae_choices(ctx.manager.extras.vaes.list()), value=choice)
    updates[bar.clip_skip] = params.clip_skip
    updates[bar.randn_source] = params.randn_source
    updates[bar.eta_noise_seed_delta] = params.eta_noise_seed_delta
    updates[bar.use_old_scheduling] = params.use_old_scheduling
    if "enable_hr" in panel.fields:
        hires_ui.sent_updates(ctx, panel.fields, params, updates)
    if "refiner_checkpoint" in panel.fields:
        refiner_ui.sent_updates(ctx, panel, params, updates)
    updates[panel.results.warnings] = warnings_html(pasted.warnings)
    updates[panel.results.pasted_warnings] = []
    return updates, pasted


def regenerate_updates(ctx: UIContext, text: str, panels: dict[str, panel_ui.Panel], bar: topbar.TopBar,
                       checkpoint: str | None, vae: str | None, pictures: dict[Mode, Any], *, tabs: gr.Tabs,
                       target_box: gr.Textbox) -> dict[Any, Any]:
    """Regenerate: the infotext into the tab of the mode it was made with, and that tab's name in `target_box` so
    its Generate is clicked; the box stays empty (and the tab's warnings say what to add) when the tab lacks the
    init image or mask no infotext stores. `pictures`: the img2img/inpaint/outpaint picture widgets' values."""
    mode = _paste(ctx, text, Mode.TXT2IMG, checkpoint, vae).mode
    panel = panels[mode.value]
    updates, pasted = infotext_updates(ctx, text, panel, bar, checkpoint, vae)
    updates[tabs] = gr.Tabs(selected=panel.tab)
    missing = missing_input(mode, pictures.get(mode))
    if missing:
        gr.Warning(missing)
        updates[panel.results.warnings] = warnings_html([missing, *pasted.warnings])
        updates[target_box] = ""
    else:
        updates[panel.results.pasted_warnings] = list(pasted.warnings)  # shown with the job's own
        updates[target_box] = panel.tab
    return updates


def missing_input(mode: Mode, picture: Any) -> str | None:
    """What a tab of `mode` still needs before it can generate again (`picture`: its picture widget's value)."""
    if mode not in NEEDS:
        return None
    if mode is Mode.IMG2IMG:
        lacking = NEEDS[mode] if picture is None else None
    else:
        background = editor.background(picture)
        lacking = NEEDS[mode] if background is None else None
        if mode is Mode.INPAINT and background is not None and editor.painted_mask(picture, background.size) is None:
            lacking = NEEDS_MASK
    return f"This picture was made with {mode.value}: {lacking}, then press Generate." if lacking else None


def image_input(panel: panel_ui.Panel) -> gr.components.Component | None:
    """The widget that takes a tab's input picture (img2img's Image, inpaint/outpaint's editor)."""
    return panel.fields.get("init_image") or panel.extras.get("editor")


def _paste(ctx: UIContext, text: str, mode: Mode, checkpoint: str | None, vae: str | None) -> Pasted:
    if not text or not text.strip():
        raise gr.Error(NOTHING_TO_SEND)
    base = GenerationParams(mode=mode, checkpoint=checkpoint or None, vae=vae or VAE_AUTOMATIC)
    try:
        # Every field is set from the text (defaults where it is silent): a bare prompt would reset them all.
        if not set(parse_infotext(text)) - {"Prompt", "Negative prompt", *DEFAULTS}:
            raise ValueError("the text has no parameters line (the last line, e.g. 'Steps: 20, Sampler: Euler a, "
                             "CFG scale: 7, Seed: 1, Size: 512x512'); paste the whole infotext")
        return paste_infotext(text, base, catalog=ctx.catalog, vaes=ctx.manager.extras.vaes,
                              upscalers=ctx.manager.upscalers, networks=ctx.manager.extras)
    except ValueError as e:
        raise gr.Error(f"These parameters cannot be used: {e}") from e


def _read_file(path: str) -> str | None:
    try:
        return read_infotext(path)
    except ValueError as e:
        raise gr.Error(f"Cannot read this file: {e}. Drop a PNG, JPEG or WEBP picture.") from e
