"""The /sdapi/v1 routes that describe the server: models, options, samplers, schedulers, flags, memory, extras."""

# No `from __future__ import annotations`: FastAPI must see the endpoint annotations as objects.
import dataclasses
import json
from pathlib import Path
from typing import Any

from fastapi import APIRouter

from sdui.api.context import ApiContext, set_default_checkpoint
from sdui.api.convert import SCHEDULER_IDS, check_ensd, check_randn_source, resolve_vae
from sdui.api.errors import ApiError
from sdui.api.models import (EmbeddingsResponse, LoraItem, MemoryResponse, OptionsUpdate, SamplerItem, SchedulerItem,
                             ScriptsList, SDModelItem, SDVaeItem, UpscalerItem)
from sdui.engine import samplers
from sdui.engine.hires import LATENT_MODES
from sdui.models.errors import ModelError
from sdui.models.files import read_safetensors_header
from sdui.networks.embeddings import Embedding, EmbeddingSet
from sdui.networks.folders import NetworkFile

_SECRET_FLAGS = ("api_auth", "gradio_auth")
# Options sdui reports but fixes at start: name -> the flag that sets it.
_READ_ONLY = {"samples_format": "--save-format", "samples_save": "--no-save", "outdir_samples": "--outputs-dir",
              "outdir_txt2img_samples": "--outputs-dir", "outdir_img2img_samples": "--outputs-dir",
              "sd_checkpoints_limit": "--models-in-memory"}


def current_options(ctx: ApiContext) -> dict[str, Any]:
    """The A1111 options sdui knows, with their values now."""
    with ctx.lock:
        checkpoint, clip_skip, vae = ctx.checkpoint, ctx.clip_skip, ctx.vae
        randn_source, ensd = ctx.randn_source, ctx.eta_noise_seed_delta
    if checkpoint is None:
        try:
            checkpoint = ctx.manager.info(None).title
        except ModelError:
            checkpoint = None
    out = Path(ctx.settings.outputs_dir)
    return {"sd_model_checkpoint": checkpoint, "CLIP_stop_at_last_layers": clip_skip,
            "samples_format": ctx.settings.save_format, "samples_save": not ctx.settings.no_save,
            "outdir_samples": "", "outdir_txt2img_samples": str(out / "txt2img-images"),
            "outdir_img2img_samples": str(out / "img2img-images"), "sd_vae": vae,
            "sd_checkpoints_limit": ctx.settings.models_in_memory, "randn_source": randn_source,
            "eta_noise_seed_delta": ensd}


def update_options(ctx: ApiContext, update: OptionsUpdate) -> None:
    """Apply the options a client may change; refuse (400) changes to the ones fixed at start."""
    changes = update.model_dump(exclude_unset=True)
    now = current_options(ctx)
    for name, value in changes.items():
        if name in _READ_ONLY and value != now[name]:
            raise ApiError(400, f"option {name} is fixed when sdui starts ({_READ_ONLY[name]}); "
                                f"it is {now[name]!r}, got {value!r}", name)
    clip_skip = changes.get("CLIP_stop_at_last_layers")
    if "CLIP_stop_at_last_layers" in changes and (clip_skip is None or not 1 <= clip_skip <= 12):
        raise ApiError(400, f"CLIP_stop_at_last_layers must be between 1 and 12; got {clip_skip!r}",
                       "CLIP_stop_at_last_layers")
    randn_source = check_randn_source(changes["randn_source"], "randn_source") if "randn_source" in changes else None
    ensd = changes.get("eta_noise_seed_delta")
    ensd = check_ensd(ensd, "eta_noise_seed_delta") if "eta_noise_seed_delta" in changes else None
    vae = resolve_vae(changes["sd_vae"], ctx.manager.extras.vaes, "sd_vae") if "sd_vae" in changes else None
    if "sd_model_checkpoint" in changes:
        set_default_checkpoint(ctx, changes["sd_model_checkpoint"])
    if vae is not None:
        ctx.manager.check_vae(vae, ctx.checkpoint)  # as A1111 loads it when set: a misfit is refused now, not later
        with ctx.lock:
            ctx.vae = vae
    with ctx.lock:
        if clip_skip is not None:
            ctx.clip_skip = clip_skip
        if randn_source is not None:
            ctx.randn_source = randn_source
        if ensd is not None:
            ctx.eta_noise_seed_delta = ensd


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
    def set_options(update: OptionsUpdate) -> None:
        update_options(ctx, update)

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
        return ScriptsList()

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

    @router.get("/prompt-styles")
    def prompt_styles() -> list:
        return []

    @router.get("/face-restorers")
    def face_restorers() -> list:
        return []

    @router.get("/latent-upscale-modes")
    def latent_upscale_modes() -> list[dict[str, str]]:
        return [{"name": name} for name in LATENT_MODES]
