"""Family detection on fake state dicts (right keys, right shapes where they matter) and the bundled configs."""

import json

import pytest
import torch

from sdui.models.errors import BrokenModel, UnrecognizedModel
from sdui.models.layout import unet_to_ldm
from sdui.models.probe import CONFIGS_DIR, FAMILIES, detect, probe_file

U = "model.diffusion_model."
TEXT = {"sd1": "cond_stage_model.transformer.text_model.embeddings.position_embedding.weight",
        "sd2": "cond_stage_model.model.token_embedding.weight",
        "sdxl": "conditioner.embedders.1.model.positional_embedding"}


def fake(ctx: int, in_ch: int = 4, text: str = "sd1", vae: bool = True) -> dict:
    shapes = {U + "input_blocks.0.0.weight": (320, in_ch, 3, 3),
              U + "input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight": (640, ctx),
              U + "out.2.weight": (4, 320, 3, 3),
              TEXT[text]: (77, 768)}
    if text == "sdxl":
        shapes["conditioner.embedders.0.transformer.text_model.embeddings.position_embedding.weight"] = (77, 768)
    if vae:
        shapes["first_stage_model.decoder.conv_out.weight"] = (3, 128, 3, 3)
    return shapes


@pytest.mark.parametrize("ctx,in_ch,text,family", [
    (768, 4, "sd1", "sd1"), (768, 9, "sd1", "sd1-inpaint"), (1024, 4, "sd2", "sd2"),
    (2048, 4, "sdxl", "sdxl"), (2048, 9, "sdxl", "sdxl-inpaint"), (32, 4, "sd1", "sdui-tiny"),
])
def test_families_from_width_and_channels(ctx, in_ch, text, family):
    probe = detect(fake(ctx, in_ch, text), name="x.safetensors")
    assert probe.family == family
    assert probe.config_dir == CONFIGS_DIR / family
    assert (probe.config_dir / "model_index.json").is_file()


@pytest.mark.parametrize("name,metadata,yaml,expected", [
    ("v2-1_768-ema-pruned.safetensors", {}, None, "sd2-v"),
    ("v2-1_512-ema-pruned.safetensors", {}, None, "sd2"),
    ("my-model-vpred.safetensors", {}, None, "sd2-v"),
    ("my_model_v.ckpt", {}, None, "sd2-v"),
    ("plain.safetensors", {"modelspec.prediction_type": "v"}, None, "sd2-v"),
    ("model-768.safetensors", {"modelspec.prediction_type": "epsilon"}, None, "sd2"),
    ("plain.safetensors", {"ss_v_parameterization": "True"}, None, "sd2-v"),
    ("plain.ckpt", {}, 'model:\n  params:\n    parameterization: "v"\n', "sd2-v"),
    ("plain768.ckpt", {}, "model:\n  params:\n    parameterization: eps\n", "sd2"),
    ("vivid.safetensors", {}, None, "sd2"),
])
def test_sd2_v_prediction_rule(name, metadata, yaml, expected):
    assert detect(fake(1024, 4, "sd2"), name=name, metadata=metadata, yaml_text=yaml).family == expected


@pytest.mark.parametrize("shapes,words", [
    ({"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": (4, 320)}, "LoRA"),
    ({"down_blocks.0.resnets.0.conv1.weight": (320, 320, 3, 3)}, "diffusers component"),
    ({"encoder.conv_in.weight": (128, 3, 3, 3)}, "VAE on its own"),
    ({"foo.bar": (1,)}, "no UNet weights"),
    (fake(1280, 4, "sd1"), "refiner"),
    (fake(768, 8, "sd1"), "instruct-pix2pix"),
    (fake(1024, 9, "sd2"), "9 input channels"),
    (fake(512, 4, "sd1"), "cross-attention width 512"),
])
def test_unknown_architectures_are_named(shapes, words):
    with pytest.raises(UnrecognizedModel, match=words) as info:
        detect(shapes, name="odd.safetensors")
    assert "odd.safetensors" in str(info.value)


def test_missing_parts_are_broken_not_unknown():
    with pytest.raises(BrokenModel, match="no VAE"):
        detect(fake(768, vae=False), name="novae.ckpt")
    no_text = {k: v for k, v in fake(768).items() if not k.startswith("cond_stage_model")}
    with pytest.raises(BrokenModel, match="text encoder"):
        detect(no_text, name="notext.ckpt")


