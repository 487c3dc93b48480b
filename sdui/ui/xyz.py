"""The generation tabs' "Script" dropdown and A1111's X/Y/Z plot accordion; widget values → PlotParams.

Widgets are named `script` and `xyz_*` (not GenerationParams fields, so they land in `Panel.extras` and reach the
tab's `to_params` by name). The plot itself is `sdui.scripts.xyz`, its axes `sdui.scripts.axes`.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from sdui.engine import samplers
from sdui.engine.hires import LATENT_MODES
from sdui.params import RNG_SOURCES, GenerationParams
from sdui.scripts.ranges import join_values
from sdui.scripts.axes import AxisInput, axis_type, supported_labels
from sdui.scripts.xyz import MARGIN_MAX, TITLE, PlotParams
from sdui.ui.context import UIContext
from sdui.ui.topbar import vae_choices

NO_SCRIPT = "None"
SCRIPT = "script"
FILL_SYMBOL = "\U0001f4d2"  # 📒, A1111's "fill values" button
AXES = ("x", "y", "z")
DEFAULT_TYPES = {"x": "Seed", "y": "Nothing", "z": "Nothing"}  # A1111's defaults
# The accordion's buttons and group: widgets of the tab that are never Generate's inputs.
NOT_INPUTS = ("xyz_group", *(f"xyz_{a}_fill" for a in AXES))


def choices(ctx: UIContext, kind: str | None) -> list[str]:
    """What an axis with choices can take (A1111's 📒 list); [] for the others."""
    if kind == "sampler":
        return samplers.sampler_names()
    if kind == "schedule":
        return list(samplers.SCHEDULES)
    if kind == "checkpoint":
        return [info.title for info in ctx.catalog.list()]
    if kind == "vae":
        return vae_choices(ctx.manager.extras.vaes.list())
    if kind == "upscaler":
        return [*LATENT_MODES, *ctx.manager.upscalers.names()]
    if kind == "rng":
        return list(RNG_SOURCES)
    return []


def build(tab: str) -> dict[str, Any]:
    """The Script dropdown and the (hidden until chosen) X/Y/Z plot widgets, by name."""
    widgets: dict[str, Any] = {}
    widgets[SCRIPT] = gr.Dropdown([NO_SCRIPT, TITLE], value=NO_SCRIPT, label="Script", elem_id=f"{tab}_script")
    with gr.Group(visible=False, elem_id=f"{tab}_xyz") as group:
        widgets["xyz_group"] = group
        for axis in AXES:
            name = axis.upper()
            with gr.Row(equal_height=True):
                widgets[f"xyz_{axis}_type"] = gr.Dropdown(supported_labels(tab), value=DEFAULT_TYPES[axis],
                                                          label=f"{name} type", elem_id=f"{tab}_xyz_{axis}_type",
                                                          scale=2)
                widgets[f"xyz_{axis}_values"] = gr.Textbox("", label=f"{name} values", lines=1, scale=5,
                                                           placeholder="1-5, 1-10 (+2), 8-32 [4] or a, b, c",
                                                           elem_id=f"{tab}_xyz_{axis}_values")
                widgets[f"xyz_{axis}_choices"] = gr.Dropdown([], value=[], multiselect=True, label=f"{name} values",
                                                             visible=False, scale=5,
                                                             elem_id=f"{tab}_xyz_{axis}_choices")
                widgets[f"xyz_{axis}_fill"] = gr.Button(FILL_SYMBOL, visible=False, min_width=40, scale=0,
                                                        elem_id=f"{tab}_xyz_{axis}_fill")
        with gr.Row():
            widgets["xyz_draw_legend"] = gr.Checkbox(True, label="Draw legend", elem_id=f"{tab}_xyz_draw_legend")
            widgets["xyz_keep_random_seeds"] = gr.Checkbox(False, label="Keep -1 for seeds",
                                                           elem_id=f"{tab}_xyz_keep_random_seeds")
            widgets["xyz_include_sub_images"] = gr.Checkbox(False, label="Include Sub Images",
                                                            elem_id=f"{tab}_xyz_include_sub_images")
            widgets["xyz_include_sub_grids"] = gr.Checkbox(False, label="Include Sub Grids",
                                                           elem_id=f"{tab}_xyz_include_sub_grids")
        with gr.Row():
            for axis in AXES:
                widgets[f"xyz_vary_seeds_{axis}"] = gr.Checkbox(False, label=f"Vary seeds for {axis.upper()}",
                                                                elem_id=f"{tab}_xyz_vary_seeds_{axis}")
        widgets["xyz_margin_size"] = gr.Slider(0, MARGIN_MAX, value=0, step=2, label="Grid margins (px)",
                                               elem_id=f"{tab}_xyz_margin_size")
    return widgets


def bind(ctx: UIContext, tab: str, extras: dict[str, Any]) -> None:
    """Show the accordion with its script; per axis, the choices list and 📒 for the axes that have choices."""
    extras[SCRIPT].change(lambda script: gr.Group(visible=script == TITLE), extras[SCRIPT], extras["xyz_group"],
                          queue=False, api_visibility="private")
    for axis in AXES:
        kind, fill = extras[f"xyz_{axis}_type"], extras[f"xyz_{axis}_fill"]
        values, picked = extras[f"xyz_{axis}_values"], extras[f"xyz_{axis}_choices"]

        def select(label: str | None) -> tuple[Any, Any]:
            options = choices(ctx, axis_type(tab, label or "Nothing").choices)
            return gr.Button(visible=bool(options)), gr.Dropdown(choices=options, value=[], visible=bool(options))

        def fill_values(label: str | None) -> str:
            return join_values(choices(ctx, axis_type(tab, label or "Nothing").choices))

        kind.change(select, kind, [fill, picked], queue=False, api_visibility="private")
        fill.click(fill_values, kind, values, queue=False, api_visibility="private")


def with_script(fields: dict[str, Any], params: GenerationParams) -> GenerationParams | PlotParams:
    """`params` alone, or the X/Y/Z plot over them when the Script dropdown says so."""
    if fields.get(SCRIPT) != TITLE:
        return params
    tab = "txt2img" if params.mode.value == "txt2img" else "img2img"
    axes = {}
    for axis in AXES:
        label = fields.get(f"xyz_{axis}_type") or "Nothing"
        text = fields.get(f"xyz_{axis}_values") or ""
        picked = fields.get(f"xyz_{axis}_choices") or []
        # As the API: an axis with choices takes the picked list when there is one, else the typed text.
        if picked and axis_type(tab, label).choices:
            text = join_values([str(v) for v in picked])
        axes[axis] = AxisInput(label, text)
    return PlotParams(base=params, **axes, draw_legend=bool(fields.get("xyz_draw_legend", True)),
                      include_sub_images=bool(fields.get("xyz_include_sub_images")),
                      include_sub_grids=bool(fields.get("xyz_include_sub_grids")),
                      keep_random_seeds=bool(fields.get("xyz_keep_random_seeds")),
                      vary_seeds=tuple(bool(fields.get(f"xyz_vary_seeds_{a}")) for a in AXES),
                      margin_size=int(fields.get("xyz_margin_size") or 0))
