"""Checkpoints as users download them: other key layouts, fp8, prediction-type evidence, broken parts, one read."""

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from sdui.models.device import choose_device
from sdui.models.errors import BrokenModel, ModelError, UnrecognizedModel
from sdui.models.load import load_pipeline, place
from sdui.models.prediction import V
from sdui.settings import Settings

CPU = choose_device(Settings(device="cpu"))
TEXT = "cond_stage_model.transformer.text_model."


@pytest.fixture(scope="module")
def tiny_state(tiny_single_files) -> dict[str, torch.Tensor]:
    return load_file(str(tiny_single_files["safetensors"]))


@pytest.fixture(scope="module")
def reference(tiny_single_files):
    return load_pipeline(tiny_single_files["safetensors"], CPU).pipe


def _write(path, state, metadata=None):
    if path.suffix == ".safetensors":
        save_file(state, str(path), metadata=metadata)
    else:
        torch.save({"state_dict": state}, str(path))
    return path


def _image(pipe, scheduler=None) -> np.ndarray:
    if scheduler is not None:
        pipe.scheduler = scheduler
    out = pipe("a photo of an astronaut", num_inference_steps=3, width=64, height=64, output_type="np",
               generator=torch.Generator("cpu").manual_seed(7))
    return out.images[0]


def _same_weights(a, b, part: str) -> None:
    sa, sb = getattr(a, part).state_dict(), getattr(b, part).state_dict()
    assert sa.keys() == sb.keys()
    different = [k for k in sa if not torch.equal(sa[k], sb[k])]
    assert not different, (part, different[:3])


def test_old_sd1_text_encoder_layout_loads_as_a1111_remaps_it(tmp_path, tiny_state, reference):
    old = {k.replace(TEXT, "cond_stage_model.transformer."): v for k, v in tiny_state.items()}
    assert not any(k.startswith(TEXT) for k in old) and "cond_stage_model.transformer.embeddings." \
        "position_embedding.weight" in old
    for suffix in (".safetensors", ".ckpt"):
        pipe = load_pipeline(_write(tmp_path / f"old-layout{suffix}", old), CPU).pipe
        for part in ("text_encoder", "unet", "vae"):
            _same_weights(pipe, reference, part)


def test_scaled_fp8_is_dequantised_with_its_scales(tmp_path, tiny_state, reference):
    state, expected = {}, {}
    for key, value in tiny_state.items():
        if key.startswith("model.diffusion_model.") and key.endswith(".weight") and value.ndim >= 2:
            scale = value.abs().max().float() / 448.0 * 4  # far from 1: ignoring it would be visibly wrong
            state[key] = (value / scale).to(torch.float8_e4m3fn)
            state[key[: -len("weight")] + "scale_weight"] = scale.reshape(())
            expected[key] = state[key].float() * scale
        else:
            state[key] = value
    state["scaled_fp8"] = torch.empty(0, dtype=torch.float8_e4m3fn)
    pipe = load_pipeline(_write(tmp_path / "scaled_fp8.safetensors", state), CPU).pipe
    unet = {f"model.diffusion_model.{k}": v for k, v in pipe.unet.state_dict().items()}
    assert all(t.dtype == torch.float32 for t in unet.values())
    ref = reference.unet.state_dict()
    conv_in = pipe.unet.conv_in.weight
    assert torch.equal(conv_in, expected["model.diffusion_model.input_blocks.0.0.weight"])
    # Within fp8's precision of the original weights; the raw fp8 numbers (scale ignored) are 4x off.
    assert torch.allclose(conv_in, ref["conv_in.weight"], atol=0.05 * ref["conv_in.weight"].abs().max().item())
    _same_weights(pipe, reference, "vae")
    assert _image(pipe).std() > 0


def test_plain_fp8_keeps_working(tmp_path, tiny_state):
    state = {k: v.to(torch.float8_e4m3fn) if v.is_floating_point() else v for k, v in tiny_state.items()}
    pipe = load_pipeline(_write(tmp_path / "plain-fp8.safetensors", state), CPU).pipe
    assert torch.equal(pipe.unet.conv_in.weight,
                       state["model.diffusion_model.input_blocks.0.0.weight"].to(torch.float32))


@pytest.mark.parametrize("prefix,component", [
    ("first_stage_model.decoder.up.0.", "VAE"),
    (TEXT + "encoder.layers.1.", "text encoder"),
    ("model.diffusion_model.output_blocks.2.", "UNet"),
])
def test_missing_tensors_name_the_component(tmp_path, tiny_state, prefix, component):
    state = {k: v for k, v in tiny_state.items() if not k.startswith(prefix)}
    assert len(state) < len(tiny_state)
    path = _write(tmp_path / "truncated.safetensors", state)
    with pytest.raises(BrokenModel, match=f"truncated.safetensors: the {component} ") as info:
        load_pipeline(path, CPU)
    assert isinstance(info.value, ModelError)


