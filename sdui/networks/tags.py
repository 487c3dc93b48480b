"""A1111's extra-network prompt tags: `<lora:name:weight>`, `<lora:name:te=0.5:unet=1>`, `<lyco:...>`.

`strip_tags` removes every `<kind:args>` tag from a prompt (as A1111 does, known kinds or not) and returns
what they ask for; the prompt text itself, tags included, is what the infotext keeps.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

TAG = re.compile(r"<(\w+):([^>]+)>")
LORA_KINDS = ("lora", "lyco")  # <lyco:...> is A1111's alias of <lora:...>


@dataclass(frozen=True)
class NetworkTag:
    """One extra-network tag: which network, and its text-encoder and UNet multipliers."""

    kind: str  # "lora" (also for <lyco:...>), or another kind as written (hypernet, ...)
    name: str
    te: float = 1.0
    unet: float = 1.0
    dyn: int | None = None  # A1111's dyn_dim: use only the first `dyn` ranks of a LoRA
    text: str = ""  # the tag as written in the prompt
    unknown_settings: tuple[str, ...] = ()  # named settings of extensions (e.g. lbw=): not applied, reported

    @property
    def is_lora(self) -> bool:
        return self.kind == "lora"


def strip_tags(prompt: str, field: str = "prompt") -> tuple[str, list[NetworkTag]]:
    """The prompt without its `<kind:...>` tags, and the tags; ValueError naming the tag when one is malformed."""
    tags: list[NetworkTag] = []

    def take(match: re.Match) -> str:
        tags.append(_parse(match.group(1).lower(), match.group(2), match.group(0), field))
        return ""

    return TAG.sub(take, prompt), tags


def hash_entry_name(name: str) -> str:
    """A network's name as A1111 writes it inside `Lora hashes` / `TI hashes` (without `:` and `,`)."""
    return name.translate(_HASH_SYMBOLS)


_HASH_SYMBOLS = str.maketrans("", "", ":,")


def _parse(kind: str, args: str, text: str, field: str) -> NetworkTag:
    items = args.split(":")
    positional = [item.strip() for item in items if "=" not in item]
    named = {key.strip(): value.strip() for key, _, value in (item.partition("=") for item in items if "=" in item)}
    if not positional or not positional[0]:
        raise ValueError(f"{field}: {text} names no network; write it as <{kind}:name:weight>")
    name = positional[0]
    if ".." in re.split(r"[/\\]", name) or name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        raise ValueError(f"{field}: {text}: a network name cannot be a path outside its folder; got {name!r}")
    unknown = tuple(sorted(set(named) - {"te", "unet", "dyn"}))
    te = _number(positional[1], text, field, "weight") if len(positional) > 1 else 1.0
    te = _number(named["te"], text, field, "te") if "te" in named else te
    unet = _number(positional[2], text, field, "unet weight") if len(positional) > 2 else te
    unet = _number(named["unet"], text, field, "unet") if "unet" in named else unet
    dyn = _whole(positional[3], text, field) if len(positional) > 3 else None
    dyn = _whole(named["dyn"], text, field) if "dyn" in named else dyn
    return NetworkTag(kind="lora" if kind in LORA_KINDS else kind, name=name, te=te, unet=unet, dyn=dyn, text=text,
                      unknown_settings=unknown)


def _number(value: str, text: str, field: str, what: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError(f"{field}: {text}: the {what} must be a number; got {value!r}")
    return number


def _whole(value: str, text: str, field: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{field}: {text}: dyn must be a whole number of ranks (1 or more); got {value!r}")
    return int(value)
