"""The tiny random-weight demo models (SD1, SD2, SDXL, SDXL refiner shapes), built offline and deterministically."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import torch

from sdui.models.tokenizer import MAX_LENGTH, VOCAB_SIZE, load_tokenizer

DEMO_NAME = "sdui-tiny-demo"
INIT_SEED = 0
FAMILIES = ("sd1", "sd2", "sdxl", "sdxl-refiner")
INPAINT_FAMILIES = ("sd1", "sd2", "sdxl")
# The UNet's cross-attention width tells a tiny model from a real one (real: SD1 768, SD2 1024, SDXL 2048, refiner
# 1280; tiny: sd1/sd2 32, sdxl 32 + 48 = 80, refiner 48). SDXL's two encoders must differ in width: diffusers'
# single-file loader gives text_encoder_2 the CLIP-L weights when the widths match.
TINY_CROSS_ATTENTION_DIM = 32
TINY_CLIP_G_WIDTH = 48
TINY_CLIP_G_PROJECTION = 32
TINY_TIME_EMBED_DIM = 8
# The bundled weight-free config folders (configs/<name>) of the tiny models, by (family, in_channels).
CONFIG_NAMES = {("sd1", 4): "sdui-tiny", ("sd2", 4): "sdui-tiny-sd2", ("sd2", 9): "sdui-tiny-sd2-inpaint",
                ("sdxl", 4): "sdui-tiny-sdxl", ("sdxl", 9): "sdui-tiny-sdxl-inpaint",
                ("sdxl-refiner", 4): "sdui-tiny-sdxl-refiner"}
# OpenCLIP-converted text encoders (SD2's ViT-H, SDXL's both) carry these ids in their configs on the hub.
_HUB_CLIP_IDS = {"bos_token_id": 0, "eos_token_id": 2, "pad_token_id": 1}

SD_SCHEDULER_CONFIG = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "clip_sample": False,
    "prediction_type": "epsilon",
    "timestep_spacing": "leading",
}
SDXL_SCHEDULER_CONFIG = {**SD_SCHEDULER_CONFIG, "interpolation_type": "linear", "sample_max_value": 1.0,
                         "use_karras_sigmas": False}


def build_tiny_pipeline(in_channels: int = 4, family: str = "sd1"):
    """A diffusers pipeline of tiny random weights in the shape of `family`; same seed, same weights, on any machine.

    `family` is one of "sd1", "sd2", "sdxl", "sdxl-refiner". `in_channels=9` gives an inpainting-shaped UNet
    (latents + mask + masked-image latents) for sd1, sd2 and sdxl; the pipeline class stays the txt2img one.
    """
    if family not in FAMILIES:
        raise ValueError(f"`family` must be one of {', '.join(FAMILIES)}, got {family!r}")
    if in_channels not in (4, 9) or (in_channels == 9 and family not in INPAINT_FAMILIES):
        raise ValueError(f"`in_channels` must be 4, or 9 for {', '.join(INPAINT_FAMILIES)}; got {in_channels} "
                         f"for {family}")
    if family == "sd1":
        return _sd1(in_channels)
    if family == "sd2":
        return _sd2(in_channels)
    return _sdxl(in_channels, refiner=family == "sdxl-refiner")


def _sd1(in_channels: int):
    from diffusers import PNDMScheduler, StableDiffusionPipeline
    from transformers import CLIPTextModel

    unet = _unet(in_channels, cross_attention_dim=TINY_CROSS_ATTENTION_DIM, attention_head_dim=8)
    vae = _vae(scaling_factor=0.18215)
    text_encoder = _clip(CLIPTextModel, TINY_CROSS_ATTENTION_DIM, "quick_gelu",
                         bos_token_id=49406, eos_token_id=49407, pad_token_id=49407)
    return StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=load_tokenizer(), unet=unet,
                                   scheduler=PNDMScheduler.from_config(SD_SCHEDULER_CONFIG), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)


def _sd2(in_channels: int):
    from diffusers import PNDMScheduler, StableDiffusionPipeline
    from transformers import CLIPTextModel

    unet = _unet(in_channels, cross_attention_dim=TINY_CROSS_ATTENTION_DIM, attention_head_dim=(2, 4),
                 use_linear_projection=True)
    vae = _vae(scaling_factor=0.18215)
    text_encoder = _clip(CLIPTextModel, TINY_CROSS_ATTENTION_DIM, "gelu", **_HUB_CLIP_IDS)
    return StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=load_tokenizer("!"), unet=unet,
                                   scheduler=PNDMScheduler.from_config(SD_SCHEDULER_CONFIG), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)


def _sdxl(in_channels: int, refiner: bool):
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLImg2ImgPipeline, StableDiffusionXLPipeline
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    # Time ids: original size, crop and target size (6), or for the refiner original size, crop and aesthetic score (5).
    time_ids = 5 if refiner else 6
    unet = _unet(in_channels, cross_attention_dim=TINY_CLIP_G_WIDTH + (0 if refiner else TINY_CROSS_ATTENTION_DIM),
                 attention_head_dim=(2, 4), use_linear_projection=True,
                 transformer_layers_per_block=2 if refiner else (1, 2), addition_embed_type="text_time",
                 addition_time_embed_dim=TINY_TIME_EMBED_DIM,
                 projection_class_embeddings_input_dim=TINY_CLIP_G_PROJECTION + time_ids * TINY_TIME_EMBED_DIM)
    vae = _vae(scaling_factor=0.13025, force_upcast=True)
    text_encoder = None if refiner else _clip(CLIPTextModel, TINY_CROSS_ATTENTION_DIM, "quick_gelu", **_HUB_CLIP_IDS)
    text_encoder_2 = _clip(CLIPTextModelWithProjection, TINY_CLIP_G_WIDTH, "gelu",
                           projection_dim=TINY_CLIP_G_PROJECTION, **_HUB_CLIP_IDS)
    parts = dict(vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2, unet=unet,
                 tokenizer=None if refiner else load_tokenizer(), tokenizer_2=load_tokenizer("!"),
                 scheduler=EulerDiscreteScheduler.from_config(SDXL_SCHEDULER_CONFIG), add_watermarker=False)
    if refiner:
        return StableDiffusionXLImg2ImgPipeline(**parts, requires_aesthetics_score=True,
                                                force_zeros_for_empty_prompt=False)
    return StableDiffusionXLPipeline(**parts)


def _unet(in_channels: int, **family_args):
    from diffusers import UNet2DConditionModel

    torch.manual_seed(INIT_SEED)
    return UNet2DConditionModel(
        sample_size=64,
        in_channels=in_channels,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=2,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        norm_num_groups=32,
        **family_args,
    ).eval()


def _vae(**family_args):
    from diffusers import AutoencoderKL

    torch.manual_seed(INIT_SEED)
    # Four levels so the latent is 1/8 of the image as in real SD (two levels make 256² take minutes).
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        block_out_channels=(32, 64, 64, 64),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=32,
        sample_size=512,
        **family_args,
    ).eval()


def _clip(cls, hidden: int, hidden_act: str, projection_dim: int = 32, **token_ids):
    from transformers import CLIPTextConfig

    torch.manual_seed(INIT_SEED)
    model = cls(CLIPTextConfig(vocab_size=VOCAB_SIZE, hidden_size=hidden, intermediate_size=37, num_attention_heads=4,
                               num_hidden_layers=2, max_position_embeddings=MAX_LENGTH, projection_dim=projection_dim,
                               hidden_act=hidden_act, **token_ids))
    # A real CLIP's last LayerNorm has a bias, so its outputs' mean is far from 0; a fresh one has none, and
    # A1111's emphasis (scale by the weights, then restore the mean) would divide by ~1e-8 and overflow.
    with torch.no_grad():
        getattr(model, "text_model", model).final_layer_norm.bias.copy_(0.5 * torch.randn(hidden) + 0.25)
    return model.eval()


def save_tiny_model(target: Path, in_channels: int = 4, family: str = "sd1") -> Path:
    """Write the tiny model of `family` as a diffusers folder (safetensors weights) at `target`."""
    pipe = build_tiny_pipeline(in_channels, family)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".partial")
    pipe.save_pretrained(tmp, safe_serialization=True)
    tmp.rename(target)
    return target


def write_tiny_config_folder(target: Path, family: str = "sd1", in_channels: int = 4) -> Path:
    """Write the weight-free config folder of a tiny model (its json files, no weights, no tokenizer) at `target`.

    9-channel models are saved under their inpainting pipeline class, as the real inpainting folders are.
    `python -m sdui.models.tiny` rewrites the bundled `configs/sdui-tiny*` folders with it.
    """
    import diffusers

    pipe = build_tiny_pipeline(in_channels, family)
    if in_channels == 9:
        pipe = getattr(diffusers, "StableDiffusionXLInpaintPipeline" if family == "sdxl"
                       else "StableDiffusionInpaintPipeline").from_pipe(pipe)
    with tempfile.TemporaryDirectory() as tmp:
        pipe.save_pretrained(tmp, safe_serialization=True)
        for source in sorted(Path(tmp).rglob("*.json")):
            relative = source.relative_to(tmp)
            if not relative.parts[0].startswith("tokenizer"):
                (target / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, target / relative)
    return target


def ensure_demo_model(ckpt_dir: Path) -> Path:
    """Build `<ckpt_dir>/sdui-tiny-demo` unless it already exists; return its path."""
    target = Path(ckpt_dir) / DEMO_NAME
    if not (target / "model_index.json").exists():
        save_tiny_model(target)
    return target


if __name__ == "__main__":
    for (family_, in_channels_), name_ in CONFIG_NAMES.items():
        print(write_tiny_config_folder(Path(__file__).resolve().parent / "configs" / name_, family_, in_channels_))
