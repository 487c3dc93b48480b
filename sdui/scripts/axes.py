"""The X/Y/Z plot's axes: A1111's list of axis types (its order is the API's type index), and how the values
typed for one axis are parsed, checked and applied to a GenerationParams. The plot itself is `xyz`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from sdui.engine import samplers
from sdui.params import RNG_SOURCES, GenerationParams
from sdui.scripts.ranges import expand_floats, expand_ints, split_values


@dataclass(frozen=True)
class AxisType:
    """One entry of A1111's axis list: its label, value kind and which tab lists it."""

    label: str
    kind: str = "str"  # "int", "float" or "str"
    tab: str | None = None  # "txt2img" or "img2img" when only that tab lists it
    supported: bool = True
    cost: float = 0.0  # A1111's cost: the costliest axis runs outermost (a checkpoint loads once per value)
    choices: str | None = None  # "sampler", "schedule", "checkpoint", "vae", "upscaler", "rng": values to pick from
    plain_label: bool = False  # the legend shows the value alone, without "<label>: "


def _unsupported(label: str, kind: str = "float", tab: str | None = None) -> AxisType:
    return AxisType(label, kind, tab, supported=False)


# A1111 1.10's axis_options in its order: the API's x_type/y_type/z_type index this list filtered by tab.
AXIS_TYPES: tuple[AxisType, ...] = (
    AxisType("Nothing"),
    AxisType("Seed", "int"),
    AxisType("Var. seed", "int"),
    AxisType("Var. strength", "float"),
    AxisType("Steps", "int"),
    AxisType("Hires steps", "int", "txt2img"),
    AxisType("CFG Scale", "float"),
    _unsupported("Image CFG Scale", tab="img2img"),
    AxisType("Prompt S/R", plain_label=True),
    _unsupported("Prompt order", "str"),
    AxisType("Sampler", tab="txt2img", choices="sampler", plain_label=True),
    AxisType("Hires sampler", tab="txt2img", choices="sampler"),
    AxisType("Sampler", tab="img2img", choices="sampler", plain_label=True),
    AxisType("Checkpoint name", cost=1.0, choices="checkpoint", plain_label=True),
    _unsupported("Negative Guidance minimum sigma"),
    _unsupported("Sigma Churn"),
    _unsupported("Sigma min"),
    _unsupported("Sigma max"),
    _unsupported("Sigma noise"),
    AxisType("Schedule type", choices="schedule"),
    _unsupported("Schedule min sigma"),
    _unsupported("Schedule max sigma"),
    _unsupported("Schedule rho"),
    _unsupported("Skip Early CFG"),
    _unsupported("Beta schedule alpha"),
    _unsupported("Beta schedule beta"),
    _unsupported("Eta"),
    AxisType("Clip skip", "int"),
    AxisType("Denoising", "float"),
    _unsupported("Initial noise multiplier"),
    _unsupported("Extra noise"),
    AxisType("Hires upscaler", tab="txt2img", choices="upscaler"),
    _unsupported("Cond. Image Mask Weight", tab="img2img"),
    AxisType("VAE", cost=0.7, choices="vae"),
    _unsupported("Styles", "str"),
    _unsupported("UniPC Order", "int"),
    _unsupported("Face restore", "str"),
    _unsupported("Token merging ratio"),
    _unsupported("Token merging ratio high-res"),
    _unsupported("Always discard next-to-last sigma", "str"),
    _unsupported("SGM noise multiplier", "str"),
    AxisType("Refiner checkpoint", cost=1.0, choices="checkpoint", plain_label=True),
    AxisType("Refiner switch at", "float"),
    AxisType("RNG source", choices="rng"),
    _unsupported("FP8 mode", "str"),
    AxisType("Size"),
)


def axis_types(tab: str) -> list[AxisType]:
    """The axis list a tab shows (A1111's current_axis_options): the API's type index points into it."""
    return [a for a in AXIS_TYPES if a.tab in (None, tab)]


def axis_type(tab: str, label_or_index: str | int) -> AxisType:
    """An axis type by its label (case-insensitive) or by its index in the tab's list; ValueError otherwise."""
    types = axis_types(tab)
    if isinstance(label_or_index, bool):
        raise ValueError(f"axis type must be a label or an index; got {label_or_index!r}")
    if isinstance(label_or_index, int):
        if not 0 <= label_or_index < len(types):
            raise ValueError(f"axis type index must be between 0 and {len(types) - 1} on {tab}; got {label_or_index}")
        return types[label_or_index]
    wanted = str(label_or_index or "Nothing").strip().lower()
    for a in types:
        if a.label.lower() == wanted:
            return a
    raise ValueError(f"axis type {label_or_index!r} is not one of {tab}'s: {', '.join(a.label for a in types)}")


def supported_labels(tab: str) -> list[str]:
    return [a.label for a in axis_types(tab) if a.supported]


@dataclass(frozen=True)
class AxisInput:
    """One axis as asked: its type label and its values as typed (`1-5`, `a, b`, ...)."""

    type: str = "Nothing"
    values: str = ""


