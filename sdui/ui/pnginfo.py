"""The PNG info tab: read the parameters stored in any picture and send them to a tab with one click."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from sdui.models.errors import ModelNotFound
from sdui.outputs.infotext import params_from_infotext, parse_infotext
from sdui.outputs.read import read_infotext
from sdui.ui import hires as hires_ui
from sdui.ui import panel as panel_ui
from sdui.ui import topbar
from sdui.ui.context import UIContext

SEND_TARGETS = ("txt2img", "img2img", "inpaint")


@dataclass
class PngInfo:
    image: gr.Image
    text: gr.Textbox
    table: gr.Dataframe
    send: dict[str, gr.Button]
    regenerate: gr.Button
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
                text = gr.Textbox(label="Parameters", lines=6, interactive=False, elem_id="pnginfo_text")
                table = gr.Dataframe(headers=["Parameter", "Value"], interactive=False, wrap=True,
                                     elem_id="pnginfo_table")
                with gr.Row():
                    send = {t: gr.Button(f"Send to {t}", elem_id=f"pnginfo_send_to_{t}") for t in SEND_TARGETS}
                    send_extras = gr.Button("Send to extras", elem_id="pnginfo_send_to_extras")
                regenerate = gr.Button("Regenerate", variant="primary", elem_id="pnginfo_regenerate")
    return PngInfo(image=image, text=text, table=table, send=send, regenerate=regenerate, send_extras=send_extras)


def read(image: str | None) -> tuple[str, list[list[str]]]:
    """The infotext of the picture at `image` and its fields as (parameter, value) rows."""
    if image is None:
        return "", []
    try:
        text = read_infotext(image)
    except ValueError as e:
        raise gr.Error(f"Cannot read this file: {e}. Drop a PNG, JPEG or WEBP picture.") from e
    if not text:
        return "", [["(none)", "This picture carries no generation parameters"]]
    return text, [[str(key), str(value)] for key, value in parse_infotext(text).items()]


def bind(ctx: UIContext, ui: PngInfo, tabs: gr.Tabs, panels: dict[str, panel_ui.Panel], bar: topbar.TopBar) -> None:
    """Wire reading (api_name "png_info"), the Send-to buttons and Regenerate."""
    # Queued so gr.Error shows a toast (Gradio 6 shows none for queue=False); no concurrency_id: they run at once.
    ui.image.change(read, ui.image, [ui.text, ui.table], api_name="png_info")
    for target, button in ui.send.items():
        _bind_send(ctx, ui, button, tabs, panels[target], bar)
    _bind_send(ctx, ui, ui.regenerate, tabs, panels["txt2img"], bar).success(
        None, js="() => { document.querySelector('#txt2img_generate').click(); }")


def _bind_send(ctx: UIContext, ui: PngInfo, button: gr.Button, tabs: gr.Tabs, panel: panel_ui.Panel,
               bar: topbar.TopBar):
    image_widget = image_input(panel)
    outputs = [*panel.fields.values(), *bar.fields.values(), tabs]
    outputs += [image_widget] if image_widget is not None else []

    def send(text: str, image: str | None) -> dict[Any, Any]:
        updates, notes = infotext_updates(ctx, text, panel, bar)
        for note in notes:
            gr.Warning(note)
        updates[tabs] = gr.Tabs(selected=panel.tab)
        if image_widget is not None and image is not None:
            updates[image_widget] = image
        return updates

    return button.click(send, [ui.text, ui.image], outputs, api_visibility="private",
                        show_progress="hidden")


def infotext_updates(ctx: UIContext, text: str, panel: panel_ui.Panel,
                     bar: topbar.TopBar) -> tuple[dict[Any, Any], list[str]]:
    """The widget values that show an infotext in `panel` (its `Lora hashes` too) and in the top bar (checkpoint
    and VAE, when installed), and notes on what could not be shown; gr.Error when it cannot be used."""
    if not text:
        raise gr.Error("No parameters to send: drop a picture made by sdui or AUTOMATIC1111 first")
    try:
        params = params_from_infotext(text)
    except ValueError as e:
        raise gr.Error(f"These parameters cannot be used: {e}") from e
    updates: dict[Any, Any] = panel_ui.field_updates(panel, params)
    info, notes = parse_infotext(text), []
    title = checkpoint_title(ctx, params.checkpoint, info.get("Model hash"))
    if title:
        updates[bar.checkpoint] = topbar.checkpoint_update(ctx, title)
    if info.get("VAE"):
        choice = topbar.vae_choice(ctx, str(info["VAE"]))
        if choice:  # with the current choices: the file may have come after the page was built
            updates[bar.vae] = gr.Dropdown(choices=topbar.vae_choices(ctx.manager.extras.vaes.list()), value=choice)
        else:
            notes.append(f"The picture's VAE '{info['VAE']}' is not in {ctx.settings.vae_dir}: the SD VAE setting "
                         "was left as it is")
    if "enable_hr" in panel.fields:
        hr_checkpoint = checkpoint_title(ctx, params.hr_checkpoint) if params.hr_checkpoint else None
        notes += hires_ui.sent_updates(ctx, panel.fields, params, hr_checkpoint, updates)
    return updates, notes


def image_input(panel: panel_ui.Panel) -> gr.components.Component | None:
    """The widget that takes a tab's input picture (img2img's Image, inpaint/outpaint's editor)."""
    return panel.fields.get("init_image") or panel.extras.get("editor")


def checkpoint_title(ctx: UIContext, name: str | None, short_hash: str | None = None) -> str | None:
    """The catalog title for a model named (or hashed) in an infotext, or None when it is not here."""
    for wanted in (name, short_hash):  # find matches known hashes only: no model file is read
        if wanted:
            try:
                return ctx.catalog.find(wanted).title
            except (ModelNotFound, ValueError):
                pass
    return None
