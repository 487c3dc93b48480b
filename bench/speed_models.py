"""Random-weight models of the real SD1.5 / SDXL shapes (and the tiny one) for bench/speed.py.

The arithmetic of an image does not depend on weight values, so speed is measured on random
weights. UNet and VAE are built on the meta device and filled in place (seconds instead of the
minutes torch.nn.init takes for 2.6 B parameters on a small CPU). Configs come from sdui's bundled
folders (`sdui/models/configs/sd1`, `.../sdxl`) when present, else from the copies below.
Imports only torch, diffusers and transformers.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

CONFIGS_DIR = Path(__file__).resolve().parent.parent / "sdui" / "models" / "configs"

SD_SCHEDULER = {
    "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "num_train_timesteps": 1000,
    "steps_offset": 1, "timestep_spacing": "leading", "prediction_type": "epsilon",
}
SD15_UNET = {
    "sample_size": 64, "in_channels": 4, "out_channels": 4, "layers_per_block": 2,
    "block_out_channels": [320, 640, 1280, 1280], "cross_attention_dim": 768, "attention_head_dim": 8,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
}
SDXL_UNET = {
    "sample_size": 128, "in_channels": 4, "out_channels": 4, "layers_per_block": 2,
    "block_out_channels": [320, 640, 1280], "cross_attention_dim": 2048, "attention_head_dim": [5, 10, 20],
    "transformer_layers_per_block": [1, 2, 10], "use_linear_projection": True,
    "addition_embed_type": "text_time", "addition_time_embed_dim": 256,
    "projection_class_embeddings_input_dim": 2816,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
}
SD_VAE = {
    "in_channels": 3, "out_channels": 3, "latent_channels": 4, "layers_per_block": 2, "sample_size": 512,
    "block_out_channels": [128, 256, 512, 512], "scaling_factor": 0.18215,
    "down_block_types": ["DownEncoderBlock2D"] * 4, "up_block_types": ["UpDecoderBlock2D"] * 4,
}
SDXL_VAE = {**SD_VAE, "sample_size": 1024, "scaling_factor": 0.13025, "force_upcast": True}
CLIP_L = {"hidden_size": 768, "intermediate_size": 3072, "num_attention_heads": 12, "num_hidden_layers": 12,
          "projection_dim": 768, "hidden_act": "quick_gelu"}
CLIP_BIGG = {"hidden_size": 1280, "intermediate_size": 5120, "num_attention_heads": 20, "num_hidden_layers": 32,
             "projection_dim": 1280, "hidden_act": "gelu"}


@dataclass(frozen=True)
class Shape:
    """One model family as the benchmark runs it."""

    name: str
    family_dir: str  # folder under sdui/models/configs
    size: int  # image side in pixels
    unet: dict
    vae: dict
    text_encoders: tuple[dict, ...]

    @property
    def is_sdxl(self) -> bool:
        return self.unet.get("addition_embed_type") == "text_time"


SHAPES = {
    "sd15": Shape("sd15", "sd1", 512, SD15_UNET, SD_VAE, (CLIP_L,)),
    "sdxl": Shape("sdxl", "sdxl", 1024, SDXL_UNET, SDXL_VAE, (CLIP_L, CLIP_BIGG)),
}


def _bundled(shape: Shape, component: str, fallback: dict) -> tuple[dict, str]:
    path = CONFIGS_DIR / shape.family_dir / component / "config.json"
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8")), str(path.relative_to(CONFIGS_DIR.parent.parent.parent))
    return dict(fallback), "embedded"


def config_sources(shape: Shape) -> dict[str, str]:
    """Where each component's config came from (recorded in the JSON lines)."""
    return {c: _bundled(shape, c, {})[1] for c in ("unet", "vae")}


