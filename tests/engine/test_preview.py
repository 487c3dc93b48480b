"""Latent previews by the linear "Approx cheap" map."""

from __future__ import annotations

import pytest
import torch

from sdui.engine.preview import SD_LATENT_RGB, latent_preview


def test_preview_has_latent_size_and_follows_the_coefficients():
    latent = torch.zeros(1, 4, 8, 16)
    latent[0, 0] = 1.0  # only channel 0: RGB = (1 + coefs[0]) / 2
    image = latent_preview(latent)
    assert image.size == (16, 8) and image.mode == "RGB"
    expected = tuple(round((1 + c) / 2 * 255) for c in SD_LATENT_RGB[0])
    assert image.getpixel((3, 3)) == expected


def test_preview_clamps_and_rejects_wrong_channel_counts():
    # Every column of the coefficients sums to > 0, so a huge latent saturates to white, a very negative one to black.
    assert latent_preview(torch.full((4, 2, 2), 100.0)).getpixel((0, 0)) == (255, 255, 255)
    assert latent_preview(torch.full((4, 2, 2), -100.0)).getpixel((0, 0)) == (0, 0, 0)
    assert latent_preview(torch.zeros(4, 2, 2)).getpixel((0, 0)) == (128, 128, 128)
    with pytest.raises(ValueError, match="4 channels"):
        latent_preview(torch.zeros(3, 2, 2))
