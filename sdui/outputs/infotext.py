"""A1111 infotext: write it (format_infotext), read it back (parse_infotext), turn it into GenerationParams.

Layout, key order and quoting follow AUTOMATIC1111's `create_infotext` and `parse_generation_parameters`,
so our files read in A1111, civitai and metadata readers, and A1111's files read here. No file I/O here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Callable

from sdui import __version__
from sdui.engine import samplers
from sdui.params import GenerationParams, MaskedContent, Mode, OutpaintFill

# Pillow's own cap for one decompressed PNG text chunk; far beyond any real prompt.
MAX_INFOTEXT_CHARS = 1024 * 1024
MIN_PAIRS = 3  # the last line is the parameters line only with at least this many `key: value` pairs

# A1111's hires-fix keys, in the order it writes them ("Hires checkpoint" comes from the prepared job).
HIRES_KEYS = ("Hires checkpoint", "Hires sampler", "Hires schedule type", "Hires prompt", "Hires negative prompt",
              "Hires upscale", "Hires resize", "Hires steps", "Hires upscaler")

# Where each key goes on the parameters line. Keys of `extra` not listed here go after them, before Version.
KEY_ORDER = (
    "Steps", "Sampler", "Schedule type", "CFG scale", "Seed", "Size", "Model hash", "Model", "VAE hash", "VAE",
    "Variation seed", "Variation seed strength", "Denoising strength", "Mask blur", "Inpaint area",
    "Masked area padding", "Masked content", "Mask mode", "Outpaint extents", "Outpaint fill", "Clip skip", "RNG",
    *HIRES_KEYS,
)

# A1111 >= 1.9 schedule-type labels: an old combined sampler name ending in one of them is split in two.
SCHEDULE_LABELS = ("Automatic", "Uniform", "Karras", "Exponential", "Polyexponential", "SGM Uniform",
                   "KL Optimal", "Align Your Steps", "Simple", "Normal", "DDIM", "Beta")

# What A1111 assumes for keys a parameters line leaves out.
DEFAULTS = {
    "Clip skip": "1",
    "Schedule type": "Automatic",
    "Mask mode": "Inpaint masked",
    "Masked content": "original",
    "Inpaint area": "Whole picture",
    "Masked area padding": "32",
    "RNG": "GPU",
}

NEGATIVE_PREFIX = "Negative prompt:"
_SIZE = re.compile(r"^(\d+)x(\d+)$")
_OUTPAINT = re.compile(r"^left (\d+) right (\d+) up (\d+) down (\d+)$")
_KEY_CHARS_REVERSED = re.compile(r"[\w \-/]*")


def quote(value: Any) -> str:
    """A value as A1111 writes it: JSON-quoted when it holds `,` `:` or a line break; dicts/lists as JSON."""
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    text = _number(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)
    # Beyond A1111's rule: also quote what its parser would otherwise strip or unquote, so it reads back equal.
    if any(c in text for c in ",:\n\r") or text != text.strip() or text.startswith(('"', "{", "[")):
        return json.dumps(text, ensure_ascii=False)
    return text


def format_infotext(params: GenerationParams, *, seed: int, subseed: int, model_name: str, model_hash: str,
                    extra: dict[str, Any] | None = None) -> str:
    """The A1111 infotext of one image: prompt, `Negative prompt: ...`, then one line of `Key: value` pairs.

    Only keys that mean something for `params.mode` are written; keys with no value are left out.
    `extra` adds keys (e.g. "VAE", "Hashes", "Lora hashes") or, with a None value, removes one.
    """
    sampler, schedule = _canonical_sampler(params.sampler, params.schedule)
    mode = params.mode
    masked = mode in (Mode.INPAINT, Mode.OUTPAINT)
    inpaint = mode is Mode.INPAINT
    varied = params.subseed_strength > 0
    values: dict[str, Any] = {
        "Steps": params.steps,
        "Sampler": sampler,
        "Schedule type": schedule,
        "CFG scale": params.cfg_scale,
        "Seed": seed,
        "Size": f"{params.width}x{params.height}",
        "Model hash": model_hash,
        "Model": model_name,
        "Variation seed": subseed if varied else None,
        "Variation seed strength": params.subseed_strength if varied else None,
        "Denoising strength": params.denoising_strength if mode is not Mode.TXT2IMG or params.hires else None,
        "Mask blur": params.mask_blur if masked and params.mask_blur > 0 else None,
        "Inpaint area": "Only masked" if inpaint and params.inpaint_full_res else None,
        "Masked area padding": params.inpaint_full_res_padding if inpaint and params.inpaint_full_res else None,
        "Masked content": (params.masked_content.value
                           if inpaint and params.masked_content is not MaskedContent.ORIGINAL else None),
        "Mask mode": "Inpaint not masked" if inpaint and params.mask_invert else None,
        "Outpaint extents": _extents_text(params) if mode is Mode.OUTPAINT else None,
        "Outpaint fill": params.outpaint_fill.value if mode is Mode.OUTPAINT else None,
        "Clip skip": params.clip_skip if params.clip_skip > 1 else None,
        "RNG": "CPU",  # noise comes from per-image CPU generators: A1111's "CPU" random source
        **(_hires_values(params, sampler, schedule) if params.hires else {}),
    }
    values.update(extra or {})
    values.pop("Version", None)
    values["Version"] = f"sdui {__version__}"
    ordered = [k for k in KEY_ORDER if k in values] + [k for k in values if k not in KEY_ORDER]
    pairs = [k if k == v else f"{k}: {quote(values[k])}" for k in ordered
             if (v := values[k]) is not None and v != ""]
    negative = f"\n{NEGATIVE_PREFIX} {params.negative_prompt}" if params.negative_prompt else ""
    return f"{params.prompt}{negative}\n{', '.join(pairs)}".strip()


def _hires_values(params: GenerationParams, sampler: str, schedule: str) -> dict[str, Any]:
    """The hires keys A1111 writes: only those in use, and only what differs from the first pass."""
    resized = params.hr_resize_x or params.hr_resize_y
    hr_sampler, hr_schedule = _canonical_sampler(params.hr_sampler or sampler, params.hr_schedule or schedule)
    return {
        "Hires sampler": hr_sampler if hr_sampler != sampler else None,
        "Hires schedule type": hr_schedule if hr_schedule != schedule else None,
        "Hires prompt": params.hr_prompt if params.hr_prompt and params.hr_prompt != params.prompt else None,
        "Hires negative prompt": (params.hr_negative_prompt if params.hr_negative_prompt
                                  and params.hr_negative_prompt != params.negative_prompt else None),
        "Hires upscale": None if resized else params.hr_scale,
        "Hires resize": f"{params.hr_resize_x}x{params.hr_resize_y}" if resized else None,
        "Hires steps": params.hr_second_pass_steps or None,
        "Hires upscaler": params.hr_upscaler,
    }


def parse_infotext(text: str) -> dict[str, Any]:
    """The infotext as A1111's keys ("Prompt", "Negative prompt", "Steps", "Size-1", ...), values as text.

    JSON object values (`Hashes: {...}`) become dicts; unknown keys are kept; missing keys get A1111's
    defaults; an old combined sampler name ("DPM++ 2M Karras") is split into Sampler + Schedule type.
    Unbalanced quotes are read best-effort; the prompt is always kept.
    """
    if not isinstance(text, str):
        raise ValueError(f"infotext must be text; got {type(text).__name__}")
    if len(text) > MAX_INFOTEXT_CHARS:
        raise ValueError(f"infotext must be at most {MAX_INFOTEXT_CHARS} characters; got {len(text)}")
    *lines, last = text.strip().split("\n")
    pairs = _pairs(last)
    if len(pairs) < MIN_PAIRS:
        lines.append(last)
        pairs = []
    prompt = negative = ""
    in_negative = False
    for line in lines:
        line = line.strip()
        if line.startswith(NEGATIVE_PREFIX):
            in_negative = True
            line = line[len(NEGATIVE_PREFIX):].strip()
        if in_negative:
            negative += ("" if negative == "" else "\n") + line
        else:
            prompt += ("" if prompt == "" else "\n") + line
    result: dict[str, Any] = {"Prompt": prompt, "Negative prompt": negative}
    for key, value in pairs:
        size = _SIZE.match(value) if isinstance(value, str) else None
        if size:
            result[f"{key}-1"], result[f"{key}-2"] = size.groups()
        else:
            result[key] = value
    _split_sampler(result)
    for key, default in DEFAULTS.items():
        result.setdefault(key, default)
    return result


def params_from_infotext(source: str | Mapping[str, Any], base: GenerationParams | None = None) -> GenerationParams:
    """GenerationParams carrying what the infotext says; everything it does not say comes from `base`.

    The mode stays `base.mode` (the tab the user sends to). "Model" becomes the checkpoint. A sampler or
    schedule sdui does not know keeps `base`'s, as A1111 does. Raises ValueError naming a malformed key.
    """
    info = parse_infotext(source) if isinstance(source, str) else dict(source)
    base = base or GenerationParams()
    changes: dict[str, Any] = {}
    if "Prompt" in info:
        changes["prompt"] = str(info["Prompt"])
    if "Negative prompt" in info:
        changes["negative_prompt"] = str(info["Negative prompt"])
    for key, name, convert in _NUMERIC_FIELDS:
        if key in info:
            changes[name] = convert(key, info[key])
    if info.get("Model"):
        changes["checkpoint"] = str(info["Model"])
    if "Variation seed strength" in info:
        changes["subseed_strength"] = _to_float("Variation seed strength", info["Variation seed strength"])
        if "Variation seed" in info:
            changes["subseed"] = _to_int("Variation seed", info["Variation seed"])
    else:
        changes["subseed_strength"] = 0.0
    if "Sampler" in info:
        changes.update(_sampler_fields(str(info["Sampler"]), str(info.get("Schedule type") or "Automatic")))
    if info.get("Lora hashes"):
        changes["lora_hashes"] = name_hashes(info["Lora hashes"])
    if info.get("VAE"):
        changes["vae"] = str(info["VAE"])
    changes.update(_hires_fields(info, changes.get("sampler", base.sampler), changes.get("schedule", base.schedule)))
    if "Inpaint area" in info:
        changes["inpaint_full_res"] = info["Inpaint area"] == "Only masked"
    if "Mask mode" in info:
        changes["mask_invert"] = info["Mask mode"] == "Inpaint not masked"
    if info.get("Masked content") in {m.value for m in MaskedContent}:
        changes["masked_content"] = MaskedContent(info["Masked content"])
    if "Outpaint extents" in info:
        extents = _OUTPAINT.match(str(info["Outpaint extents"]).strip())
        if extents is None:
            raise ValueError("infotext 'Outpaint extents' must look like 'left 0 right 64 up 0 down 0'; "
                             f"got {info['Outpaint extents']!r}")
        for side, value in zip(("left", "right", "up", "down"), extents.groups()):
            changes[f"outpaint_{side}"] = int(value)
    if info.get("Outpaint fill") in {f.value for f in OutpaintFill}:
        changes["outpaint_fill"] = OutpaintFill(info["Outpaint fill"])
    return base.replace(**changes)


def _hires_fields(info: Mapping[str, Any], sampler: str, schedule: str) -> dict[str, Any]:
    """GenerationParams' hires fields from A1111's keys; hires is on when the keys say so, as A1111 reads them."""
    on = "Denoising strength" in info and any(k in info for k in ("Hires upscale", "Hires upscaler", "Hires resize-1"))
    if not on:
        return {"enable_hr": False}
    fields: dict[str, Any] = {"enable_hr": True, "hr_scale": 2.0, "hr_resize_x": 0, "hr_resize_y": 0,
                              "hr_second_pass_steps": 0, "hr_upscaler": str(info.get("Hires upscaler") or "Latent"),
                              "hr_checkpoint": str(info.get("Hires checkpoint") or ""),
                              "hr_prompt": str(info.get("Hires prompt") or ""),
                              "hr_negative_prompt": str(info.get("Hires negative prompt") or ""),
                              "hr_sampler": "", "hr_schedule": ""}
    if "Hires upscale" in info:
        fields["hr_scale"] = _to_float("Hires upscale", info["Hires upscale"])
    if "Hires resize-1" in info:
        fields["hr_resize_x"] = _to_int("Hires resize", info["Hires resize-1"])
        fields["hr_resize_y"] = _to_int("Hires resize", info.get("Hires resize-2", 0))
    if "Hires steps" in info:
        fields["hr_second_pass_steps"] = _to_int("Hires steps", info["Hires steps"])
    if info.get("Hires sampler") or info.get("Hires schedule type"):
        chosen = _sampler_fields(str(info.get("Hires sampler") or sampler),
                                 str(info.get("Hires schedule type") or schedule))
        if chosen.get("sampler", sampler) != sampler:
            fields["hr_sampler"] = chosen["sampler"]
        if chosen.get("schedule", schedule) != schedule:
            fields["hr_schedule"] = chosen["schedule"]
    return fields


def name_hashes(value: Any) -> dict[str, str]:
    """A1111's `Lora hashes` / `TI hashes` value ("name: 0123456789ab, other: ...") as {name: hash}."""
    found = {}
    for item in str(value).split(","):
        name, sep, digest = item.rpartition(":")
        if sep and name.strip() and digest.strip():
            found[name.strip()] = digest.strip().lower()
    return found


