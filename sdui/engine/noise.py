"""Seeds and initial noise: -1 → random, image i uses seed+i, per-image CPU generators, variation seeds.

Noise is always drawn on the CPU from one torch.Generator per image, so a seed gives the same noise
on any device and image i of a batch gets exactly the noise of a single run with seed+i.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from sdui.params import SEED_MAX


def resolve_seed(seed: int, rng: random.Random | None = None) -> int:
    """Return `seed` unchanged, or a fresh random seed in [0, 2**32 - 1] when it is -1."""
    if seed == -1:
        return (rng or random.SystemRandom()).randint(0, SEED_MAX)
    return int(seed)


def image_seeds(first_seed: int, batch_size: int, batch_index: int = 0) -> list[int]:
    """Seeds of the images in batch `batch_index`: the job's images count up from `first_seed`."""
    start = first_seed + batch_index * batch_size
    return [start + i for i in range(batch_size)]


def slerp(strength: float, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation from `low` (strength 0) to `high` (strength 1), per leading index."""
    if strength <= 0.0:
        return low
    if strength >= 1.0:
        return high
    flat_low, flat_high = low.flatten(1), high.flatten(1)
    dot = (flat_low / flat_low.norm(dim=1, keepdim=True) * flat_high / flat_high.norm(dim=1, keepdim=True)).sum(1)
    dot = dot.clamp(-1.0, 1.0)
    omega = torch.acos(dot)
    sin_omega = torch.sin(omega)
    # Nearly parallel vectors: the spherical formula divides by ~0, a straight line is as good.
    nearly_parallel = sin_omega.abs() < 1e-6
    safe = torch.where(nearly_parallel, torch.ones_like(sin_omega), sin_omega)
    w_low = torch.where(nearly_parallel, 1.0 - strength, torch.sin((1.0 - strength) * omega) / safe)
    w_high = torch.where(nearly_parallel, torch.full_like(dot, strength), torch.sin(strength * omega) / safe)
    shape = (-1,) + (1,) * (low.dim() - 1)
    return w_low.view(shape) * low + w_high.view(shape) * high


@dataclass
class BatchNoise:
    """Initial latents of one batch and the generators that keep drawing each image's step noise."""

    latents: torch.Tensor  # (batch, C, H, W) on the CPU, float32
    generators: list[torch.Generator]


def batch_noise(
    seeds: list[int],
    shape: tuple[int, int, int],
    subseeds: list[int] | None = None,
    subseed_strength: float = 0.0,
) -> BatchNoise:
    """Draw each image's latent noise from its own CPU generator; blend in the variation seed by slerp.

    The returned generators have already drawn the initial noise, so ancestral samplers continue each
    image's own sequence (and never repeat the initial noise as step noise).
    """
    generators = [torch.Generator("cpu").manual_seed(seed) for seed in seeds]
    noise = torch.stack([torch.randn(shape, generator=g, dtype=torch.float32) for g in generators])
    if subseed_strength > 0.0:
        if subseeds is None or len(subseeds) != len(seeds):
            raise ValueError("subseeds must give one variation seed per image when subseed_strength > 0")
        variation = torch.stack([
            torch.randn(shape, generator=torch.Generator("cpu").manual_seed(s), dtype=torch.float32)
            for s in subseeds
        ])
        noise = slerp(subseed_strength, noise, variation)
    return BatchNoise(latents=noise, generators=generators)


def step_generators(seeds: list[int]) -> list[torch.Generator]:
    """One fresh CPU generator per image, for pipelines that draw their own initial noise (img2img, inpaint)."""
    return [torch.Generator("cpu").manual_seed(seed) for seed in seeds]
