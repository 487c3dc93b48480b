"""Seeds and initial noise: -1 → random, image i uses seed+i, per-image generators, variation seeds, ENSD.

Noise is drawn per image from its own generator, so image i of a batch gets exactly the noise of a single run with
seed+i. A1111's `randn_source` picks the generator:
- "CPU" (the default): a CPU torch.Generator, so a seed gives the same noise on any device.
- "GPU": a torch.Generator on the pipeline's device, as A1111's torch.randn on cuda after manual_seed. A1111's GPU
  seeds come from NVIDIA cards, so where the device is not CUDA (a CPU, a Mac) "GPU" draws NVIDIA's numbers with
  the NV emulation: the same noise as an NVIDIA card.
- "NV": NVIDIA's Philox generator emulated on the CPU (`rng.PhiloxGenerator`): the noise of an NVIDIA card, anywhere.
A1111's ENSD (eta noise seed delta), as its ImageRNG: the initial noise comes from the image's seed; after it, the
generator that draws the step noise of ancestral/SDE samplers starts over from seed + ENSD.
The generators themselves (Philox, and how diffusers draws from a non-torch one: `route_randn_tensor`, called
before each pipeline call) live in `rng.py`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from sdui.engine.rng import ImageGenerator, PhiloxGenerator, Stream, draw
from sdui.engine.rng import route_randn_tensor as route_randn_tensor  # for the engine: hand generators to diffusers
from sdui.params import RNG_SOURCES, SEED_MAX


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


Generator = torch.Generator | ImageGenerator  # what a diffusers pipeline is handed as `generator=`


def effective_source(source: str, device: torch.device | str | None = None) -> str:
    """The generator a source means on `device`: "GPU" off CUDA is "NV" (see the module docstring)."""
    if source not in RNG_SOURCES:
        raise ValueError(f"randn_source must be one of {', '.join(RNG_SOURCES)}; got {source!r}")
    if source == "GPU" and torch.device(device or "cpu").type != "cuda":
        return "NV"
    return source


def noise_stream(seed: int, source: str = "CPU", device: torch.device | str | None = None) -> Stream:
    """A fresh generator for `seed` from `source` (see the module docstring)."""
    source = effective_source(source, device)
    if source == "NV":
        return PhiloxGenerator(seed)
    return torch.Generator(torch.device(device) if source == "GPU" else "cpu").manual_seed(int(seed))


@dataclass
class BatchNoise:
    """Initial latents of one batch and the generators that draw each image's step noise."""

    latents: torch.Tensor  # (batch, C, H, W) float32, on the CPU (on the device for the "GPU" source)
    generators: list[Generator]


def batch_noise(
    seeds: list[int],
    shape: tuple[int, int, int],
    subseeds: list[int] | None = None,
    subseed_strength: float = 0.0,
    source: str = "CPU",
    device: torch.device | str | None = None,
    ensd: int = 0,
) -> BatchNoise:
    """Draw each image's latent noise from its own generator; blend in the variation seed by slerp.

    Without ENSD the returned generators have already drawn the initial noise, so ancestral samplers continue each
    image's own sequence (and never repeat the initial noise as step noise); with ENSD they start from seed + ENSD.
    """
    streams = [noise_stream(seed, source, device) for seed in seeds]
    noise = torch.stack([draw(stream, shape) for stream in streams])
    if subseed_strength > 0.0:
        if subseeds is None or len(subseeds) != len(seeds):
            raise ValueError("subseeds must give one variation seed per image when subseed_strength > 0")
        variation = torch.stack([draw(noise_stream(s, source, device), shape) for s in subseeds])
        noise = slerp(subseed_strength, noise, variation)
    if ensd:
        streams = [noise_stream(seed + ensd, source, device) for seed in seeds]
    return BatchNoise(latents=noise, generators=[_as_generator(stream) for stream in streams])


def step_generators(seeds: list[int], source: str = "CPU", device: torch.device | str | None = None,
                    ensd: int = 0) -> list[Generator]:
    """One fresh generator per image, for pipelines that draw their own initial noise (img2img, inpaint, hires).

    With ENSD (or the NV emulation) they are ImageGenerators: the pipeline's draws come from the seed, the
    scheduler's step noise from seed + ENSD.
    """
    streams = [noise_stream(seed, source, device) for seed in seeds]
    if not ensd:
        return [_as_generator(stream) for stream in streams]
    return [ImageGenerator(stream, noise_stream(seed + ensd, source, device))
            for stream, seed in zip(streams, seeds)]


def _as_generator(stream: Stream) -> Generator:
    """A torch.Generator is handed to diffusers as it is; a Philox stream inside an ImageGenerator."""
    return stream if isinstance(stream, torch.Generator) else ImageGenerator(stream)
