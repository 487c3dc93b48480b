"""The txt2img tab: the shared panel with A1111's "Hires. fix" and "Refiner" accordions under the steps."""

from __future__ import annotations

from functools import partial
from typing import Any

import gradio as gr

from sdui.params import GenerationParams, Mode
from sdui.ui import hires as hires_ui
from sdui.ui import networks, run
from sdui.ui import refiner as refiner_ui
from sdui.ui import panel as panel_ui
from sdui.ui import xyz as xyz_ui
from sdui.ui.context import UIContext
from sdui.ui.topbar import TopBar


def build(ctx: UIContext) -> panel_ui.Panel:
    """Lay out the tab (call inside gr.Tabs)."""
    with gr.Tab("txt2img", id="txt2img"):
        return panel_ui.build("txt2img", ctx.settings.outputs_dir, networks=partial(networks.build, ctx),
                              below_steps=partial(below_steps, ctx), bottom=partial(xyz_ui.build, "txt2img"))


def below_steps(ctx: UIContext) -> dict[str, Any]:
    """The Hires. fix and Refiner accordions, as A1111 lays them out under the steps."""
    return {**hires_ui.build(ctx), **refiner_ui.build(ctx, "txt2img", hires=True)}


def bind(ctx: UIContext, panel: panel_ui.Panel, bar: TopBar) -> None:
    """Wire Generate (api_name "txt2img"), Interrupt, the panel buttons, the hires size line, the refiner list."""
    run.bind_tab(ctx, panel, bar, "txt2img", to_params, skip=("hires_size", *xyz_ui.NOT_INPUTS))
    xyz_ui.bind(ctx, "txt2img", panel.extras)
    f = panel.fields
    hires_ui.bind(f, panel.extras["hires_size"])
    bar.refresh.click(partial(hires_ui.refresh, ctx), [f["hr_upscaler"], f["hr_checkpoint"]],
                      [f["hr_upscaler"], f["hr_checkpoint"]], queue=False, api_visibility="private")
    refiner_ui.bind(ctx, panel, bar.refresh)


def to_params(fields: dict[str, Any]) -> GenerationParams | xyz_ui.PlotParams:
    """Widget values by name → GenerationParams (or the X/Y/Z plot over them, when it is the Script)."""
    params = panel_ui.params_from_fields(refiner_ui.fields_for_params(fields), mode=Mode.TXT2IMG)
    return xyz_ui.with_script(fields, params)
