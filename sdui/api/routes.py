"""mount_api: the /sdapi/v1 generation routes (txt2img, img2img, progress, interrupt, skip, png-info).

Endpoints that wait are plain `def`s, so FastAPI runs them (and their waits on the job queue) in its
threadpool, never on the event loop; the ones that never block are `async`. The informational routes
live in `info_routes.py`.
"""

# No `from __future__ import annotations`: FastAPI must see the endpoint annotations as objects.
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse

import sdui

from sdui.api import convert
from sdui.api.auth import make_owner_dependency
from sdui.api.context import ApiContext
from sdui.api.errors import ApiError, ApiRoute
from sdui.api.extras_routes import add_extras_routes
from sdui.api.info_routes import add_info_routes
from sdui.api.models import (ImageResponse, Img2ImgRequest, PNGInfoRequest, PNGInfoResponse, ProgressResponse,
                             Txt2ImgRequest)
from sdui.jobs import JobQueue
from sdui.params import GenerationParams
from sdui.settings import Settings

if TYPE_CHECKING:
    from sdui.models.catalog import Catalog
    from sdui.models.manager import ModelManager
    from sdui.options import Options
    from sdui.styles import StyleStore

PREFIX = "/sdapi/v1"


def mount_api(app: FastAPI, *, queue: JobQueue, manager: "ModelManager", catalog: "Catalog",
              settings: Settings, options: "Options | None" = None, styles: "StyleStore | None" = None) -> None:
    """Add the A1111-compatible /sdapi/v1 routes to `app` (HTTP Basic on all of them with --api-auth).

    `options`: the store /options reads and writes (app.py's, kept in config.json); None keeps one in memory.
    `styles`: app.py's styles.csv store (the UI's too); None: the data dir's styles.csv.
    """
    ctx = ApiContext(queue=queue, manager=manager, catalog=catalog, settings=settings, options=options,
                     styles=styles)
    owner_dep = make_owner_dependency(settings.api_auth)
    router = APIRouter(prefix=PREFIX, route_class=ApiRoute, dependencies=[Depends(owner_dep)], tags=["sdapi"])
    _add_generation_routes(router, ctx, owner_dep)
    add_info_routes(router, ctx)
    add_extras_routes(router, ctx, owner_dep)
    app.include_router(router)
    if app.docs_url is None:  # Gradio's app turns FastAPI's docs off: serve the API's own at /docs
        _add_docs(app, router, owner_dep)


def _add_docs(app: FastAPI, router: APIRouter, owner_dep: Any) -> None:
    schema_url = "/sdapi/openapi.json"

    @app.get(schema_url, include_in_schema=False, dependencies=[Depends(owner_dep)])
    def api_schema() -> dict:
        return get_openapi(title="sdui API (AUTOMATIC1111-compatible)", version=sdui.__version__,
                           routes=router.routes)

    @app.get("/docs", include_in_schema=False, dependencies=[Depends(owner_dep)])
    def api_docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=schema_url, title="sdui API")


def _run(ctx: ApiContext, req: Any, params: GenerationParams, owner: str, warnings: list[str]) -> ImageResponse:
    params, style_warnings = convert.with_styles(params, req.styles, ctx.styles)
    warnings = [*warnings, *style_warnings]
    job = ctx.queue.submit(params, owner, save=req.save_images and not req.do_not_save_samples)
    result = job.wait()
    return convert.build_response(req, result, job.created, warnings)


def _defaults(ctx: ApiContext) -> dict[str, Any]:
    with ctx.lock:
        return {"checkpoint": ctx.checkpoint, "clip_skip": ctx.clip_skip, "vae": ctx.vae,
                "randn_source": ctx.randn_source, "eta_noise_seed_delta": ctx.eta_noise_seed_delta,
                "use_old_scheduling": ctx.options.get("use_old_scheduling"), "vaes": ctx.manager.extras.vaes}


