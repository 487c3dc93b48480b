"""Family detection on fake state dicts (right keys, right shapes where they matter) and the bundled configs."""

import json

import pytest
import torch

from sdui.models.errors import BrokenModel, UnrecognizedModel
from sdui.models.layout import unet_to_ldm
from sdui.models.prediction import EPSILON, V, from_name
from sdui.models.probe import CONFIGS_DIR, FAMILIES, detect, probe_file

U = "model.diffusion_model."
TEXT = {"sd1": "cond_stage_model.transformer.text_model.embeddings.position_embedding.weight",
        "sd2": "cond_stage_model.model.token_embedding.weight",
        "sdxl": "conditioner.embedders.1.model.positional_embedding",
        "refiner": "conditioner.embedders.0.model.positional_embedding"}


def fake(ctx: int, in_ch: int = 4, text: str = "sd1", vae: bool = True) -> dict:
    shapes = {U + "input_blocks.0.0.weight": (320, in_ch, 3, 3),
              U + "input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight": (640, ctx),
              U + "out.2.weight": (4, 320, 3, 3),
              TEXT[text]: (77, 768)}
    if text == "sdxl":
        shapes["conditioner.embedders.0.transformer.text_model.embeddings.position_embedding.weight"] = (77, 768)
    if text in ("sdxl", "refiner"):
        shapes[U + "label_emb.0.0.weight"] = (1280, 2816 if text == "sdxl" else 2560)
    if vae:
        shapes["first_stage_model.decoder.conv_out.weight"] = (3, 128, 3, 3)
    return shapes


@pytest.mark.parametrize("ctx,in_ch,text,family", [
    (768, 4, "sd1", "sd1"), (768, 9, "sd1", "sd1-inpaint"), (1024, 4, "sd2", "sd2"), (1024, 9, "sd2", "sd2-inpaint"),
    (2048, 4, "sdxl", "sdxl"), (2048, 9, "sdxl", "sdxl-inpaint"), (1280, 4, "refiner", "sdxl-refiner"),
    (32, 4, "sd1", "sdui-tiny"), (32, 4, "sd2", "sdui-tiny-sd2"), (32, 9, "sd2", "sdui-tiny-sd2-inpaint"),
    (80, 4, "sdxl", "sdui-tiny-sdxl"), (48, 4, "refiner", "sdui-tiny-sdxl-refiner"),
])
def test_families_from_width_channels_and_text_encoder_layout(ctx, in_ch, text, family):
    probe = detect(fake(ctx, in_ch, text), name="x.safetensors")
    assert probe.family == family
    assert probe.config_dir == CONFIGS_DIR / family


@pytest.mark.parametrize("metadata,yaml,keys,kind,zero_snr,source", [
    ({"modelspec.prediction_type": "v"}, None, (), V, False, "metadata modelspec.prediction_type"),
    ({"modelspec.prediction_type": "v_prediction"}, None, (), V, False, "metadata modelspec.prediction_type"),
    ({"modelspec.prediction_type": "epsilon"}, 'model:\n  params:\n    parameterization: "v"\n', ("v_pred",),
     EPSILON, False, "metadata modelspec.prediction_type"),
    ({"ss_v_parameterization": "True"}, None, (), V, False, "metadata ss_v_parameterization"),
    ({}, 'model:\n  params:\n    parameterization: "v"\n', (), V, False, "sibling .yaml"),
    ({}, "model:\n  params:\n    parameterization: eps\n", ("v_pred",), EPSILON, False, "sibling .yaml"),
    ({}, None, ("v_pred",), V, False, "v_pred key"),
    ({}, None, ("v_pred", "ztsnr"), V, True, "v_pred key and ztsnr key"),
    ({"modelspec.prediction_type": "v"}, None, ("ztsnr",), V, True, "metadata modelspec.prediction_type"),
])
def test_prediction_evidence_in_order(metadata, yaml, keys, kind, zero_snr, source):
    for ctx, text in ((1024, "sd2"), (2048, "sdxl"), (768, "sd1")):
        shapes = {**fake(ctx, 4, text), **{k: (0,) for k in keys}}
        prediction = detect(shapes, name="plain-768-v.safetensors", metadata=metadata, yaml_text=yaml).prediction
        assert (prediction.kind, prediction.zero_snr, prediction.source) == (kind, zero_snr, source), text


