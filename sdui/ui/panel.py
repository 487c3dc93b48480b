"""The shared parameter panel every tab is built from: prompts, extra networks, sampler, size, seed, batch, buttons."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr
from PIL import Image

from sdui.engine import samplers
from sdui.params import BATCH_COUNT_MAX, BATCH_SIZE_MAX, SEED_MAX, SIZE_MAX, SIZE_MIN, STEPS_MAX, GenerationParams
from sdui.ui import prompt_tools as prompt_tools_ui
from sdui.ui import results as results_ui

if TYPE_CHECKING:
    from sdui.ui.networks import NetworksPanel

_PARAM_FIELDS = {f.name: f for f in dataclasses.fields(GenerationParams)}
PASTE_SYMBOL = "↙️"
PASTE_TOOLTIP = "Read generation parameters from prompt or last generation if prompt is empty into user interface."


@dataclass
class Panel:
    """One tab's widgets. `fields` maps GenerationParams field names to the widgets that set them."""

    tab: str
    fields: dict[str, gr.components.Component]
    generate: gr.Button
    interrupt: gr.Button
    paste: gr.Button  # A1111's ↙: read the infotext in the prompt box (or the last job's) into every field
    dropped: gr.File  # hidden: the page JS puts a picture dropped on the prompt box here (see pnginfo.DROP_JS)
    results: results_ui.Results
    swap_size: gr.Button
    random_seed: gr.Button
    reuse_seed: gr.Button
    extras: dict[str, gr.components.Component] = field(default_factory=dict)  # tab widgets that are not fields
    networks: NetworksPanel | None = None  # the tab's extra networks panel, when it has one
    prompt_tools: prompt_tools_ui.PromptTools | None = None  # Styles row and token counters (wired by blocks.py)


