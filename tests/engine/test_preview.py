"""Latent previews by the linear "Approx cheap" map."""

from __future__ import annotations

import pytest
import torch

from sdui.engine.preview import SD_LATENT_RGB, SDXL_LATENT_RGB, PreviewTaker, latent_preview

from .conftest import LateCompletion, LateCopy


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


def image_bytes(image) -> bytes:
    return image.tobytes()


def random_latent(seed: int = 0, h: int = 6, w: int = 10) -> torch.Tensor:
    return torch.randn(4, h, w, generator=torch.Generator().manual_seed(seed)) * 2


def test_a_late_copy_is_handed_out_once_after_it_lands_and_equals_the_sync_preview():
    late = LateCopy(late=3)
    taker = PreviewTaker(to_host=late)
    latent = random_latent()
    taker.start(latent, step=5)
    assert [taker.poll() for _ in range(3)] == [None, None, None]
    step, image = taker.poll()
    assert step == 5 and image.size == (10, 6)
    assert image_bytes(image) == image_bytes(latent_preview(latent))
    assert taker.poll() is None and taker.finish() is None  # handed out once
    assert not late.completions[0].waited


def test_poll_gives_the_newest_landed_preview_and_drops_older_ones():
    taker = PreviewTaker(to_host=LateCopy(late=1))
    older, newer = random_latent(1), random_latent(2)
    taker.start(older, step=2)
    taker.start(newer, step=4)
    assert taker.poll() is None  # both still in flight
    step, image = taker.poll()
    assert step == 4 and image_bytes(image) == image_bytes(latent_preview(newer))
    assert taker.poll() is None


def test_finish_waits_for_the_pending_preview():
    late = LateCopy(late=100)
    taker = PreviewTaker(to_host=late)
    latent = random_latent()
    taker.start(latent, step=7)
    assert taker.poll() is None
    step, image = taker.finish()
    assert late.completions[0].waited
    assert step == 7 and image_bytes(image) == image_bytes(latent_preview(latent))
    assert taker.finish() is None and PreviewTaker().finish() is None


def test_on_cpu_a_preview_is_ready_at_once():
    taker = PreviewTaker()
    latent = random_latent()
    taker.start(latent, step=1)
    step, image = taker.poll()
    assert step == 1 and image_bytes(image) == image_bytes(latent_preview(latent))


def test_sdxl_takers_use_the_sdxl_coefficients():
    latent = torch.zeros(4, 2, 2)
    latent[1] = 1.0
    taker = PreviewTaker(sdxl=True)
    taker.start(latent, step=1)
    _, image = taker.poll()
    expected = tuple(round((1 + c) / 2 * 255) for c in SDXL_LATENT_RGB[1])
    assert image.getpixel((0, 0)) == expected == latent_preview(latent, sdxl=True).getpixel((0, 0))
    assert image.getpixel((0, 0)) != latent_preview(latent).getpixel((0, 0))


def test_start_never_reads_the_device_tensor_on_the_host():
    """A meta tensor has no data: any .cpu(), .item(), .numpy() or bool() of it raises."""
    handed: list[torch.Tensor] = []

    def to_host(rgb: torch.Tensor):
        handed.append(rgb)
        return torch.zeros(rgb.shape, dtype=rgb.dtype), LateCompletion(late=0)

    PreviewTaker(to_host=to_host).start(torch.randn(4, 6, 10, device="meta"), step=1)
    assert handed[0].device.type == "meta" and handed[0].shape == (6, 10, 3) and handed[0].dtype == torch.uint8
