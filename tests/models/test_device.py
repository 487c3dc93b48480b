"""Device and dtype choice from the flags."""

import pytest
import torch

from sdui.models.device import choose_device
from sdui.settings import Settings


def test_cpu_is_fp32_without_offload():
    plan = choose_device(Settings(device="cpu", medvram=True))
    assert plan.device == torch.device("cpu")
    assert plan.dtype == plan.vae_dtype == torch.float32
    assert plan.offload is None  # offload is CUDA-only


def test_default_device_is_the_best_available():
    plan = choose_device(Settings())
    expected = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    assert plan.device.type == expected


@pytest.mark.parametrize("bad", ["gpu0", "cuda" if not torch.cuda.is_available() else "mps"])
def test_bad_or_unavailable_devices_are_clear_errors(bad):
    with pytest.raises(ValueError, match="--device"):
        choose_device(Settings(device=bad))
