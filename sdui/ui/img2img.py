"""The img2img tab: an uploaded picture, how to fit it, and how much to change it."""

from __future__ import annotations

from functools import partial
from typing import Any

import gradio as gr

from sdui.params import GenerationParams, Mode, ResizeMode
from sdui.ui import panel as panel_ui
from sdui.ui import networks, run
from sdui.ui import refiner as refiner_ui
from sdui.ui import xyz as xyz_ui
from sdui.ui.context import UIContext
from sdui.ui.topbar import TopBar


def build(ctx: UIContext) -> panel_ui.Panel:
    """Lay out the tab (call inside gr.Tabs)."""
    with gr.Tab("img2img", id="img2img"):
        return panel_ui.build("img2img", ctx.settings.outputs_dir, extras=_extras,
                              networks=partial(networks.build, ctx),
                              below_steps=partial(refiner_ui.build, ctx, "img2img"),
                              bottom=partial(xyz_ui.build, "img2img"))


def _extras() -> dict[str, Any]:
    image = gr.Image(label="Image", type="pil", format="png", image_mode="RGB", sources=["upload", "clipboard"],
                     height=360, elem_id="img2img_image")
    resize = gr.Radio([m.value for m in ResizeMode], value=ResizeMode.JUST_RESIZE.value, label="Resize mode",
                      elem_id="img2img_resize_mode")
    strength = gr.Slider(0.0, 1.0, value=0.75, step=0.01, label="Denoising strength",
                         elem_id="img2img_denoising_strength")
    return {"init_image": image, "resize_mode": resize, "denoising_strength": strength}


def bind(ctx: UIContext, panel: panel_ui.Panel, bar: TopBar) -> None:
    """Wire Generate (api_name "img2img"), Interrupt, the panel buttons and size-follows-upload."""
    image = panel.fields["init_image"]
    panel_ui.bind_size_follows_picture(panel, image)
    run.bind_tab(ctx, panel, bar, "img2img", to_params, skip=xyz_ui.NOT_INPUTS)
    xyz_ui.bind(ctx, "img2img", panel.extras)
    refiner_ui.bind(ctx, panel, bar.refresh)


def to_params(fields: dict[str, Any]) -> GenerationParams | xyz_ui.PlotParams:
    """Widget values by name → GenerationParams (or the X/Y/Z plot over them); a clear error when no picture
    was given."""
    if fields.get("init_image") is None:
        raise ValueError("img2img needs a picture: drop an image into the Image box first")
    params = panel_ui.params_from_fields(refiner_ui.fields_for_params(fields), mode=Mode.IMG2IMG)
    return xyz_ui.with_script(fields, params)