@dataclass(frozen=True)
class Axis:
    """One parsed axis: its type, its values and the legend label of each."""

    name: str  # "X", "Y" or "Z"
    type: AxisType
    values: tuple[Any, ...]
    text: str = ""

    @property
    def labels(self) -> list[str]:
        return [value_label(self.type, v) for v in self.values]


def value_label(kind: AxisType, value: Any) -> str:
    if kind.label == "Nothing":
        return ""
    if isinstance(value, float):
        value = round(value, 8)
    if kind.choices == "checkpoint":
        return os.path.basename(str(value)) or "None"
    if kind.label == "Size":
        value = f"{value[0]}x{value[1]}"
    return str(value) if kind.plain_label else f"{kind.label}: {value}"


def parse_axis(name: str, tab: str, given: AxisInput, base: GenerationParams) -> Axis:
    try:
        kind = axis_type(tab, given.type)
    except ValueError as e:
        raise ValueError(f"X/Y/Z plot {name} axis: {e}") from None
    if not kind.supported:
        raise ValueError(f"X/Y/Z plot {name} axis: {kind.label!r} is not supported by sdui yet; use one of "
                         f"{', '.join(supported_labels(tab))}")
    if kind.label == "Nothing":
        return Axis(name, kind, (None,))
    text = given.values if isinstance(given.values, str) else ""
    try:
        values = _values(kind, text, base)
    except ValueError as e:
        raise ValueError(f"X/Y/Z plot {name} axis ({kind.label}): {e}") from None
    if not values:
        raise ValueError(f"X/Y/Z plot {name} axis ({kind.label}): no values; type some, e.g. "
                         f"{_EXAMPLES.get(kind.kind, 'a, b')}")
    return Axis(name, kind, tuple(values), text)


_EXAMPLES = {"int": "1-5 or 10, 20, 30", "float": "5-9 (+2) or 0.5-1 [3]"}
_SCHEDULE_NAMES = {**{s.lower(): s for s in samplers.SCHEDULES},
                   **{s.lower().replace(" ", "_"): s for s in samplers.SCHEDULES}}


def _values(kind: AxisType, text: str, base: GenerationParams) -> list[Any]:
    if kind.kind == "int":
        return expand_ints(text)
    if kind.kind == "float":
        return expand_floats(text)
    values = split_values(text)
    if kind.label == "Prompt S/R" and values and values[0] not in base.prompt and \
            values[0] not in base.negative_prompt:
        raise ValueError(f"did not find {values[0]!r} (the first value) in the prompt or the negative prompt")
    if kind.choices == "sampler":
        for value in values:
            samplers.resolve(value)
    if kind.choices == "schedule":
        unknown = [v for v in values if v.lower() not in _SCHEDULE_NAMES]
        if unknown:
            raise ValueError(f"unknown schedule type {unknown[0]!r}; one of {', '.join(samplers.SCHEDULES)}")
        values = [_SCHEDULE_NAMES[v.lower()] for v in values]
    if kind.choices == "rng":
        unknown = [v for v in values if v.upper() not in RNG_SOURCES]
        if unknown:
            raise ValueError(f"unknown RNG source {unknown[0]!r}; one of {', '.join(RNG_SOURCES)}")
        values = [v.upper() for v in values]
    if kind.choices == "vae":
        values = ["Automatic" if v.lower() in ("auto", "automatic") else "None" if v.lower() == "none" else v
                  for v in values]
    if kind.label == "Size":
        return [_size(v) for v in values]
    return values


def _size(text: str) -> tuple[int, int]:
    width, sep, height = text.lower().replace(" ", "").partition("x")
    try:
        return (int(width), int(height if sep else width))
    except ValueError:
        raise ValueError(f"{text!r} is not a size like 512x768") from None


def apply_value(axis: Axis, value: Any, params: GenerationParams) -> GenerationParams:
    label = axis.type.label
    simple = {"Seed": "seed", "Var. seed": "subseed", "Var. strength": "subseed_strength", "Steps": "steps",
              "Hires steps": "hr_second_pass_steps", "CFG Scale": "cfg_scale", "Sampler": "sampler",
              "Hires sampler": "hr_sampler", "Checkpoint name": "checkpoint", "Schedule type": "schedule",
              "Clip skip": "clip_skip", "Denoising": "denoising_strength", "Hires upscaler": "hr_upscaler",
              "VAE": "vae", "Refiner switch at": "refiner_switch_at", "RNG source": "randn_source"}
    if label == "Nothing":
        return params
    if label in simple:
        return params.replace(**{simple[label]: value})
    if label == "Prompt S/R":
        first = axis.values[0]
        return params.replace(prompt=params.prompt.replace(first, value),
                              negative_prompt=params.negative_prompt.replace(first, value))
    if label == "Refiner checkpoint":
        return params.replace(refiner_checkpoint="" if value.lower() == "none" else value)
    if label == "Size":
        return params.replace(width=value[0], height=value[1])
    raise ValueError(f"X/Y/Z plot {axis.name} axis: {label!r} is not supported by sdui yet")