def _pairs(line: str) -> list[tuple[str, Any]]:
    """`key: value` pairs of one line as A1111's `re_param` finds them, in linear time.

    A key is the run of word characters, spaces, `-` and `/` just before a colon, starting with a word
    character; a value is a JSON string / object / array followed by `,` or the end, else text up to `,`.
    """
    pairs: list[tuple[str, Any]] = []
    pos = 0
    while (colon := line.find(":", pos)) >= 0:
        run = _KEY_CHARS_REVERSED.match(line[pos:colon][::-1]).end()
        key = line[colon - run:colon].lstrip(" -/").strip()
        if len(key) < 2:  # A1111's key pattern needs two characters; look for the next colon
            pos = colon + 1
            continue
        start = colon + 1
        while start < len(line) and line[start].isspace():
            start += 1
        value, pos = _value(line, start)
        pairs.append((key, value))
    return pairs


def _value(line: str, start: int) -> tuple[Any, int]:
    """The decoded value starting at `start` and the position just after its trailing comma."""
    if start < len(line) and line[start] in '"{[':
        end = _json_end(line, start)
        if end is not None and (end == len(line) or line[end] == ","):
            try:
                return json.loads(line[start:end]), end + 1
            except ValueError:
                pass  # not JSON after all: read it as plain text below, as A1111 does
    comma = line.find(",", start)
    end = len(line) if comma < 0 else comma
    return line[start:end].strip(), end + 1


