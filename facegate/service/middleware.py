"""The service's own HTTP middleware: security headers on every answer, CORS refusals as JSON.

(The body limit is :class:`.inputs.BodyLimitMiddleware`, request metrics :class:`.metrics.MetricsMiddleware`;
:func:`facegate.service.app.create_app` sets their order.)
"""

from __future__ import annotations

from typing import Any

from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from facegate.service.params import API

# the web page: its own scripts and styles only; camera frames as blob:/mediastream:
CSP = (
    "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob: mediastream:; "
    "style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'"
)

# the API docs: Swagger UI from this machine (facegate.service.routers.docs), nothing else
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


class SecurityHeadersMiddleware:
    """nosniff, no framing, no referrer everywhere; a strict CSP on the web page and the API docs;
    no caching of API answers (face crops included) unless a route says otherwise, in one header."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")

        async def send_wrapper(msg: Message) -> None:
            if msg["type"] == "http.response.start":
                headers = list(msg.get("headers", []))
                headers += [
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"no-referrer"),
                ]
                if path.startswith("/ui"):
                    headers.append((b"content-security-policy", CSP.encode()))
                elif path == "/docs" or path.startswith("/docs/"):
                    headers.append((b"content-security-policy", DOCS_CSP.encode()))
                elif path.startswith(API) and not any(k.lower() == b"cache-control" for k, _ in headers):
                    headers.append((b"cache-control", b"no-store"))
                msg["headers"] = headers
            await send(msg)

        await self.app(scope, receive, send_wrapper)


class JSONCORSMiddleware(CORSMiddleware):
    """Starlette's CORS middleware, with its refusals as ``{code, message}`` JSON like every other error."""

    def preflight_response(self, request_headers: Any) -> Response:
        resp = super().preflight_response(request_headers)
        if resp.status_code < 400:
            return resp
        headers = {k: v for k, v in resp.headers.items() if k.lower() not in ("content-type", "content-length")}
        return JSONResponse(
            {"code": "cors_rejected", "message": bytes(resp.body).decode("utf-8", "replace")},
            status_code=resp.status_code, headers=headers,
        )
