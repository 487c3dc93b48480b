"""The Upscalers: A1111's upscaler list, its `Upscaler.upscale` loop and `images.resize_image` rule, models cached.

A1111's semantics (modules/upscaler.py, modules/images.py):
- `upscale(image, scale, name)`: the target is int(w * scale) // 8 * 8 by int(h * scale) // 8 * 8; the upscaler
  runs up to 3 times until the image reaches it (a model always applies its own scale; Lanczos and Nearest
  resize by `scale`; None changes nothing), then a Lanczos resize gives exactly the target.
- `resize(image, width, height, name)` (resize_image, mode 0): when width / height need more than the image has
  (max(width / w, height / h) > 1) the image is upscaled by that factor with `name` first; then a Lanczos resize
  gives exactly width x height. "None" (and grayscale "L" images) get the Lanczos resize only.
Models run tiled (settings.upscaler_tile / upscaler_tile_overlap) with RGB input: A1111 feeds its models BGR,
a leftover of cv2-era code; the models themselves are trained on RGB.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from pathlib import Path

import torch
from PIL import Image

from sdui.models.errors import ModelNotFound
from sdui.settings import Settings
from sdui.upscalers.listing import BUILTIN_UPSCALERS, UpscalerInfo, scan
from sdui.upscalers.reading import load_descriptor
from sdui.upscalers.tiling import image_to_tensor, run_tiled, tensor_to_image

MODELS_CACHED = 2
UPSCALE_PASSES = 3  # A1111 runs an upscaler at most 3 times to reach the target size
_FOLDER_FIELDS = ("esrgan_dir", "realesrgan_dir", "swinir_dir", "dat_dir")
_RESAMPLE = {"Lanczos": Image.Resampling.LANCZOS, "Nearest": Image.Resampling.NEAREST}


class Upscalers:
    """The upscaler models of the folders in settings.upscaler_dirs, loaded with spandrel, cached, run tiled."""

    def __init__(self, settings: Settings, device: torch.device, dtype: torch.dtype = torch.float32) -> None:
        """`dtype`: the precision wherever half precision is not chosen (CPU, MPS, --no-half, models without it);
        on CUDA a model runs in bf16 (--bf16) or fp16 when spandrel says it supports that."""
        self.settings = settings
        self.device = torch.device(device)
        self.dtype = dtype
        self.load_count = 0  # model files really read since start (the cache's misses)
        self._listed: list[UpscalerInfo] | None = None
        self._lock = threading.RLock()
        self._models: OrderedDict[tuple, tuple[object, torch.dtype]] = OrderedDict()  # file key -> descriptor, dtype
        self._load_locks: dict[tuple, threading.Lock] = {}

    # The list
    def list(self) -> list[UpscalerInfo]:
        """Built-ins first (None, Lanczos, Nearest), then the model files sorted by name, as A1111 lists them."""
        with self._lock:
            if self._listed is None:
                self._listed = scan({field: Path(getattr(self.settings, field)) for field in _FOLDER_FIELDS})
            return list(self._listed)

    def names(self) -> list[str]:
        return [info.name for info in self.list()]

    def find(self, name: str) -> UpscalerInfo | None:
        """The upscaler of that name: exact first, then ignoring case (A1111 matches exactly)."""
        listed = self.list()
        found = next((info for info in listed if info.name == name), None)
        if found is None and isinstance(name, str):
            found = next((info for info in listed if info.name.lower() == name.strip().lower()), None)
        return found

    def check(self, name: str, field: str = "upscaler") -> None:
        """ValueError naming `field` when no upscaler has that name; reads no model (rescans the folders once)."""
        if self.find(name) is None:
            self.refresh()  # a file dropped in since the last scan
            if self.find(name) is None:
                raise ValueError(f"{field}: no upscaler {name!r}; known: {', '.join(self.names())}")

    def refresh(self) -> None:
        """Rescan the folders (new, removed and renamed files show up; loaded models stay cached by file)."""
        with self._lock:
            self._listed = None

    # Upscaling
    def upscale(self, image: Image.Image, scale: float, name: str,
                cancel: threading.Event | None = None) -> Image.Image:
        """A1111's Upscaler.upscale: to int(w * scale) // 8 * 8 by int(h * scale) // 8 * 8 with `name`."""
        self.check(name)
        info = self.find(name)
        if not isinstance(scale, (int, float)) or not math.isfinite(scale) or scale <= 0:
            raise ValueError(f"scale must be a number above 0, got {scale!r}")
        dest_w, dest_h = int((image.width * scale) // 8 * 8), int((image.height * scale) // 8 * 8)
        if dest_w < 1 or dest_h < 1:
            raise ValueError(f"scale: {image.width}x{image.height} times {scale} is under 8 pixels on a side "
                             "(A1111 rounds the upscale target down to a multiple of 8)")
        for _ in range(UPSCALE_PASSES):
            before = image.size
            image = self._upscale_once(image, scale, info, cancel)
            if image.size == before or (image.width >= dest_w and image.height >= dest_h):
                break
        if image.size != (dest_w, dest_h):
            image = image.resize((dest_w, dest_h), resample=Image.Resampling.LANCZOS)
        return image

    def resize(self, image: Image.Image, width: int, height: int, name: str,
               cancel: threading.Event | None = None) -> Image.Image:
        """A1111's images.resize_image (resize mode 0) with an upscaler: upscale when enlarging, then Lanczos."""
        self.check(name)
        if width < 1 or height < 1:
            raise ValueError(f"width and height must be at least 1, got {width}x{height}")
        if self.find(name).name != "None" and image.mode != "L":
            scale = max(width / image.width, height / image.height)
            if scale > 1.0:
                image = self.upscale(image, scale, name, cancel)
        if image.size != (width, height):
            image = image.resize((width, height), resample=Image.Resampling.LANCZOS)
        return image

    def _upscale_once(self, image: Image.Image, scale: float, info: UpscalerInfo,
                      cancel: threading.Event | None) -> Image.Image:
        if info.is_builtin:
            if info.name == BUILTIN_UPSCALERS[0]:
                return image
            size = (int(image.width * scale), int(image.height * scale))
            return image.resize(size, resample=_RESAMPLE[info.name])
        descriptor, dtype = self.model(info)
        # spandrel's ModelTiling: INTERNAL models tile themselves, DISCOURAGED ones need the whole picture.
        tile = 0 if descriptor.tiling.name in ("INTERNAL", "DISCOURAGED") else self.settings.upscaler_tile
        with torch.inference_mode():
            output = run_tiled(descriptor, image_to_tensor(image), descriptor.scale, tile,
                               self.settings.upscaler_tile_overlap, device=self.device, dtype=dtype,
                               align=descriptor.size_requirements.multiple_of, cancel=cancel)
            return tensor_to_image(output)

    # The model cache
    def model(self, info: UpscalerInfo):
        """The loaded spandrel descriptor of a model upscaler and the dtype it runs in (cached by path, size, mtime).

        Raises UnrecognizedModel, BrokenModel, UnsafeModel or ModelNotFound (sdui.models.errors) naming the file.
        """
        path = Path(info.model_path)
        try:
            stat = path.stat()
        except FileNotFoundError as e:
            self.refresh()
            raise ModelNotFound(f"{path}: the upscaler file {info.name!r} is gone (the list is refreshed)", path) from e
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
            load_lock = self._load_locks.setdefault(key, threading.Lock())
        with load_lock:  # one file is never loaded twice at once
            with self._lock:
                if key in self._models:
                    return self._models[key]
            descriptor = load_descriptor(path, self.device)
            dtype = run_dtype(descriptor, self.device, self.settings, self.dtype)
            descriptor.to(dtype)
            with self._lock:
                self.load_count += 1
                self._models[key] = (descriptor, dtype)
                while len(self._models) > MODELS_CACHED:
                    self._models.popitem(last=False)
                self._load_locks.pop(key, None)
                return descriptor, dtype

    def unload(self) -> None:
        """Drop every cached model (the model manager frees the memory after)."""
        with self._lock:
            self._models.clear()


def run_dtype(descriptor, device: torch.device, settings: Settings, full: torch.dtype = torch.float32) -> torch.dtype:
    """The precision a model runs in: on CUDA bf16 (--bf16) or fp16 where spandrel says the model supports it;
    `full` on other devices, with --no-half, and for models without half support."""
    if device.type != "cuda" or settings.no_half:
        return full
    if settings.bf16 and descriptor.supports_bfloat16:
        return torch.bfloat16
    return torch.float16 if descriptor.supports_half else full
