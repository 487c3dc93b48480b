"""An infotext applied to this install: its GenerationParams, with the models it names looked up here.

`infotext.read_params` says what the text asks for; this module finds the checkpoint, VAE, hires checkpoint,
refiner, hires upscaler, LoRAs and embeddings it names (by name, then by hash) and says which are not installed and
what is used instead. The UI's Send to / ↙ / Regenerate and the API's `infotext` field both come here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from sdui.engine.hires import is_latent_mode
from sdui.models.errors import ModelNotFound
from sdui.outputs.infotext import name_hashes, parse_infotext, read_params
from sdui.params import GenerationParams, Mode

# A model upscaler that is not installed becomes this one: like the model, it works on pixels.
UPSCALER_SUBSTITUTE = "Lanczos"


class CatalogLike(Protocol):
    def find(self, name_or_title: str) -> Any: ...


class FolderLike(Protocol):
    def find(self, name: str) -> Any: ...

    def find_by_hash(self, short_hash: str) -> Any: ...


class UpscalersLike(Protocol):
    def find(self, name: str) -> Any: ...


@dataclass
class Pasted:
    """An infotext over a base: what to run, the mode the picture was made with, and what was not applied."""

    params: GenerationParams
    mode: Mode
    fields: set[str]  # the GenerationParams fields the infotext set
    warnings: list[str]


def paste_infotext(text: str, base: GenerationParams, *, catalog: CatalogLike, vaes: FolderLike | None,
                   upscalers: UpscalersLike | None, networks: Any = None) -> Pasted:
    """`base` with every key of `text` that sdui can apply applied; each key that could not be, named in warnings.

    `networks` (the manager's ExtraNetworks) checks the LoRAs of `Lora hashes` and the embeddings of `TI hashes`.
    Raises ValueError when the text is empty or a value is malformed.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError("the infotext is empty: paste the parameters of a picture made by sdui or AUTOMATIC1111")
    info = parse_infotext(text)
    read = read_params(info, base)
    params, warnings, changes = read.params, list(read.warnings), {}
    hashes = info.get("Hashes") if isinstance(info.get("Hashes"), dict) else {}
    if info.get("Model") or info.get("Model hash"):
        changes["checkpoint"] = _checkpoint(info, hashes, catalog, base.checkpoint, warnings)
    if info.get("VAE") or info.get("VAE hash"):
        changes["vae"] = _vae(info, hashes, vaes, base.vae, warnings)
    if params.hires:
        if params.hr_checkpoint:
            found = _find_checkpoint(catalog, params.hr_checkpoint)
            if found is None:
                warnings.append(f"Hires checkpoint: '{params.hr_checkpoint}' is not installed: the hires pass uses "
                                "the first pass's checkpoint")
            changes["hr_checkpoint"] = found or ""
        if not is_latent_mode(params.hr_upscaler) and (upscalers is None or upscalers.find(params.hr_upscaler) is None):
            warnings.append(f"Hires upscaler: '{params.hr_upscaler}' is not installed: used {UPSCALER_SUBSTITUTE} "
                            "instead (put the model into models/ESRGAN, RealESRGAN, SwinIR or DAT)")
            changes["hr_upscaler"] = UPSCALER_SUBSTITUTE
    if params.refiner_checkpoint:
        changes["refiner_checkpoint"] = _refiner(info, catalog, warnings)
        if changes["refiner_checkpoint"] and changes["refiner_checkpoint"] == changes.get("checkpoint"):
            warnings.append(f"Refiner: '{info['Refiner']}' is the picture's own checkpoint: there is nothing to "
                            "switch to")
    if networks is not None:
        warnings += _missing_networks(info, networks)
    return Pasted(params=params.replace(**changes), mode=read.mode, fields=read.fields | set(changes),
                  warnings=warnings)


def _checkpoint(info: dict, hashes: dict, catalog: CatalogLike, current: str | None, warnings: list[str]) -> str | None:
    name, short_hash = str(info.get("Model") or ""), str(info.get("Model hash") or hashes.get("model") or "")
    for wanted in (name, short_hash):  # the catalog matches known hashes only: no model file is read here
        title = _find_checkpoint(catalog, wanted) if wanted else None
        if title:
            if wanted == short_hash and name:
                warnings.append(f"Model: '{name}' is not installed by that name: used '{title}', which has its hash "
                                f"{short_hash}")
            return title
    label = f"'{name}'" + (f" [{short_hash}]" if short_hash else "") if name else f"hash {short_hash}"
    used = f"'{current}'" if current else "the current checkpoint"
    warnings.append(f"Model, Model hash: {label} is not installed: used {used} instead")
    return current


def _refiner(info: dict, catalog: CatalogLike, warnings: list[str]) -> str:
    """The installed refiner A1111's `Refiner: name [shorthash]` names (by name, then hash); "" when none is."""
    value = str(info["Refiner"]).strip()
    name, _, rest = value.partition(" [")
    short_hash = rest.rstrip("]").strip()
    for wanted in (name, short_hash):
        title = _find_checkpoint(catalog, wanted) if wanted else None
        if title:
            if wanted == short_hash:
                warnings.append(f"Refiner: '{name}' is not installed by that name: used '{title}', which has its "
                                f"hash {short_hash}")
            return title
    keys = ", ".join(key for key in ("Refiner", "Refiner switch at", "Hires refiner") if key in info)
    warnings.append(f"{keys}: '{value}' is not installed: the picture is made without a refiner")
    return ""


def _find_checkpoint(catalog: CatalogLike, wanted: str) -> str | None:
    try:
        return catalog.find(wanted).title
    except (ModelNotFound, ValueError):
        return None


def _vae(info: dict, hashes: dict, vaes: FolderLike | None, current: str, warnings: list[str]) -> str:
    name, short_hash = str(info.get("VAE") or ""), str(info.get("VAE hash") or hashes.get("vae") or "")
    found = vaes.find(name) if vaes is not None and name else None
    if found is None and vaes is not None and short_hash:
        found = vaes.find_by_hash(short_hash)
        if found is not None and name:
            warnings.append(f"VAE: '{name}' is not installed by that name: used '{found.rel}', which has its hash")
    if found is not None:
        return found.rel
    label = f"'{name}'" + (f" [{short_hash}]" if short_hash else "") if name else f"hash {short_hash}"
    warnings.append(f"VAE, VAE hash: {label} is not in the VAE folder: used the SD VAE setting '{current}' instead")
    return current


def _missing_networks(info: dict, networks: Any) -> list[str]:
    """`Lora hashes` / `TI hashes` entries whose file is not installed, by name or by hash."""
    missing = []
    for name, short_hash in name_hashes(info.get("Lora hashes") or "").items():
        file, _ = networks.find_lora(name, short_hash)
        if file is None:
            missing.append(f"Lora hashes: LoRA '{name}' [{short_hash}] is not installed (by name or hash): "
                           "its <lora:...> tag will not be applied")
    for name, short_hash in name_hashes(info.get("TI hashes") or "").items():
        if networks.embeddings.find(name) is None and networks.embeddings.find_by_hash(short_hash) is None:
            missing.append(f"TI hashes: embedding '{name}' [{short_hash}] is not installed: its name stays plain "
                           "words in the prompt")
    return missing
