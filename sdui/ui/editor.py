"""Reading gr.ImageEditor values: the uploaded picture and the mask painted over it."""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image


def background(value: dict[str, Any] | None) -> Image.Image | None:
    """The uploaded picture as RGB, or None when nothing was uploaded."""
    array = (value or {}).get("background")
    if array is None:
        return None
    image = _to_image(array)
    if image.mode in ("RGBA", "LA") or "transparency" in image.info:
        canvas = Image.new("RGB", image.size, "white")  # transparent pixels count as white paper
        canvas.paste(image.convert("RGBA"), mask=image.convert("RGBA").getchannel("A"))
        return canvas
    return image.convert("RGB")


def painted_mask(value: dict[str, Any] | None, size: tuple[int, int]) -> Image.Image | None:
    """White where any layer has paint (alpha > 0), black elsewhere, at `size`; None when nothing is painted."""
    layers = [np.asarray(layer) for layer in (value or {}).get("layers") or [] if layer is not None]
    combined = None
    for layer in layers:
        if layer.ndim != 3 or layer.shape[2] != 4:
            continue
        painted = Image.fromarray(((layer[..., 3] > 0) * 255).astype(np.uint8), "L")
        if painted.size != size:
            painted = painted.resize(size, Image.Resampling.NEAREST)
        combined = painted if combined is None else Image.fromarray(np.maximum(np.asarray(combined),
                                                                               np.asarray(painted)), "L")
    if combined is None or not np.asarray(combined).any():
        return None
    return combined


def _to_image(array: Any) -> Image.Image:
    if isinstance(array, Image.Image):
        return array
    if isinstance(array, str):
        return Image.open(array)
    return Image.fromarray(np.asarray(array))
