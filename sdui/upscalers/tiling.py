"""Running an image model over a picture in overlapping tiles, blended, with the output gathered on the CPU.

Tiles are spread evenly as A1111's `images.split_grid` spreads them (neighbours overlap by at least `overlap`
pixels). The model sees each tile with `overlap` more pixels of context on its inner sides (as Real-ESRGAN's
tiler, which A1111 uses for its RealESRGAN models, pads tiles by ESRGAN_tile_overlap), so that a tile's edge is
not computed against zero padding; the context is cut off the output again. Each tile's output is then weighted
by a linear ramp across the overlaps (A1111's ESRGAN tiler blends them too). The weights of every pixel sum to
one, so the output is a plain sum and needs no weight buffer: a 4x of a 2048x2048 image takes 8192x8192x3 float32
(768 MiB) of CPU memory, and the device only ever holds one tile.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable

import numpy as np
import torch
from PIL import Image

Model = Callable[[torch.Tensor], torch.Tensor]


class UpscaleInterrupted(Exception):
    """The job was cancelled between two tiles of an upscale."""


def image_to_tensor(image: Image.Image) -> torch.Tensor:
    """An RGB image as a (1, 3, H, W) float32 tensor in [0, 1] on the CPU (spandrel's input layout)."""
    array = np.asarray(image.convert("RGB"))
    return torch.from_numpy(array.copy()).permute(2, 0, 1).unsqueeze(0).float().div_(255)


def tensor_to_image(tensor: torch.Tensor) -> Image.Image:
    """A (1, 3, H, W) tensor in [0, 1] as an RGB image (rounded, clamped), converted in place to save memory."""
    pixels = tensor[0].clamp_(0, 1).mul_(255).round_().to(torch.uint8)
    return Image.fromarray(pixels.permute(1, 2, 0).contiguous().numpy(), "RGB")


def tile_spans(size: int, tile: int, overlap: int, align: int = 1) -> list[tuple[int, int]]:
    """The [start, end) of each tile along a side of `size` pixels (one span when the tile covers it).

    Starts are multiples of `align` (a pixel-unshuffle model groups pixels from there, as in the whole image);
    the last tile then ends at `size`, up to align - 1 pixels longer than the others.
    """
    if tile <= 0 or size <= tile:
        return [(0, size)]
    overlap = min(max(overlap, align), tile - 1)
    count = math.ceil((size - overlap) / (tile - overlap))
    step = (size - tile) / (count - 1)
    starts = [int(i * step) // align * align for i in range(count)]
    return [(start, min(start + tile, size)) for start in starts[:-1]] + [(starts[-1], size)]


def blend_weights(spans: list[tuple[int, int]], size: int) -> list[torch.Tensor]:
    """Per span, 1-D weights that ramp linearly across its overlaps with its neighbours and sum to 1 per pixel."""
    raw = []
    for i, (start, end) in enumerate(spans):
        w = torch.ones(end - start)
        if i > 0 and (shared := spans[i - 1][1] - start) > 0:
            w[:shared] = torch.arange(1, shared + 1) / (shared + 1)
        if i + 1 < len(spans) and (shared := end - spans[i + 1][0]) > 0:
            w[-shared:] = torch.minimum(w[-shared:], torch.arange(shared, 0, -1) / (shared + 1))
        raw.append(w)
    total = torch.zeros(size)
    for (start, end), w in zip(spans, raw):
        total[start:end] += w
    return [w / total[start:end] for (start, end), w in zip(spans, raw)]


def run_tiled(model: Model, image: torch.Tensor, scale: int, tile: int, overlap: int, *, device: torch.device,
              dtype: torch.dtype, align: int = 1, cancel: threading.Event | None = None) -> torch.Tensor:
    """`model` (a spandrel descriptor: pads to its size requirements itself) over `image` (1, C, H, W) on the CPU.

    tile <= 0 runs the whole image at once; otherwise the model sees about (tile + 2 * overlap) pixels a side.
    `align`: the model's size multiple (spandrel's `multiple_of`); tiles and their context start on it.
    Raises UpscaleInterrupted when `cancel` is set before a tile.
    """
    _, _, height, width = image.shape
    rows, cols = tile_spans(height, tile, overlap, align), tile_spans(width, tile, overlap, align)
    context = -(-max(overlap, 0) // align) * align
    weights_y = blend_weights([(a * scale, b * scale) for a, b in rows], height * scale)
    weights_x = blend_weights([(a * scale, b * scale) for a, b in cols], width * scale)
    output: torch.Tensor | None = None
    with torch.inference_mode():
        for (y0, y1), wy in zip(rows, weights_y):
            for (x0, x1), wx in zip(cols, weights_x):
                if cancel is not None and cancel.is_set():
                    raise UpscaleInterrupted("upscale interrupted between tiles")
                top, left = max(0, y0 - context), max(0, x0 - context)
                bottom, right = min(height, y1 + context), min(width, x1 + context)
                result = model(image[..., top:bottom, left:right].to(device=device, dtype=dtype))
                if result.shape[-2:] != ((bottom - top) * scale, (right - left) * scale):
                    raise RuntimeError(f"the model returned {tuple(result.shape[-2:])} for a {bottom - top}x"
                                       f"{right - left} tile at scale {scale}")
                if len(rows) == len(cols) == 1:
                    return result.float().cpu()
                result = result[..., (y0 - top) * scale:(y1 - top) * scale,
                                (x0 - left) * scale:(x1 - left) * scale].float().cpu()
                if output is None:
                    output = torch.zeros(1, result.shape[1], height * scale, width * scale)
                result.mul_(wy[:, None]).mul_(wx[None, :])
                output[..., y0 * scale:y1 * scale, x0 * scale:x1 * scale] += result
    assert output is not None
    return output
