"""Reading upscaler files: formats and wrappers, refused pickles that would run code, broken and foreign files."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from sdui.models.errors import BrokenModel, ModelNotFound, UnrecognizedModel, UnsafeModel
from sdui.upscalers import reading
from sdui.upscalers.reading import load_descriptor, read_state_dict
from tests.upscalers.conftest import TINY_4X, noise_image
from tests.upscalers.esrgan_files import tiny_esrgan_state_dict, write_tiny_esrgan

CPU = torch.device("cpu")


class RunsCode:
    """Unpickling this runs `touch <marker>`: what a hostile model file does."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("name, params_ema", [("a.pth", False), ("b.pth", True), ("c.pt", True),
                                              ("d.safetensors", False)])
def test_every_format_and_the_real_esrgan_wrapper_loads(tmp_path, name, params_ema):
    path = write_tiny_esrgan(tmp_path / name, params_ema=params_ema)
    state = read_state_dict(path)
    assert "conv_first.weight" in state and "params_ema" not in state
    descriptor = load_descriptor(path, CPU)
    assert (descriptor.architecture.name, descriptor.scale, descriptor.purpose) == ("ESRGAN", 4, "SR")


def test_the_2x_layout_is_detected_as_scale_2(tmp_path):
    descriptor = load_descriptor(write_tiny_esrgan(tmp_path / "x2.pth", scale=2), CPU)
    assert descriptor.scale == 2 and descriptor.size_requirements.multiple_of == 4


@pytest.mark.parametrize("suffix", [".pth", ".pt"])
@pytest.mark.parametrize("layout", ["torch zip", "plain pickle"])
def test_a_pickle_that_would_run_code_is_refused_unrun(tmp_path, suffix, layout):
    marker = tmp_path / "pwned"
    path = tmp_path / f"4x-evil{suffix}"
    payload = {"conv_first.weight": RunsCode(marker), "conv_last.weight": torch.zeros(1)}
    if layout == "torch zip":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=2))
    with pytest.raises(UnsafeModel, match=r"4x-evil.*refusing to load a pickle that references .*system") as caught:
        load_descriptor(path, CPU)
    assert caught.value.path == path
    assert not marker.exists()


def test_the_upscalers_refuse_it_too(make_upscalers, data_dir):
    marker = data_dir / "pwned"
    torch.save({"params_ema": RunsCode(marker)}, data_dir / "models" / "ESRGAN" / "4x-evil.pth")
    with pytest.raises(UnsafeModel):
        make_upscalers().upscale(noise_image(16, 16), 4, "4x-evil")
    assert not marker.exists()


def test_broken_files_are_broken(tmp_path):
    good = write_tiny_esrgan(tmp_path / "good.pth")
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(os.urandom(4096))
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    good_st = write_tiny_esrgan(tmp_path / "good.safetensors")
    short_st = tmp_path / "short.safetensors"
    short_st.write_bytes(good_st.read_bytes()[:-100])
    wrong_shapes = tiny_esrgan_state_dict()
    wrong_shapes["conv_body.weight"] = torch.zeros(8, 7, 3, 3)
    misfit = tmp_path / "misfit.safetensors"
    save_file(wrong_shapes, str(misfit))
    for path in (truncated, garbage, empty, short_st, misfit):
        with pytest.raises(BrokenModel) as caught:
            load_descriptor(path, CPU)
        assert caught.value.path == path and str(path) in str(caught.value), path.name


def test_files_that_are_not_upscalers_are_unrecognized(tmp_path):
    other = tmp_path / "other.safetensors"
    save_file({"encoder.weight": torch.zeros(4, 4)}, str(other))
    no_tensors = tmp_path / "config.pth"
    torch.save({"name": "not weights", "step": 3}, no_tensors)
    a_list = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], a_list)
    for path, message in ((other, "not an upscaler model spandrel .* recognises"), (no_tensors, "holds no tensors"),
                          (a_list, "holds a list, not a state dict")):
        with pytest.raises(UnrecognizedModel, match=message) as caught:
            load_descriptor(path, CPU)
        assert caught.value.path == path


def test_an_oversized_file_is_refused_before_reading(tmp_path, monkeypatch):
    path = write_tiny_esrgan(tmp_path / "big.safetensors")
    monkeypatch.setattr(reading, "MAX_UPSCALER_BYTES", 1000)
    with pytest.raises(UnrecognizedModel, match="too big for an upscaler model"):
        load_descriptor(path, CPU)


def test_an_inpainting_model_is_refused_by_name(tmp_path, monkeypatch):
    from spandrel.architectures.LaMa import LaMa

    state = LaMa(in_nc=4, out_nc=3).state_dict()  # spandrel's own LaMa, detected by its keys
    monkeypatch.setattr(reading, "read_state_dict", lambda path: state)
    with pytest.raises(UnrecognizedModel, match=r"lama.pth: a LaMa model for inpainting, not an upscaler"):
        load_descriptor(tmp_path / "lama.pth", CPU)


def test_a_model_error_reaches_the_caller_naming_the_file(make_upscalers, data_dir):
    (data_dir / "models" / "ESRGAN" / "4x-junk.pth").write_bytes(b"junk")
    upscalers = make_upscalers()
    with pytest.raises(BrokenModel, match="4x-junk.pth"):
        upscalers.resize(noise_image(16, 16), 64, 64, "4x-junk")
    assert upscalers.resize(noise_image(16, 16), 64, 64, TINY_4X).size == (64, 64)  # the others still work


def test_a_file_removed_since_the_scan_is_not_found(make_upscalers, data_dir):
    upscalers = make_upscalers()
    assert TINY_4X in upscalers.names()
    (data_dir / "models" / "ESRGAN" / f"{TINY_4X}.safetensors").unlink()
    with pytest.raises(ModelNotFound, match="is gone"):
        upscalers.upscale(noise_image(16, 16), 4, TINY_4X)
    assert TINY_4X not in upscalers.names()
