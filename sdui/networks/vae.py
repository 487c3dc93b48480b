"""VAE files: A1111's LDM-layout .safetensors/.pt/.ckpt and diffusers folders, built like a checkpoint's own VAE.

`read_vae` loads one for a given model; `check_latent_space` refuses a VAE made for another model family; `vae_beside`
is A1111's "Automatic" rule (`<checkpoint>.vae.safetensors` next to the checkpoint).

SD1/SD2 and SDXL VAEs have identical tensor shapes, so shapes cannot tell them apart. Two kinds of evidence can:
- what the file says, read before any weight: a safetensors `modelspec.architecture` (e.g.
  `stable-diffusion-xl-v1-base/vae`) or a diffusers folder's explicit `scaling_factor`. When it names another
  family than the checkpoint's (told by its VAE's scaling factor) `read_vae` refuses it at once;
- what the weights do (`check_latent_space`): both VAEs encode one fixed 64x64 picture of gradients and shapes, and
  their latent means are compared channel by channel. A VAE of the same family (a fine-tune; SD1's ft-mse/ft-ema,
  whose encoder is SD1's own) gives the same latents up to small changes (identical for ft-mse; a retrained
  encoder must stay close, or SD1's UNet could not use it). Real SD1 and SDXL VAEs agree on their luminance-like
  channels but not on at least one chroma channel, and SDXL latents spread ~1.4x wider (0.18215 / 0.13025, the
  ratio of their scaling factors).
  The rule: every channel's correlation >= MIN_CORRELATION (0.9) and the std ratio within 1/1.2..1.2; either failing
  refuses the VAE. The margins: a fine-tune is expected at >= 0.99 (not measured on real VAEs here), an unrelated
  chroma channel far below 0.9, and 1.2 sits ~17% under SDXL's 1.4 spread.
  On the tiny test VAEs (random weights, so far more fragile than trained ones): a fine-tuned decoder gives
  correlations 1.0 and ratio 1.0; 2% noise on every encoder weight 0.99 and 1.01 (fits); 20% noise ~0.55 and 0.96
  (refused); the tiny SDXL VAE against the tiny SD1 one -0.08..0.20 and 0.81 (1.23 the other way round).
  Two encodes of 64x64 take ~0.25 s for a real SD VAE on two CPU cores.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from sdui.models.errors import BrokenModel, ModelNotFound, UnrecognizedModel, WrongFamily
from sdui.models.files import (PICKLE_SUFFIXES, SAFETENSORS_SUFFIXES, check_pickle_safety, load_pickle_state_dict,
                               read_safetensors_header, refuse_oversized)

MAX_VAE_BYTES = 2 * 2**30  # an SD VAE is 0.16 GiB in fp16, 0.33 GiB in fp32; bigger files are whole checkpoints
BESIDE_SUFFIXES = (".vae.safetensors", ".vae.pt", ".vae.ckpt")
MIN_CORRELATION = 0.9
MAX_STD_RATIO = 1.2
PICTURE_SIZE = 64
# modelspec.architecture family (before "/vae") -> the latent scaling factor of that family's VAE
FAMILY_SCALING = {"stable-diffusion-v1": 0.18215, "stable-diffusion-v2": 0.18215, "stable-diffusion-xl": 0.13025,
                  "stable-diffusion-v3": 1.5305, "flux": 0.3611}
VAE_PREFIXES = ("first_stage_model.", "vae.")
CHECKPOINT_PREFIXES = ("model.diffusion_model.", "cond_stage_model.", "conditioner.")
VAE_PARTS = ("encoder.", "decoder.", "quant_conv.", "post_quant_conv.")  # the rest (loss.*, model_ema.*) is training
ARCHITECTURE = ("in_channels", "out_channels", "block_out_channels", "layers_per_block", "down_block_types",
                "up_block_types", "norm_num_groups")
WEIGHT_FILES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin",
                "diffusion_pytorch_model.fp16.safetensors", "diffusion_pytorch_model.fp16.bin")

Shapes = dict[str, tuple[int, ...]]
if TYPE_CHECKING:
    from diffusers import AutoencoderKL


def read_vae(path: Path, like: AutoencoderKL) -> AutoencoderKL:
    """An AutoencoderKL with `like`'s config and the weights at `path` (file or diffusers folder), on `like`'s
    device and dtype; ModelError subclasses name the file."""
    from diffusers import AutoencoderKL

    path = Path(path)
    if not path.exists():
        raise ModelNotFound(f"{path}: no such VAE file or folder", path)
    refuse_oversized(path, MAX_VAE_BYTES, "a VAE", "an SD VAE is about 0.3 GiB; probably a whole checkpoint, which "
                     "belongs in models/Stable-diffusion")
    with torch.device("meta"):  # no random init of weights the file replaces
        vae = AutoencoderKL.from_config(like.config)
    raw = _read_folder(path, like) if path.is_dir() else _read_file(path, like)
    state = _to_diffusers(raw, path, vae, like)
    try:
        vae.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as e:
        raise UnrecognizedModel(f"{path}: its tensors do not fit this model's VAE ({_first_line(e)})", path) from e
    # Offloaded models keep their weights on meta between uses; the offload hooks are the caller's to reapply.
    device = like.device if like.device.type != "meta" else torch.device("cpu")
    torch.nn.Module.to(vae, device=device, dtype=like.dtype)  # diffusers' .to(dtype) warns about nothing here
    if _channels_last(like):
        vae.to(memory_format=torch.channels_last)
    return vae.eval().requires_grad_(False)


def _read_file(path: Path, like: Any) -> dict[str, Any]:
    suffix = path.suffix.lower()
    if suffix in SAFETENSORS_SUFFIXES:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        shapes, metadata = read_safetensors_header(path)
        architecture = metadata.get("modelspec.architecture")
        if architecture:
            family = next((f for f in FAMILY_SCALING if architecture.startswith(f)), None)
            _check_claim(path, FAMILY_SCALING.get(family), f"its metadata says modelspec.architecture "
                         f"{architecture!r}", like)
        _refuse_checkpoint(path, shapes)
        try:
            return load_file(str(path))
        except (SafetensorError, OSError, RuntimeError, ValueError) as e:
            raise BrokenModel(f"{path}: the safetensors data cannot be read ({_first_line(e)})", path) from e
    if suffix in PICKLE_SUFFIXES:
        return load_pickle_state_dict(path)
    raise UnrecognizedModel(f"{path}: unknown VAE file type {suffix!r} (expected .safetensors, .pt or .ckpt, or a "
                            "diffusers folder)", path)


def _read_folder(path: Path, like: Any) -> dict[str, Any]:
    from diffusers import AutoencoderKL

    if (path / "model_index.json").exists():
        raise UnrecognizedModel(f"{path}: a whole diffusers pipeline, not a VAE folder (its VAE is the vae/ "
                                "subfolder)", path)
    try:
        config = json.loads((path / "config.json").read_text())
    except FileNotFoundError as e:
        raise UnrecognizedModel(f"{path}: no config.json, so it is not a diffusers VAE folder", path) from e
    except (UnicodeDecodeError, ValueError) as e:
        raise BrokenModel(f"{path}: config.json is not valid JSON ({e})", path) from e
    if config.get("_class_name") != "AutoencoderKL":
        raise UnrecognizedModel(f"{path}: config.json describes a {config.get('_class_name')!r}, not an AutoencoderKL "
                                "VAE", path)
    if "latent_channels" in config:
        _check_latent_channels(path, config["latent_channels"], like)
    for key in ARCHITECTURE:
        if key in config and _plain(config[key]) != _plain(like.config.get(key)):
            raise UnrecognizedModel(f"{path}: config.json has {key} {config[key]!r} but this model's VAE has "
                                    f"{_plain(like.config.get(key))!r}: a VAE of another architecture", path)
    if "scaling_factor" in config:
        _check_claim(path, config["scaling_factor"], f"its config.json says scaling_factor {config['scaling_factor']}",
                     like)
    weights = next((path / name for name in WEIGHT_FILES if (path / name).is_file()), None)
    if weights is None:
        raise BrokenModel(f"{path}: no weights file ({WEIGHT_FILES[0]} or {WEIGHT_FILES[1]})", path)
    if weights.suffix in SAFETENSORS_SUFFIXES:
        read_safetensors_header(weights)
    else:
        check_pickle_safety(weights)  # diffusers also loads with weights_only=True; this names the culprit
    try:
        loaded = AutoencoderKL.from_pretrained(path, local_files_only=True,
                                               variant="fp16" if ".fp16." in weights.name else None)
    except (OSError, ValueError, RuntimeError) as e:
        raise BrokenModel(f"{path}: diffusers cannot read the VAE folder ({_first_line(e)})", path) from e
    return loaded.state_dict()


def _check_claim(path: Path, scaling: float | None, source: str, like: Any) -> None:
    own = like.config.scaling_factor
    if scaling is not None and abs(scaling - own) > 0.01 * own:
        raise WrongFamily(f"{path}: this VAE does not fit this model: {source}, so it is made for another model "
                          f"family (its latent scaling factor is {scaling}, this model's is {own}; e.g. an SDXL VAE "
                          "on an SD1 model)", path)


def _check_latent_channels(path: Path, channels: int, like: Any) -> None:
    if channels != like.config.latent_channels:
        raise WrongFamily(f"{path}: a VAE with {channels} latent channels (SD3 and Flux VAEs have 16), but this "
                          f"model's VAE has {like.config.latent_channels}: it is made for another model family", path)


def _refuse_checkpoint(path: Path, names: Any) -> None:
    found = next((k for p in CHECKPOINT_PREFIXES for k in names if k.startswith(p)), None)
    if found is not None:
        raise UnrecognizedModel(f"{path}: a whole checkpoint (it holds {found!r} and more), not a VAE; it belongs "
                                "in models/Stable-diffusion", path)


def _to_diffusers(raw: dict[str, Any], path: Path, vae: Any, like: Any) -> dict[str, torch.Tensor]:
    """The VAE tensors of a file's state dict under diffusers names, checked against `vae`'s shapes."""
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    from sdui.models.layout import vae_to_ldm

    tensors = {k: v for k, v in raw.items() if isinstance(v, torch.Tensor)}
    _refuse_checkpoint(path, tensors)
    prefix = next((p for p in VAE_PREFIXES if any(k.startswith(p) for k in tensors)), "")
    state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix) and
             k[len(prefix):].startswith(VAE_PARTS)}
    if not state:
        raise UnrecognizedModel(f"{path}: holds no VAE tensors (encoder.*, decoder.*); its tensors are named like "
                                f"{', '.join(sorted(tensors)[:3]) or 'nothing'}", path)
    latent = state.get("decoder.conv_in.weight")
    if latent is not None and latent.ndim == 4:
        _check_latent_channels(path, latent.shape[1], like)
    shapes = {k: tuple(v.shape) for k, v in vae.state_dict().items()}
    if any(".down_blocks." in k or ".up_blocks." in k or ".mid_block." in k for k in state):
        state = vae._fix_state_dict_keys_on_load(dict(state))  # diffusers' own rename of pre-0.14 attention keys
        _check_fit(path, {k: tuple(v.shape) for k, v in state.items()}, shapes, like)
        return state
    ldm = vae_to_ldm(vae.state_dict(), len(vae.config.block_out_channels))  # still on meta: names and shapes only
    _check_fit(path, {k: tuple(v.shape) for k, v in state.items()},
               {k.removeprefix("first_stage_model."): tuple(v.shape) for k, v in ldm.items()}, like)
    return convert_ldm_vae_checkpoint(state, dict(vae.config))


def _check_fit(path: Path, found: Shapes, expected: Shapes, like: Any) -> None:
    """Refuse tensors of other shapes or names (another architecture), then missing ones (a broken file)."""
    def squeezed(shape: tuple[int, ...]) -> tuple[int, ...]:
        return shape[:2] + tuple(d for d in shape[2:] if d != 1)  # attention as 1x1 convs or as linears

    own = f"block channels {list(like.config.block_out_channels)}, {like.config.latent_channels} latent channels"
    misfit = [k for k in sorted(found) if k in expected and squeezed(found[k]) != squeezed(expected[k])]
    if misfit:
        more = f" (and {len(misfit) - 1} more)" if len(misfit) > 1 else ""
        first = misfit[0]
        raise UnrecognizedModel(f"{path}: its tensors do not fit this model's VAE ({own}): {first} is "
                                f"{list(found[first])} in the file but {list(expected[first])} here{more}", path)
    extra = sorted(set(found) - set(expected))
    if extra:
        raise UnrecognizedModel(f"{path}: holds {len(extra)} VAE tensors this model's VAE ({own}) does not have "
                                f"({', '.join(extra[:3])}{', ...' if len(extra) > 3 else ''}): a VAE of another "
                                "architecture", path)
    missing = sorted(set(expected) - set(found))
    if missing:
        raise BrokenModel(f"{path}: the VAE is incomplete: {len(missing)} of {len(expected)} tensors are missing "
                          f"({', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}); a truncated or partial "
                          "file", path)


@dataclass(frozen=True)
class LatentAgreement:
    """How a VAE's latents of the probe picture follow the checkpoint VAE's: per-channel correlation, std ratio."""

    correlations: tuple[float, ...]
    std_ratio: float

    @property
    def fits(self) -> bool:
        """The module docstring's rule (a NaN never fits)."""
        return (all(c >= MIN_CORRELATION for c in self.correlations)
                and 1 / MAX_STD_RATIO <= self.std_ratio <= MAX_STD_RATIO)


