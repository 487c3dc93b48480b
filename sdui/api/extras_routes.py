"""The /sdapi/v1 Extras routes (A1111's extra-single-image and extra-batch-images) over the one job queue.

As in A1111 the API never saves these results: the pictures come back as base64 PNGs carrying the source's
`parameters` and A1111's `postprocessing` text chunks. Bad input is refused before the job is queued.
"""

# No `from __future__ import annotations`: FastAPI must see the endpoint annotations as objects.
import base64
import html
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends

from sdui.api import convert
from sdui.api.context import ApiContext
from sdui.api.errors import ApiError
from sdui.api.models import (ExtrasBaseRequest, ExtrasBatchImagesRequest, ExtrasBatchImagesResponse,
                             ExtrasSingleImageRequest, ExtrasSingleImageResponse)
from sdui.engine.postprocess import ExtrasImage, ExtrasParams, ExtrasResult, check_upscalers
from sdui.models.errors import ModelError
from sdui.outputs.save import png_bytes_with

_FACE_RESTORATION = ("gfpgan_visibility", "codeformer_visibility")
T = TypeVar("T")


def add_extras_routes(router: APIRouter, ctx: ApiContext, owner_dep: Any) -> None:
    """Add POST /extra-single-image and /extra-batch-images to `router`."""
    Owner = Annotated[str, Depends(owner_dep)]

    @router.post("/extra-single-image", response_model=ExtrasSingleImageResponse)
    def extra_single_image(req: ExtrasSingleImageRequest, owner: Owner) -> ExtrasSingleImageResponse:
        image = convert.decode_image(req.image, "image", ctx.max_bytes)
        result = _run(ctx, req, [_source(image, "image")], owner)
        images = _encoded(result)
        return ExtrasSingleImageResponse(html_info=html_info(result), image=images[0] if images else None)

    @router.post("/extra-batch-images", response_model=ExtrasBatchImagesResponse)
    def extra_batch_images(req: ExtrasBatchImagesRequest, owner: Owner) -> ExtrasBatchImagesResponse:
        sources = []
        for index, item in enumerate(req.imageList):
            field = f"imageList.{index}.data"
            sources.append(_source(convert.decode_image(item.data, field, ctx.max_bytes), field, item.name))
        result = _run(ctx, req, sources, owner)
        return ExtrasBatchImagesResponse(html_info=html_info(result), images=_encoded(result))


def extras_params(req: ExtrasBaseRequest, images: list[ExtrasImage]) -> ExtrasParams:
    """A1111's Extras request fields -> ExtrasParams (validated); ApiError 400 naming the field."""
    for field in _FACE_RESTORATION:
        if getattr(req, field):
            raise ApiError(400, f"{field}: face restoration (GFPGAN, CodeFormer) is not supported by sdui; send 0",
                           field)
    params = ExtrasParams(images=tuple(images), resize_mode=req.resize_mode, upscaling_resize=req.upscaling_resize,
                          upscaling_resize_w=req.upscaling_resize_w, upscaling_resize_h=req.upscaling_resize_h,
                          upscaling_crop=req.upscaling_crop, upscaler_1=req.upscaler_1.strip(),
                          upscaler_2=req.upscaler_2.strip(),
                          extras_upscaler_2_visibility=req.extras_upscaler_2_visibility)
    _refuse_value_errors(params.validate)
    return params


def html_info(result: ExtrasResult) -> str:
    """A1111's html_info: the last picture's postprocessing text, escaped, lines joined by <br>, in a <p>."""
    text = result.infotexts[-1] if result.infotexts else ""
    return "<p>" + "<br>\n".join(html.escape(line) for line in text.split("\n")) + "</p>"


def _run(ctx: ApiContext, req: ExtrasBaseRequest, images: list[ExtrasImage], owner: str) -> ExtrasResult:
    params = extras_params(req, images)
    _refuse_value_errors(lambda: check_upscalers(params, ctx.manager.upscalers))
    job = ctx.queue.submit(params, owner, save=False)
    try:
        return job.wait()
    except ModelError as e:  # a broken or unsafe upscaler file: say which field chose it
        chosen = ctx.manager.upscalers.find(params.upscaler_2)
        e.field = "upscaler_2" if chosen is not None and e.path and str(e.path) == chosen.model_path else "upscaler_1"
        raise


def _source(image: Any, field: str, name: str | None = None) -> ExtrasImage:
    return _refuse_value_errors(lambda: ExtrasImage.from_image(image, field, name=name))


def _refuse_value_errors(check: Callable[[], T]) -> T:
    """Run `check`; a ValueError (its message starts with the field) becomes ApiError 400 for that field."""
    try:
        return check()
    except ValueError as e:
        field = str(e).split(" ", 1)[0].rstrip(":")
        raise ApiError(400, str(e), field) from None


def _encoded(result: ExtrasResult) -> list[str]:
    return [base64.b64encode(png_bytes_with(image, {"parameters": parameters, "postprocessing": text})).decode("ascii")
            for image, parameters, text in zip(result.images, result.parameters, result.infotexts)]


__all__ = ["add_extras_routes", "extras_params", "html_info"]
