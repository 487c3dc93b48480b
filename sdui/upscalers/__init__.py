"""Upscalers: A1111's built-ins (None, Lanczos, Nearest) and the upscaler model files, run tiled with spandrel."""

from sdui.upscalers.listing import BUILTIN_UPSCALERS, UpscalerInfo
from sdui.upscalers.tiling import UpscaleInterrupted
from sdui.upscalers.upscalers import Upscalers

__all__ = ["BUILTIN_UPSCALERS", "UpscaleInterrupted", "UpscalerInfo", "Upscalers"]
