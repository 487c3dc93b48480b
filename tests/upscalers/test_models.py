"""Model upscalers: the model's own output, tiled like untiled, A1111's passes and Lanczos finish, cancel, cache."""

from __future__ import annotations

import itertools
import os
import threading

import numpy as np
import pytest
import torch
from PIL import Image

import sdui.upscalers.upscalers as upscalers_module
from sdui.settings import Settings
from sdui.upscalers import UpscaleInterrupted, Upscalers, reading
from sdui.upscalers.spandrel_import import import_spandrel
from sdui.upscalers.tiling import blend_weights, run_tiled, tile_spans
from tests.upscalers.conftest import TINY_2X, TINY_4X, noise_image, pixels
from tests.upscalers.esrgan_files import write_tiny_esrgan

# Red channel, every 40th pixel, of the tiny 4x model (seed 0) on noise_image(40, 48) (seed 0).
EXPECTED_SLICE = [[134, 145, 133, 164], [141, 161, 131, 158], [130, 146, 176, 156], [166, 134, 213, 181],
                  [136, 137, 163, 179]]


def spandrel_output(path, image: Image.Image) -> np.ndarray:
    """What spandrel's own loader and the model make of `image`, untiled (a .safetensors file: safe to hand over)."""
    model = import_spandrel().ModelLoader().load_from_file(str(path))
    x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)[None]
    with torch.inference_mode():
        y = model(x)[0].permute(1, 2, 0).numpy()
    return np.round(y * 255).astype(np.int16)


def model_calls(monkeypatch, after_each=lambda: None) -> list:
    """Count the model calls of every run_tiled; `after_each` runs after each call."""
    calls = []

    def spy(model, *args, **kwargs):
        def counted(x):
            calls.append(tuple(x.shape[-2:]))
            out = model(x)
            after_each()
            return out
        return run_tiled(counted, *args, **kwargs)

    monkeypatch.setattr(upscalers_module, "run_tiled", spy)
    return calls


def test_a_model_upscale_is_the_models_own_4x_output(make_upscalers, data_dir):
    image = noise_image(40, 48)
    out = make_upscalers(upscaler_tile=0).upscale(image, 4, TINY_4X)
    assert out.size == (160, 192) and out.mode == "RGB"
    direct = spandrel_output(data_dir / "models" / "ESRGAN" / f"{TINY_4X}.safetensors", image)
    assert np.abs(pixels(out) - direct).max() <= 1  # float rounding only
    # Fixed values (tiny model seed 0, noise seed 0): a change on both sides above would still show here.
    assert pixels(out)[::40, ::40, 0].tolist() == EXPECTED_SLICE


def test_tiled_equals_untiled_within_rounding(make_upscalers):
    image = noise_image(72, 87)
    for name in (TINY_4X, TINY_2X):
        whole = pixels(make_upscalers(upscaler_tile=0).upscale(image, 4, name))
        tiled = pixels(make_upscalers(upscaler_tile=32, upscaler_tile_overlap=8).upscale(image, 4, name))
        assert np.abs(tiled - whole).max() <= 2, name
        assert np.abs(tiled - whole).mean() < 0.01, name
        # Without overlap (no context, no blending) the seams show: the comparison above can fail.
        seams = pixels(make_upscalers(upscaler_tile=32, upscaler_tile_overlap=0).upscale(image, 4, name))
        assert np.abs(seams - whole).max() > 20, name


def test_tiles_start_on_the_models_pixel_grid():
    assert tile_spans(100, 192, 8) == [(0, 100)]
    assert tile_spans(87, 32, 8) == [(0, 32), (18, 50), (36, 68), (55, 87)]
    spans = tile_spans(87, 32, 8, align=4)
    assert all(start % 4 == 0 for start, _ in spans) and spans[-1][1] == 87
    assert all(b[0] < a[1] for a, b in itertools.pairwise(spans))  # every pixel covered, neighbours overlap


@pytest.mark.parametrize("size, tile, overlap, align", [(87, 32, 8, 1), (87, 32, 8, 4), (30, 10, 9, 1),
                                                         (500, 192, 8, 1), (50, 16, 0, 1)])
def test_blend_weights_sum_to_one_everywhere(size, tile, overlap, align):
    spans = tile_spans(size, tile, overlap, align)
    total = torch.zeros(size)
    for (start, end), weights in zip(spans, blend_weights(spans, size)):
        assert (weights > 0).all()
        total[start:end] += weights
    assert torch.allclose(total, torch.ones(size))


def test_the_2x_model_runs_until_the_target_then_lanczos(make_upscalers, monkeypatch):
    calls = model_calls(monkeypatch)
    upscalers = make_upscalers(upscaler_tile=0)
    image = noise_image(20, 16)
    once = upscalers.upscale(image, 2, TINY_2X)
    assert once.size == (40, 32) and len(calls) == 1
    calls.clear()
    # 9x: 2x three times (A1111's limit) gives 160x128, then Lanczos to int(180) // 8 * 8 x int(144) // 8 * 8.
    nine = upscalers.upscale(image, 9, TINY_2X)
    assert calls == [(16, 20), (32, 40), (64, 80)] and nine.size == (176, 144)


