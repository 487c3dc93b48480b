"""Loading one checkpoint into a diffusers pipeline, fully offline: diffusers folders and single files.

Single files are probed (`probe.py`) and built with the bundled weight-free config folder of their family
and sdui's shipped tokenizers, so nothing is fetched from the hub. Pickles go through `files.py`'s checks.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from sdui.models.device import DevicePlan
from sdui.models.errors import BrokenModel, ModelError, UnrecognizedModel
from sdui.models.files import (PICKLE_SUFFIXES, SAFETENSORS_SUFFIXES, allowed_globals, check_pickle_safety,
                               load_pickle_state_dict, stored_dtype)
from sdui.models.probe import probe_file
from sdui.models.tokenizer import load_tokenizer

_LOAD_ERRORS = (OSError, ValueError, RuntimeError, KeyError, TypeError, AttributeError)


def load_pipeline(path: Path, plan: DevicePlan):
    """Build the diffusers pipeline stored at `path` (folder or single file), on the plan's device and dtype."""
    path = Path(path)
    if not path.exists():
        raise BrokenModel(f"{path}: file is missing (deleted or moved since the last refresh)", path)
    pipe = load_folder(path, plan.dtype) if path.is_dir() else load_single_file(path, plan.dtype)
    if plan.vae_dtype != plan.dtype:
        pipe.vae.to(dtype=plan.vae_dtype)
    return place(pipe, plan)


def load_folder(path: Path, dtype: torch.dtype):
    """A diffusers folder with `local_files_only=True`; the safety checker is never loaded."""
    from diffusers import DiffusionPipeline

    index_file = path / "model_index.json"
    if not index_file.is_file():
        raise UnrecognizedModel(f"{path}: a folder without model_index.json is not a diffusers model", path)
    try:
        index = json.loads(index_file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise BrokenModel(f"{index_file}: not valid JSON ({e})", path) from e
    extra = {}
    if "safety_checker" in index:
        extra = {"safety_checker": None, "feature_extractor": None, "requires_safety_checker": False}
    try:
        return DiffusionPipeline.from_pretrained(path, local_files_only=True, dtype=dtype, **extra)
    except _LOAD_ERRORS as e:
        raise BrokenModel(f"{path}: cannot load this diffusers folder ({_short(e)})", path) from e


def load_single_file(path: Path, dtype: torch.dtype):
    """An original-layout .safetensors/.ckpt via `from_single_file` and the bundled config of its family."""
    import diffusers

    suffix = path.suffix.lower()
    if suffix not in SAFETENSORS_SUFFIXES | PICKLE_SUFFIXES:
        raise UnrecognizedModel(f"{path}: unknown file type {suffix!r}", path)
    unsafe = check_pickle_safety(path) if suffix in PICKLE_SUFFIXES else []
    probe = probe_file(path)
    # Loading a half-precision file straight into fp32 keeps the whole fp16 state dict (mmapped, and resident
    # once read) beside the fp32 model: peak ~1.5x. Reading it into plain memory as stored and upcasting module
    # by module frees each fp16 tensor as its fp32 copy appears, so the peak stays near the final size.
    stored = stored_dtype(path)
    load_as = stored if dtype == torch.float32 and stored in (torch.float16, torch.bfloat16) else dtype
    cls = getattr(diffusers, probe.pipeline_class)
    pad = "!" if probe.family.startswith("sd2") else "<|endoftext|>"
    kwargs = {"tokenizer": load_tokenizer(pad)}
    if probe.text_encoders == 2:
        kwargs["tokenizer_2"] = load_tokenizer("!")
    else:
        kwargs.update(safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    try:
        with allowed_globals(unsafe):
            pipe = cls.from_single_file(str(path), config=str(probe.config_dir), local_files_only=True,
                                        dtype=load_as, disable_mmap=load_as != dtype, **kwargs)
    except ModelError:
        raise
    except (*_LOAD_ERRORS, diffusers.loaders.single_file_utils.SingleFileComponentError) as e:
        raise BrokenModel(f"{path}: looks like {probe.family} but does not load with its config ({_short(e)})",
                          path) from e
    if load_as != dtype:
        for component in pipe.components.values():
            if isinstance(component, torch.nn.Module):
                component.to(dtype=dtype)
    return pipe


def place(pipe, plan: DevicePlan):
    """Move to the device, or hand placement to accelerate's offload hooks (--medvram / --lowvram on CUDA)."""
    if plan.offload == "model":
        pipe.enable_model_cpu_offload(device=plan.device)
    elif plan.offload == "sequential":
        pipe.enable_sequential_cpu_offload(device=plan.device)
    else:
        pipe.to(plan.device)
    return pipe


def convert_to_safetensors(path: Path) -> Path:
    """Write `<name>.safetensors` beside a pickle checkpoint (read with weights_only=True); return its path."""
    from safetensors.torch import save_file

    path = Path(path)
    target = path.with_suffix(".safetensors")
    if target.exists():
        raise FileExistsError(f"{target} already exists; remove it first to convert {path.name} again")
    state = load_pickle_state_dict(path)
    seen: set[int] = set()
    tensors = {}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            continue
        value = value.contiguous()
        ptr = value.untyped_storage().data_ptr()
        tensors[key] = value.clone() if ptr in seen else value  # safetensors refuses shared storage
        seen.add(ptr)
    tmp = target.with_name(target.name + ".partial")
    save_file(tensors, str(tmp), metadata={"format": "pt", "converted_from": path.name})
    os.replace(tmp, target)
    return target


def model_bytes(pipe) -> int:
    """Bytes held by the pipeline's parameters and buffers (what unloading gives back)."""
    total = 0
    for component in pipe.components.values():
        if isinstance(component, torch.nn.Module):
            total += sum(t.numel() * t.element_size() for t in component.parameters())
            total += sum(t.numel() * t.element_size() for t in component.buffers())
    return total


def _short(e: BaseException) -> str:
    lines = [line for line in str(e).strip().splitlines() if line.strip()]
    return f"{type(e).__name__}: {lines[0][:300]}" if lines else type(e).__name__
