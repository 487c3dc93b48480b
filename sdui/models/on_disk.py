"""One checkpoint file, read once: shapes, metadata, safety scan, stored dtype and the state dict share one read.

In the spirit of InvokeAI's ModelOnDisk. A .safetensors header is read (and checked) once; its tensors are
mmapped when the state dict is first asked for. A pickle is scanned once and unpickled once (mmapped, with
`weights_only=True`). Keys arrive in the layout the bundled configs load (`canonical_keys`): A1111's remaps
for the old SD1 text-encoder layout and for SD2 files in SGM layout (SD-Turbo). ComfyUI "scaled fp8" weights
are dequantised (`dequantise_scaled_fp8`) when the state dict is built.
"""

from __future__ import annotations

import math
from functools import cached_property
from pathlib import Path
from typing import Iterable

import torch

from sdui.models.errors import BrokenModel, UnrecognizedModel
from sdui.models.files import (PICKLE_SUFFIXES, SAFETENSORS_SUFFIXES, Shapes, check_pickle_safety, load_pickle,
                               read_safetensors_entries)

# A1111's `checkpoint_dict_replacements_sd1`: text-encoder keys of early SD1 files (before transformers 4.x
# moved CLIP under `text_model.`).
OLD_SD1_TEXT = {"cond_stage_model.transformer.embeddings.": "cond_stage_model.transformer.text_model.embeddings.",
                "cond_stage_model.transformer.encoder.": "cond_stage_model.transformer.text_model.encoder.",
                "cond_stage_model.transformer.final_layer_norm.":
                    "cond_stage_model.transformer.text_model.final_layer_norm."}
# A1111's `checkpoint_dict_replacements_sd2_turbo`: SD2 in SGM (generative-models) layout.
SGM_SD2_TEXT = {"conditioner.embedders.0.": "cond_stage_model."}
SCALED_FP8_MARKER = "scaled_fp8"
FP8_DTYPES = (torch.float8_e4m3fn, torch.float8_e5m2)
_STORED_NAMES = {"F16": torch.float16, "BF16": torch.bfloat16, "F32": torch.float32, "F64": torch.float64}


def canonical_keys(keys: Iterable[str]) -> dict[str, str]:
    """old key -> key in the bundled configs' layout, for the keys that must be renamed (usually none)."""
    keys = list(keys)
    replacements: dict[str, str] = {}
    has = lambda prefix: any(k.startswith(prefix) for k in keys)  # noqa: E731
    if has("cond_stage_model.transformer.") and not has("cond_stage_model.transformer.text_model."):
        replacements.update(OLD_SD1_TEXT)
    # SGM layout with one OpenCLIP encoder and no ADM input is SD2 (SD-Turbo); with `label_emb` it is the SDXL
    # refiner, whose own layout this is.
    if (has("conditioner.embedders.0.model.") and not has("conditioner.embedders.1.")
            and not has("model.diffusion_model.label_emb.")):
        replacements.update(SGM_SD2_TEXT)
    renamed = {}
    for key in keys:
        for old, new in replacements.items():
            if key.startswith(old):
                renamed[key] = new + key[len(old):]
                break
    return renamed


