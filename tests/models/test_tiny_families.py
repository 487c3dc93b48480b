"""The tiny SD1/SD2/SDXL/refiner models: fixed weights, bundled configs in sync, single files diffusers loads back."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch

from sdui.models.layout import pipeline_to_ldm, write_tiny_checkpoint
from sdui.models.probe import CONFIGS_DIR
from sdui.models.tiny import CONFIG_NAMES, build_tiny_pipeline, write_tiny_config_folder
from sdui.models.tokenizer import EOS, load_tokenizer
from tests.conftest import torch_threads

CASES = sorted(CONFIG_NAMES.items(), key=lambda item: item[1])  # ((family, in_channels), config folder name)
IDS = [name for _, name in CASES]
# sha256 of every component's weights (names, shapes, bytes): a change of seed, shape or construction order shows
# here. All families draw from seed 0, so same-shaped tensors hold the same numbers (sd1 and sd2 differ in shapes).
DIGESTS = {
    "sdui-tiny": "10377ee5c4a6da4c79d040d672b97a70450fd51147625ece90aba09e6f4f86be",
    "sdui-tiny-sd2": "c5ecc1dd027ceb90d5414ccd886e44c991188857e6d16972ce7f3cdaecd0ec48",
    "sdui-tiny-sd2-inpaint": "22062260d50233e7e972ba21d6622ae817e039952aeee053c1aee593ee9e46fb",
    "sdui-tiny-sdxl": "af318b55de527682fec724e25fee2f52c5f919f58c3b99ffc3a1e22e131a327b",
    "sdui-tiny-sdxl-inpaint": "2553e7df2ceae0c6d50a972632cd0eb36439cb738052c97b01833f8b1847040b",
    "sdui-tiny-sdxl-refiner": "8922e009f89bc44ef1e5fec39c56ad3536d446494e7b98ab1ed7d61bc471e1df",
}
G = "conditioner.embedders.1.model."
R = "conditioner.embedders.0.model."
# What identifies each layout, as diffusers' single-file loader looks for it (CHECKPOINT_KEY_NAMES).
TEXT_KEYS = {
    "sd1": ["cond_stage_model.transformer.text_model.embeddings.position_embedding.weight"],
    "sd2": ["cond_stage_model.model.token_embedding.weight", "cond_stage_model.model.text_projection",
            "cond_stage_model.model.transformer.resblocks.2.attn.in_proj_weight"],
    "sdxl": ["conditioner.embedders.0.transformer.text_model.embeddings.position_embedding.weight",
             G + "positional_embedding", G + "text_projection", G + "transformer.resblocks.1.attn.in_proj_weight"],
    "sdxl-refiner": [R + "positional_embedding", R + "text_projection", R + "transformer.resblocks.1.mlp.c_fc.weight"],
}


def _digest(pipe) -> str:
    h = hashlib.sha256()
    for name, component in sorted(pipe.components.items()):
        if isinstance(component, torch.nn.Module):
            for key, tensor in sorted(component.state_dict().items()):
                h.update(f"{name}.{key}{tuple(tensor.shape)}".encode())
                h.update(tensor.contiguous().numpy().tobytes())
    return h.hexdigest()


def _modules(pipe) -> dict[str, torch.nn.Module]:
    return {name: c for name, c in pipe.components.items() if isinstance(c, torch.nn.Module)}


@pytest.fixture(scope="session")
def round_trips(tmp_path_factory) -> dict[str, tuple]:
    """Per config folder: (the built pipeline, its .safetensors single file, the file loaded back by diffusers)."""
    import diffusers

    root = tmp_path_factory.mktemp("tiny-families")
    out = {}
    for (family, in_channels), name in CASES:
        original = build_tiny_pipeline(in_channels, family)
        path = write_tiny_checkpoint(root / f"{name}.safetensors", family, in_channels)
        config = CONFIGS_DIR / name
        cls = getattr(diffusers, json.loads((config / "model_index.json").read_text())["_class_name"])
        if family.startswith("sdxl"):
            kwargs = {"tokenizer": None if family == "sdxl-refiner" else load_tokenizer(EOS),
                      "tokenizer_2": load_tokenizer("!")}
        else:
            kwargs = {"tokenizer": load_tokenizer("!" if family == "sd2" else EOS), "safety_checker": None,
                      "feature_extractor": None, "requires_safety_checker": False}
        loaded = cls.from_single_file(str(path), config=str(config), local_files_only=True, **kwargs)
        out[name] = (original, path, loaded)
    return out


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_tiny_weights_are_fixed(case, round_trips):
    (family, in_channels), name = case
    assert _digest(round_trips[name][0]) == DIGESTS[name]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_bundled_tiny_config_folder_is_what_the_pipeline_saves(case, tmp_path):
    (family, in_channels), name = case
    fresh = write_tiny_config_folder(tmp_path / name, family, in_channels)
    files = sorted(p.relative_to(fresh) for p in fresh.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(CONFIGS_DIR / name) for p in (CONFIGS_DIR / name).rglob("*") if p.is_file())
    for f in files:
        assert json.loads((fresh / f).read_text()) == json.loads((CONFIGS_DIR / name / f).read_text()), f


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_single_file_has_the_original_layout(case, round_trips):
    (family, in_channels), name = case
    keys = set(pipeline_to_ldm(round_trips[name][0]))
    assert all(k in keys for k in TEXT_KEYS[family]), sorted(k for k in keys if "diffusion_model" not in k)[:20]
    others = set(TEXT_KEYS) - {family}
    # No other family's text-encoder key sneaks in (they are what loaders tell the families apart by).
    assert not any(k in keys for other in others for k in TEXT_KEYS[other] if k not in TEXT_KEYS[family])
    unet = round_trips[name][0].unet
    assert unet.config.cross_attention_dim < 256 and unet.config.in_channels == in_channels
    assert ("model.diffusion_model.label_emb.0.0.weight" in keys) == family.startswith("sdxl")
    assert any(k.startswith("first_stage_model.decoder.") for k in keys)
    if family == "sdxl":  # transformer depth 2 in the second level
        assert "model.diffusion_model.input_blocks.4.1.transformer_blocks.1.attn2.to_k.weight" in keys


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_diffusers_loads_the_single_file_back_bit_for_bit(case, round_trips):
    (family, in_channels), name = case
    original, _, loaded = round_trips[name]
    assert set(_modules(loaded)) == set(_modules(original))
    for component, module in _modules(original).items():
        back = getattr(loaded, component)
        assert not [n for n, t in [*back.named_parameters(), *back.named_buffers()] if t.is_meta], component
        want, got = module.state_dict(), back.state_dict()
        assert want.keys() == got.keys(), component
        assert all(torch.equal(want[k], got[k]) for k in want), component


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_loaded_pipeline_generates_the_same_pixels(case, round_trips):
    from PIL import Image

    (family, in_channels), name = case
    original, _, loaded = round_trips[name]
    runner = original if type(original) is type(loaded) else type(loaded).from_pipe(original)
    kwargs = {"prompt": "a cat", "num_inference_steps": 2, "output_type": "np"}
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    if in_channels == 9:
        kwargs.update(image=photo, mask_image=Image.new("L", (64, 64), 255), height=64, width=64, strength=1.0)
    elif family == "sdxl-refiner":
        kwargs.update(image=photo, strength=1.0)
    else:
        kwargs.update(height=64, width=64)
    with torch_threads(1):
        images = [pipe(**kwargs, generator=torch.Generator().manual_seed(3)).images for pipe in (runner, loaded)]
    assert images[0].shape == (1, 64, 64, 3) and images[0].std() > 0
    assert np.array_equal(images[0], images[1])


def test_checkpoint_formats_and_dtype(tmp_path):
    from safetensors.torch import load_file

    ckpt = write_tiny_checkpoint(tmp_path / "refiner.ckpt", "sdxl-refiner")
    half = write_tiny_checkpoint(tmp_path / "refiner.safetensors", "sdxl-refiner", dtype=torch.float16)
    state = torch.load(ckpt, weights_only=True)["state_dict"]
    tensors = load_file(half)
    assert state.keys() == tensors.keys()
    assert {t.dtype for t in tensors.values()} == {torch.float16}
    assert torch.equal(state[R + "text_projection"].half(), tensors[R + "text_projection"])


def test_unknown_family_or_channels_are_refused():
    with pytest.raises(ValueError, match="family"):
        build_tiny_pipeline(family="sd3")
    with pytest.raises(ValueError, match="in_channels.*sdxl-refiner"):
        build_tiny_pipeline(9, "sdxl-refiner")
