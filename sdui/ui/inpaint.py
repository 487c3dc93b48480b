"""The inpaint tab: paint a mask over the uploaded picture with brush and eraser, then repaint it."""

from __future__ import annotations

from functools import partial
from typing import Any

import gradio as gr

from sdui.params import GenerationParams, MaskedContent, Mode
from sdui.ui import editor
from sdui.ui import panel as panel_ui
from sdui.ui import networks, run
from sdui.ui import refiner as refiner_ui
from sdui.ui.context import UIContext
from sdui.ui.topbar import TopBar

MASK_MODES = ["Inpaint masked", "Inpaint not masked"]
INPAINT_AREAS = ["Whole picture", "Only masked"]


def mask_editor(elem_id: str, label: str) -> gr.ImageEditor:
    """An image editor whose only job is painting a mask: one white brush, an eraser, no crop."""
    return gr.ImageEditor(label=label, type="numpy", format="png", sources=["upload", "clipboard"],
                          brush=gr.Brush(default_size=10, colors=["#ffffff"], color_mode="fixed"),
                          eraser=gr.Eraser(default_size=10), transforms=(), layers=False, height=420,
                          elem_id=elem_id)


def build(ctx: UIContext) -> panel_ui.Panel:
    """Lay out the tab (call inside gr.Tabs)."""
    with gr.Tab("Inpaint", id="inpaint"):
        return panel_ui.build("inpaint", ctx.settings.outputs_dir, extras=_extras,
                              networks=partial(networks.build, ctx),
                              below_steps=partial(refiner_ui.build, ctx, "inpaint"))


def _extras() -> dict[str, Any]:
    image = mask_editor("inpaint_editor", "Image — paint over what to change")
    blur = gr.Slider(0, 64, value=4, step=1, label="Mask blur", elem_id="inpaint_mask_blur")
    mode = gr.Radio(MASK_MODES, value=MASK_MODES[0], type="index", label="Mask mode", elem_id="inpaint_mask_mode")
    content = gr.Radio([m.value for m in MaskedContent], value=MaskedContent.ORIGINAL.value, label="Masked content",
                       elem_id="inpaint_masked_content")
    with gr.Row():
        area = gr.Radio(INPAINT_AREAS, value=INPAINT_AREAS[0], type="index", label="Inpaint area",
                        elem_id="inpaint_area")
        padding = gr.Slider(0, 256, value=32, step=4, label="Only masked padding, pixels",
                            elem_id="inpaint_padding")
    strength = gr.Slider(0.0, 1.0, value=0.75, step=0.01, label="Denoising strength",
                         elem_id="inpaint_denoising_strength")
    return {"editor": image, "mask_blur": blur, "mask_invert": mode, "masked_content": content,
            "inpaint_full_res": area, "inpaint_full_res_padding": padding, "denoising_strength": strength}


def bind(ctx: UIContext, panel: panel_ui.Panel, bar: TopBar) -> None:
    """Wire Generate (api_name "inpaint"), Interrupt, the panel buttons and size-follows-upload."""
    image = panel.extras["editor"]
    panel_ui.bind_size_follows_picture(panel, image)
    run.bind_tab(ctx, panel, bar, "inpaint", to_params)
    refiner_ui.bind(ctx, panel, bar.refresh)


def to_params(fields: dict[str, Any]) -> GenerationParams:
    """Editor value → picture + mask; clear errors for a missing picture or an empty mask."""
    value = fields.pop("editor", None)
    picture = editor.background(value)
    if picture is None:
        raise ValueError("inpaint needs a picture: drop an image into the editor first")
    mask = editor.painted_mask(value, picture.size)
    if mask is None:
        raise ValueError("the mask is empty: click the brush and paint over the area to change")
    return panel_ui.params_from_fields(refiner_ui.fields_for_params(fields), mode=Mode.INPAINT, init_image=picture,
                                       mask=mask)