class CheckpointFile:
    """A single-file checkpoint (.safetensors or a pickle) and what sdui needs to know about it, each read once."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.suffix = self.path.suffix.lower()
        if self.suffix not in SAFETENSORS_SUFFIXES | PICKLE_SUFFIXES:
            raise UnrecognizedModel(f"{self.path}: unknown file type {self.suffix!r} (expected .safetensors, .ckpt, "
                                    ".pt or .bin)", self.path)
        self._state_dict: dict[str, torch.Tensor] | None = None

    @property
    def is_pickle(self) -> bool:
        return self.suffix in PICKLE_SUFFIXES

    @cached_property
    def unsafe_globals(self) -> list[str]:
        """The allow-listed stubs a pickle needs (UnsafeModel when it references code); [] for safetensors."""
        return check_pickle_safety(self.path) if self.is_pickle else []

    @cached_property
    def _header(self) -> tuple[Shapes, dict[str, str], dict[str, str]]:
        """(shapes, metadata, dtype names) in the file's own key layout."""
        if not self.is_pickle:
            shapes, dtypes, metadata = read_safetensors_entries(self.path)
            return shapes, metadata, dtypes
        raw = self._raw_pickle_state_dict
        shapes = {k: tuple(v.shape) for k, v in raw.items()}
        return shapes, {}, {k: _dtype_name(v.dtype) for k, v in raw.items()}

    @cached_property
    def _raw_pickle_state_dict(self) -> dict[str, torch.Tensor]:
        return self._unpickle(mmap=True)

    def _unpickle(self, mmap: bool) -> dict[str, torch.Tensor]:
        obj = load_pickle(self.path, mmap=mmap, unsafe=self.unsafe_globals)  # the scan may refuse it first
        while isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
            obj = obj["state_dict"]
        if not isinstance(obj, dict) or not any(isinstance(v, torch.Tensor) for v in obj.values()):
            raise UnrecognizedModel(f"{self.path}: the pickle holds no tensors, so it is not a model checkpoint",
                                    self.path)
        return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}

    @cached_property
    def renamed(self) -> dict[str, str]:
        return canonical_keys(self._header[0])

    @cached_property
    def shapes(self) -> Shapes:
        """Tensor shapes under canonical keys."""
        return {self.renamed.get(k, k): s for k, s in self._header[0].items()}

    @property
    def metadata(self) -> dict[str, str]:
        return self._header[1]

    @cached_property
    def yaml_text(self) -> str | None:
        """A sibling `<name>.yaml` (A1111's per-checkpoint config), if there is one."""
        yaml = self.path.with_suffix(".yaml")
        return yaml.read_text(encoding="utf-8", errors="replace") if yaml.is_file() else None

    @cached_property
    def is_scaled_fp8(self) -> bool:
        return SCALED_FP8_MARKER in self._header[0] or any(k.endswith(".scale_weight") for k in self._header[0])

    @cached_property
    def stored_dtype(self) -> torch.dtype | None:
        """The floating dtype holding most weight bytes (fp8 counts as what it is dequantised to: None)."""
        totals: dict[torch.dtype, int] = {}
        for key, name in self._header[2].items():
            dtype = _STORED_NAMES.get(name)
            if dtype is not None:
                totals[dtype] = totals.get(dtype, 0) + math.prod(self._header[0][key]) * dtype.itemsize
        return max(totals, key=totals.get) if totals else None

    def state_dict(self, fp8_to: torch.dtype = torch.float32, in_memory: bool = False) -> dict[str, torch.Tensor]:
        """Every tensor under canonical keys, scaled fp8 dequantised to `fp8_to`.

        Mmapped where the format allows; `in_memory` reads the tensors into plain memory instead, so each one is
        freed as soon as nothing holds it (a pickle's small pickle part is then parsed a second time).
        """
        if self._state_dict is None:
            if self.is_pickle:
                if in_memory:
                    self.__dict__.pop("_raw_pickle_state_dict", None)
                raw = self._unpickle(mmap=False) if in_memory else self._raw_pickle_state_dict
            else:
                from safetensors.torch import load, load_file

                try:
                    raw = load(self.path.read_bytes()) if in_memory else load_file(str(self.path), device="cpu")
                except (OSError, RuntimeError, ValueError) as e:
                    raise BrokenModel(f"{self.path}: cannot read the tensors ({e})", self.path) from e
            state = {self.renamed.get(k, k): v for k, v in raw.items()}
            if self.is_scaled_fp8:
                state = dequantise_scaled_fp8(state, fp8_to)
            self._state_dict = state
        return self._state_dict

    def release(self) -> None:
        """Drop the cached tensors (the loaded model keeps what it uses)."""
        self._state_dict = None
        self.__dict__.pop("_raw_pickle_state_dict", None)


def dequantise_scaled_fp8(state: dict[str, torch.Tensor], dtype: torch.dtype) -> dict:
    """ComfyUI's scaled fp8: `w.weight` (fp8) × `w.scale_weight` (a scalar) → `w.weight` in `dtype`.

    The marker `scaled_fp8` and the `scale_input` entries (only used by fp8 matmul kernels) are dropped.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key == SCALED_FP8_MARKER or key.endswith((".scale_weight", ".scale_input")):
            continue
        scale = state.get(key[: -len("weight")] + "scale_weight") if key.endswith(".weight") else None
        if scale is not None:
            value = (value.to(torch.float32) * scale.to(torch.float32)).to(dtype)
        elif value.dtype in FP8_DTYPES:
            value = value.to(dtype)
        out[key] = value
    return out


def _dtype_name(dtype: torch.dtype) -> str:
    return next((n for n, d in _STORED_NAMES.items() if d == dtype), str(dtype))