def test_a_target_off_the_models_scale_is_lanczos_finished(make_upscalers):
    upscalers = make_upscalers(upscaler_tile=0)
    image = noise_image(40, 48)
    four = upscalers.upscale(image, 4, TINY_4X)
    out = upscalers.upscale(image, 2.7, TINY_4X)  # targets int(108) // 8 * 8 = 104 and int(129.6) // 8 * 8 = 128
    assert out.size == (104, 128)
    assert np.array_equal(np.asarray(out), np.asarray(four.resize((104, 128), Image.Resampling.LANCZOS)))
    # A1111's resize_image: upscale by max(100 / 40, 90 / 48) = 2.5 to 96x120, then Lanczos to 100x90.
    resized = upscalers.resize(image, 100, 90, TINY_4X)
    expected = four.resize((96, 120), Image.Resampling.LANCZOS).resize((100, 90), Image.Resampling.LANCZOS)
    assert np.array_equal(np.asarray(resized), np.asarray(expected))


def test_cancel_stops_between_tiles(make_upscalers, monkeypatch):
    cancel = threading.Event()
    calls = model_calls(monkeypatch, after_each=cancel.set)
    upscalers = make_upscalers(upscaler_tile=16, upscaler_tile_overlap=4)
    with pytest.raises(UpscaleInterrupted):
        upscalers.upscale(noise_image(64, 64), 4, TINY_4X, cancel)
    assert len(calls) == 1  # 25 tiles: stopped after the first
    calls.clear()
    with pytest.raises(UpscaleInterrupted):
        upscalers.resize(noise_image(64, 64), 256, 256, TINY_4X, cancel)  # set before: no tile at all
    assert calls == []


def test_models_are_read_once_and_kept_lru(make_upscalers, data_dir, monkeypatch):
    reads = []
    real_read = reading.read_state_dict
    monkeypatch.setattr(reading, "read_state_dict", lambda path: reads.append(path.name) or real_read(path))
    third = write_tiny_esrgan(data_dir / "models" / "DAT" / "4x-third.pth", seed=3)
    upscalers = make_upscalers(upscaler_tile=0)
    image = noise_image(16, 16)
    upscalers.upscale(image, 4, TINY_4X)
    upscalers.upscale(image, 4, TINY_4X)
    upscalers.resize(image, 64, 64, TINY_4X)
    assert reads == [f"{TINY_4X}.safetensors"] and upscalers.load_count == 1
    upscalers.upscale(image, 2, TINY_2X)
    upscalers.upscale(image, 4, "4x-third")  # three models: the least recently used one (4x-tiny) is dropped
    upscalers.upscale(image, 2, TINY_2X)
    upscalers.upscale(image, 4, TINY_4X)
    assert reads == [f"{TINY_4X}.safetensors", f"{TINY_2X}.pth", "4x-third.pth", f"{TINY_4X}.safetensors"]
    stat = third.stat()
    os.utime(third, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # a changed file is read again
    upscalers.upscale(image, 4, "4x-third")
    upscalers.unload()
    upscalers.upscale(image, 4, TINY_4X)
    assert reads[4:] == ["4x-third.pth", f"{TINY_4X}.safetensors"] and upscalers.load_count == 6


def test_the_model_manager_owns_and_unloads_them(data_dir):
    from sdui.models.catalog import Catalog
    from sdui.models.manager import ModelManager

    settings = Settings.for_data_dir(data_dir, device="cpu", upscaler_tile=0)
    manager = ModelManager(Catalog(settings.ckpt_dir, settings.cache_dir, exclude=settings.network_dirs), settings)
    assert isinstance(manager.upscalers, Upscalers) and manager.upscalers.device == manager.device
    manager.upscalers.upscale(noise_image(16, 16), 4, TINY_4X)
    manager.upscalers.upscale(noise_image(16, 16), 4, TINY_4X)
    assert manager.upscalers.load_count == 1
    manager.unload_all()
    manager.upscalers.upscale(noise_image(16, 16), 4, TINY_4X)
    assert manager.upscalers.load_count == 2


class _Descriptor:
    def __init__(self, half: bool, bf16: bool) -> None:
        self.supports_half, self.supports_bfloat16 = half, bf16


@pytest.mark.parametrize("device, flags, half, bf16, expected", [
    ("cpu", {}, True, True, torch.float32),
    ("mps", {}, True, True, torch.float32),
    ("cuda", {}, True, True, torch.float16),
    ("cuda", {"bf16": True}, True, True, torch.bfloat16),
    ("cuda", {"bf16": True}, True, False, torch.float16),
    ("cuda", {}, False, True, torch.float32),
    ("cuda", {"no_half": True}, True, True, torch.float32),
])
def test_half_precision_only_on_cuda_and_where_the_model_supports_it(device, flags, half, bf16, expected):
    settings = Settings(**flags)
    assert upscalers_module.run_dtype(_Descriptor(half, bf16), torch.device(device), settings) == expected
