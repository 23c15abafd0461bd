"""``/docs``: the API's operations for a person to read, served from this machine only.

Swagger UI from an installed package (``swagger-ui-bundle``) when there is one, else a plain
page listing the operations; never anything from a CDN. Outside the schema (``/openapi.json``
is FastAPI's own route). Which of the two is decided when the app is built.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles

SWAGGER_INIT = (
    'window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true,'
    ' presets: [SwaggerUIBundle.presets.apis], layout: "BaseLayout"});\n'
)
SWAGGER_HTML = (
    "<!doctype html><html lang=en><head><meta charset=utf-8><title>facegate API</title>"
    "<link rel=stylesheet href=/docs/assets/swagger-ui.css></head><body><div id=swagger-ui></div>"
    "<script src=/docs/assets/swagger-ui-bundle.js></script><script src=/docs/init.js></script></body></html>"
)

swagger = APIRouter(include_in_schema=False)  # with swagger-ui-bundle (its files are mounted at /docs/assets)
offline = APIRouter(include_in_schema=False)  # without it


def swagger_ui_assets() -> Path | None:
    """The folder of Swagger UI's files from an installed package (``swagger-ui-bundle``), or None.
    /docs never loads anything from a CDN: without the package it is a plain page of the operations."""
    try:
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:
        return None
    folder = Path(swagger_ui_path)
    return folder if (folder / "swagger-ui-bundle.js").is_file() else None


def offline_docs(schema: dict[str, Any]) -> str:
    """A self-contained HTML list of the API's operations, for when Swagger UI is not installed."""
    rows = []
    for path, ops in sorted(schema.get("paths", {}).items()):
        for method, op in ops.items():
            rows.append(f"<tr><td>{escape(method.upper())}</td><td><code>{escape(path)}</code></td>"
                        f"<td>{escape(str(op.get('summary', '')))}</td></tr>")
    info = schema.get("info", {})
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>facegate API</title></head><body>"
        f"<h1>{escape(str(info.get('title', 'API')))} API</h1><p>{escape(str(info.get('description', '')))}</p>"
        "<p>The OpenAPI schema is at <a href=/openapi.json>/openapi.json</a>. This page is plain because "
        "Swagger UI is not installed (<code>pip install swagger-ui-bundle</code> serves it here, from this "
        "machine).</p><table><tr><th>method</th><th>path</th><th>what</th></tr>"
        + "".join(rows) + "</table></body></html>"
    )


@swagger.get("/docs/init.js")
async def docs_init() -> Response:
    return PlainTextResponse(SWAGGER_INIT, media_type="text/javascript")


@swagger.get("/docs", name="docs")
async def swagger_docs() -> HTMLResponse:
    return HTMLResponse(SWAGGER_HTML)


@offline.get("/docs", name="docs")
async def offline_docs_page(request: Request) -> HTMLResponse:
    return HTMLResponse(offline_docs(request.app.openapi()))


def install(app: FastAPI) -> None:
    """Serve ``/docs`` on ``app``: Swagger UI if its package is installed now, else the plain page.
    A function rather than a router to include: the choice is made when the app is built, and the
    assets are mounted on the app itself (FastAPI before 0.16x drops a router's mounts on include)."""
    assets = swagger_ui_assets()
    if assets is None:
        app.include_router(offline)
        return
    app.mount("/docs/assets", StaticFiles(directory=str(assets)), name="docs-assets")
    app.include_router(swagger)
