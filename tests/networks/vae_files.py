"""Writers of tiny VAE files in each real format (A1111 LDM .safetensors/.pt, diffusers folders), for any test.

The VAEs have the tiny model's architecture (4 levels: 32, 64, 64, 64; 4 latent channels): `sd1_vae()` is the tiny
SD1 model's own, `sdxl_vae()` the tiny SDXL pipeline's (same shapes, other weights and scaling factor: the real
SD1-vs-SDXL situation), `finetuned(...)` a same-family VAE (like ft-mse: SD1's encoder, another decoder).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch
from diffusers import AutoencoderKL

from sdui.models.layout import vae_to_ldm

SD1_ARCHITECTURE = "stable-diffusion-v1/vae"
SDXL_ARCHITECTURE = "stable-diffusion-xl-v1-base/vae"


def sd1_vae() -> AutoencoderKL:
    """The tiny SD1 model's VAE (scaling factor 0.18215)."""
    from sdui.models.tiny import build_tiny_pipeline

    return build_tiny_pipeline().vae.eval()


def sdxl_vae() -> AutoencoderKL:
    """The tiny SDXL pipeline's VAE: the same architecture, other random weights, scaling factor 0.13025."""
    from tests.engine.conftest import build_tiny_sdxl

    return build_tiny_sdxl().vae.eval()


def wide_latent_vae() -> AutoencoderKL:
    """A tiny VAE with 16 latent channels and no quant convs, shaped like an SD3/Flux VAE."""
    torch.manual_seed(0)
    return AutoencoderKL(block_out_channels=(32, 64, 64, 64), down_block_types=("DownEncoderBlock2D",) * 4,
                         up_block_types=("UpDecoderBlock2D",) * 4, latent_channels=16, layers_per_block=1,
                         norm_num_groups=32, use_quant_conv=False, use_post_quant_conv=False,
                         scaling_factor=1.5305).eval()


def finetuned(vae: AutoencoderKL, part: str = "decoder", noise: float = 0.05, seed: int = 1) -> AutoencoderKL:
    """A copy of `vae` whose `part` ("decoder" or "encoder") weights got noise of `noise` x each tensor's std."""
    tuned = copy.deepcopy(vae)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in getattr(tuned, part).parameters():
            scale = param.std() if param.numel() > 1 else param.abs()
            param.add_(torch.randn(param.shape, generator=generator) * noise * scale)
    return tuned


def ldm_state_dict(vae: AutoencoderKL, prefix: str = "") -> dict[str, torch.Tensor]:
    """The VAE's weights under A1111's LDM names (`encoder.down.0.block.0.conv1.weight`), after `prefix`."""
    sd = vae_to_ldm(vae.state_dict(), len(vae.config.block_out_channels))
    return {prefix + k.removeprefix("first_stage_model."): v.detach().clone().contiguous() for k, v in sd.items()}


def write_ldm_safetensors(vae: AutoencoderKL, path: Path, metadata: dict[str, str] | None = None,
                          dtype: torch.dtype | None = None) -> Path:
    """An A1111 VAE .safetensors (LDM keys, no prefix), with optional metadata such as `modelspec.architecture`."""
    from safetensors.torch import save_file

    sd = ldm_state_dict(vae)
    if dtype is not None:
        sd = {k: v.to(dtype) for k, v in sd.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(sd, str(path), metadata=metadata)
    return path


def write_ldm_pickle(vae: AutoencoderKL, path: Path, wrapped: bool = False) -> Path:
    """An A1111 VAE .pt/.ckpt: a plain LDM state dict, or when `wrapped` a Lightning-style
    `{"state_dict": {first_stage_model.*, loss.*, model_ema.*}, "global_step": ...}` as training leaves it."""
    if wrapped:
        sd = ldm_state_dict(vae, "first_stage_model.")
        sd.update({"loss.logvar": torch.zeros(()), "loss.discriminator.main.0.weight": torch.ones(8, 3, 4, 4),
                   "model_ema.decay": torch.tensor(0.9999), "model_ema.num_updates": torch.tensor(5)})
        payload: dict = {"state_dict": sd, "global_step": 1000, "epoch": 3}
    else:
        payload = ldm_state_dict(vae)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, str(path))
    return path


def write_diffusers_folder(vae: AutoencoderKL, path: Path, **config: object) -> Path:
    """A diffusers VAE folder (config.json + diffusion_pytorch_model.safetensors); `config` changes config.json keys,
    a None removes one (e.g. `scaling_factor=None`: diffusers' default applies, as in many real folders)."""
    vae.save_pretrained(path, safe_serialization=True)
    if config:
        config_file = path / "config.json"
        saved = json.loads(config_file.read_text())
        for key, value in config.items():
            saved.pop(key, None)
            if value is not None:
                saved[key] = value
        config_file.write_text(json.dumps(saved, indent=2))
    return path


def same_weights(a: AutoencoderKL, b: AutoencoderKL) -> bool:
    """Whether two VAEs hold bit-identical tensors under the same names."""
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k].cpu(), sb[k].cpu().to(sa[k].dtype)) for k in sa)
