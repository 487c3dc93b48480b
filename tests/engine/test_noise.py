"""Seeds and noise: random seeds, seed+i per image, per-image generators, variation-seed slerp, sources, ENSD."""

from __future__ import annotations

import random

import pytest
import torch

from sdui.engine import noise, rng

SHAPE = (4, 8, 8)


def test_minus_one_gives_a_random_seed_in_range_and_others_pass_through():
    rng = random.Random(5)
    seeds = {noise.resolve_seed(-1, rng) for _ in range(20)}
    assert len(seeds) == 20 and all(0 <= s <= noise.SEED_MAX for s in seeds)
    assert noise.resolve_seed(42) == 42


def test_image_seeds_count_up_across_batches():
    assert noise.image_seeds(100, 3, 0) == [100, 101, 102]
    assert noise.image_seeds(100, 3, 2) == [106, 107, 108]


def test_image_i_of_a_batch_gets_exactly_the_noise_of_seed_plus_i():
    batch = noise.batch_noise([7, 8, 9], SHAPE)
    for i, seed in enumerate([7, 8, 9]):
        single = noise.batch_noise([seed], SHAPE)
        assert torch.equal(batch.latents[i], single.latents[0])
        # The step generators continue each image's own sequence.
        continued = torch.randn(5, generator=batch.generators[i])
        assert torch.equal(continued, torch.randn(5, generator=single.generators[0]))
    assert not torch.equal(batch.latents[0], batch.latents[1])


def test_step_noise_does_not_repeat_the_initial_noise():
    batch = noise.batch_noise([7], SHAPE)
    assert not torch.equal(torch.randn(SHAPE, generator=batch.generators[0]), batch.latents[0])


def test_variation_strength_zero_is_the_seed_and_one_is_the_subseed():
    plain = noise.batch_noise([1, 2], SHAPE).latents
    sub = noise.batch_noise([50, 51], SHAPE).latents
    assert torch.equal(noise.batch_noise([1, 2], SHAPE, [50, 51], 0.0).latents, plain)
    assert torch.equal(noise.batch_noise([1, 2], SHAPE, [50, 51], 1.0).latents, sub)
    half = noise.batch_noise([1, 2], SHAPE, [50, 51], 0.5).latents
    assert not torch.allclose(half, plain) and not torch.allclose(half, sub)
    # Slerp keeps the noise's scale (a straight average would shrink it by ~1/sqrt(2)).
    assert abs(half[0].std().item() - plain[0].std().item()) < 0.15


def test_slerp_halfway_is_equidistant_in_angle():
    low, high = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    mid = noise.slerp(0.5, low, high)
    assert torch.allclose(mid, torch.tensor([[2 ** -0.5, 2 ** -0.5]]), atol=1e-6)


def test_cpu_source_is_torch_randn_on_per_image_cpu_generators():
    batch = noise.batch_noise([7, 8], SHAPE, source="CPU", device="cpu")
    for i, seed in enumerate([7, 8]):
        generator = torch.Generator("cpu").manual_seed(seed)
        assert torch.equal(batch.latents[i], torch.randn(SHAPE, generator=generator))
        assert isinstance(batch.generators[i], torch.Generator)
        assert torch.equal(torch.randn(5, generator=batch.generators[i]), torch.randn(5, generator=generator))
    for seed, g in zip([7, 8], noise.step_generators([7, 8])):
        assert torch.equal(torch.randn(5, generator=g), torch.randn(5, generator=torch.Generator().manual_seed(seed)))
    # torch.manual_seed(0); torch.randn(4) on the CPU, as every PyTorch release since 1.0 prints it.
    expected = torch.tensor([1.5410, -0.2934, -2.1788, 0.5684])
    torch.testing.assert_close(noise.batch_noise([0], (4,)).latents[0], expected, rtol=0, atol=1e-4)