def _meta_unet_shapes(family: str) -> dict:
    from diffusers import UNet2DConditionModel

    config = UNet2DConditionModel.load_config(CONFIGS_DIR / family / "unet")
    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(config)
    return {k: tuple(v.shape) for k, v in unet_to_ldm(unet.state_dict(), config["layers_per_block"]).items()}


@pytest.mark.parametrize("family,text", [("sd1", "sd1"), ("sd1-inpaint", "sd1"), ("sd2", "sd2"),
                                         ("sdxl", "sdxl"), ("sdxl-inpaint", "sdxl")])
def test_bundled_unet_configs_probe_back_to_their_family(family, text):
    shapes = _meta_unet_shapes(family)
    shapes.update({k: v for k, v in fake(768, 4, text).items() if not k.startswith(U)})
    assert detect(shapes, name=f"{family}.safetensors").family == family


def test_bundled_config_folders_are_complete_and_weight_free():
    for family, (pipeline_class, encoders) in FAMILIES.items():
        folder = CONFIGS_DIR / family
        index = json.loads((folder / "model_index.json").read_text())
        assert index["_class_name"] == pipeline_class
        assert index.get("safety_checker", [None, None]) == [None, None]
        for part in ["unet/config.json", "vae/config.json", "text_encoder/config.json",
                     "scheduler/scheduler_config.json"] + (["text_encoder_2/config.json"] if encoders == 2 else []):
            assert (folder / part).is_file(), f"{family}/{part}"
        assert not [p for p in folder.rglob("*") if p.suffix in (".safetensors", ".bin", ".ckpt")]
    v = json.loads((CONFIGS_DIR / "sd2-v/scheduler/scheduler_config.json").read_text())
    assert v["prediction_type"] == "v_prediction"
    assert json.loads((CONFIGS_DIR / "sd2/scheduler/scheduler_config.json").read_text())["prediction_type"] == "epsilon"


def test_probe_file_reads_a_real_safetensors_header(tmp_path):
    from safetensors.torch import save_file

    tensors = {k: torch.zeros(v, dtype=torch.float16) for k, v in fake(2048, 9, "sdxl").items()}
    path = tmp_path / "xl-inpaint.safetensors"
    save_file(tensors, str(path))
    assert probe_file(path).family == "sdxl-inpaint"
    (tmp_path / "odd.yaml").write_text('parameterization: "v"\n')
    save_file({k: torch.zeros(v, dtype=torch.float16) for k, v in fake(1024, 4, "sd2").items()},
              str(tmp_path / "odd.safetensors"))
    assert probe_file(tmp_path / "odd.safetensors").family == "sd2-v"


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_bundled_configs_build_their_components(family):
    """Every component config is read by its own class (on the meta device: shapes only, no weights)."""
    import diffusers
    import transformers

    folder = CONFIGS_DIR / family
    index = json.loads((folder / "model_index.json").read_text())
    built = {}
    with torch.device("meta"):
        for name, value in index.items():
            if name.startswith("_") or not isinstance(value, list) or value[0] is None or "tokenizer" in name:
                continue
            library, class_name = value
            cls = getattr(diffusers if library == "diffusers" else transformers, class_name)
            if library == "transformers":
                built[name] = cls(transformers.CLIPTextConfig.from_pretrained(folder / name))
            elif name != "scheduler":
                built[name] = cls.from_config(cls.load_config(folder / name))
    scheduler_cls = getattr(diffusers, index["scheduler"][1])  # schedulers compute real tensors: not on meta
    built["scheduler"] = scheduler_cls.from_config(scheduler_cls.load_config(folder / "scheduler"))
    assert built["unet"].config.in_channels == (9 if "inpaint" in family else 4)
    assert built["scheduler"].config.beta_schedule == "scaled_linear"
    if FAMILIES[family][1] == 1:
        assert built["unet"].config.cross_attention_dim == built["text_encoder"].config.hidden_size
    else:
        assert type(built["text_encoder_2"]).__name__ == "CLIPTextModelWithProjection"
        width = built["text_encoder"].config.hidden_size + built["text_encoder_2"].config.hidden_size
        assert width == built["unet"].config.cross_attention_dim == 2048
