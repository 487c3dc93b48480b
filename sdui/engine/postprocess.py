"""Extras (A1111's postprocessing): ExtrasParams, the pictures they work on, and the runner that upscales each one.

Per image, as A1111's scripts/postprocessing_upscale.py does it: upscaler 1 ("Scale by" a factor, or "Scale to" a
size by the larger of the two ratios, then centred and cropped to that size with "Crop to fit"), then upscaler 2
the same way, blended over it by its visibility. Upscaler 1 "None" leaves the picture as it is. Saving the results
is outputs/save.py's job; no Gradio, HTTP or diffusers here.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any, Protocol

from PIL import Image, UnidentifiedImageError

from sdui.engine.result import Progress
from sdui.outputs.infotext import quote
from sdui.outputs.read import read_infotext

SIDE_MAX = 8192  # pixels per side of a source, an intermediate and a result (A1111's "Scale to" slider maximum)
SCALE_MAX = 8.0  # A1111's "Resize" slider maximum
NONE = "None"  # A1111's name of "no upscaler"


class ScaleMode(IntEnum):
    """A1111's `resize_mode` of the Extras API (its "Scale by" / "Scale to" tabs)."""

    SCALE_BY = 0
    SCALE_TO = 1


class UpscalersLike(Protocol):
    def check(self, name: str, field: str = "upscaler") -> None: ...

    def upscale(self, image: Image.Image, scale: float, name: str,
                cancel: threading.Event | None = None) -> Image.Image: ...


@dataclass(frozen=True, eq=False)
class ExtrasImage:
    """One picture to postprocess: decoded already (API), or a file whose pixels are read when its turn comes."""

    label: str  # how messages name it: the API field ("image", "imageList.0") or the file name
    size: tuple[int, int]
    image: Image.Image | None = None
    path: Path | None = None
    name: str | None = None  # the source file's name without suffix: batch results are saved under it (A1111)

    @classmethod
    def from_image(cls, image: Image.Image, label: str, name: str | None = None) -> ExtrasImage:
        """A decoded picture; ValueError when a side is over SIDE_MAX."""
        check_source_size(image.size, label)
        return cls(label=label, size=image.size, image=image, name=name)

    @classmethod
    def from_file(cls, path: str | Path, name: str | None = None, label: str | None = None) -> ExtrasImage:
        """A picture file, checked from its header only (no pixels decoded): ValueError for a non-image, a
        decompression bomb or a side over SIDE_MAX."""
        path = Path(path)
        label = label or path.name
        with _open(path, label) as image:
            size = image.size
        check_source_size(size, label)
        return cls(label=label, size=size, path=path, name=name)

    def load(self) -> tuple[Image.Image, str | None, str | None]:
        """The RGB pixels, the source's own infotext (None when it has none) and a note when that was unreadable."""
        if self.image is not None:
            image = self.image
        else:
            with _open(self.path, self.label) as image:  # leaving closes the file only: the pixels stay
                try:
                    image.load()  # also reads text chunks stored after the pixels
                except (OSError, SyntaxError, ValueError, EOFError) as e:
                    raise ValueError(f"{self.label} is a damaged image: {e}") from None
        try:
            infotext, note = read_infotext(image), None
        except ValueError as e:
            infotext, note = None, f"{self.label}: its parameters were not kept: {e}"
        return image.convert("RGB"), infotext, note


