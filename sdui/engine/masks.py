"""Inpaint and outpaint masks: reading, blur, invert, "only masked" crop box, pre-fill, paste-back, outpaint canvas.

Masks are "L" images where 255 means "repaint" and 0 means "keep". Pasting back always composites
the original outside the (blurred) mask, so pixels the mask does not touch stay exact.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter, ImageOps

from sdui.params import MaskedContent, OutpaintFill

Box = tuple[int, int, int, int]  # left, top, right, bottom (right/bottom exclusive)


def read_mask(mask: Image.Image, size: tuple[int, int], invert: bool = False) -> Image.Image:
    """Binary "L" mask (255 = repaint) at `size` from a brush layer (RGBA alpha) or a black/white image.

    A mask of another size than the image is resized (nearest neighbour keeps it binary).
    """
    if mask.mode in ("RGBA", "LA") and mask.getchannel("A").getextrema()[0] < 255:
        grey = mask.getchannel("A")
    else:
        grey = mask.convert("L")
    if grey.size != size:
        grey = grey.resize(size, Image.Resampling.NEAREST)
    binary = grey.point(lambda v: 255 if v > 127 else 0)
    return ImageOps.invert(binary) if invert else binary


def check_not_empty(mask: Image.Image) -> None:
    """Raise ValueError when a mask has nothing to repaint (all black)."""
    if mask.getbbox() is None:
        raise ValueError("mask is empty: paint over the area to repaint (white = repaint), or use img2img")


def blur_mask(mask: Image.Image, radius: int) -> Image.Image:
    """Gaussian blur of radius `radius` (0 = unchanged) that softens the seam of the paste-back."""
    return mask.filter(ImageFilter.GaussianBlur(radius)) if radius > 0 else mask.copy()


def crop_box(mask: Image.Image, padding: int, target: tuple[int, int]) -> Box:
    """"Only masked": the mask's bounding box plus `padding`, grown to the target's aspect ratio, clamped."""
    bbox = mask.getbbox()
    if bbox is None:
        raise ValueError("mask is empty: paint over the area to repaint (white = repaint), or use img2img")
    img_w, img_h = mask.size
    left, top = max(bbox[0] - padding, 0), max(bbox[1] - padding, 0)
    right, bottom = min(bbox[2] + padding, img_w), min(bbox[3] + padding, img_h)
    want = target[0] / target[1]
    w, h = right - left, bottom - top
    if w / h < want:
        new_w, new_h = min(img_w, round(h * want)), h
    else:
        new_w, new_h = w, min(img_h, round(w / want))
    left, right = _grow(left, right, new_w, img_w)
    top, bottom = _grow(top, bottom, new_h, img_h)
    return left, top, right, bottom


def _grow(lo: int, hi: int, size: int, limit: int) -> tuple[int, int]:
    """Widen [lo, hi) to `size` around its centre, shifted to stay inside [0, limit)."""
    extra = size - (hi - lo)
    lo -= extra // 2
    hi += extra - extra // 2
    if lo < 0:
        hi, lo = hi - lo, 0
    if hi > limit:
        lo, hi = max(0, lo - (hi - limit)), limit
    return lo, hi


def paste_back(original: Image.Image, generated: Image.Image, mask: Image.Image,
               box: Box | None = None) -> Image.Image:
    """Composite `generated` over `original` where `mask` is white; `box` places a crop ("only masked")."""
    original = original.convert("RGB")
    if box is None:
        return Image.composite(generated.convert("RGB").resize(original.size), original, mask)
    size = (box[2] - box[0], box[3] - box[1])
    patch = generated.convert("RGB").resize(size, Image.Resampling.LANCZOS)
    region = Image.composite(patch, original.crop(box), mask.crop(box))
    out = original.copy()
    out.paste(region, box[:2])
    return out


def fill_masked(image: Image.Image, mask: Image.Image) -> Image.Image:
    """A1111's "fill": the masked area becomes a blur of the surrounding colours."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
    keep = (np.asarray(mask) < 128).astype(np.float32)
    out = pixels * keep[..., None]
    # Wide blurs first give every masked pixel some colour; narrower ones sharpen it near the edge.
    for radius in (128, 64, 32, 16, 8, 4, 2):
        weight = _blur_array(keep, radius)
        colour = np.stack([_blur_array(pixels[..., c] * keep, radius) for c in range(3)], -1)
        reach = weight > 1e-4
        estimate = colour / np.maximum(weight, 1e-4)[..., None]
        write = reach & (keep < 0.5)
        out[write] = estimate[write]
    return Image.fromarray(np.clip(out, 0, 255).round().astype(np.uint8), "RGB")