def test_a_ckpt_is_scanned_and_unpickled_once(tmp_path, tiny_state, reference, monkeypatch):
    path = _write(tmp_path / "once.ckpt", dict(tiny_state))
    calls = {"load": 0, "scan": 0}
    real_load, real_scan = torch.load, torch.serialization.get_unsafe_globals_in_checkpoint

    def counting_load(*args, **kwargs):
        calls["load"] += 1
        return real_load(*args, **kwargs)

    def counting_scan(*args, **kwargs):
        calls["scan"] += 1
        return real_scan(*args, **kwargs)

    monkeypatch.setattr(torch, "load", counting_load)
    monkeypatch.setattr(torch.serialization, "get_unsafe_globals_in_checkpoint", counting_scan)
    pipe = load_pipeline(path, CPU).pipe
    assert calls == {"load": 1, "scan": 1}
    _same_weights(pipe, reference, "unet")


def test_v_prediction_from_metadata_matches_diffusers_with_the_scheduler_set_by_hand(tmp_path, tiny_state,
                                                                                     reference):
    path = _write(tmp_path / "plain.safetensors", tiny_state, {"modelspec.prediction_type": "v"})
    loaded = load_pipeline(path, CPU)
    assert (loaded.prediction.kind, loaded.prediction.source) == (V, "metadata modelspec.prediction_type")
    assert loaded.pipe.scheduler.config.prediction_type == "v_prediction"
    by_hand = type(reference.scheduler).from_config(reference.scheduler.config, prediction_type="v_prediction")
    np.testing.assert_array_equal(_image(loaded.pipe), _image(reference, by_hand))
    assert not np.array_equal(_image(loaded.pipe), _image(reference, type(by_hand).from_config(
        reference.scheduler.config, prediction_type="epsilon")))


def test_zero_terminal_snr_key_rescales_the_betas(tmp_path, tiny_state):
    state = {**tiny_state, "v_pred": torch.empty(0), "ztsnr": torch.empty(0)}
    loaded = load_pipeline(_write(tmp_path / "noob.safetensors", state), CPU)
    config = loaded.pipe.scheduler.config
    assert (config.prediction_type, config.rescale_betas_zero_snr, config.timestep_spacing) == \
        ("v_prediction", True, "trailing")
    assert "zero terminal SNR" in loaded.describe()
    assert _image(loaded.pipe).std() > 0


def test_refused_architectures_name_themselves_at_load(tmp_path, tiny_state):
    path = _write(tmp_path / "playground.safetensors", {**tiny_state, "edm_mean": torch.zeros(1, 4, 1, 1),
                                                         "edm_std": torch.ones(1, 4, 1, 1)})
    with pytest.raises(UnrecognizedModel, match="playground.safetensors: this is Playground v2.5"):
        load_pipeline(path, CPU)


def test_placing_a_model_with_meta_tensors_is_a_model_error(reference, tmp_path):
    from diffusers import StableDiffusionPipeline

    broken = StableDiffusionPipeline(**{**reference.components})
    with torch.device("meta"):
        broken.vae = type(reference.vae).from_config(reference.vae.config)
    with pytest.raises(ModelError, match=r"x\.safetensors: cannot place the model on cpu"):
        place(broken, CPU, tmp_path / "x.safetensors")


@pytest.fixture(scope="module")
def family_files(tmp_path_factory) -> dict:
    """Tiny SD2, SD2 inpainting, SDXL, SDXL inpainting and SDXL-refiner-shaped single files."""
    from sdui.models.layout import write_tiny_checkpoint

    root = tmp_path_factory.mktemp("families")
    return {(family, ch): write_tiny_checkpoint(root / f"{family}-{ch}.safetensors", family=family, in_channels=ch)
            for family, ch in [("sd2", 4), ("sd2", 9), ("sdxl", 4), ("sdxl", 9), ("sdxl-refiner", 4)]}