@pytest.mark.parametrize("yaml", [None, "", 'model:\n  params:\n    # parameterization: "v"\n',
                                  "model:\n  params:\n    linear_start: 0.00085\n", "{not: yaml: at all"])
def test_sd2_without_evidence_is_decided_after_loading_others_default_to_epsilon(yaml):
    assert detect(fake(1024, 4, "sd2"), name="v2-1_768-v.ckpt", yaml_text=yaml).prediction is None
    for ctx, in_ch, text in ((768, 4, "sd1"), (2048, 4, "sdxl"), (1024, 9, "sd2")):
        prediction = detect(fake(ctx, in_ch, text), name="v2-1_768-v.ckpt", yaml_text=yaml).prediction
        assert prediction.kind == EPSILON and prediction.source.startswith("the default for"), (ctx, in_ch)


@pytest.mark.parametrize("name,expected", [
    ("v2-1_768-ema-pruned.safetensors", True), ("v2-1_512-ema-pruned.safetensors", False),
    ("my-model-vpred.safetensors", True), ("my_model_v.ckpt", True), ("vivid.safetensors", False),
    ("model_v_prediction.safetensors", True),
])
def test_file_name_rule_is_the_last_resort(name, expected):
    assert from_name(name) is expected


@pytest.mark.parametrize("extra,in_ch,words", [
    ({U + "joint_blocks.0.x_block.attn.qkv.weight": (1, 1)}, 4, "Stable Diffusion 3"),
    ({"double_blocks.0.img_attn.qkv.weight": (1, 1), "single_blocks.0.linear1.weight": (1, 1)}, 4, "Flux"),
    ({"edm_mean": (1, 4, 1, 1), "edm_std": (1, 4, 1, 1)}, 4, "Playground v2.5"),
    ({"edm_vpred.sigma_max": (), "edm_vpred.sigma_min": ()}, 4, "EDM v-prediction"),
    ({U + "input_blocks.1.0.time_stack.in_layers.0.weight": (1,)}, 4, "Stable Video Diffusion"),
    ({"embedder.model.visual.proj": (1, 1), "noise_augmentor.betas": (1000,)}, 4, "unCLIP"),
    ({}, 8, "instruct-pix2pix"),
    ({"depth_model.model.pretrained.layer1.0.weight": (1,)}, 5, "depth-to-image"),
])
def test_architectures_sdui_does_not_run_are_refused_by_name(extra, in_ch, words):
    with pytest.raises(UnrecognizedModel, match=words) as info:
        detect({**fake(1024, in_ch, "sd2"), **extra}, name="odd.safetensors")
    assert "odd.safetensors" in str(info.value) and "does not run" in str(info.value)


