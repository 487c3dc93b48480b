"""Fitting an init image to the target size by A1111's resize modes (Just resize, Crop and resize, Resize and fill)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from sdui.params import ResizeMode


def fit_image(image: Image.Image, width: int, height: int, mode: ResizeMode,
              resample: Image.Resampling = Image.Resampling.LANCZOS) -> Image.Image:
    """Return `image` at width×height; an image already that size comes back unchanged (a copy)."""
    if image.size == (width, height):
        return image.copy()
    if mode is ResizeMode.JUST_RESIZE:
        return image.resize((width, height), resample)
    ratio_w, ratio_h = width / image.width, height / image.height
    if mode is ResizeMode.CROP_AND_RESIZE:
        scale = max(ratio_w, ratio_h)
        scaled = image.resize((max(width, round(image.width * scale)), max(height, round(image.height * scale))),
                              resample)
        left, top = (scaled.width - width) // 2, (scaled.height - height) // 2
        return scaled.crop((left, top, left + width, top + height))
    # Resize and fill: fit inside, then stretch the border pixels into the empty bands.
    scale = min(ratio_w, ratio_h)
    scaled = image.resize((min(width, max(1, round(image.width * scale))),
                           min(height, max(1, round(image.height * scale)))), resample)
    left, top = (width - scaled.width) // 2, (height - scaled.height) // 2
    pixels = np.asarray(scaled)
    pad = ((top, height - scaled.height - top), (left, width - scaled.width - left))
    if pixels.ndim == 3:
        pad += ((0, 0),)
    return Image.fromarray(np.pad(pixels, pad, mode="edge"), scaled.mode)
