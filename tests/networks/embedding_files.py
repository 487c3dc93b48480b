"""Writers of tiny textual-inversion files in each real format (A1111 .pt, .safetensors, diffusers .bin), and
broken or hostile ones, for the embedding, prompt, engine, API and browser tests."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import torch
from safetensors.torch import save_file


def vectors(n: int, width: int = 32, seed: int = 0) -> torch.Tensor:
    """(n, width) random vectors, the same for the same seed (the scale of CLIP token embeddings)."""
    return torch.randn(n, width, generator=torch.Generator().manual_seed(seed)) * 0.02


def write_a1111_pt(path: Path, vecs: torch.Tensor, *, step: int = 500, checkpoint: str | None = "a1b2c3d4",
                   checkpoint_name: str | None = "tiny") -> Path:
    """A1111's .pt: string_to_param {"*": (n, width)} with its training details."""
    torch.save({"string_to_token": {"*": 265}, "string_to_param": {"*": vecs.clone()}, "name": path.stem,
                "step": step, "sd_checkpoint": checkpoint, "sd_checkpoint_name": checkpoint_name}, path)
    return path


def write_a1111_parameter_dict_pt(path: Path, vecs: torch.Tensor, *, step: int = 100) -> Path:
    """An old A1111 .pt whose string_to_param is a torch.nn.ParameterDict (a pickled nn.Module)."""
    params = torch.nn.ParameterDict({"*": torch.nn.Parameter(vecs.clone())})
    torch.save({"string_to_token": {"*": 265}, "string_to_param": params, "name": path.stem, "step": step,
                "sd_checkpoint": None, "sd_checkpoint_name": None}, path)
    return path


def write_emb_params_safetensors(path: Path, vecs: torch.Tensor) -> Path:
    """An SD1/SD2 .safetensors embedding: emb_params (n, width)."""
    save_file({"emb_params": vecs.contiguous()}, str(path))
    return path


def write_sdxl_safetensors(path: Path, clip_l: torch.Tensor, clip_g: torch.Tensor) -> Path:
    """An SDXL .safetensors embedding: clip_l for the first text encoder, clip_g for the second."""
    save_file({"clip_l": clip_l.contiguous(), "clip_g": clip_g.contiguous()}, str(path))
    return path


def write_diffusers_bin(path: Path, vecs: torch.Tensor, token: str = "<cat-toy>") -> Path:
    """diffusers' learned_embeds.bin: {"<token>": vectors}; a single vector is saved 1-D, as diffusers does."""
    torch.save({token: vecs[0].clone() if vecs.shape[0] == 1 else vecs.clone()}, path)
    return path


def write_diffusers_safetensors(path: Path, vecs: torch.Tensor, token: str = "<cat-toy>") -> Path:
    """diffusers' learned_embeds.safetensors: {"<token>": vectors}."""
    save_file({token: vecs.contiguous()}, str(path))
    return path


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def write_pickle_with_code(path: Path, marker: Path, *, plain_pickle: bool = False,
                           parameter_dict: bool = False) -> Path:
    """An A1111-looking .pt that would run `touch marker` if unpickled without weights_only (a torch zip file,
    or a plain pickle stream; its vectors in a dict, or in the old files' ParameterDict)."""
    params = {"*": vectors(1)}
    if parameter_dict:
        params = torch.nn.ParameterDict({"*": torch.nn.Parameter(params["*"])})
    payload = {"string_to_token": {"*": 265}, "string_to_param": params, "name": path.stem,
               "payload": _RunsCode(marker)}
    if plain_pickle:
        with path.open("wb") as f:
            pickle.dump(payload, f)
    else:
        torch.save(payload, path)
    return path


def write_corrupt(path: Path) -> Path:
    """A file of the suffix's name holding random bytes (a truncated download)."""
    path.write_bytes(bytes(range(256)) * 3)
    return path
