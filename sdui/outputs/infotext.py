"""A1111 infotext: write it (format_infotext), read it back (parse_infotext), turn it into GenerationParams.

Layout, key order and quoting follow AUTOMATIC1111's `create_infotext` and `parse_generation_parameters`,
so our files read in A1111, civitai and metadata readers, and A1111's files read here. No file I/O here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable

from sdui import __version__
from sdui.engine import samplers
from sdui.params import (HIRES_REFINER_PASSES, RNG_SOURCES, SEED_MAX, GenerationParams, MaskedContent, Mode,
                         OutpaintFill)

# Pillow's own cap for one decompressed PNG text chunk; far beyond any real prompt.
MAX_INFOTEXT_CHARS = 1024 * 1024
MIN_PAIRS = 3  # the last line is the parameters line only with at least this many `key: value` pairs

# A1111's hires-fix keys, in the order it writes them ("Hires checkpoint" comes from the prepared job).
HIRES_KEYS = ("Hires checkpoint", "Hires sampler", "Hires schedule type", "Hires prompt", "Hires negative prompt",
              "Hires upscale", "Hires resize", "Hires steps", "Hires upscaler")

# The one mapping: every A1111 key sdui writes or reads -> the GenerationParams fields it stands for, in the order
# the parameters line has them. `format_infotext` writes only these keys and `read_params` applies every one of
# them; any other key of a pasted infotext is reported as not applied. () = describes the run, sets no field.
KEYS: dict[str, tuple[str, ...]] = {
    "Steps": ("steps",), "Sampler": ("sampler",), "Schedule type": ("schedule",), "CFG scale": ("cfg_scale",),
    "Seed": ("seed",), "Size": ("width", "height"), "Model hash": ("checkpoint",), "Model": ("checkpoint",),
    "Prediction": (),  # sdui's: what the model predicts when it is not plain epsilon ("v", "v zsnr")
    "VAE hash": ("vae",), "VAE": ("vae",), "Variation seed": ("subseed",),
    "Variation seed strength": ("subseed_strength",), "Denoising strength": ("denoising_strength",),
    "Mask blur": ("mask_blur",), "Inpaint area": ("inpaint_full_res",),
    "Masked area padding": ("inpaint_full_res_padding",), "Masked content": ("masked_content",),
    "Mask mode": ("mask_invert",),
    "Outpaint extents": ("outpaint_left", "outpaint_right", "outpaint_up", "outpaint_down"),
    "Outpaint fill": ("outpaint_fill",), "Clip skip": ("clip_skip",), "RNG": ("randn_source",),
    "ENSD": ("eta_noise_seed_delta",),
    "Hires checkpoint": ("hr_checkpoint",), "Hires sampler": ("hr_sampler",), "Hires schedule type": ("hr_schedule",),
    "Hires prompt": ("hr_prompt",), "Hires negative prompt": ("hr_negative_prompt",),
    "Hires upscale": ("enable_hr", "hr_scale"), "Hires resize": ("enable_hr", "hr_resize_x", "hr_resize_y"),
    "Hires steps": ("hr_second_pass_steps",), "Hires upscaler": ("enable_hr", "hr_upscaler"),
    "Batch size": ("batch_size",),  # older A1111 versions write it
    "Lora hashes": ("lora_hashes",),
    "TI hashes": (),  # embeddings are named in the prompt; the hashes identify the files used
    # A1111 writes the refiner's keys when it switched (the first only when the setting is on, switch or not).
    "Refiner switch by sampling steps": ("refiner_switch_by_steps",), "Hires refiner": ("hires_refiner_pass",),
    "Refiner": ("refiner_checkpoint",), "Refiner switch at": ("refiner_switch_at",),
    "Old prompt editing timelines": ("use_old_scheduling",),
    "Hashes": (),  # civitai's {"model": ..., "vae": ..., "lora:name": ...}: used to find the files by hash
    "Version": (),  # the program that made the picture; sdui writes its own
}
KEY_ORDER = tuple(KEYS)

# Keys of other programs whose value is what sdui always does: honoured as they are, so never reported.
SDUI_BEHAVIOUR = {"Emphasis": "Original", "Eta DDIM": "0", "Eta": "1", "Token merging ratio": "0", "NGMS": "0",
                  "Noise multiplier": "1"}

# Keys of features sdui does not have: (key or key prefix, why it is not applied). Anything else unknown is
# reported as a key sdui does not know. Checked in order; a prefix ends with a space or is the whole key.
NOT_APPLIED: tuple[tuple[str, str], ...] = (
    ("ADetailer", "sdui has no ADetailer"),
    ("ControlNet", "sdui has no ControlNet"),
    ("Face restoration", "sdui has no face restoration"),
    ("Seed resize from", "sdui has no seed resize"),
    ("Tiling", "sdui has no tiling"),
    ("Eta DDIM", "sdui runs DDIM with eta 0"),
    ("Eta", "sdui runs ancestral samplers with eta 1"),
    ("Token merging ratio", "sdui has no token merging"),
    ("NGMS", "sdui has no negative guidance minimum sigma"),
    ("Noise multiplier", "sdui has no img2img noise multiplier"),
    ("Emphasis", "sdui uses A1111's original emphasis"),
    ("Pad conds", "sdui does not pad the conditionings"),
    ("Downcast alphas_cumprod", "sdui keeps alphas_cumprod in full precision"),
    ("Schedule max sigma", "sdui uses the model's own sigma range"),
    ("Schedule min sigma", "sdui uses the model's own sigma range"),
    ("Schedule rho", "sdui uses the schedule's own rho"),
    ("Discard penultimate sigma", "sdui keeps the scheduler's sigmas"),
    ("First pass size", "A1111's old hires first-pass size: set the size instead"),
    ("Hires CFG Scale", "sdui's hires pass uses the first pass's CFG scale"),
    ("Hires Distilled CFG Scale", "sdui does not run Flux"),
    ("Distilled CFG Scale", "a Flux setting: sdui does not run Flux"),
    ("Module", "a Forge module (Flux text encoders/VAE): sdui does not run Flux"),
    ("Diffusion in Low Bits", "a Forge setting for Flux: sdui does not run Flux"),
    ("Image CFG scale", "sdui does not run instruct-pix2pix models"),
    ("Conditional mask weight", "sdui does not run inpainting-conditioning masks with a weight"),
    ("Dynamic thresholding", "sdui has no Dynamic thresholding (CFG fix)"),
    ("Mimic", "sdui has no Dynamic thresholding (CFG fix)"),
    ("Threshold percentile", "sdui has no Dynamic thresholding (CFG fix)"),
    ("CFG mode", "sdui has no Dynamic thresholding (CFG fix)"),
    ("CFG scale minimum", "sdui has no Dynamic thresholding (CFG fix)"),
    ("Template", "a Dynamic Prompts template: sdui has no Dynamic Prompts (the prompt above is its expansion)"),
    ("Negative Template", "a Dynamic Prompts template: sdui has no Dynamic Prompts (the prompt is its expansion)"),
    ("Script", "a script's settings are not restored from an infotext: choose it under Script (X/Y/Z plot)"),
    *((f"{axis} {part}", "an X/Y/Z plot grid's axis: set it under Script → X/Y/Z plot (the picture pasted is "
                          "the grid's first cell)") for axis in "XYZ" for part in ("Type", "Values")),
    ("Batch pos", "the picture's place in its batch (its Seed says which image it was)"),
)

# Keys older versions spelled otherwise -> the key sdui reads.
ALIASES = {"Denoising Strength": "Denoising strength"}

# Keys that only some modes use, and those modes (a key pasted into another mode's tab is reported).
MODE_KEYS: dict[str, tuple[str, ...]] = {
    "Denoising strength": ("img2img", "inpaint", "outpaint", "hires"),
    "Mask blur": ("inpaint", "outpaint"), "Inpaint area": ("inpaint",), "Masked area padding": ("inpaint",),
    "Masked content": ("inpaint",), "Mask mode": ("inpaint",), "Outpaint extents": ("outpaint",),
    "Outpaint fill": ("outpaint",), **{key: ("hires",) for key in (*HIRES_KEYS, "Hires refiner")},
}
_INPAINT_KEYS = ("Inpaint area", "Masked area padding", "Masked content", "Mask mode", "Mask blur")

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
        "Mask blur": params.mask_blur if masked else None,  # always: it marks the picture as inpainted
        "Inpaint area": "Only masked" if inpaint and params.inpaint_full_res else None,
        "Masked area padding": params.inpaint_full_res_padding if inpaint and params.inpaint_full_res else None,
        "Masked content": (params.masked_content.value
                           if inpaint and params.masked_content is not MaskedContent.ORIGINAL else None),
        "Mask mode": "Inpaint not masked" if inpaint and params.mask_invert else None,
        "Outpaint extents": _extents_text(params) if mode is Mode.OUTPAINT else None,
        "Outpaint fill": params.outpaint_fill.value if mode is Mode.OUTPAINT else None,
        "Clip skip": params.clip_skip if params.clip_skip > 1 else None,
        "Batch size": params.batch_size if params.batch_size > 1 else None,
        "RNG": params.randn_source if params.randn_source != "GPU" else None,  # A1111 leaves its default out
        "ENSD": params.eta_noise_seed_delta or None,  # A1111 >= 1.6 leaves it out for samplers without step noise
        # A1111 writes it on every denoising step when its setting is on; the other refiner keys come from the
        # engine (`extra`), only when the refiner took over.
        "Refiner switch by sampling steps": True if params.refiner_switch_by_steps else None,
        "Old prompt editing timelines": True if params.use_old_scheduling else None,
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
        key = ALIASES.get(key, key)
        size = _SIZE.match(value) if isinstance(value, str) else None
        if size:
            result[f"{key}-1"], result[f"{key}-2"] = size.groups()
        else:
            result[key] = value
    _split_sampler(result)
    for key, default in DEFAULTS.items():
        result.setdefault(key, default)
    return result


@dataclass
class InfotextRead:
    """What an infotext says, as GenerationParams over a base, with what it could not carry into them."""

    params: GenerationParams
    mode: Mode  # the mode the picture was made with, from its keys (A1111 writes none)
    fields: set[str]  # the GenerationParams fields the infotext set
    warnings: list[str]  # each key (or family of keys) that was not applied, by name, and why


def params_from_infotext(source: str | Mapping[str, Any], base: GenerationParams | None = None) -> GenerationParams:
    """GenerationParams carrying what the infotext says; everything it does not say comes from `base`."""
    return read_params(source, base).params


def read_params(source: str | Mapping[str, Any], base: GenerationParams | None = None) -> InfotextRead:
    """Apply every key of KEYS an infotext has over `base`; report every other key (NOT_APPLIED, unknown), the
    keys `base.mode` does not use, and a sampler or schedule sdui cannot run faithfully (with its substitute).

    The mode stays `base.mode` (the tab the user sends to). "Model" becomes the checkpoint as named (finding
    the file is `outputs/paste.py`'s job). Raises ValueError naming a malformed key.
    """
    info = parse_infotext(source) if isinstance(source, str) else dict(source)
    base = base or GenerationParams()
    changes: dict[str, Any] = {}
    warnings: list[str] = []
    if "Prompt" in info:
        changes["prompt"] = str(info["Prompt"])
    if "Negative prompt" in info:
        changes["negative_prompt"] = str(info["Negative prompt"])
    for key, name, convert in _NUMERIC_FIELDS:
        if key in info:
            changes[name] = convert(key, info[key])
    if "seed" in changes and not -1 <= changes["seed"] <= SEED_MAX:  # A1111 passes any integer to torch
        warnings.append(f"Seed: {changes['seed']}: not applied: sdui's seeds go from 0 to {SEED_MAX}; "
                        "used a random one")
        changes["seed"] = -1
    if info.get("Model"):
        changes["checkpoint"] = str(info["Model"])
    if "Variation seed strength" in info:
        changes["subseed_strength"] = _to_float("Variation seed strength", info["Variation seed strength"])
        if "Variation seed" in info:
            changes["subseed"] = _to_int("Variation seed", info["Variation seed"])
    else:
        changes["subseed_strength"] = 0.0
    if "Sampler" in info:
        schedule = str(info.get("Schedule type") or "Automatic")
        changes.update(_sampler_fields("Sampler", str(info["Sampler"]), schedule, warnings))
    if info.get("RNG"):
        source_name = str(info["RNG"]).strip()
        if source_name in RNG_SOURCES:
            changes["randn_source"] = source_name
        else:
            warnings.append(f"RNG: {source_name}: not applied: sdui knows {', '.join(RNG_SOURCES)}; "
                            f"used {base.randn_source}")
    changes["eta_noise_seed_delta"] = _to_int("ENSD", info["ENSD"]) if "ENSD" in info else 0
    if info.get("Lora hashes"):
        changes["lora_hashes"] = name_hashes(info["Lora hashes"])
    if info.get("VAE"):
        changes["vae"] = str(info["VAE"])
    hires = _hires_fields(info, changes.get("sampler", base.sampler), changes.get("schedule", base.schedule),
                          warnings)
    changes.update(hires)
    changes.update(_refiner_fields(info, warnings))
    changes["use_old_scheduling"] = str(info.get("Old prompt editing timelines", "")).strip().lower() == "true"
    if "Inpaint area" in info:
        changes["inpaint_full_res"] = info["Inpaint area"] == "Only masked"
    if "Mask mode" in info:
        changes["mask_invert"] = info["Mask mode"] == "Inpaint not masked"
    if info.get("Masked content") in {m.value for m in MaskedContent}:
        changes["masked_content"] = MaskedContent(info["Masked content"])
    elif "Masked content" in info:
        warnings.append(f"Masked content: {info['Masked content']}: not applied: sdui knows "
                        f"{', '.join(m.value for m in MaskedContent)}")
    if "Outpaint extents" in info:
        extents = _OUTPAINT.match(str(info["Outpaint extents"]).strip())
        if extents is None:
            raise ValueError("infotext 'Outpaint extents' must look like 'left 0 right 64 up 0 down 0'; "
                             f"got {info['Outpaint extents']!r}")
        for side, value in zip(("left", "right", "up", "down"), extents.groups()):
            changes[f"outpaint_{side}"] = int(value)
    if info.get("Outpaint fill") in {f.value for f in OutpaintFill}:
        changes["outpaint_fill"] = OutpaintFill(info["Outpaint fill"])
    mode = infotext_mode(info)
    warnings += _unused_by_mode(info, base.mode, mode, hires.get("enable_hr", False))
    warnings += unknown_keys(info)
    return InfotextRead(params=base.replace(**changes), mode=mode, fields=set(changes), warnings=warnings)


def infotext_mode(info: Mapping[str, Any]) -> Mode:
    """The mode a picture was made with, from the keys only that mode writes (sdui's and A1111's)."""
    if "Outpaint extents" in info:
        return Mode.OUTPAINT
    if "Mask blur" in info or any(info.get(key, DEFAULTS.get(key)) != DEFAULTS.get(key) for key in _INPAINT_KEYS):
        return Mode.INPAINT
    if "Denoising strength" in info and not _hires_on(info):
        return Mode.IMG2IMG
    return Mode.TXT2IMG


def unknown_keys(info: Mapping[str, Any]) -> list[str]:
    """One warning per family of keys sdui does not apply (NOT_APPLIED), then one per key it does not know."""
    by_reason: dict[str, list[str]] = {}
    for key, value in info.items():
        name = _key_name(key, info)
        if name in KEYS or name in ("Prompt", "Negative prompt"):
            continue
        if name in SDUI_BEHAVIOUR and str(value).strip() == SDUI_BEHAVIOUR[name]:
            continue
        reason = next((why for prefix, why in NOT_APPLIED if name == prefix or name.startswith(prefix + " ")), None)
        why = f"not applied: {reason}" if reason else f"{_short(value)}: not applied: sdui does not know this key"
        by_reason.setdefault(why, []).append(name)
    return [f"{', '.join(dict.fromkeys(names))}: {why}" for why, names in by_reason.items()]


def _key_name(key: str, info: Mapping[str, Any]) -> str:
    """"Size-1" -> "Size": parse_infotext splits every WxH value into two keys."""
    if key.endswith(("-1", "-2")) and f"{key[:-2]}-1" in info and f"{key[:-2]}-2" in info:
        return key[:-2]
    return key


def _unused_by_mode(info: Mapping[str, Any], target: Mode, made_with: Mode, hires: bool) -> list[str]:
    uses = {target.value} | ({"hires"} if target is Mode.TXT2IMG and hires else set())
    unused = [key for key, modes in MODE_KEYS.items()
              if (value := info.get(key, info.get(f"{key}-1"))) is not None and value != DEFAULTS.get(key)
              and not uses & set(modes)]
    if not unused:
        return []
    return [f"{', '.join(unused)}: not applied: the picture was made with {made_with.value}, and these keys do "
            f"not apply to {target.value}"]


def _short(value: Any, limit: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _hires_on(info: Mapping[str, Any]) -> bool:
    """A1111's rule: hires was on when `Denoising strength` and one of the upscale keys are there."""
    upscale_keys = ("Hires upscale", "Hires upscaler", "Hires resize-1")
    return "Denoising strength" in info and any(key in info for key in upscale_keys)


def _hires_fields(info: Mapping[str, Any], sampler: str, schedule: str, warnings: list[str]) -> dict[str, Any]:
    """GenerationParams' hires fields from A1111's keys; hires is on when the keys say so, as A1111 reads them."""
    if not _hires_on(info):
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
        chosen = _sampler_fields("Hires sampler", str(info.get("Hires sampler") or sampler),
                                 str(info.get("Hires schedule type") or schedule), warnings)
        if chosen.get("sampler", sampler) != sampler:
            fields["hr_sampler"] = chosen["sampler"]
        if chosen.get("schedule", schedule) != schedule:
            fields["hr_schedule"] = chosen["schedule"]
    return fields


def _refiner_fields(info: Mapping[str, Any], warnings: list[str]) -> dict[str, Any]:
    """GenerationParams' refiner fields from A1111's keys ("Refiner" as written: outputs/paste.py finds the file)."""
    fields: dict[str, Any] = {"refiner_checkpoint": str(info.get("Refiner") or "").strip(),
                              "refiner_switch_by_steps": str(info.get("Refiner switch by sampling steps", "")).strip()
                              .lower() == "true", "hires_refiner_pass": "second pass"}
    if "Refiner switch at" in info:
        fields["refiner_switch_at"] = _to_float("Refiner switch at", info["Refiner switch at"])
    wanted = str(info.get("Hires refiner") or "").strip()
    if wanted in HIRES_REFINER_PASSES:
        fields["hires_refiner_pass"] = wanted
    elif wanted:
        warnings.append(f"Hires refiner: {wanted}: not applied: sdui knows {', '.join(HIRES_REFINER_PASSES)}; "
                        "used second pass")
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


def _sampler_fields(key: str, sampler: str, schedule: str, warnings: list[str]) -> dict[str, str]:
    """The sampler and schedule to run; one sdui cannot run faithfully becomes its substitute, with a warning."""
    spec, schedule, notes = samplers.closest(sampler, schedule)
    prefix = "Hires " if key.startswith("Hires") else ""  # the notes start with the key: "Sampler: ..."
    warnings += [prefix + (note[0].lower() + note[1:] if prefix else note) for note in notes]
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
    ("Batch size", "batch_size", _to_int),
)
