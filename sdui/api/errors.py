"""The API's one error boundary: domain exceptions become JSON {"error", "detail", "field", "errors"} replies.

It lives in a route class used only by the /sdapi routes, so the Gradio app's own routes keep their
behaviour.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Coroutine

from fastapi import HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from sdui.engine.generate import GenerationError
from sdui.models.errors import ModelError, ModelNotFound, UnrecognizedModel, UnsafeModel, WrongFamily

log = logging.getLogger(__name__)


class ApiError(Exception):
    """A request sdui refuses: HTTP status, the field at fault and a reason a person can act on."""

    def __init__(self, status: int, detail: str, field: str | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.field = status, detail, field


def _body(error: str, detail: str, field: str | None, errors: list[dict[str, Any]] | None = None) -> dict:
    return {"error": error, "detail": detail, "field": field,
            "errors": errors if errors is not None else [{"field": field, "message": detail}]}


def _model_status(e: ModelError) -> int:
    if isinstance(e, ModelNotFound):
        return 404
    if isinstance(e, (UnrecognizedModel, UnsafeModel, WrongFamily)):
        return 400
    return 500  # BrokenModel and other load failures: the file on the server is at fault, not the request


def error_response(e: Exception) -> JSONResponse:
    """The JSON reply for an exception raised while serving an /sdapi request."""
    if isinstance(e, RequestValidationError):
        errors = []
        for err in e.errors():
            loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path")]
            errors.append({"field": ".".join(loc) or None, "message": err.get("msg", ""), "type": err.get("type")})
        first = errors[0] if errors else {"field": None, "message": "invalid request"}
        detail = f"{first['field']}: {first['message']}" if first["field"] else first["message"]
        return JSONResponse(_body("RequestValidationError", detail, first["field"], errors), status_code=422)
    if isinstance(e, ApiError):
        return JSONResponse(_body("ApiError", e.detail, e.field), status_code=e.status)
    if isinstance(e, HTTPException):
        return JSONResponse(_body("HTTPException", str(e.detail), None), status_code=e.status_code,
                            headers=getattr(e, "headers", None))
    if isinstance(e, ModelError):
        return JSONResponse(_body(type(e).__name__, str(e), e.field or "sd_model_checkpoint"),
                            status_code=_model_status(e))
    if isinstance(e, ValueError):
        field = str(e).split(" ", 1)[0] if str(e) else None
        return JSONResponse(_body("ValueError", str(e), field), status_code=400)
    if isinstance(e, GenerationError):
        return JSONResponse(_body(type(e).__name__, f"generation failed: {e}", None), status_code=500)
    log.exception("unexpected error in an API request")
    return JSONResponse(_body(type(e).__name__, f"internal error: {e}", None), status_code=500)


class ApiRoute(APIRoute):
    """An APIRoute whose failures all come back as `error_response` JSON."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as e:  # noqa: BLE001 - this is the boundary: every failure becomes JSON
                return error_response(e)

        return guarded