def _json_end(line: str, start: int) -> int | None:
    """Index just past the JSON string/object/array opening at `start`, or None when it never closes."""
    depth = 0
    in_string = False
    i = start
    while i < len(line):
        c = line[i]
        if in_string:
            if c == "\\":
                i += 1
            elif c == '"':
                in_string = False
                if depth == 0:
                    return i + 1
        elif c == '"':
            in_string = True
        elif c in "{[":
            depth += 1
        elif c in "}]":
            depth -= 1
            if depth <= 0:
                return i + 1
        i += 1
    return None


def _split_sampler(info: dict[str, Any]) -> None:
    name = info.get("Sampler")
    if not isinstance(name, str):
        return
    for label in SCHEDULE_LABELS:
        if name.endswith(" " + label) and len(name) > len(label) + 1:
            info["Sampler"] = name[: -len(label) - 1]
            info["Schedule type"] = label
            return


def _canonical_sampler(sampler: str, schedule: str) -> tuple[str, str]:
    try:
        spec, schedule = samplers.resolve(sampler, schedule)
    except ValueError:
        return sampler, schedule  # write what was asked; validation is GenerationParams.validate's job
    return spec.name, schedule


def _sampler_fields(sampler: str, schedule: str) -> dict[str, str]:
    try:
        spec, schedule = samplers.resolve(sampler, schedule)
    except ValueError:
        try:
            spec, schedule = samplers.resolve(sampler, "Automatic")
        except ValueError:
            return {}
    return {"sampler": spec.name, "schedule": schedule}


