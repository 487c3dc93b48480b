"""The outpaint tab: grow the canvas on any side, preview it, refine the mask with the brush, generate."""

from __future__ import annotations

from functools import partial
from typing import Any

import gradio as gr
from PIL import Image

from sdui.params import SIZE_MAX, SIZE_MIN, GenerationParams, Mode, OutpaintFill
from sdui.ui import editor
from sdui.ui import panel as panel_ui
from sdui.ui import networks, run
from sdui.ui import refiner as refiner_ui
from sdui.ui.context import UIContext
from sdui.ui.topbar import TopBar
from sdui.ui.inpaint import mask_editor

SIDES = ("left", "right", "up", "down")
NEW_AREA_COLOR = (249, 115, 22, 110)  # the translucent orange that marks what will be generated
STROKE_COLOR = (239, 68, 68, 160)


def build(ctx: UIContext) -> panel_ui.Panel:
    """Lay out the tab (call inside gr.Tabs); the size sliders are hidden: the picture sets the size."""
    with gr.Tab("Outpaint", id="outpaint"):
        return panel_ui.build("outpaint", ctx.settings.outputs_dir, extras=_extras, show_size=False,
                              networks=partial(networks.build, ctx),
                              below_steps=partial(refiner_ui.build, ctx, "outpaint"))


def _extras() -> dict[str, Any]:
    image = mask_editor("outpaint_editor", "Image — optionally paint extra areas to repaint")
    with gr.Row():
        sides = {f"outpaint_{side}": gr.Slider(0, 512, value=0, step=8, label=f"Pixels to add {side}",
                                               elem_id=f"outpaint_{side}") for side in SIDES}
    fill = gr.Radio([m.value for m in OutpaintFill], value=OutpaintFill.EDGE.value, label="Fill new area with",
                    elem_id="outpaint_fill")
    feather = gr.Slider(0, 64, value=8, step=1, label="Mask feather", elem_id="outpaint_mask_blur")
    strength = gr.Slider(0.0, 1.0, value=0.9, step=0.01, label="Denoising strength",
                         elem_id="outpaint_denoising_strength")
    grown = gr.Image(label="Grown canvas (orange: generated)", type="pil", format="png", interactive=False,
                     height=300, elem_id="outpaint_canvas_preview")
    return {"editor": image, **sides, "outpaint_fill": fill, "mask_blur": feather,
            "denoising_strength": strength, "grown_preview": grown}


def bind(ctx: UIContext, panel: panel_ui.Panel, bar: TopBar) -> None:
    """Wire Generate (api_name "outpaint"), Interrupt, the panel buttons and the canvas preview."""
    image = panel.extras["editor"]
    sides = [panel.fields[f"outpaint_{side}"] for side in SIDES]
    # upload as well as change: a change can fire before the uploaded picture is in the editor's value.
    gr.on([image.upload, image.change, *(side.change for side in sides)], preview, [image, *sides],
          panel.extras["grown_preview"], queue=False, api_visibility="private", trigger_mode="always_last")
    run.bind_tab(ctx, panel, bar, "outpaint", to_params, skip=("grown_preview",))
    refiner_ui.bind(ctx, panel, bar.refresh)


def to_params(fields: dict[str, Any]) -> GenerationParams:
    """Editor value → picture (+ refining strokes as `mask`, in the picture's coordinates).

    width/height are the picture's own size (to a multiple of 8): the engine grows the canvas from it.
    """
    value = fields.pop("editor", None)
    picture = editor.background(value)
    if picture is None:
        raise ValueError("outpaint needs a picture: drop an image into the editor first")
    if max(picture.size) > SIZE_MAX:  # the tab has no size sliders, so say what to do with the picture itself
        raise ValueError(f"outpaint works on pictures up to {SIZE_MAX}x{SIZE_MAX} (grown size included); this one "
                         f"is {picture.width}x{picture.height}: scale it down first, or use img2img to resize it")
    width, height = (max(SIZE_MIN, side // 8 * 8) for side in picture.size)
    return panel_ui.params_from_fields(refiner_ui.fields_for_params(fields), mode=Mode.OUTPAINT, init_image=picture,
                                       mask=editor.painted_mask(value, picture.size), width=width, height=height)


def preview(value: dict[str, Any] | None, left: float, right: float, up: float, down: float) -> Image.Image | None:
    """The grown canvas: the picture in place, the new area tinted, the painted strokes in red."""
    picture = editor.background(value)
    if picture is None:
        return None
    left, right, up, down = (int(v or 0) for v in (left, right, up, down))
    canvas = Image.new("RGBA", (picture.width + left + right, picture.height + up + down), NEW_AREA_COLOR)
    canvas.paste(picture.convert("RGBA"), (left, up))
    strokes = editor.painted_mask(value, picture.size)
    if strokes is not None:
        overlay = Image.new("RGBA", picture.size, STROKE_COLOR)
        canvas.paste(overlay, (left, up), strokes)
    return canvas
