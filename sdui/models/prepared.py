"""One job's prepared pipeline: a cached pipeline with this job's VAE, LoRA weights and embeddings in place.

`ModelManager.prepare` opens it; on exit the cached pipeline's own VAE and scheduler are back, whatever happened.
LoRA weights stay fused after the job, as in A1111, so the same LoRAs in the next job cost nothing; a job
that asks for other LoRAs (or none), and `ModelManager.get`, restore the original weights first, bit for bit.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sdui.models.catalog import CheckpointInfo
from sdui.models.extras import ExtraNetworks
from sdui.networks.embeddings import EmbeddingSet
from sdui.networks.patch import LoraPatcher
from sdui.networks.tags import strip_tags
from sdui.params import GenerationParams


@dataclass
class PreparedJob:
    """What a job runs on: the pipeline, the prompts without their network tags, embeddings and warnings."""

    pipe: Any  # the cached pipeline, with this job's VAE; the engine sets a fresh scheduler per batch
    info: CheckpointInfo
    scheduler_config: dict  # the checkpoint's own scheduler config (a copy)
    prompt: str  # the prompts with their `<lora:...>` tags removed (the infotext keeps them as written)
    negative_prompt: str
    embeddings: EmbeddingSet | None
    infotext: dict[str, str] = field(default_factory=dict)  # Lora hashes, VAE, VAE hash
    warnings: list[str] = field(default_factory=list)


def patcher_for(pipe) -> LoraPatcher:
    """A LoraPatcher over the modules a LoRA may change."""
    names = ("unet", "text_encoder", "text_encoder_2")
    return LoraPatcher({n: getattr(pipe, n) for n in names if getattr(pipe, n, None) is not None})


@contextlib.contextmanager
def open_job(pipe, info: CheckpointInfo, scheduler_config: dict, patcher: LoraPatcher, extras: ExtraNetworks,
             params: GenerationParams, own_vae) -> Iterator[PreparedJob]:
    """Apply `params`' LoRAs (kept fused afterwards), VAE and embeddings to `pipe` for the body of the `with`."""
    prompt, tags = strip_tags(params.prompt, "prompt")
    negative, negative_tags = strip_tags(params.negative_prompt, "negative_prompt")
    # 1. LoRAs from both prompts (A1111 applies a tag wherever it is written), fused in place.
    loras = extras.lora_choice(tags + negative_tags, params.lora_hashes)
    warnings = loras.warnings + patcher.apply(loras.uses)
    # 2. The VAE to decode with (refused when made for another model family).
    vae = extras.vae_choice(params.vae, info, own_vae)
    warnings += vae.warnings
    # 3. The embeddings that fit this model's text encoders; words naming skipped ones are reported.
    embeddings = extras.embedding_set(info.filename, pipe)
    warnings += skipped_embedding_warnings(embeddings, prompt + "\n" + negative)
    infotext = dict(vae.infotext)
    lora_hashes = loras.hashes_of(patcher.applied)
    if lora_hashes:
        infotext["Lora hashes"] = lora_hashes
    original_vae, original_scheduler = pipe.vae, pipe.scheduler
    if vae.module is not None:
        pipe.vae = vae.module
    try:
        yield PreparedJob(pipe=pipe, info=info, scheduler_config=scheduler_config, prompt=prompt,
                          negative_prompt=negative, embeddings=embeddings, infotext=infotext, warnings=warnings)
    finally:
        pipe.vae, pipe.scheduler = original_vae, original_scheduler


def skipped_embedding_warnings(embeddings: EmbeddingSet, text: str) -> list[str]:
    """A warning for each skipped embedding whose name the prompts use as a word."""
    lowered = text.lower()
    return [f"embedding '{name}' is not used with this model ({reason}): its name was encoded as plain words"
            for name, reason in embeddings.skipped.items()
            if re.search(rf"(?<!\w){re.escape(name.lower())}(?!\w)", lowered)]
