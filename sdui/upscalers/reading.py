"""Reading an upscaler model file safely and letting spandrel build the network from its state dict.

spandrel never opens a file here (its `.pt` path would try `torch.jit.load`, which runs TorchScript code):
`.safetensors` files are read by safetensors after the project's header checks, pickles by `torch.load` with
`weights_only=True` after the project's scan for code (`sdui.models.files`). Errors name the file:
UnrecognizedModel (not an upscaler spandrel knows, or one for another purpose), BrokenModel (corrupt or
truncated), UnsafeModel (a pickle that references code; never unpickled).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from sdui.models.errors import BrokenModel, UnrecognizedModel
from sdui.models.files import load_pickle, read_safetensors_header, refuse_oversized
from sdui.upscalers.spandrel_import import import_spandrel

MAX_UPSCALER_BYTES = 3 * 2**30  # the biggest (AuraSR) are ~2.5 GB; ESRGAN/SwinIR/DAT are well under 200 MB
UPSCALER_PURPOSES = ("SR", "Restoration")  # spandrel's; "FaceSR" and "Inpainting" models are not upscalers
_SIZE_HINT = "upscaler models are at most a few hundred MiB (is this a checkpoint in an upscaler folder?)"


def read_state_dict(path: Path) -> dict[str, Any]:
    """The tensors of an upscaler file, read without running any code and canonicalized by spandrel.

    spandrel's canonicalization unwraps `params_ema` / `params` / `state_dict` / `model` and strips `module.`.
    """
    suffix = path.suffix.lower()
    refuse_oversized(path, MAX_UPSCALER_BYTES, "an upscaler model", _SIZE_HINT)
    if suffix == ".safetensors":
        state = _read_safetensors(path)
    elif suffix in (".pth", ".pt"):
        state = _read_pickle(path)
    else:
        raise UnrecognizedModel(f"{path}: unknown upscaler file type {suffix!r} (expected .pth, .pt or "
                                ".safetensors)", path)
    state = import_spandrel().canonicalize_state_dict(state)
    if not isinstance(state, dict) or not any(isinstance(v, torch.Tensor) for v in state.values()):
        raise UnrecognizedModel(f"{path}: the file holds no tensors, so it is not an upscaler model", path)
    return state


def load_descriptor(path: Path, device: torch.device):
    """The spandrel ImageModelDescriptor of an upscaler file, on `device` in float32, in eval mode."""
    spandrel = import_spandrel()
    state = read_state_dict(path)
    try:
        descriptor = spandrel.ModelLoader(device=torch.device("cpu")).load_from_state_dict(state)
    except spandrel.UnsupportedModelError as e:
        raise UnrecognizedModel(f"{path}: not an upscaler model spandrel {spandrel.__version__} recognises (no "
                                "known architecture matches its weights)", path) from e
    except (RuntimeError, KeyError, ValueError, IndexError, TypeError, AssertionError, ZeroDivisionError) as e:
        raise BrokenModel(f"{path}: looks like an upscaler model but its weights do not fit the architecture "
                          f"({_first_line(e)})", path) from e
    arch = descriptor.architecture.name
    if not isinstance(descriptor, spandrel.ImageModelDescriptor) or descriptor.purpose not in UPSCALER_PURPOSES:
        raise UnrecognizedModel(f"{path}: a {arch} model for {_purpose_words(descriptor.purpose)}, not an "
                                "upscaler", path)
    if descriptor.input_channels != 3 or descriptor.output_channels != 3:
        raise UnrecognizedModel(f"{path}: a {arch} model for {descriptor.input_channels}-channel input and "
                                f"{descriptor.output_channels}-channel output; sdui upscales RGB images only", path)
    return descriptor.to(device).eval()


def _read_safetensors(path: Path) -> dict[str, Any]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    read_safetensors_header(path)
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        raise BrokenModel(f"{path}: corrupt safetensors file ({_first_line(e)})", path) from e


def _read_pickle(path: Path) -> dict[str, Any]:
    state = load_pickle(path)  # UnsafeModel when it references code: never unpickled
    if not isinstance(state, dict):
        raise UnrecognizedModel(f"{path}: the pickle holds a {type(state).__name__}, not a state dict", path)
    return state


def _purpose_words(purpose: str) -> str:
    return {"FaceSR": "face restoration", "Inpainting": "inpainting"}.get(purpose, purpose)


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__
