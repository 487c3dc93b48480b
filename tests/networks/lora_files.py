"""Writers of small LoRA / LyCORIS files in each real format, for any SD1/SD2/SDXL-shaped pipeline.

Keys and shapes follow the formats as kohya sd-scripts, LyCORIS and diffusers write them, built by walking the
pipeline's own modules. `pipe` is anything with `.unet` and optionally `.text_encoder` / `.text_encoder_2`
(a pipeline, or `types.SimpleNamespace(unet=unet)` for a bare UNet). Every writer returns the path.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from sdui.models.layout import unet_to_ldm

_UNET_TOP = ("time_embedding", "add_embedding", "conv_in", "conv_norm_out", "conv_out", "down_blocks", "mid_block",
             "up_blocks")


def save_lora(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> Path:
    """Write `tensors` as .safetensors (with `metadata`) or, for any other suffix, a plain torch pickle."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.contiguous() for k, v in tensors.items()}
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(tensors, str(path), metadata=metadata)
    else:
        torch.save(tensors, str(path))
    return path


def lora_targets(pipe, conv: bool = False, te: bool = True,
                 unet: bool = True) -> list[tuple[str, str, torch.nn.Module]]:
    """(component, module path, module) of the layers kohya trains: UNet transformer blocks (and with `conv` the
    ResNet and resampler convs, as LoCon), and the text encoders' attention and MLP linears."""
    out = []
    if unet:
        for name, module in pipe.unet.named_modules():
            if not isinstance(module, torch.nn.Linear | torch.nn.Conv2d) or name.endswith(("to_qkv", "to_kv")):
                continue
            if ".attentions." in name or (conv and isinstance(module, torch.nn.Conv2d)
                                          and (".resnets." in name or "samplers." in name)):
                out.append(("unet", name, module))
    for component in ("text_encoder", "text_encoder_2") if te else ():
        model = getattr(pipe, component, None)
        for name, module in model.named_modules() if model is not None else ():
            if isinstance(module, torch.nn.Linear) and ".layers." in name and ("_attn." in name or ".mlp." in name):
                out.append((component, name, module))
    return out


def kohya_name(pipe, component: str, name: str, ldm: bool | None = None) -> str:
    """kohya's layer key: `lora_unet_<diffusers or LDM path>`, `lora_te_text_model_...`, `lora_te1_`/`lora_te2_`."""
    sdxl = getattr(pipe, "text_encoder_2", None) is not None
    if component == "unet":
        if ldm if ldm is not None else sdxl:
            name = _ldm_names(pipe.unet)[name]
        return "lora_unet_" + name.replace(".", "_")
    prefix = {"text_encoder": "lora_te1_" if sdxl else "lora_te_", "text_encoder_2": "lora_te2_"}[component]
    return prefix + _text_model(name).replace(".", "_")


def write_kohya_lora(path: Path, pipe, rank: int = 4, conv: bool = False, seed: int = 0, alpha: float | None = None,
                     te: bool = True, unet: bool = True, ldm: bool | None = None, cp: bool = False,
                     dtype: torch.dtype = torch.float16, std: float = 0.1) -> Path:
    """A kohya LoRA (LoCon with `conv`; `cp` adds `lora_mid` to 3x3 convs); `alpha` None writes no alpha keys.

    UNet keys use diffusers paths (SD1/SD2 style) or, with `ldm` (default for SDXL), LDM paths.
    """
    g = torch.Generator().manual_seed(seed)
    tensors = {}
    for component, name, module in lora_targets(pipe, conv, te, unet):
        key = kohya_name(pipe, component, name, ldm)
        shape = tuple(module.weight.shape)
        kernel = shape[2:]
        if cp and len(kernel) == 2 and kernel != (1, 1):
            tensors[f"{key}.lora_down.weight"] = _rand(g, (rank, shape[1], 1, 1), std)
            tensors[f"{key}.lora_mid.weight"] = _rand(g, (rank, rank, *kernel), std)
        else:
            tensors[f"{key}.lora_down.weight"] = _rand(g, (rank, *shape[1:]), std)
        tensors[f"{key}.lora_up.weight"] = _rand(g, (shape[0], rank, *[1] * len(kernel)), std)
        if alpha is not None:
            tensors[f"{key}.alpha"] = torch.tensor(float(alpha))
    return save_lora(path, {k: v.to(dtype) for k, v in tensors.items()}, {"ss_network_dim": str(rank)})


