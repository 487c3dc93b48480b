"""Diffusers -> original (LDM) key layout for SD1-style pipelines: writes A1111-style single files.

The inverse of diffusers' `convert_ldm_*_checkpoint`; used by `convert_to_single_file`, the tests' round
trips and the load benchmark. Works for any UNet depth (the tiny model has 2 levels, SD1.5 has 4).
"""

from __future__ import annotations

from pathlib import Path

import torch

_UNET_RESNET = (("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"),
                ("conv2", "out_layers.3"), ("time_emb_proj", "emb_layers.1"), ("conv_shortcut", "skip_connection"))
_VAE_ATTN = (("group_norm.", "norm."), ("to_q.", "q."), ("to_k.", "k."), ("to_v.", "v."), ("to_out.0.", "proj_out."))


def _sub(text: str, pairs) -> str:
    for new, old in pairs:
        text = text.replace(new, old)
    return text


def unet_to_ldm(sd: dict[str, torch.Tensor], layers_per_block: int) -> dict[str, torch.Tensor]:
    """Rename a diffusers UNet2DConditionModel state dict to `model.diffusion_model.*` keys."""
    fixed = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
             "add_embedding.linear_1": "label_emb.0.0", "add_embedding.linear_2": "label_emb.0.2",
             "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2"}
    step = layers_per_block + 1
    out = {}
    for key, value in sd.items():
        parts = key.split(".")
        n = 2 if parts[0] in ("time_embedding", "add_embedding") else 1
        if ".".join(parts[:n]) in fixed:
            new = fixed[".".join(parts[:n])] + "." + ".".join(parts[n:])
        elif parts[0] == "down_blocks":
            i, kind, j, rest = int(parts[1]), parts[2], int(parts[3]), ".".join(parts[4:])
            if kind == "downsamplers":
                new = f"input_blocks.{(i + 1) * step}.0.op.{parts[-1]}"
            else:
                rest = _sub(rest, _UNET_RESNET) if kind == "resnets" else rest
                new = f"input_blocks.{1 + i * step + j}.{0 if kind == 'resnets' else 1}.{rest}"
        elif parts[0] == "mid_block":
            kind, j, rest = parts[1], int(parts[2]), ".".join(parts[3:])
            new = f"middle_block.{2 * j if kind == 'resnets' else 1}.{_sub(rest, _UNET_RESNET) if kind == 'resnets' else rest}"
        elif parts[0] == "up_blocks":
            i, kind, j, rest = int(parts[1]), parts[2], int(parts[3]), ".".join(parts[4:])
            if kind == "upsamplers":
                has_attn = any(k.startswith(f"up_blocks.{i}.attentions.") for k in sd)
                new = f"output_blocks.{i * step + layers_per_block}.{2 if has_attn else 1}.conv.{parts[-1]}"
            else:
                rest = _sub(rest, _UNET_RESNET) if kind == "resnets" else rest
                new = f"output_blocks.{i * step + j}.{0 if kind == 'resnets' else 1}.{rest}"
        else:
            raise ValueError(f"unet key {key!r} has no original-layout equivalent")
        out["model.diffusion_model." + new] = value
    return out


def vae_to_ldm(sd: dict[str, torch.Tensor], levels: int) -> dict[str, torch.Tensor]:
    """Rename a diffusers AutoencoderKL state dict to `first_stage_model.*` keys (attention as 1x1 convs)."""
    out = {}
    for key, value in sd.items():
        new = key.replace("conv_norm_out", "norm_out").replace("conv_shortcut", "nin_shortcut")
        parts = new.split(".")
        if parts[1] == "down_blocks":
            i, kind = parts[2], parts[3]
            new = (f"encoder.down.{i}.downsample.conv.{parts[-1]}" if kind == "downsamplers"
                   else f"encoder.down.{i}.block.{parts[4]}.{'.'.join(parts[5:])}")
        elif parts[1] == "up_blocks":
            i, kind = levels - 1 - int(parts[2]), parts[3]
            new = (f"decoder.up.{i}.upsample.conv.{parts[-1]}" if kind == "upsamplers"
                   else f"decoder.up.{i}.block.{parts[4]}.{'.'.join(parts[5:])}")
        elif parts[1] == "mid_block":
            if parts[2] == "resnets":
                new = f"{parts[0]}.mid.block_{int(parts[3]) + 1}.{'.'.join(parts[4:])}"
            else:
                new = f"{parts[0]}.mid.attn_1.{_sub('.'.join(parts[4:]), _VAE_ATTN)}"
                if value.ndim == 2:
                    value = value[:, :, None, None]
        out["first_stage_model." + new] = value
    return out


def pipeline_to_ldm(pipe) -> dict[str, torch.Tensor]:
    """One original-layout state dict (UNet, VAE, CLIP text encoder) from an SD1-style diffusers pipeline."""
    sd = unet_to_ldm(pipe.unet.state_dict(), pipe.unet.config.layers_per_block)
    sd.update(vae_to_ldm(pipe.vae.state_dict(), len(pipe.vae.config.block_out_channels)))
    for key, value in pipe.text_encoder.state_dict().items():
        # transformers 5 drops the `text_model.` level from CLIPTextModel's keys; the original layout has it.
        key = key if key.startswith("text_model.") else "text_model." + key
        sd["cond_stage_model.transformer." + key] = value
    return {k: v.detach().contiguous() for k, v in sd.items()}


def save_single_file(pipe, path: Path, dtype: torch.dtype | None = None) -> Path:
    """Write `pipe` as an original-layout single file: .safetensors, or a plain torch pickle otherwise."""
    sd = pipeline_to_ldm(pipe)
    if dtype is not None:
        sd = {k: v.to(dtype) for k, v in sd.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(sd, str(path))
    else:
        torch.save({"state_dict": sd}, str(path))
    return path