def _with_infotext(ctx: ApiContext, req: Any, defaults: dict[str, Any]) -> convert.RequestInfotext:
    """The request with its `infotext` applied, and the warnings of both it and its override_settings."""
    applied = convert.apply_infotext(req, catalog=ctx.catalog, defaults=defaults, upscalers=ctx.manager.upscalers,
                                     networks=ctx.manager.extras)
    applied.warnings += convert.override_warnings(applied.request) + convert.ignored_field_warnings(applied.request)
    return applied


def _add_generation_routes(router: APIRouter, ctx: ApiContext, owner_dep: Any) -> None:
    Owner = Annotated[str, Depends(owner_dep)]

    @router.post("/txt2img", response_model=ImageResponse)
    def txt2img(req: Txt2ImgRequest, owner: Owner) -> ImageResponse:
        defaults = _defaults(ctx)
        applied = _with_infotext(ctx, req, defaults)
        params = convert.txt2img_params(applied.request, ctx.catalog, upscalers=ctx.manager.upscalers,
                                        lora_hashes=applied.lora_hashes, **defaults)
        return _run(ctx, applied.request, params, owner, applied.warnings)

    @router.post("/img2img", response_model=ImageResponse)
    def img2img(req: Img2ImgRequest, owner: Owner) -> ImageResponse:
        defaults = _defaults(ctx)
        applied = _with_infotext(ctx, req, defaults)
        params = convert.img2img_params(applied.request, ctx.catalog, max_bytes=ctx.max_bytes,
                                        lora_hashes=applied.lora_hashes, **defaults)
        return _run(ctx, applied.request, params, owner, applied.warnings)

    @router.post("/png-info", response_model=PNGInfoResponse)
    def png_info(req: PNGInfoRequest) -> PNGInfoResponse:
        from sdui.outputs.infotext import parse_infotext
        from sdui.outputs.read import read_infotext

        image = convert.decode_image(req.image, "image", ctx.max_bytes)
        try:
            text = read_infotext(image) or ""
            parameters = parse_infotext(text) if text else {}
        except ValueError as e:
            raise ApiError(400, f"image: {e}", "image") from None
        items = {k: v for k, v in image.info.items()
                 if k != "parameters" and isinstance(v, (str, int, float, bool))}
        return PNGInfoResponse(info=text, items=items, parameters=parameters)

    # progress, interrupt and skip never block: async keeps them answering while every
    # threadpool worker waits on a generation.
    @router.get("/progress", response_model=ProgressResponse)
    async def progress(owner: Owner, skip_current_image: bool = False) -> ProgressResponse:
        jobs = ctx.queue.active(owner)
        if not jobs:
            state = {"skipped": False, "interrupted": False, "stopping_generation": False, "job": "",
                     "job_count": 0, "job_timestamp": "0", "job_no": 0, "sampling_step": 0, "sampling_steps": 0}
            return ProgressResponse(progress=0.0, eta_relative=0.0, state=state, current_image=None, textinfo=None)
        job = jobs[0]
        p = job.progress()
        state = {"skipped": job.skipped, "interrupted": job.interrupted, "stopping_generation": False,
                 "job": job.id, "job_count": len(jobs), "job_timestamp": job.created.strftime("%Y%m%d%H%M%S"),
                 "job_no": p.batch_index,
                 "sampling_step": p.step, "sampling_steps": p.total, "queue_position": p.queue_position}
        image = None
        if p.preview is not None and not skip_current_image:
            image = convert.encode_png(p.preview, None)
        return ProgressResponse(progress=p.fraction, eta_relative=p.eta_seconds or 0.0, state=state,
                                current_image=image, textinfo=p.textinfo)

    @router.post("/interrupt")
    async def interrupt(owner: Owner) -> dict:
        jobs = ctx.queue.active(owner)
        if jobs:
            jobs[0].interrupt()
        return {}

    @router.post("/skip")
    async def skip(owner: Owner) -> dict:
        jobs = ctx.queue.active(owner)
        if jobs:
            jobs[0].skip()
        return {}


__all__ = ["mount_api"]
