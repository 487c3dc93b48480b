"""Loading one checkpoint into a diffusers pipeline, fully offline: diffusers folders and single files.

A single file is read once (`on_disk.CheckpointFile`), probed (`probe.py`) and built component by component
from that one state dict with the bundled weight-free config of its family and sdui's shipped tokenizers, so
nothing is fetched from the hub and a failure names the component. Pickles go through `files.py`'s checks.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sdui.models.device import DevicePlan
from sdui.models.errors import BrokenModel, ModelError, UnrecognizedModel
from sdui.models.files import load_pickle_state_dict
from sdui.models.on_disk import CheckpointFile
from sdui.models.prediction import EPSILON, V, Prediction, from_name, from_weights
from sdui.models.probe import Probe, probe_checkpoint
from sdui.models.tokenizer import load_tokenizer

_LOAD_ERRORS = (OSError, ValueError, RuntimeError, KeyError, TypeError, AttributeError, NotImplementedError)
COMPONENT_NAMES = {"unet": "UNet", "vae": "VAE", "text_encoder": "text encoder",
                   "text_encoder_2": "second text encoder (OpenCLIP bigG)"}


@dataclass
class LoadedModel:
    """A loaded pipeline and what sdui learnt about it while loading."""

    pipe: Any
    prediction: Prediction
    family: str | None = None  # the probed family of a single file; None for a diffusers folder

    def describe(self) -> str:
        """For the status line, e.g. "sd2, v-prediction (weights test)"."""
        what = "v-prediction" if self.prediction.kind == V else "epsilon"
        if self.prediction.zero_snr:
            what += ", zero terminal SNR"
        return f"{self.family or 'diffusers folder'}, {what} ({self.prediction.source})"


def load_pipeline(path: Path, plan: DevicePlan) -> LoadedModel:
    """Build the diffusers pipeline stored at `path` (folder or single file), on the plan's device and dtype."""
    path = Path(path)
    if not path.exists():
        raise BrokenModel(f"{path}: file is missing (deleted or moved since the last refresh)", path)
    loaded = load_folder(path, plan.dtype) if path.is_dir() else load_single_file(path, plan.dtype)
    if plan.vae_dtype != plan.dtype:
        loaded.pipe.vae.to(dtype=plan.vae_dtype)
    place(loaded.pipe, plan, path)
    return loaded


def load_folder(path: Path, dtype: torch.dtype) -> LoadedModel:
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
        pipe = DiffusionPipeline.from_pretrained(path, local_files_only=True, dtype=dtype, **extra)
    except _LOAD_ERRORS as e:
        raise BrokenModel(f"{path}: cannot load this diffusers folder ({_short(e)})", path) from e
    config = pipe.scheduler.config
    prediction = Prediction(config.get("prediction_type", EPSILON), bool(config.get("rescale_betas_zero_snr")),
                            "the folder's scheduler config")
    return LoadedModel(pipe, prediction)


def load_single_file(path: Path, dtype: torch.dtype) -> LoadedModel:
    """An original-layout .safetensors/.ckpt, read once and built with the bundled config of its family."""
    checkpoint = CheckpointFile(path)
    checkpoint.unsafe_globals  # noqa: B018 - a pickle that references code is refused before anything else
    probe = probe_checkpoint(checkpoint)
    # Loading a half-precision file straight into fp32 keeps the whole fp16 file (mmapped, resident once read)
    # beside the fp32 model: peak ~1.5x. Reading it into plain memory as stored and upcasting component by
    # component, each dropping its fp16 tensors, keeps the peak near the final size.
    stored = checkpoint.stored_dtype
    half_for_fp32 = dtype == torch.float32 and stored in (torch.float16, torch.bfloat16)
    load_as = stored if half_for_fp32 else dtype
    try:
        state = checkpoint.state_dict(fp8_to=dtype, in_memory=half_for_fp32)
        components = build_components(probe, state, load_as, path, upcast_to=dtype if half_for_fp32 else None)
    finally:
        checkpoint.release()
    prediction = probe.prediction or sd2_prediction(components["unet"], path)
    scheduler = components["scheduler"]
    components["scheduler"] = type(scheduler).from_config({**scheduler.config, **prediction.scheduler_overrides()})
    import diffusers

    pipe = getattr(diffusers, probe.pipeline_class)(**components)
    return LoadedModel(pipe, prediction, probe.family)