def write_loha(path: Path, pipe, rank: int = 4, conv: bool = False, cp: bool = False, seed: int = 0,
               alpha: float | None = None, te: bool = True, dtype: torch.dtype = torch.float16,
               std: float = 0.3) -> Path:
    """A LyCORIS LoHa: hada_w1_a/b, hada_w2_a/b (and hada_t1/t2 for 3x3 convs with `cp`)."""
    g = torch.Generator().manual_seed(seed)
    tensors = {}
    for component, name, module in lora_targets(pipe, conv, te):
        key = kohya_name(pipe, component, name)
        out, inp, *kernel = module.weight.shape
        for i in ("1", "2"):
            if cp and kernel and kernel != [1, 1]:
                tensors[f"{key}.hada_t{i}"] = _rand(g, (rank, rank, *kernel), std)
                tensors[f"{key}.hada_w{i}_a"] = _rand(g, (rank, out), std)
                tensors[f"{key}.hada_w{i}_b"] = _rand(g, (rank, inp), std)
            else:
                tensors[f"{key}.hada_w{i}_a"] = _rand(g, (out, rank), std)
                tensors[f"{key}.hada_w{i}_b"] = _rand(g, (rank, module.weight[0].numel()), std)
        if alpha is not None:
            tensors[f"{key}.alpha"] = torch.tensor(float(alpha))
    return save_lora(path, {k: v.to(dtype) for k, v in tensors.items()})


def write_lokr(path: Path, pipe, factor: int = 4, rank: int | None = 2, conv: bool = False, cp: bool = False,
               decompose_w1: bool = False, seed: int = 0, alpha: float | None = None, te: bool = True,
               dtype: torch.dtype = torch.float16, std: float = 0.1) -> Path:
    """A LyCORIS LoKr: w1 (factor x factor, or lokr_w1_a/b) kron w2 (full lokr_w2 when `rank` is None, else
    lokr_w2_a/b, with lokr_t2 for 3x3 convs under `cp`). A dimension `factor` does not divide gets factor 1."""
    g = torch.Generator().manual_seed(seed)
    tensors = {}
    for component, name, module in lora_targets(pipe, conv, te):
        key = kohya_name(pipe, component, name)
        out, inp, *kernel = module.weight.shape
        a, b = (factor if out % factor == 0 else 1), (factor if inp % factor == 0 else 1)
        if decompose_w1:
            tensors[f"{key}.lokr_w1_a"], tensors[f"{key}.lokr_w1_b"] = _rand(g, (a, 1), 1.0), _rand(g, (1, b), 1.0)
        else:
            tensors[f"{key}.lokr_w1"] = _rand(g, (a, b), 1.0)
        c, d = out // a, inp // b
        if rank is None:
            tensors[f"{key}.lokr_w2"] = _rand(g, (c, d, *kernel), std)
        elif cp and kernel and kernel != [1, 1]:
            tensors[f"{key}.lokr_t2"] = _rand(g, (rank, rank, *kernel), std)
            tensors[f"{key}.lokr_w2_a"] = _rand(g, (rank, c), std)
            tensors[f"{key}.lokr_w2_b"] = _rand(g, (rank, d), std)
        else:
            kk = kernel[0] * kernel[1] if kernel else 1
            tensors[f"{key}.lokr_w2_a"] = _rand(g, (c, rank), std)
            tensors[f"{key}.lokr_w2_b"] = _rand(g, (rank, d * kk), std)
        if alpha is not None:
            tensors[f"{key}.alpha"] = torch.tensor(float(alpha))
    return save_lora(path, {k: v.to(dtype) for k, v in tensors.items()})


def write_full_diff(path: Path, pipe, seed: int = 0, te: bool = True, bias: bool = True,
                    dtype: torch.dtype = torch.float16, std: float = 0.01) -> Path:
    """A LyCORIS full diff: `diff` (the weight's whole delta) and, with `bias`, `diff_b`."""
    g = torch.Generator().manual_seed(seed)
    tensors = {}
    for component, name, module in lora_targets(pipe, False, te):
        key = kohya_name(pipe, component, name)
        tensors[f"{key}.diff"] = _rand(g, tuple(module.weight.shape), std)
        if bias and module.bias is not None:
            tensors[f"{key}.diff_b"] = _rand(g, tuple(module.bias.shape), std)
    return save_lora(path, {k: v.to(dtype) for k, v in tensors.items()})


