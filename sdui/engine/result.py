"""What a run reports while it works (Progress) and what it hands back (Result)."""

from __future__ import annotations

from dataclasses import dataclass, field

from PIL import Image

from sdui.params import GenerationParams


@dataclass
class Progress:
    """One denoising step done. `step`/`total` count over the whole job (all batches)."""

    step: int
    total: int
    preview: Image.Image | None = None
    batch_index: int = 0  # which of batch_count is running
    batch_count: int = 1


@dataclass
class Result:
    """Images of one job with the seeds and A1111 infotexts that describe each of them."""

    params: GenerationParams  # as run: seed and subseed resolved (never -1)
    images: list[Image.Image] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    subseeds: list[int] = field(default_factory=list)
    infotexts: list[str] = field(default_factory=list)
    interrupted: bool = False
    model_title: str = ""
    model_name: str = ""  # A1111's model name (the infotext's `Model:`), e.g. `sub_model` for sub/model.safetensors
    model_hash: str = ""
    # Every part of the request that was not applied, each naming what (a LoRA, an embedding, a VAE, a key).
    warnings: list[str] = field(default_factory=list)
    extra: dict[str, str] = field(default_factory=dict)  # infotext keys of the extra networks (VAE, Lora hashes, ...)
