"""The /sdapi/v1 routes that describe the server: models, options, samplers, schedulers, flags, memory, extras."""

# No `from __future__ import annotations`: FastAPI must see the endpoint annotations as objects.
import dataclasses
import json
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Body

from sdui.api import script_args
from sdui.api.context import ApiContext, set_default_checkpoint
from sdui.api.convert import SCHEDULER_IDS, resolve_vae
from sdui.api.errors import ApiError
from sdui.api.models import (EmbeddingsResponse, LoraItem, MemoryResponse, PromptStyleItem, SamplerItem,
                             SchedulerItem, ScriptsList, SDModelItem, SDVaeItem, UpscalerItem)
from sdui.engine import samplers
from sdui.engine.hires import LATENT_MODES
from sdui.models.errors import ModelError
from sdui.models.files import read_safetensors_header
from sdui.networks.embeddings import Embedding, EmbeddingSet
from sdui.networks.folders import NetworkFile
from sdui.options import OptionError, UnknownOption

_SECRET_FLAGS = ("api_auth", "gradio_auth")


def current_options(ctx: ApiContext) -> dict[str, Any]:
    """The A1111 options sdui knows, with their values now (the checkpoint: the current model when none is set)."""
    values = ctx.options.values()
    if not values["sd_model_checkpoint"]:
        try:
            values["sd_model_checkpoint"] = ctx.manager.info(None).title
        except ModelError:
            values["sd_model_checkpoint"] = None
    return values


def update_options(ctx: ApiContext, changes: dict[str, Any]) -> None:
    """Check all `changes` (422 for an unknown name, 400 for a bad value or one a flag fixes), then apply and save
    them: a checkpoint loads and a VAE is checked against it first, as A1111 does when they are set."""
    try:
        ctx.options.check(changes)
    except UnknownOption as e:
        raise ApiError(422, str(e), e.name) from None
    except OptionError as e:
        raise ApiError(400, str(e), e.name) from None
    changes = dict(changes)
    if "sd_vae" in changes:
        changes["sd_vae"] = resolve_vae(changes["sd_vae"], ctx.manager.extras.vaes, "sd_vae")
    if "sd_model_checkpoint" in changes:
        set_default_checkpoint(ctx, changes.pop("sd_model_checkpoint"))
    if "sd_vae" in changes:
        ctx.manager.check_vae(changes["sd_vae"], ctx.checkpoint)  # a misfit is refused now, not at the next job
    ctx.options.update(changes)


def cmd_flags(ctx: ApiContext) -> dict[str, Any]:
    """The flags the server started with (A1111's names), credentials hidden."""
    flags = {}
    for f in dataclasses.fields(ctx.settings):
        value = getattr(ctx.settings, f.name)
        if f.name in _SECRET_FLAGS:
            value = "<set>" if value else None
        elif isinstance(value, Path):
            value = str(value)
        flags[f.name] = value
    return flags


def memory() -> MemoryResponse:
    """RAM of this machine and, when there is one, the CUDA device's memory."""
    import psutil
    import torch

    vm = psutil.virtual_memory()
    ram = {"free": vm.available, "used": vm.total - vm.available, "total": vm.total}
    if not torch.cuda.is_available():
        return MemoryResponse(ram=ram, cuda={"error": "CUDA is not available"})
    free, total = torch.cuda.mem_get_info()
    cuda = {"system": {"free": free, "used": total - free, "total": total},
            "active": {"current": torch.cuda.memory_allocated(), "peak": torch.cuda.max_memory_allocated()},
            "reserved": {"current": torch.cuda.memory_reserved(), "peak": torch.cuda.max_memory_reserved()}}
    return MemoryResponse(ram=ram, cuda=cuda)


def lora_item(file: NetworkFile) -> LoraItem:
    """A1111's /loras entry: name, alias (`ss_output_name`), path and the file's safetensors metadata."""
    metadata: dict[str, Any] = {}
    if file.is_safetensors:
        try:
            metadata = dict(read_safetensors_header(file.path)[1])
        except (ModelError, OSError):
            metadata = {}
    for key, value in metadata.items():  # kohya stores some values as JSON text, A1111 returns them parsed
        if isinstance(value, str) and value[:1] in "{[":
            try:
                metadata[key] = json.loads(value)
            except ValueError:
                pass
    return LoraItem(name=file.name, alias=str(metadata.get("ss_output_name") or file.name), path=str(file.path),
                    metadata=metadata)