def _extents_text(params: GenerationParams) -> str:
    return (f"left {params.outpaint_left} right {params.outpaint_right} "
            f"up {params.outpaint_up} down {params.outpaint_down}")


def _number(value: int | float) -> str:
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


def _to_int(key: str, value: Any) -> int:
    try:
        return int(str(value).strip())
    except ValueError:
        pass
    try:
        number = float(str(value).strip())
    except ValueError:
        number = float("nan")
    if not number.is_integer():
        raise ValueError(f"infotext {key!r} must be a whole number; got {value!r}")
    return int(number)


def _to_float(key: str, value: Any) -> float:
    try:
        number = float(str(value).strip())
    except ValueError:
        raise ValueError(f"infotext {key!r} must be a number; got {value!r}") from None
    if number != number:
        raise ValueError(f"infotext {key!r} must be a number; got {value!r}")
    return number


_NUMERIC_FIELDS: tuple[tuple[str, str, Callable[[str, Any], Any]], ...] = (
    ("Steps", "steps", _to_int),
    ("CFG scale", "cfg_scale", _to_float),
    ("Seed", "seed", _to_int),
    ("Size-1", "width", _to_int),
    ("Size-2", "height", _to_int),
    ("Denoising strength", "denoising_strength", _to_float),
    ("Mask blur", "mask_blur", _to_int),
    ("Masked area padding", "inpaint_full_res_padding", _to_int),
    ("Clip skip", "clip_skip", _to_int),
)