def build(tab: str, outputs_dir: Path, extras: Callable[[], dict[str, Any]] | None = None,
          show_size: bool = True, networks: Callable[[str], NetworksPanel] | None = None,
          below_steps: Callable[[], dict[str, Any]] | None = None,
          bottom: Callable[[], dict[str, Any]] | None = None) -> Panel:
    """Lay out a tab: prompt row on top, then `networks(tab)` (the extra networks panel), settings (with the
    tab's own `extras` first, `below_steps` under the steps slider, `bottom` last, as A1111's Script) left, results
    right.

    `extras()`, `below_steps()` and `bottom()` build the tab's own widgets and return them by name; names that are
    GenerationParams fields become panel fields, the others land in `Panel.extras`.
    """
    with gr.Row(equal_height=False):
        with gr.Column(scale=6):
            prompt_counter = prompt_tools_ui.token_counter(tab, "prompt")
            prompt = gr.Textbox("", label="Prompt", lines=3, max_lines=12, elem_id=f"{tab}_prompt",
                                placeholder="Prompt (Ctrl+Enter to generate)")
            negative_counter = prompt_tools_ui.token_counter(tab, "neg_prompt")
            negative = gr.Textbox("", label="Negative prompt", lines=2, max_lines=12, elem_id=f"{tab}_neg_prompt",
                                  placeholder="Negative prompt")
            tools = prompt_tools_ui.build(tab, prompt_counter, negative_counter)
        with gr.Column(scale=1, min_width=160):
            generate = gr.Button("Generate", variant="primary", elem_id=f"{tab}_generate")
            interrupt = gr.Button("Interrupt", variant="stop", elem_id=f"{tab}_interrupt")
            paste = gr.Button(PASTE_SYMBOL, elem_id=f"{tab}_paste", min_width=40)
            # "hidden", not False: the file input must be on the page for the drop script to fill it.
            dropped = gr.File(file_types=["image"], type="filepath", visible="hidden", elem_id=f"{tab}_dropped")
    network_panel = networks(tab) if networks else None
    # A pasted infotext's `Lora hashes` (set by PNG info's Send to): finds a LoRA renamed since the image was made.
    lora_hashes = gr.State({})
    with gr.Row(equal_height=False):
        with gr.Column(scale=1):
            own = extras() if extras else {}
            with gr.Row():
                sampler = gr.Dropdown(samplers.sampler_names(), value="Euler a", label="Sampling method",
                                      elem_id=f"{tab}_sampler")
                schedule = gr.Dropdown(samplers.schedule_names(), value="Automatic", label="Schedule type",
                                       elem_id=f"{tab}_schedule")
            steps = gr.Slider(1, STEPS_MAX, value=20, step=1, label="Sampling steps", elem_id=f"{tab}_steps")
            own.update(below_steps() if below_steps else {})
            with gr.Row(visible=show_size):
                with gr.Column(scale=4):
                    width = gr.Slider(SIZE_MIN, SIZE_MAX, value=512, step=64, label="Width", elem_id=f"{tab}_width")
                    height = gr.Slider(SIZE_MIN, SIZE_MAX, value=512, step=64, label="Height",
                                       elem_id=f"{tab}_height")
                swap_size = gr.Button("⇅", elem_id=f"{tab}_swap_size", min_width=40, scale=0)
            cfg_scale = gr.Slider(1.0, 30.0, value=7.0, step=0.5, label="CFG scale", elem_id=f"{tab}_cfg_scale")
            with gr.Row():
                seed = gr.Number(-1, label="Seed (-1 = random)", precision=0, minimum=-1, maximum=SEED_MAX,
                                 elem_id=f"{tab}_seed", scale=4)
                random_seed = gr.Button("🎲", elem_id=f"{tab}_random_seed", min_width=40, scale=0)
                reuse_seed = gr.Button("♻️", elem_id=f"{tab}_reuse_seed", min_width=40, scale=0)
            with gr.Accordion("Variation seed", open=False):
                subseed = gr.Number(-1, label="Variation seed", precision=0, minimum=-1, maximum=SEED_MAX,
                                    elem_id=f"{tab}_subseed")
                subseed_strength = gr.Slider(0.0, 1.0, value=0.0, step=0.01, label="Variation strength",
                                             elem_id=f"{tab}_subseed_strength")
            with gr.Row():
                batch_count = gr.Slider(1, BATCH_COUNT_MAX, value=1, step=1, label="Batch count",
                                        elem_id=f"{tab}_batch_count")
                batch_size = gr.Slider(1, BATCH_SIZE_MAX, value=1, step=1, label="Batch size",
                                       elem_id=f"{tab}_batch_size")
            own.update(bottom() if bottom else {})
        with gr.Column(scale=1):
            results = results_ui.build(tab, outputs_dir)
    fields = {"prompt": prompt, "negative_prompt": negative, "sampler": sampler, "schedule": schedule,
              "steps": steps, "width": width, "height": height, "cfg_scale": cfg_scale, "seed": seed,
              "subseed": subseed, "subseed_strength": subseed_strength, "batch_count": batch_count,
              "batch_size": batch_size, "lora_hashes": lora_hashes}
    fields.update({name: widget for name, widget in own.items() if name in _PARAM_FIELDS})
    return Panel(tab=tab, fields=fields, generate=generate, interrupt=interrupt, paste=paste, dropped=dropped,
                 results=results, swap_size=swap_size, random_seed=random_seed, reuse_seed=reuse_seed,
                 extras={**{name: widget for name, widget in own.items() if name not in _PARAM_FIELDS},
                         **prompt_tools_ui.extras(tools)}, prompt_tools=tools,
                 networks=network_panel)


def bind(panel: Panel) -> None:
    """Wire the panel's own small buttons (they never touch the device queue)."""
    f = panel.fields
    panel.swap_size.click(lambda w, h: (h, w), [f["width"], f["height"]], [f["width"], f["height"]],
                          queue=False, api_visibility="private")
    panel.random_seed.click(lambda: -1, None, f["seed"], queue=False, api_visibility="private")
    panel.reuse_seed.click(results_ui.selected_seed, [panel.results.data, panel.results.selected], f["seed"],
                           queue=False, api_visibility="private")