def probe_picture(size: int = PICTURE_SIZE) -> torch.Tensor:
    """A fixed colourful picture, (1, 3, size, size) in [-1, 1]: colour gradients, a disc, a square, stripes."""
    y, x = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    picture = torch.stack([x, y, -(x + y) / 2])
    shapes = [((x - 0.35) ** 2 + (y + 0.3) ** 2 < 0.09, (1.0, 1.0, -1.0)),
              (((x + 0.45).abs() < 0.25) & ((y - 0.4).abs() < 0.25), (1.0, -1.0, 1.0)),
              ((x > 0.3) & (y > 0.4) & (torch.sin(x * 25) > 0), (-1.0, 1.0, 1.0))]
    for mask, colour in shapes:
        picture[:, mask] = torch.tensor(colour)[:, None]
    return picture[None]


def compare_latents(vae: AutoencoderKL, own: AutoencoderKL) -> LatentAgreement:
    """Encode the probe picture with both VAEs (of as many latent channels); compare their latent means channel by
    channel, in float32."""
    picture = probe_picture()
    theirs, ours = _latent_mean(vae, picture), _latent_mean(own, picture)
    a, b = theirs - theirs.mean(1, keepdim=True), ours - ours.mean(1, keepdim=True)
    correlations = (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-12)
    return LatentAgreement(tuple(correlations.tolist()), (theirs.std() / ours.std().clamp_min(1e-12)).item())


