"""Live previews: latents → small RGB image by A1111's "Approx cheap" linear map, no VAE call."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

# Rows: the 4 latent channels; columns: their contribution to R, G, B (A1111's cheap_approximation).
SD_LATENT_RGB = (
    (0.298, 0.207, 0.208),
    (0.187, 0.286, 0.173),
    (-0.158, 0.189, 0.264),
    (-0.184, -0.271, -0.473),
)
SDXL_LATENT_RGB = (
    (0.3448, 0.4168, 0.4395),
    (-0.1953, -0.0290, 0.0250),
    (0.1074, 0.0886, -0.0163),
    (-0.3730, -0.2499, -0.2088),
)


def latent_preview(latent: torch.Tensor, sdxl: bool = False) -> Image.Image:
    """One image's latent (4, h, w) or (1, 4, h, w) → an h×w RGB image (1/8 of the final size)."""
    if latent.dim() == 4:
        latent = latent[0]
    if latent.shape[0] != 4:
        raise ValueError(f"latent must have 4 channels for a preview; got shape {tuple(latent.shape)}")
    coefs = torch.tensor(SDXL_LATENT_RGB if sdxl else SD_LATENT_RGB, dtype=torch.float32)
    rgb = torch.einsum("lhw,lr->hwr", latent.detach().float().cpu(), coefs)
    # .float() again: under the fast path's autocast the einsum itself comes back in bf16.
    rgb = ((rgb.float() + 1.0) / 2.0).clamp(0.0, 1.0).nan_to_num(0.0)
    return Image.fromarray((rgb.numpy() * 255).round().astype(np.uint8), "RGB")