@dataclass(frozen=True)
class ExtrasParams:
    """One Extras job, by A1111's field names (modules/api/models.py ExtrasBaseRequest)."""

    images: tuple[ExtrasImage, ...]
    resize_mode: int = ScaleMode.SCALE_BY
    upscaling_resize: float = 2.0  # Scale by
    upscaling_resize_w: int = 512  # Scale to
    upscaling_resize_h: int = 512
    upscaling_crop: bool = True  # Crop to fit (Scale to only)
    upscaler_1: str = NONE
    upscaler_2: str = NONE
    extras_upscaler_2_visibility: float = 0.0

    @property
    def total_steps(self) -> int:
        """What progress counts to: one step per image."""
        return len(self.images)

    @property
    def batch_count(self) -> int:
        return 1

    @property
    def uses_upscaler_2(self) -> bool:
        return self.upscaler_2 != NONE and self.extras_upscaler_2_visibility > 0

    def scale_for(self, width: int, height: int) -> float:
        """The factor the upscalers apply to a width x height picture (Scale to: the larger of the two ratios)."""
        if self.resize_mode == ScaleMode.SCALE_TO:
            return max(self.upscaling_resize_w / width, self.upscaling_resize_h / height)
        return float(self.upscaling_resize)

    def upscaled_size(self, width: int, height: int) -> tuple[int, int]:
        """The size the upscalers make (A1111 rounds it down to a multiple of 8), before any crop."""
        scale = self.scale_for(width, height)
        return int((width * scale) // 8 * 8), int((height * scale) // 8 * 8)

    def result_size(self, width: int, height: int) -> tuple[int, int]:
        """The size of the saved picture."""
        if self.upscaler_1 == NONE:
            return width, height
        if self.resize_mode == ScaleMode.SCALE_TO and self.upscaling_crop:
            return self.upscaling_resize_w, self.upscaling_resize_h
        return self.upscaled_size(width, height)

    def validate(self) -> None:
        """Raise ValueError naming the first invalid field (A1111's names) or picture; None when all is well."""
        if not self.images:
            raise ValueError("images: there is no picture to process: add one first")
        if self.resize_mode not in (ScaleMode.SCALE_BY, ScaleMode.SCALE_TO):
            raise ValueError(f"resize_mode must be 0 (scale by) or 1 (scale to); got {self.resize_mode!r}")
        _check_number("upscaling_resize", self.upscaling_resize, 0, SCALE_MAX, low_open=True)
        for name in ("upscaling_resize_w", "upscaling_resize_h"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= SIDE_MAX:
                raise ValueError(f"{name} must be a whole number of pixels from 1 to {SIDE_MAX}; got {value!r}")
        _check_number("extras_upscaler_2_visibility", self.extras_upscaler_2_visibility, 0, 1)
        for name in ("upscaler_1", "upscaler_2"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name).strip():
                raise ValueError(f"{name} must name an upscaler ('None' for none); got {getattr(self, name)!r}")
        if self.upscaler_1 == NONE:
            return
        for source in self.images:
            check_source_size(source.size, source.label)
            self._check_sizes(source)

    def _check_sizes(self, source: ExtrasImage) -> None:
        width, height = source.size
        upscaled = self.upscaled_size(width, height)
        how = (f"scaling to {self.upscaling_resize_w}x{self.upscaling_resize_h}"
               if self.resize_mode == ScaleMode.SCALE_TO else f"scaling by {_number(self.upscaling_resize)}")
        if min(upscaled) < 8:
            raise ValueError(f"{source.label} is {width}x{height}: {how} would make it {upscaled[0]}x{upscaled[1]}, "
                             "under 8 pixels on a side; choose a larger scale")
        if max(upscaled) > SIDE_MAX:
            cropped = self.result_size(width, height) != upscaled
            raise ValueError(f"{source.label} is {width}x{height}: {how} would make it {upscaled[0]}x{upscaled[1]}"
                             f"{' before cropping' if cropped else ''}; Extras makes at most {SIDE_MAX} pixels "
                             "on a side: choose a smaller scale")


@dataclass
class ExtrasResult:
    """What an Extras job made: each picture with its postprocessing text and its source's own infotext."""

    params: ExtrasParams
    images: list[Image.Image] = field(default_factory=list)
    infotexts: list[str] = field(default_factory=list)  # A1111's `postprocessing` text ("Postprocess upscale by: 2...")
    parameters: list[str | None] = field(default_factory=list)  # each source's own infotext, kept when saving
    names: list[str | None] = field(default_factory=list)  # each source's file name without suffix (batch)
    interrupted: bool = False
    warnings: list[str] = field(default_factory=list)


def check_source_size(size: tuple[int, int], label: str) -> None:
    """ValueError when a picture is over SIDE_MAX on a side (checked before its pixels are decoded)."""
    width, height = size
    if max(width, height) > SIDE_MAX:
        raise ValueError(f"{label} is {width}x{height}; Extras takes pictures up to {SIDE_MAX} pixels on a side: "
                         "scale it down first")


def check_upscalers(params: ExtrasParams, upscalers: UpscalersLike) -> None:
    """ValueError listing the known upscalers when upscaler_1 or upscaler_2 (when it is used) is not one."""
    upscalers.check(params.upscaler_1, "upscaler_1")
    if params.upscaler_2 != NONE:
        upscalers.check(params.upscaler_2, "upscaler_2")


def images_from_folder(folder: str | Path) -> tuple[list[ExtrasImage], list[str]]:
    """The pictures of a folder (not its subfolders), by name, and a note for each image file that cannot be used.

    Files whose suffix is no image format are passed over in silence (captions, .txt), as A1111 does.
    Raises ValueError when `folder` is not a folder.
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise ValueError(f"input_dir: {folder} is not a folder on the server")
    suffixes = {suffix.lower() for suffix in Image.registered_extensions()}
    images, notes = [], []
    for path in sorted(folder.iterdir(), key=lambda p: p.name.lower()):
        if path.name.startswith(".") or not path.is_file() or path.suffix.lower() not in suffixes:
            continue
        try:
            images.append(ExtrasImage.from_file(path, name=path.stem))
        except ValueError as e:
            notes.append(f"skipped: {e}")
    return images, notes


def run_extras(params: ExtrasParams, upscalers: UpscalersLike, progress: Callable[[Progress], None] | None = None,
               cancel: threading.Event | None = None) -> ExtrasResult:
    """Postprocess every picture of `params` in order; an interrupted run returns the pictures it finished."""
    from sdui.upscalers import UpscaleInterrupted  # brings torch: imported when a job runs, not with the job queue

    params.validate()
    check_upscalers(params, upscalers)
    result = ExtrasResult(params=params)
    total = len(params.images)
    if params.upscaler_1 == NONE:
        result.warnings.append("Upscaler 1 is None: the pictures are kept as they are")
    for index, source in enumerate(params.images):
        if cancel is not None and cancel.is_set():
            result.interrupted = True
            break
        try:
            image, parameters, note = source.load()
        except ValueError as e:  # a file that changed since it was checked: skip it, as A1111 does
            result.warnings.append(f"skipped: {e}")
            continue
        if note:
            result.warnings.append(note)
        try:
            image, info = postprocess_image(image, params, upscalers, cancel)
        except UpscaleInterrupted:
            result.interrupted = True
            break
        result.images.append(image)
        result.infotexts.append(format_postprocessing(info))
        result.parameters.append(parameters)
        result.names.append(source.name)
        if progress is not None:
            progress(Progress(step=index + 1, total=total))
    return result


def postprocess_image(image: Image.Image, params: ExtrasParams, upscalers: UpscalersLike,
                      cancel: threading.Event | None = None) -> tuple[Image.Image, dict[str, Any]]:
    """One picture through upscaler 1 and upscaler 2, and A1111's `Postprocess ...` keys saying what was done."""
    info: dict[str, Any] = {}
    if params.upscaler_1 == NONE:
        return image, info
    upscaled = _upscale(image, info, params, params.upscaler_1, upscalers, cancel)
    info["Postprocess upscaler"] = _canonical(upscalers, params.upscaler_1)
    if params.uses_upscaler_2:
        second = _upscale(image, info, params, params.upscaler_2, upscalers, cancel)
        if second.mode != upscaled.mode:
            second = second.convert(upscaled.mode)
        upscaled = Image.blend(upscaled, second, params.extras_upscaler_2_visibility)
        info["Postprocess upscaler 2"] = _canonical(upscalers, params.upscaler_2)
    return upscaled, info


def format_postprocessing(info: dict[str, Any]) -> str:
    """A1111's postprocessing text: `Key: value` pairs joined by ", ", values quoted as in an infotext."""
    return ", ".join(f"{key}: {quote(value)}" for key, value in info.items() if value is not None)


def _upscale(image: Image.Image, info: dict[str, Any], params: ExtrasParams, name: str, upscalers: UpscalersLike,
             cancel: threading.Event | None) -> Image.Image:
    if params.resize_mode == ScaleMode.SCALE_TO:
        info["Postprocess upscale to"] = f"{params.upscaling_resize_w}x{params.upscaling_resize_h}"
    else:
        info["Postprocess upscale by"] = params.upscaling_resize
    upscaled = upscalers.upscale(image, params.scale_for(image.width, image.height), name, cancel)
    if params.resize_mode == ScaleMode.SCALE_TO and params.upscaling_crop:
        width, height = params.upscaling_resize_w, params.upscaling_resize_h
        cropped = Image.new("RGB", (width, height))
        cropped.paste(upscaled, (width // 2 - upscaled.width // 2, height // 2 - upscaled.height // 2))
        upscaled = cropped
        info["Postprocess crop to"] = f"{width}x{height}"
    return upscaled


def _canonical(upscalers: UpscalersLike, name: str) -> str:
    """The upscaler's own spelling of `name` (the lookup ignores case), as the infotext should carry it."""
    find = getattr(upscalers, "find", None)
    found = find(name) if find is not None else None
    return found.name if found is not None else name


def _open(path: Path | None, label: str) -> Image.Image:
    """Image.open with a message for each way a file is not a usable picture (reads the header only)."""
    if path is None or not Path(path).is_file():
        raise ValueError(f"{label} is not a file")
    try:
        return Image.open(path)
    except Image.DecompressionBombError as e:
        raise ValueError(f"{label} is refused as a decompression bomb (far more pixels than its file size "
                         f"suggests): {e}") from None
    except UnidentifiedImageError:
        raise ValueError(f"{label} is not an image Pillow can read (PNG, JPEG, WEBP, ...)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise ValueError(f"{label} is a damaged image: {e}") from None


def _check_number(name: str, value: Any, low: float, high: float, low_open: bool = False) -> None:
    number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not number or value > high or value < low or (low_open and value == low):
        rule = f"above {_number(low)} and at most {_number(high)}" if low_open else \
            f"from {_number(low)} to {_number(high)}"
        raise ValueError(f"{name} must be a number {rule}; got {value!r}")


def _number(value: float) -> str:
    return quote(value)
