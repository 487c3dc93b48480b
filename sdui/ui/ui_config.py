"""The UI's own defaults in `ui-config.json` (A1111's format: `"<tab>/<label>/<field>": value`, e.g.
`"txt2img/Sampling steps/value": 20`), applied to the widgets while the page is built.

Written with the built-in defaults when missing, and topped up with the keys of new widgets (as A1111 does).
A bad value is reported with its key and the widget keeps its built-in default. The options (config.json) live
in sdui/options.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr

from sdui.options import Options, write_json_atomic

UI_CONFIG_NAME = "ui-config.json"
WIDGETS = (gr.Slider, gr.Number, gr.Dropdown, gr.Radio, gr.Checkbox, gr.Textbox)
# Fields in the order they are applied: bounds before the value they bound.
NUMBER_FIELDS = ("visible", "minimum", "maximum", "step", "value")
OTHER_FIELDS = ("visible", "value")


@dataclass
class UiConfigReport:
    """What applying the file did: keys applied, messages naming bad keys, whether the file was (re)written, and
    the widgets it covers (`<tab>/<label>` -> widget), for saving their current values as the new defaults."""

    applied: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    written: bool = False
    widgets: dict[str, gr.components.Component] = field(default_factory=dict)


def path_beside(options: Options) -> Path:
    """ui-config.json next to the options' config.json (the data dir), as A1111 keeps them."""
    folder = options.path.parent if options.path is not None else Path(options.settings.data_dir)
    return folder / UI_CONFIG_NAME


def widgets(root: gr.blocks.BlockContext, skip_tabs: tuple[str, ...] = ()) -> Iterator[
        tuple[str, gr.components.Component]]:
    """(`<tab>/<label>`, widget) for each labelled input inside a top-level tab, first of a repeated key only.

    Left out: widgets outside the tabs (the top bar) and in `skip_tabs` (the options store owns those), output
    boxes, and widgets whose value a function sets at each page load.
    """
    seen: set[str] = set()

    def walk(block: Any, tab: str | None) -> Iterator[tuple[str, gr.components.Component]]:
        for child in getattr(block, "children", []):
            if isinstance(child, gr.Tab) and tab is None:
                name = str(child.id if child.id is not None else child.label)
                if name not in skip_tabs:
                    yield from walk(child, name)
                continue
            if tab is not None and isinstance(child, WIDGETS) and child.label and _is_a_default(child):
                key = f"{tab}/{child.label}"
                if key not in seen:
                    seen.add(key)
                    yield key, child
            yield from walk(child, tab)

    yield from walk(root, None)


def _is_a_default(widget: gr.components.Component) -> bool:
    """An input whose starting value is fixed when the page is built (not an output box, not set at each load)."""
    return widget.interactive is not False and not widget.load_event_to_attach


def current_values(widget: gr.components.Component) -> dict[str, Any]:
    """field -> the widget's value now (the fields A1111 writes for its type; unset ones left out)."""
    names = NUMBER_FIELDS if isinstance(widget, (gr.Slider, gr.Number)) else OTHER_FIELDS
    return {name: getattr(widget, name) for name in names if getattr(widget, name) is not None}


def check_value(widget: gr.components.Component, name: str, value: Any) -> Any:
    """`value` for the widget's field `name`, or ValueError saying why not."""
    if name == "visible" or isinstance(widget, gr.Checkbox):
        if not isinstance(value, bool):
            raise ValueError(f"must be true or false; got {value!r}")
        return value
    if isinstance(widget, (gr.Slider, gr.Number)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"must be a number; got {value!r}")
        low, high = widget.minimum, widget.maximum
        if name == "value" and ((low is not None and value < low) or (high is not None and value > high)):
            raise ValueError(f"must be between {low} and {high}; got {value!r}")
        return value
    if isinstance(widget, (gr.Dropdown, gr.Radio)):
        allowed = [choice[1] if isinstance(choice, tuple) else choice for choice in widget.choices or []]
        picked = value if isinstance(value, list) and getattr(widget, "multiselect", False) else [value]
        bad = [v for v in picked if v not in allowed and not getattr(widget, "allow_custom_value", False)]
        if bad:
            raise ValueError(f"must be one of {', '.join(map(str, allowed))}; got {value!r}")
        return value
    if not isinstance(value, str):
        raise ValueError(f"must be text; got {value!r}")
    return value


def apply(root: gr.blocks.BlockContext, path: Path, skip_tabs: tuple[str, ...] = ()) -> UiConfigReport:
    """Apply `path`'s values to the widgets under `root` (call before its `with` block ends), then write the file
    back when it is missing or lacks keys of some widgets."""
    report = UiConfigReport()
    stored, readable = _read(path, report)
    defaults: dict[str, Any] = {}
    for base, widget in widgets(root, skip_tabs):
        report.widgets[base] = widget
        for name, built_in in current_values(widget).items():
            key = f"{base}/{name}"
            defaults[key] = built_in
            if key not in stored:
                continue
            try:
                setattr(widget, name, check_value(widget, name, stored[key]))
                report.applied.append(key)
            except ValueError as e:
                report.messages.append(f"{UI_CONFIG_NAME}: {key} {e}; keeping {built_in!r}")
    missing = {key: value for key, value in defaults.items() if key not in stored}
    if readable and missing:
        try:
            write_json_atomic(path, {**stored, **missing})
            report.written = True
        except OSError as e:
            report.messages.append(f"{path}: cannot be written ({e})")
    return report


def _read(path: Path, report: UiConfigReport) -> tuple[dict[str, Any], bool]:
    """The file's keys, and whether it may be rewritten (not when it is there but unreadable: the user's to fix)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}, True
    except (OSError, ValueError) as e:
        report.messages.append(f"{path}: not readable as JSON ({e}); using the built-in defaults")
        return {}, False
    if not isinstance(data, dict):
        report.messages.append(f"{path}: must hold a JSON object; using the built-in defaults")
        return {}, False
    return data, True


def save_values(path: Path, widgets: dict[str, gr.components.Component], values: list[Any]) -> tuple[int, list[str]]:
    """Store `values` (one per widget, in order) as the `<tab>/<label>/value` defaults in `path`, keeping its other
    keys; returns (how many changed, messages for values refused). Raises OSError when the file cannot be written."""
    report = UiConfigReport()
    stored, readable = _read(path, report)
    if not readable:
        return 0, report.messages
    changed = 0
    for (base, widget), value in zip(widgets.items(), values):
        key = f"{base}/value"
        if value is None:  # an empty box: nothing to keep
            continue
        try:
            value = check_value(widget, "value", value)
        except ValueError as e:
            report.messages.append(f"{key} {e}")
            continue
        if isinstance(value, float) and value.is_integer() and isinstance(getattr(widget, "step", None), int):
            value = int(value)  # a slider of whole steps sends 9.0: A1111's files hold 9
        if stored.get(key) != value:
            stored[key] = value
            changed += 1
    if changed:
        write_json_atomic(path, stored)
    return changed, report.messages
