"""Fixtures for the upscaler tests: a data dir in A1111's layout with tiny ESRGAN files, and Upscalers on it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sdui.settings import Settings
from sdui.upscalers import Upscalers
from tests.conftest import torch_threads
from tests.upscalers.esrgan_files import write_tiny_esrgan

TINY_4X = "4x-tiny"
TINY_2X = "RealESRGAN_x2plus-tiny"


@pytest.fixture(autouse=True)
def one_thread():
    with torch_threads(1):  # tiny convolutions on a shared 2-core machine
        yield


@pytest.fixture
def data_dir(tmp_path) -> Path:
    """A data dir with a tiny 4x ESRGAN (.safetensors) and a tiny 2x Real-ESRGAN (.pth in params_ema)."""
    write_tiny_esrgan(tmp_path / "models" / "ESRGAN" / f"{TINY_4X}.safetensors", scale=4)
    write_tiny_esrgan(tmp_path / "models" / "RealESRGAN" / f"{TINY_2X}.pth", scale=2, params_ema=True)
    return tmp_path


@pytest.fixture
def make_upscalers(data_dir) -> Callable[..., Upscalers]:
    """Upscalers on the data dir on the CPU; keyword arguments change the Settings (upscaler_tile=0, ...)."""
    def make(**changes) -> Upscalers:
        return Upscalers(Settings.for_data_dir(data_dir, **changes), torch.device("cpu"))
    return make


def noise_image(width: int, height: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image).astype(np.int16)