def write_peft_lora(path: Path, pipe, rank: int = 4, seed: int = 0, alpha: float | None = None, te: bool = True,
                    style: str = "peft", alpha_keys: bool = False, dtype: torch.dtype = torch.float16,
                    std: float = 0.1) -> Path:
    """A diffusers-layout LoRA: `unet.<path>.lora_A/lora_B.weight`, `text_encoder[_2].text_model.<path>...`.

    `style` "peft" (today's diffusers; `alpha` goes into the `lora_adapter_metadata` as `save_lora_weights` writes
    it, or into `.alpha` keys with `alpha_keys`), "old" (`.lora.down/up.weight`, text encoders
    `.lora_linear_layer.down/up.weight`; `alpha` as `.alpha` keys) or "processor" (attention processors only:
    `...attn1.processor.to_q_lora.down.weight`; no alpha, as diffusers never wrote one there).
    """
    g = torch.Generator().manual_seed(seed)
    tensors = {}
    for component, name, module in lora_targets(pipe, False, te):
        path_in = name if component == "unet" else _text_model(name)
        shape = tuple(module.weight.shape)
        down, up = _rand(g, (rank, *shape[1:]), std), _rand(g, (shape[0], rank, *[1] * (len(shape) - 2)), std)
        if style == "peft":
            roles = ("lora_A.weight", "lora_B.weight")
        elif style == "old":
            roles = (("lora.down.weight", "lora.up.weight") if component == "unet"
                     else ("lora_linear_layer.down.weight", "lora_linear_layer.up.weight"))
        elif style == "processor":
            parent, _, last = name.removesuffix(".0").rpartition(".")
            if component != "unet" or last not in ("to_q", "to_k", "to_v", "to_out"):
                continue
            path_in, roles = f"{parent}.processor", (f"{last}_lora.down.weight", f"{last}_lora.up.weight")
        else:
            raise ValueError(f"style must be peft, old or processor; got {style!r}")
        tensors[f"{component}.{path_in}.{roles[0]}"], tensors[f"{component}.{path_in}.{roles[1]}"] = down, up
        if alpha is not None and (alpha_keys or style == "old"):
            tensors[f"{component}.{path_in}.alpha"] = torch.tensor(float(alpha))
    metadata = {"format": "pt"}
    if alpha is not None and style == "peft" and not alpha_keys:
        config = {}
        for component in {c for c, _, _ in lora_targets(pipe, False, te)}:
            config.update({f"{component}.r": rank, f"{component}.lora_alpha": alpha,
                           f"{component}.alpha_pattern": {}, f"{component}.rank_pattern": {}})
        metadata["lora_adapter_metadata"] = json.dumps(config, indent=2, sort_keys=True)
    return save_lora(path, {k: v.to(dtype) for k, v in tensors.items()}, metadata)


def write_unsupported(path: Path, pipe, kind: str = "OFT", seed: int = 0) -> Path:
    """A kohya LoRA whose first UNet layer is of a type sdui refuses: OFT, DoRA, IA3, GLoRA or norm."""
    g = torch.Generator().manual_seed(seed)
    tensors = {}
    targets = lora_targets(pipe, False, True)
    for i, (component, name, module) in enumerate(targets):
        key = kohya_name(pipe, component, name)
        out, inp = module.weight.shape[:2]
        if i > 0 or kind == "DoRA":
            tensors[f"{key}.lora_down.weight"] = _rand(g, (4, *module.weight.shape[1:]), 0.1)
            tensors[f"{key}.lora_up.weight"] = _rand(g, (out, 4, *module.weight.shape[2:]), 0.1)
        if i > 0:
            continue
        if kind == "OFT":
            tensors[f"{key}.oft_blocks"] = _rand(g, (4, out // 4, out // 4), 0.1)
            tensors[f"{key}.alpha"] = torch.tensor(1.0)
        elif kind == "DoRA":
            tensors[f"{key}.dora_scale"] = _rand(g, (out, 1), 1.0)
        elif kind == "IA3":
            tensors[f"{key}.weight"], tensors[f"{key}.on_input"] = _rand(g, (inp,), 0.1), torch.tensor(True)
        elif kind == "GLoRA":
            for role, shape in (("a1", (4, inp)), ("a2", (inp, 4)), ("b1", (4, inp)), ("b2", (out, 4))):
                tensors[f"{key}.{role}.weight"] = _rand(g, shape, 0.1)
        elif kind == "norm":
            tensors[f"{key}.w_norm"], tensors[f"{key}.b_norm"] = _rand(g, (out,), 0.1), _rand(g, (out,), 0.1)
        else:
            raise ValueError(f"kind must be OFT, DoRA, IA3, GLoRA or norm; got {kind!r}")
    return save_lora(path, tensors)


def _rand(g: torch.Generator, shape: tuple[int, ...], std: float) -> torch.Tensor:
    return torch.randn(shape, generator=g) * std


def _text_model(name: str) -> str:
    return name if name.startswith("text_model.") else "text_model." + name


def _ldm_names(unet) -> dict[str, str]:
    names = [n for n, _ in unet.named_parameters() if n.endswith(".weight") and n.split(".")[0] in _UNET_TOP]
    renamed = unet_to_ldm(dict.fromkeys(names), unet.config.layers_per_block)
    return {old.removesuffix(".weight"): new.removeprefix("model.diffusion_model.").removesuffix(".weight")
            for old, new in zip(names, renamed)}
