"""The names LoRA files give a pipeline's layers: kohya (diffusers- or LDM-style), PEFT dotted, ± `text_model.`.

`layer_index` maps every such name to the module (and, with fused QKV, the rows of it) whose weight it changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

from sdui.models.layout import unet_to_ldm

UNET = "unet"
TEXT_ENCODERS = ("text_encoder", "text_encoder_2")
# File prefixes per component: kohya (names with `_` for `.`) and dotted (PEFT / diffusers / LyCORIS).
KOHYA_PREFIXES = {UNET: ("lora_unet_",), "text_encoder": ("lora_te_", "lora_te1_"), "text_encoder_2": ("lora_te2_",)}
DOTTED_PREFIXES = {UNET: ("unet.", ""), "text_encoder": ("text_encoder.",), "text_encoder_2": ("text_encoder_2.",)}
_LDM_TOP = {"time_embedding", "add_embedding", "conv_in", "conv_norm_out", "conv_out", "down_blocks", "mid_block",
            "up_blocks"}


@dataclass(eq=False)
class Layer:
    """A layer a LoRA key may change: `module`'s weight (or, for fused QKV, `rows` of it)."""

    component: str  # "unet", "text_encoder" or "text_encoder_2"
    name: str  # the module path in its component, e.g. `down_blocks.1.attentions.0.proj_in`
    module: torch.nn.Module  # the module holding the weight (`to_qkv` / `to_kv` when QKV is fused)
    rows: slice | None = None  # the rows of the fused projection that belong to `name`
    fused_name: str | None = None  # the fused projection's path (`...attn1.to_qkv`), when QKV is fused

    @property
    def module_name(self) -> str:
        """The path of the module actually changed (the fused projection's for fused QKV)."""
        return self.fused_name or self.name

    def tensor(self, role: str = "weight") -> torch.Tensor | None:
        """The weight (or bias) this layer's delta goes into, limited to its rows for fused QKV."""
        tensor = getattr(self.module, role, None)
        if not isinstance(tensor, torch.Tensor):
            return None
        return tensor if self.rows is None else tensor[self.rows]


def layer_index(components: Mapping[str, torch.nn.Module | None]) -> dict[str, Layer]:
    """Every name a LoRA file may use for a layer with a weight in `components`, mapped to that layer."""
    index: dict[str, Layer] = {}
    for component, model in components.items():
        if model is None or component not in KOHYA_PREFIXES:
            continue  # a VAE or other module no LoRA format names
        model = getattr(model, "_orig_mod", model)  # a torch.compile'd module wrapper
        layers = _layers(component, model)
        for layer in layers.values():
            for alias in _aliases(component, layer.name):
                index.setdefault(alias, layer)
        if component == UNET:
            for name, ldm in _ldm_names(model, layers).items():
                for prefix in KOHYA_PREFIXES[UNET]:
                    index.setdefault(prefix + ldm.replace(".", "_"), layers[name])
                index.setdefault("diffusion_model." + ldm, layers[name])
    return index


def cross_attention_width(unet: torch.nn.Module | None) -> int | None:
    """The UNet's cross-attention width (the text conditioning's): 768 SD1, 1024 SD2, 2048 SDXL."""
    if unet is None:
        return None
    width = getattr(getattr(unet, "config", None), "cross_attention_dim", None)
    if isinstance(width, int):
        return width
    for name, module in unet.named_modules():
        if name.endswith("attn2.to_k") and isinstance(getattr(module, "weight", None), torch.Tensor):
            return int(module.weight.shape[1])
    return None


def _layers(component: str, model: torch.nn.Module) -> dict[str, Layer]:
    layers = {name: Layer(component, name, module) for name, module in model.named_modules()
              if name and isinstance(getattr(module, "weight", None), torch.Tensor)}
    # With fused QKV, diffusers' attention reads `to_qkv` / `to_kv` and ignores to_q/to_k/to_v.
    for name, module in model.named_modules():
        if not getattr(module, "fused_projections", False):
            continue
        fused = getattr(module, "to_qkv", None)
        parts = ("to_q", "to_k", "to_v") if fused is not None else ("to_k", "to_v")
        fused = fused if fused is not None else getattr(module, "to_kv", None)
        if fused is None:
            continue
        fused_name = f"{name}.{'to_qkv' if len(parts) == 3 else 'to_kv'}"
        start = 0
        for part in parts:
            rows = getattr(module, part).weight.shape[0]
            layers[f"{name}.{part}"] = Layer(component, f"{name}.{part}", fused, slice(start, start + rows), fused_name)
            start += rows
    return layers


def _aliases(component: str, name: str) -> list[str]:
    names = [name]
    if component in TEXT_ENCODERS:
        # transformers 5 dropped CLIPTextModel's `text_model.` level; files (and CLIPTextModelWithProjection) keep it.
        names = [name, name.removeprefix("text_model.")] if name.startswith("text_model.") else [name,
                                                                                                  "text_model." + name]
    out = [prefix + n.replace(".", "_") for prefix in KOHYA_PREFIXES[component] for n in names]
    out += [prefix + n for prefix in DOTTED_PREFIXES[component] for n in names]
    return out


def _ldm_names(unet: torch.nn.Module, layers: dict[str, Layer]) -> dict[str, str]:
    """diffusers module path -> LDM module path (`input_blocks.4.1.transformer_blocks.0.attn1.to_q`)."""
    params = {f"{name}.weight": None for name in layers if name.split(".")[0] in _LDM_TOP}
    layers_per_block = getattr(getattr(unet, "config", None), "layers_per_block", None)
    if not isinstance(layers_per_block, int):
        return {}
    try:
        renamed = unet_to_ldm(params, layers_per_block)
    except (ValueError, IndexError):
        return {}  # not a UNet2DConditionModel layout: only diffusers-style names then
    return {old.removesuffix(".weight"): new.removeprefix("model.diffusion_model.").removesuffix(".weight")
            for old, new in zip(params, renamed)}