def _latent_mean(vae: Any, picture: torch.Tensor) -> torch.Tensor:
    """The posterior mean, (channels, positions) in float32 on the CPU; an fp16/bf16 encoder runs as a float32 copy."""
    encoder, quant = vae.encoder, vae.quant_conv
    weight = next(encoder.parameters())
    if weight.dtype != torch.float32:
        # Half-precision encoders can overflow (the SDXL VAE is known for it); the copy is ~0.14 GB, briefly.
        encoder, quant = copy.deepcopy(encoder).float(), copy.deepcopy(quant).float() if quant is not None else None
    with torch.inference_mode(), torch.autocast(weight.device.type, enabled=False):
        moments = encoder(picture.to(weight.device))
        if quant is not None:
            moments = quant(moments)
    return moments[0, :vae.config.latent_channels].float().cpu().flatten(1)


def check_latent_space(vae: AutoencoderKL, own: AutoencoderKL, name: str) -> None:
    """Raise WrongFamily when `vae` does not speak the latent space of `own` (the checkpoint VAE)."""
    if vae.config.latent_channels != own.config.latent_channels:
        raise WrongFamily(f"VAE {name!r} does not fit this model: it has {vae.config.latent_channels} latent channels, "
                          f"this model's VAE {own.config.latent_channels} (made for another model family)")
    agreement = compare_latents(vae, own)
    if not all(torch.isfinite(torch.tensor([*agreement.correlations, agreement.std_ratio]))):
        raise BrokenModel(f"VAE {name!r} encodes the probe picture to NaN or infinity: its weights are broken")
    if not agreement.fits:
        correlations = ", ".join(f"{c:.2f}" for c in agreement.correlations)
        raise WrongFamily(f"VAE {name!r} does not fit this model: it encodes to another latent space (made for "
                          "another model family, e.g. an SDXL VAE on an SD1 model); its latents of a probe picture "
                          f"correlate {correlations} with this model's per channel (at least {MIN_CORRELATION} "
                          f"needed) and spread {agreement.std_ratio:.2f}x as wide (1/{MAX_STD_RATIO}..{MAX_STD_RATIO}"
                          " needed)")


def vae_beside(checkpoint: Path) -> Path | None:
    """`<checkpoint stem>.vae.safetensors` / `.vae.pt` / `.vae.ckpt` next to a single-file checkpoint, if present."""
    checkpoint = Path(checkpoint)
    if checkpoint.is_dir():
        return None
    stem = checkpoint.with_suffix("")
    return next((c for c in (stem.with_name(stem.name + s) for s in BESIDE_SUFFIXES) if c.is_file()), None)


def _channels_last(module: Any) -> bool:
    weight = module.decoder.conv_in.weight
    return weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, (list, tuple)) else value


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__
