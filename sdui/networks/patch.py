"""Fusing LoRA deltas into a pipeline's weights in place, and undoing it bit for bit from a backup.

As A1111's `network_weights_backup`: the first change to a weight keeps a copy; `restore()` copies it back.
Weights change in place (same tensors), so a compiled UNet is not recompiled.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from sdui.networks.lora import LoraNetwork


@dataclass(frozen=True)
class LoraUse:
    """One LoRA as a job asks for it: multipliers for the text encoder(s) and the UNet."""

    network: LoraNetwork
    te: float = 1.0
    unet: float = 1.0
    dyn: int | None = None
    label: str = ""  # the name as the prompt wrote it (for warnings)


class LoraPatcher:
    """The LoRA deltas fused into one pipeline's modules (`unet`, `text_encoder`, `text_encoder_2`)."""

    def __init__(self, components: Mapping[str, torch.nn.Module]) -> None:
        raise NotImplementedError

    @property
    def fused(self) -> bool:
        raise NotImplementedError

    def apply(self, uses: Sequence[LoraUse]) -> list[str]:
        """Make the weights original + the sum of `uses`' deltas; return warnings. The same uses again: no work."""
        raise NotImplementedError

    def restore(self) -> None:
        """Copy every changed weight back from its backup (bit-identical to before); free the backups."""
        raise NotImplementedError
