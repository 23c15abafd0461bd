"""The FastAPI application: :func:`create_app` builds one app over one gallery and one service
database, and includes the routers (:mod:`facegate.service.routers`, one per resource).

All routes live under ``/api/v1/`` except health (``/healthz``, ``/readyz``), metrics
(``/metrics``), the schema (``/openapi.json``, ``/docs``) and the operator page (``/ui/``).

Request flow: metrics -> security headers -> CORS (only when origins are configured) ->
body limit -> route. A route first authenticates (its ``require(permission)`` dependency,
:mod:`.deps`: deny by default), then parses the body (:mod:`.inputs`), then runs the
blocking work (:class:`.engine.Engine`) in the thread pool so the event loop stays free.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from facegate.config import Config
from facegate.service import events_out
from facegate.service.auth import ROLE_PERMISSIONS
from facegate.service.compat import compreface
from facegate.service.db import ServiceDB
from facegate.service.deps import require
from facegate.service.engine import Engine
from facegate.service.errors import install_handlers
from facegate.service.events_out import router as hooks_router
from facegate.service.inputs import BodyLimitMiddleware
from facegate.service.metrics import Metrics, MetricsMiddleware
from facegate.service.middleware import JSONCORSMiddleware, SecurityHeadersMiddleware
from facegate.service.responses import SafeJSONResponse
from facegate.service.routers import access, calibration, docs, events, faces, gates, keys, people, system, web
from facegate.service.server import parse_proxies
from facegate.service.settings import ServiceSettings
from facegate.service.state import Service

DESCRIPTION = (
    "Face access control: enrol people, decide allow/deny at gates, audit every decision. "
    "Authenticate with an API key in the X-API-Key header; roles: "
    + "; ".join(f"{r}: {', '.join(sorted(p))}" for r, p in ROLE_PERMISSIONS.items())
    + ". Errors are JSON {code, message}."
)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Load the models in the background (``/readyz`` says when done); close what the app opened."""
    svc: Service = app.state.svc
    if svc.settings.warmup:
        threading.Thread(target=svc.engine.warmup, name="facegate-warmup", daemon=True).start()
    else:
        svc.engine.warm.set()
    hooks = app.state.events_out
    hooks.start()  # webhook and MQTT delivery, off the request path
    try:
        yield
    finally:
        hooks.stop()
        svc.close()


def create_app(
    config: Config | None = None,
    settings: ServiceSettings | None = None,
    *,
    pipeline: Any = None,
    gallery: Any = None,
) -> FastAPI:
    """Build the service over ``config``'s gallery (opened here) and the service database.

    ``pipeline`` replaces the models (tests and load tests pass a
    :class:`~facegate.service.synthetic.SyntheticPipeline`); ``gallery`` an already open
    gallery (then the caller closes it). The app closes what it opened on shutdown.
    """
    config = config or Config()
    settings = settings or ServiceSettings()
    parse_proxies(settings.trusted_proxies)  # a bad --trusted-proxy fails before anything opens
    metrics = Metrics()
    db = ServiceDB(settings.resolved_db(config))
    try:
        engine = Engine(config, settings, db, metrics, pipeline=pipeline, gallery=gallery)
    except BaseException:
        db.close()
        raise
    metrics.watch_gallery(engine.gallery.backend.counts)
    hooks = events_out.install(db, settings.events_out)  # outbox rows commit with the events they carry

    app = FastAPI(
        title="facegate", version="1", description=DESCRIPTION, lifespan=lifespan,
        default_response_class=SafeJSONResponse,
        docs_url=None, redoc_url=None,  # /docs is served from this machine only (routers.docs)
    )
    app.state.svc = Service(config, settings, db, engine, metrics)
    app.state.events_out = hooks
    install_handlers(app)
    # the last added runs first: metrics -> security headers -> CORS -> body limit -> routes
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_upload_bytes)
    if settings.cors_origins:
        app.add_middleware(
            JSONCORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["X-API-Key", "Authorization", "Content-Type"],
            max_age=600,
        )
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(MetricsMiddleware, metrics=metrics)

    # one router per resource; this order is the order of the tags in the schema and /docs
    app.include_router(system.router)
    app.include_router(system.metrics_router(public=settings.metrics_public))
    for router in (keys.router, gates.router, faces.router, people.router, access.router, events.router, calibration.router):
        app.include_router(router)
    app.include_router(compreface.router(require))  # the CompreFace-compatible front door
    app.include_router(hooks_router.router(require))
    if settings.docs:
        docs.install(app)
    if settings.static:
        web.install(app)
    return app
