"""Engine fixtures: the real ModelManager over the tiny model, and small images and masks."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from sdui.engine.generate import Engine
from sdui.models.catalog import Catalog
from sdui.models.manager import ModelManager
from sdui.params import GenerationParams
from sdui.settings import Settings


@pytest.fixture(scope="session")
def manager(tiny_model_dir, tmp_path_factory) -> ModelManager:
    cache = tmp_path_factory.mktemp("engine-cache")
    # Plain fp32 (no bf16 fast path) so results compare exactly; test_generate checks the fast path separately.
    settings = Settings(ckpt_dir=tiny_model_dir, cache_dir=cache, device="cpu", fast_path=False)
    return ModelManager(Catalog(tiny_model_dir, cache), settings)


@pytest.fixture(scope="session")
def engine(manager) -> Engine:
    return Engine(manager, preview_every=2)


def small(**changes) -> GenerationParams:
    """Fast params for the tiny model: 64x64, 3 steps, a fixed seed."""
    base = dict(prompt="a photo of a cat", negative_prompt="blurry", width=64, height=64, steps=3, seed=1234)
    base.update(changes)
    return GenerationParams(**base)


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


@pytest.fixture
def photo() -> Image.Image:
    """A 64x64 RGB test picture with structure (gradients and a square)."""
    ys, xs = np.mgrid[0:64, 0:64]
    rgb = np.stack([xs * 4, ys * 4, (xs + ys) * 2], -1).astype(np.uint8)
    rgb[20:40, 20:40] = (200, 30, 90)
    return Image.fromarray(rgb, "RGB")


@pytest.fixture
def center_mask() -> Image.Image:
    """White (repaint) 16x16 square in the middle of a 64x64 black mask."""
    mask = np.zeros((64, 64), np.uint8)
    mask[24:40, 24:40] = 255
    return Image.fromarray(mask, "L")


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """Tiny convolutions on a shared 2-core machine: threads only contend (0.2 s vs 7 s per run)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
