"""Generators: Philox4x32-10 known answers, NVIDIA-card randn emulated, and diffusers drawing from ImageGenerators."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from diffusers.schedulers import scheduling_euler_ancestral_discrete
from diffusers.utils import torch_utils

from sdui.engine import rng

# Random123's known-answer vectors (tests/kat_vectors, "philox4x32 10" lines): counter (4 words), key (2 words),
# expected output (4 words).
PHILOX4X32_10_KAT = [
    ((0x00000000, 0x00000000, 0x00000000, 0x00000000), (0x00000000, 0x00000000),
     (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF),
     (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),  # the digits of pi
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]

# torch.manual_seed(0); torch.randn((3, 4), device="cuda"): the "Expected output" in the docstring of A1111's
# modules/rng_philox.py (stable-diffusion-webui).
A1111_CUDA_SEED0_3X4 = [[-0.92466259, -0.42534415, -2.6438457, 0.14518388],
                        [-0.12086647, -0.57972564, -0.62285122, -0.32838709],
                        [-1.07454231, -0.36314407, -1.67105067, 2.26550497]]

# torch.manual_seed(0); torch.randn((8, 8), device="cuda") printed to 4 decimals: the first `get_inputs` tensor in
# "CUDA Mode - Fusing Kernels Talk" (kapilsh's blog, 2024-05-30; code: github.com/kapilsh/cuda-mode-lecture,
# kernels/triton_fused_add_mul_relu.py), an independent run on an NVIDIA card.
CUDA_SEED0_8X8 = [[-0.9247, -0.4253, -2.6438, 0.1452, -0.1209, -0.5797, -0.6229, -0.3284],
                  [-1.0745, -0.3631, -1.6711, 2.2655, 0.3117, -0.1842, 1.2866, 1.1820],
                  [-0.1271, 1.2169, 1.4353, 1.0605, -0.4941, -1.4244, -0.7244, -1.2973],
                  [0.0697, -0.0074, 1.8969, 0.6878, -0.0779, -0.8373, 1.3506, -0.2879],
                  [-0.5965, -0.3283, -0.9086, -0.8059, -0.7407, -0.0504, 0.5435, 1.5150],
                  [0.0141, 0.4532, 1.6349, 0.7124, -0.1806, 1.0252, -1.4622, -0.7554],
                  [-0.1836, 0.3824, 0.3918, -0.0830, 0.8971, -1.1123, 0.1116, 0.4863],
                  [-0.5499, -0.3231, -0.5469, 0.9049, 0.2837, 0.1210, 0.4730, -1.0823]]


@pytest.mark.parametrize(("counter", "key", "expected"), PHILOX4X32_10_KAT)
def test_philox4x32_10_gives_random123s_known_answers(counter, key, expected):
    out = rng.philox4x32(np.array(counter, dtype=np.uint32).reshape(4, 1), np.array(key, dtype=np.uint32))
    assert [int(w) for w in out[:, 0]] == list(expected)


def test_philox4x32_is_vectorised_over_counter_columns():
    counters = np.array([c for c, _, _ in PHILOX4X32_10_KAT], dtype=np.uint32).T  # (4, 3)
    keys = np.array([k for _, k, _ in PHILOX4X32_10_KAT], dtype=np.uint32).T  # (2, 3)
    out = rng.philox4x32(counters, keys)
    assert out.dtype == np.uint32
    assert out.T.tolist() == [list(e) for _, _, e in PHILOX4X32_10_KAT]


def test_nv_randn_gives_the_numbers_of_an_nvidia_card():
    torch.testing.assert_close(rng.PhiloxGenerator(0).randn((3, 4)), torch.tensor(A1111_CUDA_SEED0_3X4),
                               rtol=0, atol=1e-6)  # CUDA's float32 Box-Muller rounds a few ulps differently
    torch.testing.assert_close(rng.PhiloxGenerator(0).randn((8, 8)), torch.tensor(CUDA_SEED0_8X8),
                               rtol=0, atol=5.1e-5)


def test_nv_randn_shape_dtype_and_statistics():
    sample = rng.PhiloxGenerator(1234).randn((4, 250, 100))
    assert sample.shape == (4, 250, 100) and sample.dtype == torch.float32 and sample.device.type == "cpu"
    assert abs(sample.mean().item()) < 0.01 and abs(sample.std().item() - 1.0) < 0.01
    assert torch.isfinite(sample).all()
    assert (sample > 0).float().mean().item() == pytest.approx(0.5, abs=0.01)


def test_nv_randn_is_deterministic_differs_by_seed_and_advances_its_offset():
    a, b = rng.PhiloxGenerator(42), rng.PhiloxGenerator(42)
    first = a.randn((4, 8, 8))
    assert a.offset == 1
    assert torch.equal(first, b.randn((4, 8, 8)))
    assert not torch.equal(first, rng.PhiloxGenerator(43).randn((4, 8, 8)))
    second = a.randn((4, 8, 8))
    assert a.offset == 2 and not torch.equal(first, second)
    # The offset counts draws, not numbers: a draw of any size moves to the next counter.
    c = rng.PhiloxGenerator(42)
    c.randn((1,))
    assert torch.equal(c.randn((4, 8, 8)), second)
    # Element i of a draw does not depend on the draw's size.
    assert torch.equal(rng.PhiloxGenerator(42).randn((10,)), first.flatten()[:10])


def test_seeds_beyond_32_bits_use_the_high_key_word():
    low = rng.PhiloxGenerator(5).randn((16,))
    assert not torch.equal(rng.PhiloxGenerator(5 + 2**32).randn((16,)), low)
    with pytest.raises(ValueError, match="seed"):
        rng.PhiloxGenerator(-1)


def test_routed_randn_tensor_draws_from_image_generators_and_passes_everything_else_through():
    module = scheduling_euler_ancestral_discrete
    gens = [rng.ImageGenerator(rng.PhiloxGenerator(7), rng.PhiloxGenerator(70)) for _ in range(2)]
    rng.route_randn_tensor([torch.Generator()])  # torch generators only: nothing is routed
    rng.route_randn_tensor(gens)
    rng.route_randn_tensor(gens)  # idempotent
    assert module.randn_tensor is not torch_utils.randn_tensor
    assert module.randn_tensor.__wrapped__ is torch_utils.randn_tensor
    # A scheduler's draw is step noise: one row per image from its `step` stream.
    noise = module.randn_tensor((2, 4, 8, 8), generator=gens, device=torch.device("cpu"), dtype=torch.float32)
    assert torch.equal(noise[0], rng.PhiloxGenerator(70).randn((1, 4, 8, 8))[0])
    assert torch.equal(noise[0], noise[1])
    # torch generators get exactly diffusers' own numbers.
    assert torch.equal(module.randn_tensor((2, 3), generator=[torch.Generator().manual_seed(s) for s in (1, 2)]),
                       torch_utils.randn_tensor((2, 3), generator=[torch.Generator().manual_seed(s) for s in (1, 2)]))
    with pytest.raises(TypeError, match="mixes"):
        module.randn_tensor((2, 3), generator=[gens[0], torch.Generator()])


def test_pipeline_draws_come_from_the_initial_stream_and_are_cast():
    from diffusers.pipelines.stable_diffusion import pipeline_stable_diffusion_img2img as img2img

    image = rng.ImageGenerator(rng.PhiloxGenerator(3), rng.PhiloxGenerator(30))
    rng.route_randn_tensor([image])
    noise = img2img.randn_tensor((1, 4, 8, 8), generator=[image], device=torch.device("cpu"), dtype=torch.float64)
    assert noise.dtype == torch.float64
    assert torch.equal(noise, rng.PhiloxGenerator(3).randn((1, 4, 8, 8)).double())


def test_unrouted_randn_tensor_refuses_an_image_generator():
    image = rng.ImageGenerator(rng.PhiloxGenerator(3))
    with pytest.raises((AttributeError, TypeError)):
        torch_utils.randn_tensor((1, 4), generator=image)


def test_routing_from_threads_while_others_draw_normally():
    module = scheduling_euler_ancestral_discrete
    expected = torch.randn((1, 16), generator=torch.Generator().manual_seed(9))
    results, errors = [], []

    def draw_normally():
        try:
            for _ in range(200):
                results.append(module.randn_tensor((1, 16), generator=torch.Generator().manual_seed(9)))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=draw_normally) for _ in range(2)]
    for t in threads:
        t.start()
    for _ in range(20):
        rng.route_randn_tensor([rng.ImageGenerator(rng.PhiloxGenerator(1))])
    for t in threads:
        t.join()
    assert not errors and len(results) == 400 and all(torch.equal(r, expected) for r in results)
