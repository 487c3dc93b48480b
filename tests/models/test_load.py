"""Round trips on the tiny model: diffusers folder, original-layout .safetensors and .ckpt load offline alike."""

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from sdui.models.device import choose_device
from sdui.models.errors import BrokenModel, UnrecognizedModel, UnsafeModel
from sdui.models.load import load_pipeline
from sdui.settings import Settings

CPU = choose_device(Settings(device="cpu"))


def _image(pipe) -> np.ndarray:
    out = pipe("a photo of an astronaut", num_inference_steps=2, width=64, height=64, output_type="np",
               generator=torch.Generator("cpu").manual_seed(1234))
    return out.images[0]


@pytest.fixture(scope="module")
def loaded(tiny_single_files):
    return {fmt: load_pipeline(path, CPU).pipe for fmt, path in tiny_single_files.items()}


def test_all_formats_load_with_identical_weights(loaded):
    ref = loaded["diffusers"]
    for fmt in ("safetensors", "ckpt"):
        pipe = loaded[fmt]
        assert type(pipe).__name__ == "StableDiffusionPipeline", fmt
        for part in ("unet", "vae", "text_encoder"):
            a, b = getattr(ref, part).state_dict(), getattr(pipe, part).state_dict()
            assert a.keys() == b.keys(), (fmt, part)
            different = [k for k in a if not torch.equal(a[k], b[k])]
            assert not different, (fmt, part, different[:3])
        assert pipe.tokenizer("a photo").input_ids == [49406, 320, 1125, 49407]


def test_all_formats_generate_the_same_image(loaded):
    ref = _image(loaded["diffusers"])
    assert ref.shape == (64, 64, 3) and ref.std() > 0
    for fmt in ("safetensors", "ckpt"):
        np.testing.assert_array_equal(_image(loaded[fmt]), ref, err_msg=fmt)


def test_unknown_architecture_names_the_file(tmp_path):
    path = tmp_path / "mystery.safetensors"
    save_file({"some.layer.weight": torch.ones(2, 2)}, str(path))
    with pytest.raises(UnrecognizedModel, match=r"mystery\.safetensors.*not a Stable Diffusion checkpoint"):
        load_pipeline(path, CPU)


def test_wrong_shapes_for_the_family_are_a_broken_model(tmp_path, tiny_single_files):
    from safetensors.torch import load_file

    sd = load_file(str(tiny_single_files["safetensors"]))
    key = "model.diffusion_model.out.2.weight"
    sd[key] = torch.zeros(4, 16, 3, 3)
    path = tmp_path / "mangled.safetensors"
    save_file(sd, str(path))
    with pytest.raises(BrokenModel, match=r"mangled\.safetensors.*sdui-tiny"):
        load_pipeline(path, CPU)


def test_missing_file_and_folder_without_index(tmp_path):
    with pytest.raises(BrokenModel, match="missing"):
        load_pipeline(tmp_path / "gone.safetensors", CPU)
    (tmp_path / "folder").mkdir()
    with pytest.raises(UnrecognizedModel, match="model_index.json"):
        load_pipeline(tmp_path / "folder", CPU)


def test_hostile_ckpt_is_refused_before_diffusers_sees_it(tmp_path):
    import os

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    torch.save({"state_dict": {"model.diffusion_model.x": torch.zeros(1)}, "x": Evil()}, tmp_path / "evil.ckpt")
    with pytest.raises(UnsafeModel, match="posix.system|os.system"):
        load_pipeline(tmp_path / "evil.ckpt", CPU)
    assert not (tmp_path / "pwned").exists()


def test_half_precision_file_is_upcast_exactly_for_cpu(tmp_path):
    from sdui.models.layout import save_single_file
    from sdui.models.tiny import build_tiny_pipeline

    ref = build_tiny_pipeline()
    path = save_single_file(ref, tmp_path / "half.safetensors", dtype=torch.float16)
    pipe = load_pipeline(path, CPU).pipe
    assert pipe.unet.dtype == pipe.vae.dtype == pipe.text_encoder.dtype == torch.float32
    for key, value in ref.unet.state_dict().items():
        assert torch.equal(pipe.unet.state_dict()[key], value.half().float()), key
