"""The access-control service: ``facegate serve``.

A FastAPI app over the gallery (:mod:`facegate.gallery`) and the shared pipeline that
enrols people, decides allow/deny for cameras at gates, and keeps an audit trail, with an
operator web page (``/ui/``) served from ``static/`` (plain HTML/JS/CSS, no build step).

Modules: :mod:`.app` (``create_app``: state, middleware order, the routers), :mod:`.routers`
(one per resource: system, keys, gates, faces, people, access, events, docs, web page),
:mod:`.deps` (the shared dependencies: the app's :class:`.state.Service`, ``require(permission)``),
:mod:`.engine` (the work behind the routes: model locks, gate decisions, erasure), :mod:`.auth`
(keys, roles, failed-login limiter), :mod:`.db` (keys and events in ``<gallery>.service.sqlite``,
own numbered migrations), :mod:`.access` (per-gate access lists), :mod:`.inputs`
(multipart/base64 bodies, body size limit, name checks), :mod:`.responses` (the JSON encoder,
documented errors), :mod:`.middleware` (security headers, CORS), :mod:`.metrics` (Prometheus),
:mod:`.synthetic` (a model-free pipeline for tests and load tests).

Importing this package is cheap; FastAPI is imported only by :func:`create_app`.
"""

from __future__ import annotations

from typing import Any

from facegate.service.settings import ServiceSettings, default_service_db


def create_app(*args: Any, **kwargs: Any) -> Any:
    """See :func:`facegate.service.app.create_app`."""
    from facegate.service.app import create_app as _create_app

    return _create_app(*args, **kwargs)


__all__ = ["ServiceSettings", "create_app", "default_service_db"]
