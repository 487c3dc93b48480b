"""Seeds and noise: random seeds, seed+i per image, per-image generators, variation-seed slerp."""

from __future__ import annotations

import random

import torch

from sdui.engine import noise

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
