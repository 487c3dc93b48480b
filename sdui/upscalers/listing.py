"""Finding upscaler model files: A1111's names (file stems), its model_name and scale per folder, its order."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

BUILTIN_UPSCALERS = ("None", "Lanczos", "Nearest")  # A1111's UpscalerNone, UpscalerLanczos, UpscalerNearest
MODEL_SUFFIXES = (".pth", ".pt", ".safetensors")
DEFAULT_SCALE = 4.0  # A1111's UpscalerData default
# What A1111's upscaler class of each folder reports as `model_name` (its RealESRGAN and DAT classes set none).
FOLDER_MODEL_NAMES = {"esrgan_dir": "ESRGAN_4x", "realesrgan_dir": None, "swinir_dir": "SwinIR 4x", "dat_dir": None}
# "4x-UltraSharp", "2xLexica", "RealESRGAN_x2plus", "DAT_x3": a digit before an x, or an x starting a word.
_SCALE_IN_NAME = re.compile(r"(?<![0-9])([1-8])[xX](?![0-9])|(?<![A-Za-z0-9])[xX]([1-8])(?![0-9])")


@dataclass(frozen=True)
class UpscalerInfo:
    """One upscaler as A1111's GET /sdapi/v1/upscalers lists it."""

    name: str  # what users pick: a built-in or a model file's stem (qualified when two files share it)
    model_name: str | None  # A1111's per-folder model_name ("ESRGAN_4x", "SwinIR 4x"; None for the others)
    model_path: str | None  # the model file, None for the built-ins
    model_url: str | None = None  # sdui downloads nothing
    scale: float = DEFAULT_SCALE  # A1111's listed scale: from the file name when it says ("2x", "x2"), else 4

    @property
    def is_builtin(self) -> bool:
        return self.model_path is None


BUILTINS = tuple(UpscalerInfo(name=name, model_name=None, model_path=None) for name in BUILTIN_UPSCALERS)


def scale_in_name(stem: str) -> float:
    """The scale a model file's name announces ("4x-UltraSharp" -> 4, "RealESRGAN_x2plus" -> 2), else 4."""
    match = _SCALE_IN_NAME.search(stem)
    return float(match.group(1) or match.group(2)) if match else DEFAULT_SCALE


def natural_key(text: str) -> list:
    """A1111's natural sort: "model10" after "model9"."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


def model_files(folder: Path) -> list[Path]:
    """Upscaler model files in `folder` and its subfolders, in A1111's walk order (folders, then files, natural)."""
    if not folder.is_dir():
        return []
    found = []
    for root, _, files in sorted(os.walk(folder, followlinks=True), key=lambda item: natural_key(item[0])):
        for name in sorted(files, key=natural_key):
            if name.lower().endswith(MODEL_SUFFIXES) and not name.startswith("."):
                found.append(Path(root) / name)
    return found


def scan(folders: dict[str, Path]) -> list[UpscalerInfo]:
    """The built-ins, then every model file of the folders sorted by name (A1111's order).

    `folders` maps a Settings field (esrgan_dir, ...) to its folder. A name is the file's stem; when a stem is
    taken already (by a built-in or a file found earlier: earlier folder, then walk order), the later file is
    named `stem (Folder/relative/path.ext)` so both stay selectable.
    """
    taken = {name.lower() for name in BUILTIN_UPSCALERS}
    seen: set[Path] = set()
    models = []
    for field, folder in folders.items():
        for path in model_files(folder):
            if path.resolve() in seen:  # one folder given for two flags
                continue
            seen.add(path.resolve())
            name = path.stem
            if name.lower() in taken:
                name = f"{path.stem} ({folder.name}/{path.relative_to(folder).as_posix()})"
            taken.add(name.lower())
            models.append(UpscalerInfo(name=name, model_name=FOLDER_MODEL_NAMES.get(field), model_path=str(path),
                                       scale=scale_in_name(path.stem)))
    return [*BUILTINS, *sorted(models, key=lambda info: info.name.lower())]