def params_from_fields(values: dict[str, Any], **overrides: Any) -> GenerationParams:
    """Build GenerationParams by field name from widget values (numbers arrive as floats from sliders)."""
    merged = prompt_tools_ui.with_styles({**values, **overrides})  # ValueError for a style no longer listed
    kwargs = {name: _coerce(name, value) for name, value in merged.items() if name in _PARAM_FIELDS}
    if kwargs.get("checkpoint") in ("", None):
        kwargs["checkpoint"] = None
    return GenerationParams(**kwargs)


def field_updates(panel: Panel, params: GenerationParams) -> dict[gr.components.Component, Any]:
    """The widget values that show `params` in this panel (used by "Send to" and PNG info)."""
    updates = {}
    for name, widget in panel.fields.items():
        value = getattr(params, name)
        if name in ("init_image", "mask") or value is None:
            continue
        if isinstance(widget, gr.Radio) and widget.type == "index":  # e.g. mask_invert shown as a choice
            value = widget.choices[int(value)][1]
        updates[widget] = value.value if hasattr(value, "value") else value
    return updates


def _coerce(name: str, value: Any) -> Any:
    kind = _PARAM_FIELDS[name].type
    if kind == "int" and isinstance(value, float) and value.is_integer():
        return int(value)
    if kind == "float" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind == "bool" and isinstance(value, int):  # radios with type="index": second choice = True
        return bool(value)
    if kind == "str" and value is None:
        return ""
    if kind.startswith("dict") and value is None:
        return {}
    return value


def bind_size_follows_picture(panel: Panel, image: gr.components.Component) -> None:
    """Set the width/height sliders to a newly uploaded picture's size (not again on every brush stroke)."""
    seen = gr.State(None)
    # An editor's upload event can carry its value before the picture is in it; its change event follows.
    # preprocess=False: the uploaded file's path arrives as is, so a file that is not a picture gets a clear
    # toast here instead of Gradio's bare "Error" (Gradio still checks the path is in its upload cache).
    # Queued (its own line, not the device's): Gradio shows no toast for a queue=False event's error.
    gr.on([image.upload, image.change], _follow_size, [image, seen],
          [panel.fields["width"], panel.fields["height"], seen], api_visibility="private", show_progress="hidden",
          trigger_mode="always_last", preprocess=False)


def _follow_size(value: Any, seen: tuple[int, int] | None):
    try:
        size = picture_size(value)
    except ValueError as e:
        raise gr.Error(f"{e}. Drop a PNG, JPEG or WEBP picture instead.") from e
    if size is None or size == seen:
        return gr.skip(), gr.skip(), seen
    return _round64(size[0]), _round64(size[1]), size


def picture_size(value: Any) -> tuple[int, int] | None:
    """(width, height) of a PIL image, an array, an uploaded file, or an ImageEditor value's background.

    None when empty; ValueError when the file is not a picture.
    """
    if isinstance(value, dict) and "background" in value:
        value = value["background"]
    if isinstance(value, dict):  # an uploaded file as Gradio sends it (FileData), not yet opened
        value = value.get("path")
    if value is None:
        return None
    if isinstance(value, (str, Path)):
        return _file_picture_size(Path(value))
    if hasattr(value, "shape"):
        return int(value.shape[1]), int(value.shape[0])
    return tuple(value.size)


def _file_picture_size(path: Path) -> tuple[int, int]:
    try:
        with Image.open(path) as image:  # reads the header only
            return tuple(image.size)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise ValueError(f"{path.name} is not a picture sdui can read ({type(e).__name__})") from e


def _round64(value: int) -> int:
    return int(min(SIZE_MAX, max(SIZE_MIN, round(value / 64) * 64)))
