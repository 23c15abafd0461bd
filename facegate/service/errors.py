"""Every error the service returns is JSON ``{"code": ..., "message": ...}`` with a 4xx status
for anything the client can fix; a 5xx only means the server itself is broken or not ready.

The facegate error types already carry a machine-readable ``code`` and a one-line message,
so the mapping below is only from error type to HTTP status, plus this front end's hint
(``HTTP_HINTS``): what to send instead, in terms of the API, never a command-line flag.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from facegate.errors import (
    DeviceError,
    FacegateError,
    ImageTooLargeError,
    InvalidImageError,
    ModelError,
    MultipleFacesError,
    NoFaceError,
    NotFoundError,
    UsageError,
)

log = logging.getLogger(__name__)


# How to act on an error over HTTP, by the error's code (the CLI has its own CLI_HINTS).
HTTP_HINTS: dict[str, str] = {
    "multiple_faces": "send a photo of one face, or the query parameter pick=largest to use the largest face",
    "not_found": "GET /api/v1/people lists the enrolled people and their ids",
    "enrolment_conflict": "send force=true to enrol it anyway, recorded as forced",
    "duplicate_photo": "send force=true to enrol it anyway, recorded as forced",
    "matches_other_person": "send force=true to enrol it anyway, recorded as forced",
    "not_same_person": "send force=true to enrol it anyway, recorded as forced",
}


def http_message(message: str, code: str) -> str:
    """``message`` with the HTTP hint for ``code`` appended, if there is one."""
    hint = HTTP_HINTS.get(code)
    return f"{message}; {hint}" if hint else message


class ApiError(Exception):
    """An error answered as-is: status, code, message and optional details."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = " ".join(message.split())
        self.details = details
        self.headers = headers


def status_of(exc: FacegateError) -> int:
    """The HTTP status of a facegate error: 4xx for what the client can fix, 503 where the server cannot compute."""
    from facegate.gallery.errors import (
        EnrolmentConflictError,
        EnrolmentRejectedError,
        GalleryError,
        ModelMismatchError,
        NameTakenError,
        PersonNotFoundError,
        UnsupportedError,
    )

    if isinstance(exc, ImageTooLargeError):
        return 413
    if isinstance(exc, InvalidImageError):
        return 400
    if isinstance(exc, EnrolmentConflictError):
        return 409  # the photo is fine; storing it would contradict the gallery (force=true overrides)
    if isinstance(exc, EnrolmentRejectedError):  # every photo refused for one reason: that reason's status
        return {"image_too_large": 413, "invalid_image": 400}.get(exc.code, 422)
    if isinstance(exc, (NoFaceError, MultipleFacesError)):
        return 422
    if isinstance(exc, (PersonNotFoundError, NotFoundError)):
        return 404
    if isinstance(exc, (NameTakenError, UnsupportedError)):
        return 409
    if isinstance(exc, ModelMismatchError):
        return 409  # the gallery holds another model's embeddings: a state conflict, fixable by reembed
    if isinstance(exc, (ModelError, DeviceError)):
        return 503  # the server cannot compute faces: not the client's fault
    if isinstance(exc, UsageError):
        return 400
    if isinstance(exc, GalleryError):
        return 400
    return 400


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return body


def error_response(status: int, code: str, message: str, details: Any = None, headers: dict | None = None) -> JSONResponse:
    return JSONResponse(error_body(code, message, details), status_code=status, headers=headers)


def _jsonable(value: Any) -> Any:
    """Validation details can carry bytes or exceptions; keep only what JSON can say."""
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        if isinstance(value, dict):
            return {str(k): _jsonable(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [_jsonable(v) for v in value]
        if isinstance(value, bytes):
            return f"<{len(value)} bytes>"
        return str(value)


def allowed_methods(request: Request) -> set[str]:
    """Every method some route accepts at this request's path."""
    from starlette.routing import Match

    routes: Any = request.app.router.routes
    try:  # FastAPI >= 0.16x includes a router as one entry: look at the routes inside, with their prefixes
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI copies the included routes into app.routes
        pass
    else:
        routes = iter_route_contexts(routes)
    methods: set[str] = set()
    for route in routes:
        match, _ = route.matches(dict(request.scope))
        if match != Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return methods


def install_handlers(app: FastAPI) -> None:
    """Route every exception to one JSON shape; unexpected ones are logged with a traceback and
    answered 500 without details (the message of an unexpected error may leak internals)."""

    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)

    @app.exception_handler(FacegateError)
    async def _facegate(_: Request, exc: FacegateError) -> JSONResponse:
        details = None
        rejected = getattr(exc, "rejected", None)
        if rejected:
            details = {"rejected": [r.to_dict() for r in rejected]}
        return error_response(status_of(exc), exc.code, http_message(str(exc), exc.code), details)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": [str(x) for x in e.get("loc", ())], "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
            for e in exc.errors()
        ]
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        where = ".".join(first["loc"][1:] or first["loc"]) or "request"
        return error_response(422, "validation", f"{where}: {first['msg']}", {"errors": _jsonable(errors)})

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large", 415: "unsupported_media_type"}
        code = codes.get(exc.status_code, "http_error")
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            # Starlette names only the first route's methods when several routes share a path
            headers["Allow"] = ", ".join(sorted(allowed_methods(request)))
        return error_response(exc.status_code, code, str(exc.detail), headers=headers or None)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error on %s %s", request.method, request.url.path)
        return error_response(500, "internal", "internal server error; the server log has the details")
