"""Identify a checkpoint's family (sd1, sd1-inpaint, sd2, sd2-v, sdxl, sdxl-inpaint, sdui-tiny) from keys and shapes.

The rule, InvokeAI-style: the UNet's cross-attention width says the base (768 SD1, 1024 SD2, 2048 SDXL,
32 the sdui tiny model) and `conv_in`'s input channels say the variant (4 normal, 9 inpainting).
SD2 at 1024 cannot be told apart from its weights alone: AUTOMATIC1111 runs the UNet once on a test
input to decide. sdui uses cheap evidence instead, first match wins:
  1. safetensors metadata: `modelspec.prediction_type` (v / v_prediction / epsilon) or kohya's
     `ss_v_parameterization`;
  2. a sibling `<name>.yaml` (A1111's convention) with `parameterization: "v"`;
  3. the file name: "768", "v-pred", "vpred", "v_prediction" or a lone "v" token;
  4. otherwise epsilon (the 512 base models). Put a `<name>.yaml` next to a 768-v file whose name says nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from sdui.models.errors import BrokenModel, UnrecognizedModel

UNET = "model.diffusion_model."
CONFIGS_DIR = Path(__file__).resolve().parent / "configs"
# family -> (diffusers pipeline class, number of text encoders)
FAMILIES: dict[str, tuple[str, int]] = {
    "sd1": ("StableDiffusionPipeline", 1),
    "sd1-inpaint": ("StableDiffusionInpaintPipeline", 1),
    "sd2": ("StableDiffusionPipeline", 1),
    "sd2-v": ("StableDiffusionPipeline", 1),
    "sdxl": ("StableDiffusionXLPipeline", 2),
    "sdxl-inpaint": ("StableDiffusionXLInpaintPipeline", 2),
    "sdui-tiny": ("StableDiffusionPipeline", 1),
}
TEXT_ENCODER_PREFIX = {"sd1": "cond_stage_model.transformer.", "sd2": "cond_stage_model.model.",
                       "sdxl": "conditioner.embedders.1.model.", "sdui-tiny": "cond_stage_model.transformer."}
VAE_PREFIXES = ("first_stage_model.", "vae.")
_V_NAME = re.compile(r"(768|v[-_]?pred|v[-_]?prediction|(?:^|[-_. ])v(?:$|[-_. ]))", re.IGNORECASE)


@dataclass(frozen=True)
class Probe:
    """What a checkpoint is: its family, the bundled config folder and pipeline class to load it with."""

    family: str
    in_channels: int
    cross_attention_dim: int

    @property
    def config_dir(self) -> Path:
        return CONFIGS_DIR / self.family

    @property
    def pipeline_class(self) -> str:
        return FAMILIES[self.family][0]

    @property
    def text_encoders(self) -> int:
        return FAMILIES[self.family][1]


def detect(shapes: Mapping[str, Sequence[int]], *, name: str = "checkpoint", metadata: Mapping[str, str] | None = None,
           yaml_text: str | None = None) -> Probe:
    """Decide the family from original-layout (LDM) keys and shapes; raises UnrecognizedModel or BrokenModel."""
    if not any(k.startswith(UNET) for k in shapes):
        raise UnrecognizedModel(f"{name}: not a Stable Diffusion checkpoint: {_what_else(shapes)}", name)
    conv_in = shapes.get(UNET + "input_blocks.0.0.weight")
    ctx = next((s[1] for k, s in shapes.items() if k.startswith(UNET) and k.endswith("attn2.to_k.weight")), None)
    if conv_in is None or len(conv_in) != 4 or ctx is None:
        raise BrokenModel(f"{name}: the UNet weights are incomplete (no conv_in or cross-attention layers)", name)
    in_ch = int(conv_in[1])
    base = {768: "sd1", 1024: "sd2", 2048: "sdxl", 32: "sdui-tiny"}.get(int(ctx))
    if base is None:
        what = "an SDXL refiner" if ctx == 1280 else f"a UNet with cross-attention width {ctx}"
        raise UnrecognizedModel(f"{name}: {what} is not supported (known: 768 SD1, 1024 SD2, 2048 SDXL)", name)
    if in_ch not in (4, 9) or (in_ch == 9 and base in ("sd2", "sdui-tiny")):
        kind = {8: "an instruct-pix2pix model"}.get(in_ch, f"a {base} UNet with {in_ch} input channels")
        raise UnrecognizedModel(f"{name}: {kind} is not supported (4 channels, or 9 for SD1/SDXL inpainting)", name)
    if not any(k.startswith(TEXT_ENCODER_PREFIX[base]) for k in shapes):
        raise BrokenModel(f"{name}: no {base} text encoder weights ({TEXT_ENCODER_PREFIX[base]}*) in the file", name)
    if not any(k.startswith(VAE_PREFIXES) for k in shapes):
        raise BrokenModel(f"{name}: no VAE weights (first_stage_model.*) in the file", name)
    family = base
    if in_ch == 9:
        family = f"{base}-inpaint"
    elif base == "sd2" and is_v_prediction(name, metadata or {}, yaml_text):
        family = "sd2-v"
    return Probe(family=family, in_channels=in_ch, cross_attention_dim=int(ctx))


def is_v_prediction(name: str, metadata: Mapping[str, str], yaml_text: str | None) -> bool:
    """The SD2 v-prediction rule from the module docstring (metadata, sibling yaml, file name)."""
    pred = metadata.get("modelspec.prediction_type", "").lower()
    if pred:
        return pred.startswith("v")
    if str(metadata.get("ss_v_parameterization", "")).lower() == "true":
        return True
    if yaml_text is not None:
        found = re.search(r"parameterization:\s*['\"]?(\w+)", yaml_text)
        if found:
            return found.group(1) == "v"
    return bool(_V_NAME.search(Path(name).stem))


def probe_file(path: Path) -> Probe:
    """Read a single-file checkpoint's shapes safely and detect its family."""
    from sdui.models.files import read_shapes

    shapes, metadata = read_shapes(path)
    yaml = path.with_suffix(".yaml")
    yaml_text = yaml.read_text(encoding="utf-8", errors="replace") if yaml.is_file() else None
    return detect(shapes, name=str(path), metadata=metadata, yaml_text=yaml_text)


def _what_else(shapes: Mapping[str, Sequence[int]]) -> str:
    keys = list(shapes)
    if any(k.startswith(("lora_", "lora_unet", "lora_te")) or ".lora_" in k for k in keys):
        return "it looks like a LoRA (put it in a LoRA folder, not among checkpoints)"
    if any(k.startswith(("down_blocks.", "conv_in.", "text_model.")) for k in keys):
        return "it looks like a single diffusers component (UNet, VAE or text encoder), not a full checkpoint"
    if any(k.startswith(("encoder.", "decoder.")) for k in keys):
        return "it looks like a VAE on its own"
    return f"no UNet weights ({UNET}*) among its {len(keys)} tensors"