@torch.no_grad()
def random_fill_(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Fill every parameter in place: N(0, 1/fan_in) for weights, 0 for biases, 1 for norm scales."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    for name, p in module.named_parameters():
        if p.ndim >= 2:
            fan_in = math.prod(p.shape[1:])
            values = torch.randn(p.shape, generator=gen, dtype=torch.float32) / math.sqrt(fan_in)
            p.copy_(values)
        elif name.endswith("bias"):
            p.zero_()
        else:
            p.fill_(1.0)
    return module


def _meta_then_fill(cls: Any, config: dict, device: torch.device, dtype: torch.dtype) -> Any:
    with torch.device("meta"):
        model = cls.from_config(config)
    model = model.to_empty(device="cpu")
    random_fill_(model)
    return model.to(device=device, dtype=dtype).eval()


def build_unet(shape: Shape, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32):
    """A random UNet2DConditionModel of the shape's real architecture."""
    from diffusers import UNet2DConditionModel

    return _meta_then_fill(UNet2DConditionModel, _bundled(shape, "unet", shape.unet)[0], torch.device(device), dtype)


def build_vae(shape: Shape, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32):
    """A random AutoencoderKL of the shape's real architecture."""
    from diffusers import AutoencoderKL

    return _meta_then_fill(AutoencoderKL, _bundled(shape, "vae", shape.vae)[0], torch.device(device), dtype)


def meta_unet(shape: Shape):
    """The UNet on the meta device: FLOP counting without memory or time."""
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):
        return UNet2DConditionModel.from_config(_bundled(shape, "unet", shape.unet)[0]).eval()


def meta_vae(shape: Shape):
    """The VAE on the meta device."""
    from diffusers import AutoencoderKL

    with torch.device("meta"):
        return AutoencoderKL.from_config(_bundled(shape, "vae", shape.vae)[0]).eval()


def _text_encoder(shape: Shape, index: int, device: torch.device, dtype: torch.dtype):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    component = "text_encoder" if index == 0 else "text_encoder_2"
    path = CONFIGS_DIR / shape.family_dir / component / "config.json"
    common = {"vocab_size": 49408, "max_position_embeddings": 77, "bos_token_id": 49406, "eos_token_id": 49407,
              "pad_token_id": 49407}
    config = CLIPTextConfig.from_json_file(str(path)) if path.is_file() else CLIPTextConfig(
        **common, **shape.text_encoders[index])
    cls = CLIPTextModelWithProjection if index == 1 else CLIPTextModel
    torch.manual_seed(index)
    return cls(config).to(device=device, dtype=dtype).eval()


def build_pipeline(shape_name: str, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32):
    """A stock diffusers pipeline (SD or SDXL, or sdui's tiny demo) with random weights on `device`."""
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline, StableDiffusionXLPipeline

    device = torch.device(device)
    if shape_name == "tiny":
        from sdui.models.tiny import build_tiny_pipeline

        pipe = build_tiny_pipeline().to(device=device, dtype=dtype)
        pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)  # as the Engine's "Euler"
        return pipe

    from sdui.models.tokenizer import load_tokenizer

    shape = SHAPES[shape_name]
    parts = {
        "unet": build_unet(shape, device, dtype), "vae": build_vae(shape, device, dtype),
        "text_encoder": _text_encoder(shape, 0, device, dtype), "tokenizer": load_tokenizer(),
        "scheduler": EulerDiscreteScheduler.from_config(SD_SCHEDULER),
    }
    if shape.is_sdxl:
        return StableDiffusionXLPipeline(**parts, text_encoder_2=_text_encoder(shape, 1, device, dtype),
                                         tokenizer_2=load_tokenizer(pad_token="!"))
    return StableDiffusionPipeline(**parts, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)


def unet_inputs(unet: Any, size: int, batch: int, device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
    """Inputs of one denoising step with CFG (2 x batch latents) for `unet` at `size` pixels."""
    cfg = unet.config
    gen = torch.Generator(device="cpu").manual_seed(1)
    n = 2 * batch
    side = size // 8
    kwargs: dict[str, Any] = {
        "sample": torch.randn(n, cfg.in_channels, side, side, generator=gen).to(device, dtype),
        "timestep": torch.tensor(500, device=device),
        "encoder_hidden_states": torch.randn(n, 77, cfg.cross_attention_dim, generator=gen).to(device, dtype),
    }
    if cfg.addition_embed_type == "text_time":
        pooled = cfg.projection_class_embeddings_input_dim - 6 * cfg.addition_time_embed_dim
        time_ids = torch.tensor([size, size, 0, 0, size, size], dtype=torch.float32).repeat(n, 1)
        kwargs["added_cond_kwargs"] = {"text_embeds": torch.randn(n, pooled, generator=gen).to(device, dtype),
                                       "time_ids": time_ids.to(device, dtype)}
    return kwargs
