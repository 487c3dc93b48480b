"""Hostile and broken files: nothing runs, every error names the file and the reason."""

import json
import os
import pickle
import struct
import sys
import types

import pytest
import torch
from safetensors.torch import load_file, save_file

from sdui.models.errors import BrokenModel, UnrecognizedModel, UnsafeModel
from sdui.models.files import LIGHTNING_GLOBAL, load_pickle_state_dict, read_safetensors_header, read_shapes
from sdui.models.load import convert_to_safetensors


class Evil:
    marker = ""

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _evil(marker) -> Evil:
    e = Evil()
    e.marker = str(marker)
    return e


@pytest.mark.parametrize("suffix", [".ckpt", ".pt", ".bin"])
@pytest.mark.parametrize("writer", ["torch", "pickle"])
def test_pickle_with_code_is_refused_and_never_runs(tmp_path, suffix, writer):
    marker = tmp_path / "pwned"
    path = tmp_path / f"evil{suffix}"
    payload = {"state_dict": {"model.diffusion_model.x": torch.zeros(2)}, "evil": _evil(marker)}
    if writer == "torch":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload))
    with pytest.raises(UnsafeModel) as info:
        read_shapes(path)
    message = str(info.value)
    assert str(path) in message and "system" in message and "safetensors" in message
    with pytest.raises(UnsafeModel):
        convert_to_safetensors(path)
    assert not marker.exists()


def _write_safetensors(path, tensors):
    save_file(tensors, str(path))
    return path


def test_truncated_safetensors(tmp_path):
    path = _write_safetensors(tmp_path / "t.safetensors", {"a": torch.ones(1000), "b": torch.ones(1000)})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])
    with pytest.raises(BrokenModel, match=r"t\.safetensors.*truncated"):
        read_safetensors_header(path)


def _forge(path, header: dict, data: bytes):
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


def test_header_offsets_beyond_the_end(tmp_path):
    path = _forge(tmp_path / "lie.safetensors", {"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16000]}},
                  b"\0" * 16)
    with pytest.raises(BrokenModel, match=r"lie\.safetensors.*'w'.*0\.\.16000.*16 data bytes"):
        read_shapes(path)


def test_header_length_that_does_not_match_the_shape(tmp_path):
    path = _forge(tmp_path / "len.safetensors", {"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 8]}},
                  b"\0" * 16)
    with pytest.raises(BrokenModel, match=r"len\.safetensors.*needs 16 bytes.*gives 8"):
        read_shapes(path)


def test_header_size_larger_than_the_file(tmp_path):
    path = tmp_path / "huge.safetensors"
    path.write_bytes(struct.pack("<Q", 10**9) + b"{}")
    with pytest.raises(BrokenModel, match=r"huge\.safetensors.*header claims"):
        read_shapes(path)


@pytest.mark.parametrize("suffix", [".safetensors", ".ckpt"])
def test_random_bytes_and_empty_files(tmp_path, suffix):
    rnd = tmp_path / f"random{suffix}"
    rnd.write_bytes(os.urandom(4096))
    with pytest.raises(BrokenModel, match="random"):
        read_shapes(rnd)
    empty = tmp_path / f"empty{suffix}"
    empty.write_bytes(b"")
    with pytest.raises(BrokenModel, match=r"empty.*(empty|too short)"):
        read_shapes(empty)


# Bytes torch's weights-only unpickler trips over with IndexError / KeyError (seen with random files).
@pytest.mark.parametrize("data", [b"\x80\x02R.", b"\x80\x02h\x05.", b"\x80\x02]\x94e."])
def test_pickle_opcodes_that_break_torchs_unpickler_are_broken_models(tmp_path, data):
    path = tmp_path / "odd.ckpt"
    path.write_bytes(data)
    with pytest.raises(BrokenModel, match="odd.ckpt"):
        load_pickle_state_dict(path)


def test_pickle_without_tensors_is_unrecognized(tmp_path):
    path = tmp_path / "numbers.ckpt"
    torch.save({"epoch": 3}, path)
    with pytest.raises(UnrecognizedModel, match="no tensors"):
        read_shapes(path)


def _lightning_ckpt(path):
    """A checkpoint that pickles Lightning's ModelCheckpoint class, as old SD training runs did."""
    mod_names = ["pytorch_lightning", "pytorch_lightning.callbacks", "pytorch_lightning.callbacks.model_checkpoint"]
    cls = type("ModelCheckpoint", (), {"__module__": mod_names[-1]})
    saved = {n: sys.modules.get(n) for n in mod_names}
    try:
        for n in mod_names:
            sys.modules[n] = types.ModuleType(n)
        sys.modules[mod_names[-1]].ModelCheckpoint = cls
        sd = {"model.diffusion_model.w": torch.arange(6.0).reshape(2, 3), "first_stage_model.b": torch.ones(3)}
        torch.save({"state_dict": sd, "callbacks": {cls: {"best_model_score": 1.0}}}, path)
    finally:
        for n, m in saved.items():
            if m is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = m
    return path


def test_old_lightning_checkpoint_loads_through_the_stub_and_converts(tmp_path):
    path = _lightning_ckpt(tmp_path / "old.ckpt")
    assert LIGHTNING_GLOBAL in torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    sd = load_pickle_state_dict(path)
    assert torch.equal(sd["model.diffusion_model.w"], torch.arange(6.0).reshape(2, 3))
    out = convert_to_safetensors(path)
    assert out == tmp_path / "old.safetensors"
    loaded = load_file(str(out))
    assert set(loaded) == {"model.diffusion_model.w", "first_stage_model.b"}
    assert torch.equal(loaded["first_stage_model.b"], torch.ones(3))
    with pytest.raises(FileExistsError):
        convert_to_safetensors(path)
