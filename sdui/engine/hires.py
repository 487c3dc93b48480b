"""The hires fix's pieces: A1111's latent upscale modes, its step rule for the second pass, latent resizing.

The engine runs the second pass as an img2img call on the upscaled latents (latent modes) or on the upscaled
first-pass images (any other upscaler), both at `GenerationParams.hires_size()`.
"""

from __future__ import annotations

import torch
from PIL import Image

from sdui.params import GenerationParams, HiresSize

# A1111's shared.latent_upscale_modes: name -> torch interpolate mode, antialias.
LATENT_MODES: dict[str, tuple[str, bool]] = {
    "Latent": ("bilinear", False),
    "Latent (antialiased)": ("bilinear", True),
    "Latent (bicubic)": ("bicubic", False),
    "Latent (bicubic antialiased)": ("bicubic", True),
    "Latent (nearest)": ("nearest", False),
    "Latent (nearest-exact)": ("nearest-exact", False),
}


def is_latent_mode(upscaler: str) -> bool:
    return upscaler in LATENT_MODES


def upscale_latents(latents: torch.Tensor, size: HiresSize, upscaler: str) -> torch.Tensor:
    """First-pass latents interpolated to the hires size with one of A1111's latent modes, then cropped."""
    mode, antialias = LATENT_MODES[upscaler]
    scaled = torch.nn.functional.interpolate(
        latents.float(), size=(size.upscale_height // 8, size.upscale_width // 8), mode=mode, antialias=antialias)
    return crop_latents(scaled.to(latents.dtype), size)


def crop_latents(latents: torch.Tensor, size: HiresSize) -> torch.Tensor:
    """The middle of the upscaled latents when both resize sides were given (A1111's truncate_x/y)."""
    if not size.crop_x and not size.crop_y:
        return latents
    h, w = latents.shape[-2:]
    return latents[..., size.crop_y // 2:h - (size.crop_y + 1) // 2, size.crop_x // 2:w - (size.crop_x + 1) // 2]


def second_pass_steps(params: GenerationParams) -> tuple[int, float]:
    """`num_inference_steps` and `strength` for diffusers' img2img so that it runs exactly `params.hires_steps`.

    A1111 spreads a schedule of int(hires_steps / denoising) steps and runs its last `hires_steps`. diffusers
    runs the last int(num_inference_steps × strength) of num_inference_steps; a strength half a step above
    hires_steps / num_inference_steps (at most 1) makes that exactly hires_steps whatever the float error.
    """
    steps = params.hires_steps
    denoising = min(params.denoising_strength, 0.999)
    if denoising <= 0:
        return steps, 0.0
    schedule = max(steps, int(steps / denoising))
    return schedule, min(1.0, (steps + 0.5) / schedule)


def crop_image(image: Image.Image, size: HiresSize) -> Image.Image:
    """An upscaled first-pass image cut to what the second pass encodes: the latent crop, in whole latent cells."""
    cells_w, cells_h = image.width // 8, image.height // 8
    left, top = size.crop_x // 2, size.crop_y // 2
    right, bottom = cells_w - (size.crop_x + 1) // 2, cells_h - (size.crop_y + 1) // 2
    box = (left * 8, top * 8, right * 8, bottom * 8)
    return image if box == (0, 0, image.width, image.height) else image.crop(box)