def draws(generator, shape=SHAPE, for_step=True):
    """The next draw of a generator handed to diffusers, whichever kind it is."""
    if isinstance(generator, rng.ImageGenerator):
        return generator.randn(shape, for_step)
    return torch.randn(shape, generator=generator)


def fresh(seed, source):
    """A new generator for `seed` as the engine hands it to diffusers."""
    stream = noise.noise_stream(seed, source)
    return stream if isinstance(stream, torch.Generator) else rng.ImageGenerator(stream)


def test_nv_source_draws_the_philox_emulation_and_continues_it_as_step_noise():
    batch = noise.batch_noise([7, 8], SHAPE, source="NV")
    for i, seed in enumerate([7, 8]):
        expected = rng.PhiloxGenerator(seed)
        assert torch.equal(batch.latents[i], expected.randn(SHAPE))
        assert torch.equal(draws(batch.generators[i]), expected.randn(SHAPE))  # offset 1: after the initial noise
    assert not torch.equal(batch.latents, noise.batch_noise([7, 8], SHAPE).latents)


def test_gpu_source_off_cuda_is_the_nv_emulation():
    assert noise.effective_source("GPU", "cpu") == "NV" and noise.effective_source("GPU", None) == "NV"
    assert noise.effective_source("GPU", "cuda") == "GPU" and noise.effective_source("CPU", "cuda") == "CPU"
    gpu, nv = noise.batch_noise([3], SHAPE, source="GPU", device="cpu"), noise.batch_noise([3], SHAPE, source="NV")
    assert torch.equal(gpu.latents, nv.latents)
    assert torch.equal(draws(gpu.generators[0]), draws(nv.generators[0]))
    with pytest.raises(ValueError, match="randn_source"):
        noise.batch_noise([3], SHAPE, source="TPU")


@pytest.mark.parametrize("source", ["CPU", "NV"])
def test_ensd_changes_only_the_step_noise(source):
    plain = noise.batch_noise([7, 8], SHAPE, source=source)
    delta = noise.batch_noise([7, 8], SHAPE, source=source, ensd=31337)
    assert torch.equal(plain.latents, delta.latents)
    for i, seed in enumerate([7, 8]):
        step = draws(delta.generators[i])
        assert not torch.equal(step, draws(plain.generators[i]))
        # A fresh generator from seed + ENSD, as A1111's ImageRNG re-creates it after the initial noise.
        assert torch.equal(step, draws(fresh(seed + 31337, source)))


@pytest.mark.parametrize("source", ["CPU", "NV"])
def test_step_generators_with_ensd_draw_initial_noise_from_the_seed_and_steps_from_seed_plus_ensd(source):
    plain = noise.step_generators([7], source=source)[0]
    image = noise.step_generators([7], source=source, ensd=5)[0]
    assert isinstance(image, rng.ImageGenerator)
    assert torch.equal(image.randn(SHAPE, for_step=False), draws(plain, for_step=False))
    assert torch.equal(image.randn(SHAPE, for_step=True), draws(fresh(12, source)))


def test_variation_seed_blends_with_the_nv_source():
    plain = noise.batch_noise([1, 2], SHAPE, source="NV").latents
    sub = noise.batch_noise([50, 51], SHAPE, source="NV").latents
    assert torch.equal(noise.batch_noise([1, 2], SHAPE, [50, 51], 0.0, source="NV").latents, plain)
    assert torch.equal(noise.batch_noise([1, 2], SHAPE, [50, 51], 1.0, source="NV").latents, sub)
    half = noise.batch_noise([1, 2], SHAPE, [50, 51], 0.5, source="NV").latents
    assert torch.allclose(half, noise.slerp(0.5, plain, sub))
    assert not torch.allclose(half, plain) and not torch.allclose(half, sub)
    # The variation noise is the NV emulation's too, not the CPU generator's.
    assert not torch.allclose(half, noise.batch_noise([1, 2], SHAPE, [50, 51], 0.5).latents)