def embeddings_response(embeddings: EmbeddingSet) -> EmbeddingsResponse:
    """A1111's /embeddings: the ones that fit the current model and the skipped ones."""
    def item(embedding: Embedding | None, reason: str | None = None) -> dict[str, Any]:
        found = {"step": None, "sd_checkpoint": None, "sd_checkpoint_name": None, "shape": None, "vectors": None}
        if embedding is not None:
            found.update(step=embedding.step, sd_checkpoint=embedding.checkpoint,
                         sd_checkpoint_name=embedding.checkpoint_name, vectors=embedding.n_vectors,
                         shape=sum(int(v.shape[-1]) for v in embedding.vectors))  # SDXL: 768 + 1280, as A1111
        if reason is not None:
            found["reason"] = reason
        return found

    return EmbeddingsResponse(loaded={name: item(e) for name, e in embeddings.loaded.items()},
                              skipped={name: item(None, reason) for name, reason in embeddings.skipped.items()})


def add_info_routes(router: APIRouter, ctx: ApiContext) -> None:
    """Register the descriptive routes on `router`."""

    @router.get("/sd-models", response_model=list[SDModelItem])
    def sd_models() -> list[SDModelItem]:
        # As AUTOMATIC1111: hashes only where already computed (null otherwise); listing reads no model file.
        items = [(c, c.known_sha256) for c in ctx.catalog.list()]
        return [SDModelItem(title=c.title, model_name=c.name, hash=sha[:10] if sha else None, sha256=sha,
                            filename=c.filename, config=None) for c, sha in items]

    @router.post("/refresh-checkpoints")
    def refresh_checkpoints() -> None:
        ctx.catalog.refresh()

    @router.get("/options")
    def get_options() -> dict[str, Any]:
        return current_options(ctx)

    @router.post("/options")
    def set_options(changes: dict[str, Any] = Body(..., examples=[{"CLIP_stop_at_last_layers": 2}])) -> None:
        update_options(ctx, changes)

    @router.get("/samplers", response_model=list[SamplerItem])
    def sampler_list() -> list[SamplerItem]:
        return [SamplerItem(name=s.name, aliases=list(s.aliases), options=dict(s.options))
                for s in samplers.SAMPLERS]

    @router.get("/schedulers", response_model=list[SchedulerItem])
    def scheduler_list() -> list[SchedulerItem]:
        return [SchedulerItem(name=name, label=label, aliases=None, default_rho=-1.0, need_inner_model=False)
                for name, label in SCHEDULER_IDS.items()]

    @router.get("/cmd-flags")
    def get_cmd_flags() -> dict[str, Any]:
        return cmd_flags(ctx)

    @router.get("/memory", response_model=MemoryResponse)
    def get_memory() -> MemoryResponse:
        return memory()

    @router.get("/scripts", response_model=ScriptsList)
    def scripts() -> ScriptsList:
        return ScriptsList(txt2img=list(script_args.SCRIPTS), img2img=list(script_args.SCRIPTS))

    @router.get("/script-info")
    def script_info() -> list:
        return []

    @router.get("/sd-vae", response_model=list[SDVaeItem])
    def sd_vae() -> list[SDVaeItem]:
        return [SDVaeItem(model_name=Path(v.rel).name, filename=str(v.path)) for v in ctx.manager.extras.vaes.list()]

    @router.post("/refresh-vae")
    def refresh_vae() -> None:
        ctx.manager.extras.refresh()

    @router.get("/loras", response_model=list[LoraItem])
    def loras() -> list[LoraItem]:
        return [lora_item(f) for f in ctx.manager.extras.loras.list()]

    @router.post("/refresh-loras")
    def refresh_loras() -> None:
        ctx.manager.extras.refresh()

    @router.get("/upscalers", response_model=list[UpscalerItem])
    def upscalers() -> list[UpscalerItem]:
        return [UpscalerItem(name=u.name, model_name=u.model_name, model_path=u.model_path, model_url=u.model_url,
                             scale=u.scale) for u in ctx.manager.upscalers.list()]

    @router.get("/embeddings", response_model=EmbeddingsResponse)
    def embeddings() -> EmbeddingsResponse:
        return embeddings_response(ctx.manager.embeddings(ctx.checkpoint))

    @router.post("/refresh-embeddings")
    def refresh_embeddings() -> None:
        ctx.manager.extras.refresh()

    @router.get("/prompt-styles", response_model=list[PromptStyleItem])
    def prompt_styles() -> list[PromptStyleItem]:
        return [PromptStyleItem(name=s.name, prompt=s.prompt, negative_prompt=s.negative_prompt)
                for s in ctx.styles.styles().values()]

    @router.get("/face-restorers")
    def face_restorers() -> list:
        return []

    @router.get("/latent-upscale-modes")
    def latent_upscale_modes() -> list[dict[str, str]]:
        return [{"name": name} for name in LATENT_MODES]
