"""The tiny random-weight SD1.x-shaped demo model: built offline and deterministically.

It is what the first start uses when `models/` is empty, and what every test runs on. It is saved as
an ordinary diffusers folder so it goes through exactly the same loading path as a real checkpoint.
Its images look like noise: the weights are random.
"""

from __future__ import annotations

from pathlib import Path

import torch

from sdui.models.tokenizer import MAX_LENGTH, VOCAB_SIZE, load_tokenizer

DEMO_NAME = "sdui-tiny-demo"
INIT_SEED = 0
# The UNet's cross-attention width: how probing recognises the tiny family (SD1 768, SD2 1024, SDXL 2048).
TINY_CROSS_ATTENTION_DIM = 32

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


def build_tiny_pipeline(in_channels: int = 4):
    """A StableDiffusionPipeline of tiny random weights; same seed, same weights, on any machine.

    `in_channels=9` gives an inpainting-shaped UNet (latents + mask + masked-image latents).
    """
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(INIT_SEED)
    unet = UNet2DConditionModel(
        sample_size=64,
        in_channels=in_channels,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=2,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=TINY_CROSS_ATTENTION_DIM,
        attention_head_dim=8,
        norm_num_groups=32,
    )
    torch.manual_seed(INIT_SEED)
    # Four levels so the latent is 1/8 of the image as in real SD (two levels make 256² take minutes).
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        block_out_channels=(32, 64, 64, 64),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=32,
        sample_size=512,
        scaling_factor=0.18215,
    )
    torch.manual_seed(INIT_SEED)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=VOCAB_SIZE,
        hidden_size=32,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=2,
        max_position_embeddings=MAX_LENGTH,
        projection_dim=32,
        hidden_act="quick_gelu",
        bos_token_id=49406,
        eos_token_id=49407,
        pad_token_id=49407,
    ))
    # A real CLIP's last LayerNorm has a bias, so its outputs' mean is far from 0; a fresh one has none, and
    # A1111's emphasis (scale by the weights, then restore the mean) would divide by ~1e-8 and overflow.
    with torch.no_grad():
        getattr(text_encoder, "text_model", text_encoder).final_layer_norm.bias.copy_(0.5 * torch.randn(32) + 0.25)
    return StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=load_tokenizer(),
        unet=unet.eval(),
        scheduler=PNDMScheduler.from_config(SD_SCHEDULER_CONFIG),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def save_tiny_model(target: Path, in_channels: int = 4) -> Path:
    """Write the tiny model as a diffusers folder (safetensors weights) at `target`."""
    pipe = build_tiny_pipeline(in_channels)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".partial")
    pipe.save_pretrained(tmp, safe_serialization=True)
    tmp.rename(target)
    return target


def ensure_demo_model(ckpt_dir: Path) -> Path:
    """Build `<ckpt_dir>/sdui-tiny-demo` unless it already exists; return its path."""
    target = Path(ckpt_dir) / DEMO_NAME
    if not (target / "model_index.json").exists():
        save_tiny_model(target)
    return target