def _blur_array(values: np.ndarray, radius: int) -> np.ndarray:
    """Gaussian-like blur of standard deviation ~`radius`: three box passes, so wide radii cost no more."""
    from scipy.ndimage import uniform_filter

    size = max(1, int(round((4 * radius * radius + 1) ** 0.5)))
    out = values.astype(np.float32)
    for _ in range(3):
        out = uniform_filter(out, size=size, mode="constant")  # zeros outside: nothing is known there
    return out


def prefill(image: Image.Image, mask: Image.Image, content: MaskedContent, seed: int) -> Image.Image:
    """Pre-fill the masked area for generation by the chosen masked-content mode.

    "latent noise" and "latent nothing" are approximated in pixel space (noise / mid grey), since
    diffusers' inpaint pipeline encodes the image itself.
    """
    image = image.convert("RGB")
    if content is MaskedContent.ORIGINAL:
        return image
    if content is MaskedContent.FILL:
        return fill_masked(image, mask)
    if content is MaskedContent.LATENT_NOISE:
        rng = np.random.default_rng(seed)
        filler = Image.fromarray(rng.integers(0, 256, (image.height, image.width, 3), dtype=np.uint8), "RGB")
    else:
        filler = Image.new("RGB", image.size, (127, 127, 127))
    return Image.composite(filler, image, mask)


def outpaint_canvas(image: Image.Image, left: int, right: int, up: int, down: int,
                    fill: OutpaintFill, feather: int, seed: int,
                    refine: Image.Image | None = None) -> tuple[Image.Image, Image.Image, Image.Image]:
    """Grow `image` by the given pixels per side and pre-fill the new area.

    Returns (canvas, generation mask, paste mask): the generation mask covers the new area plus
    `feather` px of the original (so the model sees the seam); the paste mask ramps from 0 at the
    original's edge to 255 `feather` px into the new area, so the original's pixels stay exact.
    `refine` (L, the original's size, 255 = repaint) is a brushed mask over the original: that area is
    generated and pasted too (blurred by `feather`).
    """
    pixels = np.asarray(image.convert("RGB"))
    h, w = pixels.shape[:2]
    grown = np.pad(pixels, ((up, down), (left, right), (0, 0)), mode="edge")
    new_h, new_w = grown.shape[:2]
    ys, xs = np.mgrid[0:new_h, 0:new_w]
    dx = np.maximum(np.maximum(left - xs, xs - (left + w - 1)), 0)
    dy = np.maximum(np.maximum(up - ys, ys - (up + h - 1)), 0)
    distance = np.sqrt(dx.astype(np.float32) ** 2 + dy.astype(np.float32) ** 2)
    new_area = distance > 0
    canvas = Image.fromarray(grown, "RGB")
    if fill is OutpaintFill.BLUR:
        blurred = canvas.filter(ImageFilter.GaussianBlur(max(left, right, up, down, 8) / 2))
        canvas = Image.composite(blurred, canvas, Image.fromarray(new_area.astype(np.uint8) * 255, "L"))
    elif fill is OutpaintFill.NOISE:
        rng = np.random.default_rng(seed)
        noise = rng.integers(0, 256, grown.shape, dtype=np.uint8)
        canvas = Image.fromarray(np.where(new_area[..., None], noise, grown), "RGB")
    paste = np.clip(distance / (feather + 1), 0.0, 1.0)
    seam = np.zeros_like(new_area)
    if feather > 0:
        seam |= (left > 0) & (xs < left + feather)
        seam |= (right > 0) & (xs >= left + w - feather)
        seam |= (up > 0) & (ys < up + feather)
        seam |= (down > 0) & (ys >= up + h - feather)
    generate = new_area | seam
    paste = (paste * 255).round().astype(np.uint8)
    if refine is not None:
        brushed = np.zeros((new_h, new_w), dtype=np.uint8)
        brushed[up:up + h, left:left + w] = np.asarray(refine.convert("L"))
        generate |= brushed > 0
        paste = np.maximum(paste, np.asarray(blur_mask(Image.fromarray(brushed, "L"), feather)))
    return canvas, Image.fromarray(generate.astype(np.uint8) * 255, "L"), Image.fromarray(paste, "L")
