"""A1111's `script_name` / `script_args` of /sdapi/v1/txt2img and /img2img -> the X/Y/Z plot's PlotParams.

The only script sdui runs is "x/y/z plot" (case-insensitive), with A1111's script_args order; refusals are
ApiError 400 naming `script_args[i]`.
"""

from __future__ import annotations

from typing import Any

from sdui.api.errors import ApiError
from sdui.params import GenerationParams
from sdui.scripts.ranges import join_values
from sdui.scripts.axes import AxisInput, axis_type
from sdui.scripts.xyz import API_NAME, PlotParams

SCRIPTS = [API_NAME]  # what GET /sdapi/v1/scripts lists for txt2img and img2img
# A1111's X/Y/Z plot ui() order, with its UI defaults for the args a request leaves out.
ARG_NAMES = ("x_type", "x_values", "x_values_dropdown", "y_type", "y_values", "y_values_dropdown", "z_type",
             "z_values", "z_values_dropdown", "draw_legend", "include_lone_images", "include_sub_grids",
             "no_fixed_seeds", "vary_seeds_x", "vary_seeds_y", "vary_seeds_z", "margin_size", "csv_mode")
_DEFAULTS = (1, "", [], 0, "", [], 0, "", [], True, False, False, False, False, False, False, 0, False)


def is_supported(script_name: str | None) -> bool:
    """Whether sdui runs this script (no script at all counts too)."""
    return not script_name or script_name.strip().lower() == API_NAME


def with_script(script_name: str | None, script_args: list[Any], params: GenerationParams) -> Any:
    """`params` as they are without a script, or the X/Y/Z plot over them (validated, ApiError 400 if not)."""
    if not script_name:
        return params
    if len(script_args) > len(ARG_NAMES):
        raise ApiError(400, f"script_args: the X/Y/Z plot takes at most {len(ARG_NAMES)} args "
                            f"({', '.join(ARG_NAMES)}); got {len(script_args)}", "script_args")
    args = dict(zip(ARG_NAMES, [*script_args, *_DEFAULTS[len(script_args):]]))
    tab = "txt2img" if params.mode.value == "txt2img" else "img2img"
    csv_mode = _flag(args, "csv_mode")
    axes = [_axis(tab, args, name, csv_mode) for name in ("x", "y", "z")]
    margin = args["margin_size"]
    if isinstance(margin, float) and margin.is_integer():
        margin = int(margin)
    plot = PlotParams(base=params, x=axes[0], y=axes[1], z=axes[2], draw_legend=_flag(args, "draw_legend"),
                      include_sub_images=_flag(args, "include_lone_images"),
                      include_sub_grids=_flag(args, "include_sub_grids"),
                      keep_random_seeds=_flag(args, "no_fixed_seeds"),
                      vary_seeds=tuple(_flag(args, f"vary_seeds_{axis}") for axis in "xyz"),
                      margin_size=margin)
    try:
        plot.validate()
    except ValueError as e:
        raise ApiError(400, f"script_args: {e}", "script_args") from None
    return plot


def _axis(tab: str, args: dict[str, Any], name: str, csv_mode: bool) -> AxisInput:
    given, values, dropdown = args[f"{name}_type"], args[f"{name}_values"], args[f"{name}_values_dropdown"]
    index = ARG_NAMES.index(f"{name}_type")
    try:
        kind = axis_type(tab, given if isinstance(given, (int, str)) else str(given))
    except ValueError as e:
        raise ApiError(400, f"script_args[{index}] ({name}_type): {e}", "script_args") from None
    if values is None:
        values = ""
    if isinstance(values, (int, float)) and not isinstance(values, bool):
        values = str(values)
    if not isinstance(values, str):
        raise ApiError(400, f"script_args[{index + 1}] ({name}_values) must be text like '1-5' or 'a, b'; "
                            f"got {values!r}", "script_args")
    if not isinstance(dropdown, (list, tuple)) and dropdown is not None:
        raise ApiError(400, f"script_args[{index + 2}] ({name}_values_dropdown) must be a list; got {dropdown!r}",
                       "script_args")
    # As A1111: an axis with choices takes the dropdown's list unless csv_mode (sdui: when the list has any).
    if kind.choices and not csv_mode and dropdown:
        values = join_values([str(v) for v in dropdown])
    return AxisInput(kind.label, values)


def _flag(args: dict[str, Any], name: str) -> bool:
    value = args[name]
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ApiError(400, f"script_args[{ARG_NAMES.index(name)}] ({name}) must be true or false; got {value!r}",
                   "script_args")
