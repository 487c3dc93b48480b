"""The corpus of real infotexts (data/a1111_infotexts.json) and the rule both its tests check: kept or reported."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from sdui.outputs.infotext import infotext_mode, parse_infotext
from sdui.params import Mode

CORPUS = json.loads((Path(__file__).parent / "data" / "a1111_infotexts.json").read_text("utf-8"))
IDS = [entry["id"] for entry in CORPUS]
# Keys that describe the original run and set nothing: the program that wrote it, civitai's lookup hashes.
INFORMATIONAL = {"Version", "Hashes"}
# GenerationParams fields a test sets itself (small and fast) -> the infotext keys they replace.
OWN_KEYS = {"width": "Size-1", "height": "Size-2", "steps": "Steps", "hr_second_pass_steps": "Hires steps",
            "hr_resize_x": "Hires resize-1", "hr_resize_y": "Hires resize-2"}


def small_fields(text: str) -> dict[str, Any]:
    """Fields that make the infotext's job fast on the tiny model (64², few steps); they win over the infotext."""
    info = parse_infotext(text)
    own: dict[str, Any] = {"width": 64, "height": 64, "steps": 2}
    if "Hires resize-1" in info:
        own.update(hr_resize_x=128, hr_resize_y=128)
    if any(key.startswith("Hires") for key in info):
        own["hr_second_pass_steps"] = 1
    if infotext_mode(info) is not Mode.TXT2IMG:  # img2img runs int(steps × denoising strength) steps: at least one
        own["steps"] = max(2, math.ceil(1 / float(info.get("Denoising strength") or 0.75)))
    return own


def reported(key: str, warnings: list[str]) -> bool:
    """Whether a warning names `key` among the keys it begins with ("Model, Model hash: ...")."""
    return any(key in (name.strip() for name in warning.split(": ", 1)[0].split(", ")) for warning in warnings)


def dropped_silently(text: str, made_text: str, own: dict[str, Any], warnings: list[str]) -> list[str]:
    """The keys of `text` that are neither in `made_text` with the same value nor named in `warnings`.

    Keys replaced by `own` fields must carry the own value instead (checked too)."""
    given, made = parse_infotext(text), parse_infotext(made_text)
    own_keys = {OWN_KEYS[field]: value for field, value in own.items() if field in OWN_KEYS}
    dropped = []
    for key, value in given.items():
        name = _key_name(key, given)
        if key in own_keys:
            if not _same(made.get(key), own_keys[key]):
                dropped.append(f"{key}: set to {own_keys[key]!r}, made {made.get(key)!r}")
        elif name not in INFORMATIONAL and not (key in made and _same(made[key], value)) \
                and not reported(name, warnings):
            dropped.append(f"{key}: {value!r} -> {made.get(key)!r}")
    return dropped


def _same(a: Any, b: Any) -> bool:
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return (a.strip() if isinstance(a, str) else a) == (b.strip() if isinstance(b, str) else b)


def _key_name(key: str, info: dict) -> str:
    if key.endswith(("-1", "-2")) and f"{key[:-2]}-1" in info and f"{key[:-2]}-2" in info:
        return key[:-2]
    return key