@pytest.mark.parametrize("family,channels,probed,pipeline", [
    ("sd2", 4, "sdui-tiny-sd2", "StableDiffusionPipeline"),
    ("sd2", 9, "sdui-tiny-sd2-inpaint", "StableDiffusionInpaintPipeline"),
    ("sdxl", 4, "sdui-tiny-sdxl", "StableDiffusionXLPipeline"),
    ("sdxl", 9, "sdui-tiny-sdxl-inpaint", "StableDiffusionXLInpaintPipeline"),
    ("sdxl-refiner", 4, "sdui-tiny-sdxl-refiner", "StableDiffusionXLImg2ImgPipeline"),
])
def test_each_family_loads_with_its_config_and_identical_weights(family_files, family, channels, probed, pipeline):
    from sdui.models.tiny import build_tiny_pipeline

    loaded = load_pipeline(family_files[family, channels], CPU)
    original = build_tiny_pipeline(channels, family)
    assert (loaded.family, type(loaded.pipe).__name__) == (probed, pipeline)
    public = lambda config: {k: v for k, v in config.items() if not k.startswith("_")}  # noqa: E731
    assert public(loaded.pipe.scheduler.config) == public(original.scheduler.config)
    assert loaded.prediction.kind == "epsilon"
    for part in ("unet", "vae", "text_encoder", "text_encoder_2"):
        if getattr(original, part, None) is not None:
            _same_weights(loaded.pipe, original, part)
    if family == "sdxl-refiner":
        assert loaded.pipe.text_encoder is None and loaded.pipe.config.requires_aesthetics_score


def test_sd2_in_sgm_layout_loads_as_a1111_remaps_it(tmp_path, family_files):
    state = load_file(str(family_files["sd2", 4]))
    sgm = {k.replace("cond_stage_model.", "conditioner.embedders.0.", 1): v for k, v in state.items()}
    assert any(k.startswith("conditioner.embedders.0.model.") for k in sgm)
    loaded = load_pipeline(_write(tmp_path / "sd-turbo.safetensors", sgm), CPU)
    assert loaded.family == "sdui-tiny-sd2"
    reference = load_pipeline(family_files["sd2", 4], CPU).pipe
    for part in ("text_encoder", "unet", "vae"):
        _same_weights(loaded.pipe, reference, part)


def _sd2_answering(tmp_path, family_files, name: str, bias: float):
    """The tiny SD2 whose UNet always outputs `bias` (conv_out zeroed): what A1111's test sees."""
    state = load_file(str(family_files["sd2", 4]))
    state["model.diffusion_model.out.2.weight"] = torch.zeros_like(state["model.diffusion_model.out.2.weight"])
    state["model.diffusion_model.out.2.bias"] = torch.full_like(state["model.diffusion_model.out.2.bias"], bias)
    return load_pipeline(_write(tmp_path / name, state), CPU)


@pytest.mark.parametrize("name,bias,kind,source", [
    ("plain.safetensors", -2.0, V, "weights test"),  # (out - x).mean() = -2.5 < -1
    ("sd2-768-v.safetensors", 0.5, "epsilon", "weights test"),  # 0 > -1, whatever the name says
    ("sd2-768-v.safetensors", float("nan"), V, "file name (the weights test gave NaN)"),
    ("plain.safetensors", float("nan"), "epsilon", "file name (the weights test gave NaN)"),
])
def test_sd2_prediction_from_the_weights_then_the_name(tmp_path, family_files, name, bias, kind, source):
    loaded = _sd2_answering(tmp_path, family_files, name, bias)
    assert (loaded.prediction.kind, loaded.prediction.source) == (kind, source)
    assert loaded.pipe.scheduler.config.prediction_type == kind


def test_sd2_v_model_found_by_its_weights_matches_diffusers_with_the_scheduler_set_by_hand(tmp_path, family_files):
    loaded = _sd2_answering(tmp_path, family_files, "plain.safetensors", -2.0)
    by_hand = load_pipeline(family_files["sd2", 4], CPU).pipe
    by_hand.unet.load_state_dict(loaded.pipe.unet.state_dict())
    scheduler = type(by_hand.scheduler).from_config(by_hand.scheduler.config, prediction_type="v_prediction")
    np.testing.assert_array_equal(_image(loaded.pipe), _image(by_hand, scheduler))


def test_sdxl_v_prediction_keys_give_zero_snr_and_it_generates(tmp_path, family_files):
    state = {**load_file(str(family_files["sdxl", 4])), "v_pred": torch.empty(0), "ztsnr": torch.empty(0)}
    loaded = load_pipeline(_write(tmp_path / "noobai-vpred.safetensors", state), CPU)
    assert (loaded.prediction.kind, loaded.prediction.zero_snr, loaded.prediction.source) == \
        (V, True, "v_pred key and ztsnr key")
    config = loaded.pipe.scheduler.config
    assert (config.prediction_type, config.rescale_betas_zero_snr) == ("v_prediction", True)
    assert loaded.pipe.vae.config.force_upcast
    assert _image(loaded.pipe).std() > 0