def build_components(probe: Probe, state: dict, dtype: torch.dtype, path: Path,
                     upcast_to: torch.dtype | None = None) -> dict[str, Any]:
    """The pipeline's constructor arguments, each model built from `state` with the family's bundled config.

    With `upcast_to`, each model is cast right after it is built and its tensors leave `state`.
    """
    import diffusers
    from diffusers.loaders.single_file_utils import create_diffusers_clip_model_from_ldm

    index = json.loads((probe.config_dir / "model_index.json").read_text(encoding="utf-8"))
    config = str(probe.config_dir)
    pad = "!" if probe.base in ("sd2", "sdxl-refiner") else "<|endoftext|>"
    components: dict[str, Any] = {}
    for name, value in index.items():
        if name.startswith("_"):
            continue
        if not isinstance(value, list):  # a pipeline option such as requires_aesthetics_score
            components[name] = value
            continue
        library, class_name = value
        if class_name is None:
            components[name] = None
        elif name.startswith("tokenizer"):
            components[name] = load_tokenizer("!" if name == "tokenizer_2" else pad)
        elif name == "scheduler":
            components[name] = getattr(diffusers, class_name).from_pretrained(config, subfolder="scheduler")
        else:
            cls = getattr(diffusers if library == "diffusers" else __import__(library), class_name)
            label = COMPONENT_NAMES.get(name, name)
            try:
                if library == "diffusers":
                    model = cls.from_single_file(state, config=config, subfolder=name, torch_dtype=dtype,
                                                 local_files_only=True)
                else:
                    model = create_diffusers_clip_model_from_ldm(cls, state, subfolder=name, config=config,
                                                                 torch_dtype=dtype, local_files_only=True)
            except ModelError:
                raise
            except (*_LOAD_ERRORS, diffusers.loaders.single_file_utils.SingleFileComponentError) as e:
                raise BrokenModel(f"{path}: the {label} does not load as {probe.family} ({_short(e)})", path) from e
            missing = [n for n, t in model.state_dict().items() if t.device.type == "meta"]
            if missing:
                raise BrokenModel(f"{path}: the {label} is missing {len(missing)} tensors (e.g. "
                                  f"{', '.join(missing[:3])}): truncated file, or a {probe.family} layout sdui "
                                  "does not know", path)
            if upcast_to is not None:
                model.to(dtype=upcast_to)
                _drop_used(state, name)
            components[name] = model
    if "safety_checker" in components:
        components.update(safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    return components


def sd2_prediction(unet, path: Path) -> Prediction:
    """SD2 without other evidence: A1111's test on the weights, then the file name when the test is undecided."""
    by_weights = from_weights(unet)
    if by_weights is not None:
        return Prediction(V if by_weights else EPSILON, source="weights test")
    return Prediction(V if from_name(path.name) else EPSILON, source="file name (the weights test gave NaN)")


_COMPONENT_PREFIXES = {"unet": ("model.diffusion_model.",), "vae": ("first_stage_model.", "vae."),
                       "text_encoder": ("cond_stage_model.", "conditioner.embedders.0."),
                       "text_encoder_2": ("conditioner.embedders.1.", "conditioner.embedders.0.model.")}


def _drop_used(state: dict, component: str) -> None:
    for key in [k for k in state if k.startswith(_COMPONENT_PREFIXES.get(component, ()))]:
        del state[key]


def place(pipe, plan: DevicePlan, path: Path | None = None):
    """Move to the device, or hand placement to accelerate's offload hooks (--medvram / --lowvram on CUDA)."""
    try:
        if plan.offload == "model":
            pipe.enable_model_cpu_offload(device=plan.device)
        elif plan.offload == "sequential":
            pipe.enable_sequential_cpu_offload(device=plan.device)
        else:
            pipe.to(plan.device)
    except (NotImplementedError, RuntimeError) as e:
        name = path or "the model"
        raise ModelError(f"{name}: cannot place the model on {plan.device} ({_short(e)})", path) from e
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
