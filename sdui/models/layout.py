"""Diffusers -> original (LDM / A1111) single-file layout for SD1, SD2, SDXL and SDXL-refiner pipelines."""

from __future__ import annotations

import math
from pathlib import Path

import torch

_UNET_RESNET = (("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"),
                ("conv2", "out_layers.3"), ("time_emb_proj", "emb_layers.1"), ("conv_shortcut", "skip_connection"))
_OPEN_CLIP_BLOCK = (("attn.out_proj", "self_attn.out_proj"), ("ln_1", "layer_norm1"), ("ln_2", "layer_norm2"),
                    ("mlp.c_fc", "mlp.fc1"), ("mlp.c_proj", "mlp.fc2"))
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
            rest = _sub(rest, _UNET_RESNET) if kind == "resnets" else rest
            new = f"middle_block.{2 * j if kind == 'resnets' else 1}.{rest}"
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


def clip_to_ldm(sd: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """A transformers CLIP text encoder in the HF layout SD1 and SDXL's first encoder keep: `<prefix>text_model.*`."""
    # transformers 5 drops the `text_model.` level from CLIPTextModel's keys; the original layout has it.
    return {prefix + (k if k.startswith("text_model.") else "text_model." + k): v for k, v in sd.items()}


def open_clip_to_ldm(sd: dict[str, torch.Tensor], prefix: str, projection: torch.Tensor | None = None,
                     unused_last_block: bool = False) -> dict[str, torch.Tensor]:
    """A transformers CLIP text encoder in OpenCLIP's layout (SD2's ViT-H, SDXL's bigG): `<prefix>transformer.*`.

    OpenCLIP keeps q, k and v as one `in_proj` and the projection as `x @ text_projection` (so transposed).
    `projection` stands in for one the model lacks (SD2's CLIPTextModel); `unused_last_block` appends the last
    resblock SD2's files carry but never run (SD2 takes the penultimate layer; diffusers drops that block).
    """
    sd = {k.removeprefix("text_model."): v for k, v in sd.items()}
    out = {prefix + "token_embedding.weight": sd["embeddings.token_embedding.weight"],
           prefix + "positional_embedding": sd["embeddings.position_embedding.weight"],
           prefix + "ln_final.weight": sd["final_layer_norm.weight"],
           prefix + "ln_final.bias": sd["final_layer_norm.bias"]}
    layers = 1 + max(int(k.split(".")[2]) for k in sd if k.startswith("encoder.layers."))
    for i in range(layers + unused_last_block):
        # The unused block repeats the last one (copies: safetensors refuses tensors that share memory).
        src, dst, copy = f"encoder.layers.{min(i, layers - 1)}.", f"{prefix}transformer.resblocks.{i}.", i >= layers
        for part in ("weight", "bias"):
            out[dst + "attn.in_proj_" + part] = torch.cat([sd[f"{src}self_attn.{x}_proj.{part}"] for x in "qkv"])
            for new, old in _OPEN_CLIP_BLOCK:
                out[f"{dst}{new}.{part}"] = sd[f"{src}{old}.{part}"].clone() if copy else sd[f"{src}{old}.{part}"]
    proj = sd["text_projection.weight"].T if "text_projection.weight" in sd else projection
    if proj is not None:
        out[prefix + "text_projection"] = proj
    out[prefix + "logit_scale"] = torch.tensor(math.log(100.0))  # a trained CLIP's value (clamped at 100)
    return out


def text_encoder_layout(pipe) -> str:
    """Which original layout the pipeline's text encoders take: "sd1", "sd2", "sdxl" or "sdxl-refiner".

    One encoder: OpenAI's CLIP (SD1) runs quick_gelu, OpenCLIP's ViT-H (SD2) gelu.
    """
    te, te2 = getattr(pipe, "text_encoder", None), getattr(pipe, "text_encoder_2", None)
    if te2 is not None:
        return "sdxl" if te is not None else "sdxl-refiner"
    return "sd2" if te.config.hidden_act == "gelu" else "sd1"


def pipeline_to_ldm(pipe) -> dict[str, torch.Tensor]:
    """One original-layout state dict (UNet, VAE, text encoders) from a diffusers SD1, SD2 or SDXL (refiner) pipeline.

    `pipe` needs only `unet`, `vae` and `text_encoder` (and `text_encoder_2` for SDXL) attributes.
    """
    sd = unet_to_ldm(pipe.unet.state_dict(), pipe.unet.config.layers_per_block)
    sd.update(vae_to_ldm(pipe.vae.state_dict(), len(pipe.vae.config.block_out_channels)))
    layout = text_encoder_layout(pipe)
    if layout == "sd1":
        sd.update(clip_to_ldm(pipe.text_encoder.state_dict(), "cond_stage_model.transformer."))
    elif layout == "sd2":
        # ViT-H's projection is square (its config's projection_dim 512 is wrong, and unused): width x width.
        width = pipe.text_encoder.config.hidden_size
        sd.update(open_clip_to_ldm(pipe.text_encoder.state_dict(), "cond_stage_model.model.", unused_last_block=True,
                                   projection=torch.eye(width)))
    else:
        g_prefix = "conditioner.embedders.0.model." if layout == "sdxl-refiner" else "conditioner.embedders.1.model."
        if layout == "sdxl":
            sd.update(clip_to_ldm(pipe.text_encoder.state_dict(), "conditioner.embedders.0.transformer."))
        sd.update(open_clip_to_ldm(pipe.text_encoder_2.state_dict(), g_prefix))
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


def write_tiny_checkpoint(path: Path, family: str = "sd1", in_channels: int = 4,
                          dtype: torch.dtype | None = None) -> Path:
    """Build the tiny model of `family` (see `tiny.build_tiny_pipeline`) and save it as a single file at `path`."""
    from sdui.models.tiny import build_tiny_pipeline

    return save_single_file(build_tiny_pipeline(in_channels, family), Path(path), dtype=dtype)