@pytest.mark.parametrize("shapes,words", [
    ({"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": (4, 320)}, "LoRA"),
    ({"down_blocks.0.resnets.0.conv1.weight": (320, 320, 3, 3)}, "diffusers component"),
    ({"encoder.conv_in.weight": (128, 3, 3, 3)}, "VAE on its own"),
    ({"foo.bar": (1,)}, "no UNet weights"),
    (fake(768, 6, "sd1"), "6 input channels"),
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
    with pytest.raises(BrokenModel, match="no SDXL text encoder"):
        detect(fake(2048, 4, "sd1"), name="xl-with-sd1-text.ckpt")


def _meta_unet_shapes(family: str) -> dict:
    from diffusers import UNet2DConditionModel

    config = UNet2DConditionModel.load_config(CONFIGS_DIR / family / "unet")
    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(config)
    return {k: tuple(v.shape) for k, v in unet_to_ldm(unet.state_dict(), config["layers_per_block"]).items()}


@pytest.mark.parametrize("family,text", [("sd1", "sd1"), ("sd1-inpaint", "sd1"), ("sd2", "sd2"),
                                         ("sd2-inpaint", "sd2"), ("sdxl", "sdxl"), ("sdxl-inpaint", "sdxl"),
                                         ("sdxl-refiner", "refiner")])
def test_bundled_unet_configs_probe_back_to_their_family(family, text):
    shapes = _meta_unet_shapes(family)
    shapes.update({k: v for k, v in fake(768, 4, text).items() if not k.startswith(U)})
    assert (U + "label_emb.0.0.weight" in shapes) == family.startswith("sdxl")
    assert detect(shapes, name=f"{family}.safetensors").family == family


def test_bundled_config_folders_are_complete_and_weight_free():
    for family, (pipeline_class, encoders) in FAMILIES.items():
        folder = CONFIGS_DIR / family
        index = json.loads((folder / "model_index.json").read_text())
        assert index["_class_name"] == pipeline_class
        assert index.get("safety_checker", [None, None]) == [None, None]
        encoder_parts = {1: ["text_encoder/config.json"], 2: ["text_encoder/config.json", "text_encoder_2/config.json"]}
        if "refiner" in family:
            encoder_parts[1] = ["text_encoder_2/config.json"]
        parts = ["unet/config.json", "vae/config.json", "scheduler/scheduler_config.json"] + encoder_parts[encoders]
        for part in parts:
            assert (folder / part).is_file(), f"{family}/{part}"
        assert not [p for p in folder.rglob("*") if p.suffix in (".safetensors", ".bin", ".ckpt")]
        scheduler = json.loads((folder / "scheduler/scheduler_config.json").read_text())
        assert scheduler.get("prediction_type", "epsilon") == "epsilon", family  # v-prediction: per file, from evidence
    assert sorted(p.name for p in CONFIGS_DIR.iterdir() if p.is_dir()) == sorted([*FAMILIES, "clip_tokenizer"])


def test_probe_file_reads_a_real_safetensors_header(tmp_path):
    from safetensors.torch import save_file

    tensors = {k: torch.zeros(v, dtype=torch.float16) for k, v in fake(2048, 9, "sdxl").items()}
    path = tmp_path / "xl-inpaint.safetensors"
    save_file(tensors, str(path))
    assert probe_file(path).family == "sdxl-inpaint"
    (tmp_path / "odd.yaml").write_text('model:\n  params:\n    parameterization: "v"\n')
    save_file({k: torch.zeros(v, dtype=torch.float16) for k, v in fake(1024, 4, "sd2").items()},
              str(tmp_path / "odd.safetensors"))
    probe = probe_file(tmp_path / "odd.safetensors")
    assert (probe.family, probe.prediction.kind, probe.prediction.source) == ("sd2", V, "sibling .yaml")


def build_on_meta(family: str) -> tuple[dict, dict]:
    """A bundled config folder's model_index and its components, each built by its own class on the meta device."""
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
    return index, built


@pytest.mark.parametrize("family", ["sd2-inpaint", "sdxl-refiner"])
def test_the_new_real_configs_are_the_published_models(family):
    index, built = build_on_meta(family)
    unet = built["unet"]
    if family == "sd2-inpaint":
        assert index["_class_name"] == "StableDiffusionInpaintPipeline"
        assert unet.config.in_channels == 9 and unet.config.cross_attention_dim == 1024
        assert built["text_encoder"].config.hidden_size == 1024
        assert built["scheduler"].config.prediction_type == "epsilon"
    else:
        assert index["_class_name"] == "StableDiffusionXLImg2ImgPipeline" and index["text_encoder"] == [None, None]
        assert index["requires_aesthetics_score"] is True and index["force_zeros_for_empty_prompt"] is False
        te2 = built["text_encoder_2"]
        assert type(te2).__name__ == "CLIPTextModelWithProjection" and te2.config.num_hidden_layers == 32
        assert unet.config.cross_attention_dim == te2.config.hidden_size == te2.config.projection_dim == 1280
        assert unet.config.projection_class_embeddings_input_dim == 1280 + 5 * unet.config.addition_time_embed_dim
        assert 2.2e9 < sum(p.numel() for p in unet.parameters()) < 2.4e9  # the real refiner UNet: ~2.3 billion
        assert type(built["scheduler"]).__name__ == "EulerDiscreteScheduler"


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_bundled_configs_build_their_components(family):
    """Every component config is read by its own class (on the meta device: shapes only, no weights)."""
    index, built = build_on_meta(family)
    assert built["unet"].config.in_channels == (9 if "inpaint" in family else 4)
    assert built["scheduler"].config.beta_schedule == "scaled_linear"
    encoders = [built[n] for n in ("text_encoder", "text_encoder_2") if n in built]
    assert len(encoders) == FAMILIES[family][1]
    assert built["unet"].config.cross_attention_dim == sum(e.config.hidden_size for e in encoders)
    if "sdxl" in family:
        assert type(built["text_encoder_2"]).__name__ == "CLIPTextModelWithProjection"
