"""The txt2img tab: the shared panel and nothing else."""

from __future__ import annotations

from functools import partial
from typing import Any

import gradio as gr

from sdui.params import GenerationParams, Mode
from sdui.ui import panel as panel_ui
from sdui.ui import networks, run
from sdui.ui.context import UIContext
from sdui.ui.topbar import TopBar


def build(ctx: UIContext) -> panel_ui.Panel:
    """Lay out the tab (call inside gr.Tabs)."""
    with gr.Tab("txt2img", id="txt2img"):
        return panel_ui.build("txt2img", ctx.settings.outputs_dir, networks=partial(networks.build, ctx))


def bind(ctx: UIContext, panel: panel_ui.Panel, bar: TopBar) -> None:
    """Wire Generate (api_name "txt2img"), Interrupt and the panel buttons."""
    run.bind_tab(ctx, panel, bar, "txt2img", to_params)


def to_params(fields: dict[str, Any]) -> GenerationParams:
    """Widget values by name → GenerationParams."""
    return panel_ui.params_from_fields(fields, mode=Mode.TXT2IMG)
