"""Reading LoRA / LyCORIS files: kohya LoRA and LoCon, LoHa, LoKr, full diffs and the diffusers/PEFT layout.

`read_lora` loads a file safely and groups its tensors by the layer they change; nothing here touches a model
(`patch.py` fuses the deltas into one).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch


@dataclass
class LoraModule:
    """The tensors of one layer's change, with their role names as the file has them (`lora_down.weight`, ...)."""

    key: str  # the file's name for the layer, e.g. `lora_unet_down_blocks_0_attentions_0_proj_in`
    kind: str  # "lora", "loha", "lokr", "full"
    tensors: dict[str, torch.Tensor]


@dataclass
class LoraNetwork:
    """One LoRA file, parsed: its layers and any layer types sdui cannot apply (by type name)."""

    path: Path
    name: str
    metadata: dict[str, str] = field(default_factory=dict)
    modules: dict[str, LoraModule] = field(default_factory=dict)
    unsupported: dict[str, list[str]] = field(default_factory=dict)  # type name -> layer keys

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for m in self.modules.values() for t in m.tensors.values())


def read_lora(path: Path) -> LoraNetwork:
    """Read a LoRA file (.safetensors, or .pt/.ckpt with weights_only); ModelError subclasses name the file."""
    raise NotImplementedError
