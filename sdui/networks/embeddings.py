"""Textual-inversion embeddings: reading A1111 .pt/.safetensors and diffusers .bin files, and the set that fits a model.

An embedding is used by its file name in a prompt; `EmbeddingSet` finds those names among a prompt's tokens for
one model (its text encoders' widths decide which embeddings fit) and holds the vectors the prompt encoder uses.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from sdui.networks.folders import NetworkFile


@dataclass(frozen=True)
class Embedding:
    """One embedding for one model: a (n_vectors, width) tensor per text encoder, in the model's encoder order."""

    name: str
    vectors: tuple[torch.Tensor, ...]
    file: NetworkFile | None = None
    step: int | None = None
    checkpoint: str | None = None  # the sd_checkpoint / sd_checkpoint_name it was trained on, if recorded

    @property
    def n_vectors(self) -> int:
        return int(self.vectors[0].shape[0])


@dataclass
class EmbeddingSet:
    """The embeddings that fit one model's text encoders (`loaded`), and the others with why (`skipped`)."""

    widths: tuple[int, ...]
    loaded: dict[str, Embedding] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    @classmethod
    def build(cls, files: Sequence[NetworkFile], widths: tuple[int, ...], tokenizer,
              read: Callable[[Path], dict[str, torch.Tensor]] | None = None) -> EmbeddingSet:
        raise NotImplementedError

    def find_at(self, tokens: Sequence[int], position: int) -> tuple[Embedding, int] | None:
        """The embedding whose name's tokens start at `position` (longest first) and that name's token count."""
        raise NotImplementedError
