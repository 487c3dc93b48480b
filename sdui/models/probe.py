"""Identify a checkpoint from its keys and shapes: family, bundled config, prediction type, or a named refusal.

The rule, InvokeAI-style: the UNet's cross-attention width says the base (768 SD1, 1024 SD2, 2048 SDXL, 1280
the SDXL refiner; below 256 one of sdui's tiny test models, whose base the text-encoder layout tells) and
`conv_in`'s input channels say the variant (4 normal, 9 inpainting). Architectures sdui does not run (SD3,
Flux, SVD, unCLIP, instruct-pix2pix, depth, Playground v2.5, EDM v-prediction) are refused by name. What the
UNet predicts comes from `prediction.py`; for SD2 without other evidence it is decided after loading, from
the weights (`Probe.prediction` is None until then).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from sdui.models.errors import BrokenModel, UnrecognizedModel
from sdui.models.prediction import Prediction, from_evidence

UNET = "model.diffusion_model."
CONFIGS_DIR = Path(__file__).resolve().parent / "configs"
TINY_WIDTH_BELOW = 256  # no real SD UNet has a cross-attention this narrow: sdui's tiny test models
# family -> (diffusers pipeline class, number of text encoders)
FAMILIES: dict[str, tuple[str, int]] = {
    "sd1": ("StableDiffusionPipeline", 1),
    "sd1-inpaint": ("StableDiffusionInpaintPipeline", 1),
    "sd2": ("StableDiffusionPipeline", 1),
    "sd2-inpaint": ("StableDiffusionInpaintPipeline", 1),
    "sdxl": ("StableDiffusionXLPipeline", 2),
    "sdxl-inpaint": ("StableDiffusionXLInpaintPipeline", 2),
    "sdxl-refiner": ("StableDiffusionXLImg2ImgPipeline", 1),
    "sdui-tiny": ("StableDiffusionPipeline", 1),
    "sdui-tiny-sd2": ("StableDiffusionPipeline", 1),
    "sdui-tiny-sd2-inpaint": ("StableDiffusionInpaintPipeline", 1),
    "sdui-tiny-sdxl": ("StableDiffusionXLPipeline", 2),
    "sdui-tiny-sdxl-inpaint": ("StableDiffusionXLInpaintPipeline", 2),
    "sdui-tiny-sdxl-refiner": ("StableDiffusionXLImg2ImgPipeline", 1),
}
BASE_BY_WIDTH = {768: "sd1", 1024: "sd2", 2048: "sdxl", 1280: "sdxl-refiner"}
TEXT_ENCODER_PREFIX = {"sd1": "cond_stage_model.transformer.", "sd2": "cond_stage_model.model.",
                       "sdxl": "conditioner.embedders.1.model.", "sdxl-refiner": "conditioner.embedders.0.model."}
BASE_NAMES = {"sd1": "SD1", "sd2": "SD2", "sdxl": "SDXL", "sdxl-refiner": "the SDXL refiner"}
VAE_PREFIXES = ("first_stage_model.", "vae.")
NOT_YET = "sdui does not run these models yet"


@dataclass(frozen=True)
class Probe:
    """What a checkpoint is: its family, the bundled config folder and pipeline class, what its UNet predicts."""

    family: str
    in_channels: int
    cross_attention_dim: int
    prediction: Prediction | None = None  # None: SD2 without evidence, decided from the weights after loading

    @property
    def base(self) -> str:
        """sd1, sd2, sdxl or sdxl-refiner, tiny or not."""
        name = self.family.removeprefix("sdui-tiny").removeprefix("-").removesuffix("-inpaint")
        return name or "sd1"

    @property
    def tiny(self) -> bool:
        return self.family.startswith("sdui-tiny")

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
    metadata = metadata or {}
    refusal = refused_architecture(shapes)
    if refusal:
        raise UnrecognizedModel(f"{name}: {refusal}", name)
    if not any(k.startswith(UNET) for k in shapes):
        raise UnrecognizedModel(f"{name}: not a Stable Diffusion checkpoint: {_what_else(shapes)}", name)
    conv_in = shapes.get(UNET + "input_blocks.0.0.weight")
    ctx = next((s[1] for k, s in shapes.items() if k.startswith(UNET) and k.endswith("attn2.to_k.weight")), None)
    if conv_in is None or len(conv_in) != 4 or ctx is None:
        raise BrokenModel(f"{name}: the UNet weights are incomplete (no conv_in or cross-attention layers)", name)
    in_ch, ctx = int(conv_in[1]), int(ctx)
    base = _base(shapes, ctx, name)
    tiny = ctx < TINY_WIDTH_BELOW
    refusal = _refused_variant(shapes, base, in_ch)
    if refusal:
        raise UnrecognizedModel(f"{name}: {refusal}", name)
    if not any(k.startswith(TEXT_ENCODER_PREFIX[base]) for k in shapes):
        raise BrokenModel(f"{name}: no {BASE_NAMES[base]} text encoder weights ({TEXT_ENCODER_PREFIX[base]}*) in "
                          "the file", name)
    if not any(k.startswith(VAE_PREFIXES) for k in shapes):
        raise BrokenModel(f"{name}: no VAE weights (first_stage_model.*) in the file", name)
    family = ("sdui-tiny" + ("" if base == "sd1" else f"-{base}")) if tiny else base
    if in_ch == 9:
        family += "-inpaint"
    if family not in FAMILIES:
        raise UnrecognizedModel(f"{name}: {BASE_NAMES[base]} with {in_ch} input channels is not supported", name)
    prediction = from_evidence(metadata, yaml_text, shapes)
    if prediction is None and (base != "sd2" or in_ch == 9):  # SD2 inpainting is epsilon (ComfyUI, A1111)
        prediction = Prediction(source=f"the default for {BASE_NAMES[base]}")
    return Probe(family=family, in_channels=in_ch, cross_attention_dim=ctx, prediction=prediction)


def refused_architecture(shapes: Mapping[str, Sequence[int]]) -> str | None:
    """A named refusal for checkpoints of architectures sdui does not run (not Stable Diffusion UNets)."""
    keys = shapes.keys()
    has = lambda *parts: any(any(p in k for p in parts) for k in keys)  # noqa: E731
    if has("joint_blocks."):
        return f"this is a Stable Diffusion 3 / 3.5 model (MMDiT: joint_blocks.*); {NOT_YET}"
    if has("double_blocks.") and has("single_blocks."):
        return f"this is a Flux model (double_blocks.* / single_blocks.*); {NOT_YET}"
    if "edm_mean" in keys or "edm_std" in keys:
        return ("this is Playground v2.5 (edm_mean / edm_std keys): it needs an EDM noise schedule and its own "
                f"latent mean and scale; {NOT_YET}")
    if any(k.startswith("edm_vpred.") for k in keys):
        return f"this is an EDM v-prediction model such as CosXL (edm_vpred.* keys); {NOT_YET}"
    if has(".time_stack.", ".time_mixer.", "time_mix_blocks"):
        return f"this is Stable Video Diffusion (a video UNet: time_stack / time_mixer layers); {NOT_YET}"
    return None


def _refused_variant(shapes: Mapping[str, Sequence[int]], base: str, in_ch: int) -> str | None:
    keys = shapes.keys()
    if any(k.startswith(("embedder.", "noise_augmentor.")) for k in keys):
        return f"this is an unCLIP model (image-variation: embedder.* / noise_augmentor.*); {NOT_YET}"
    if in_ch == 8:
        return f"this is an instruct-pix2pix model (8 input channels); {NOT_YET}"
    if in_ch == 5 or any(k.startswith("depth_model.") for k in keys):
        return f"this is a depth-to-image model (depth_model.*, 5 input channels); {NOT_YET}"
    if in_ch == 7:
        return f"this is the x4 upscaler (7 input channels); {NOT_YET}"
    if base == "sd2" and (UNET + "label_emb.0.0.weight") in keys:
        return f"this is an SD2 UNet with an image embedding input (label_emb: unCLIP); {NOT_YET}"
    if in_ch not in (4, 9):
        return f"a {BASE_NAMES[base]} UNet with {in_ch} input channels is not supported (4, or 9 for inpainting)"
    return None


def _base(shapes: Mapping[str, Sequence[int]], ctx: int, name: str) -> str:
    if ctx >= TINY_WIDTH_BELOW:
        base = BASE_BY_WIDTH.get(ctx)
        if base is None:
            raise UnrecognizedModel(f"{name}: a UNet with cross-attention width {ctx} is not supported (known: "
                                    "768 SD1, 1024 SD2, 2048 SDXL, 1280 SDXL refiner)", name)
        return base
    # A tiny model: its text-encoder layout says which base it is shaped like.
    has = lambda prefix: any(k.startswith(prefix) for k in shapes)  # noqa: E731
    if has(TEXT_ENCODER_PREFIX["sdxl"]):
        return "sdxl"
    if has(TEXT_ENCODER_PREFIX["sdxl-refiner"]):
        return "sdxl-refiner"
    if has(TEXT_ENCODER_PREFIX["sd2"]):
        return "sd2"
    return "sd1"


def probe_file(path: Path) -> Probe:
    """Read a single-file checkpoint's header (or state dict) safely and detect its family."""
    from sdui.models.on_disk import CheckpointFile

    return probe_checkpoint(CheckpointFile(path))


def probe_checkpoint(checkpoint) -> Probe:
    """`detect` on an `on_disk.CheckpointFile`'s canonical shapes, metadata and sibling yaml."""
    return detect(checkpoint.shapes, name=str(checkpoint.path), metadata=checkpoint.metadata,
                  yaml_text=checkpoint.yaml_text)


def _what_else(shapes: Mapping[str, Sequence[int]]) -> str:
    keys = list(shapes)
    if any(k.startswith(("lora_", "lora_unet", "lora_te")) or ".lora_" in k for k in keys):
        return "it looks like a LoRA (put it in a LoRA folder, not among checkpoints)"
    if any(k.startswith(("down_blocks.", "conv_in.", "text_model.")) for k in keys):
        return "it looks like a single diffusers component (UNet, VAE or text encoder), not a full checkpoint"
    if any(k.startswith(("encoder.", "decoder.")) for k in keys):
        return "it looks like a VAE on its own"
    return f"no UNet weights ({UNET}*) among its {len(keys)} tensors"
