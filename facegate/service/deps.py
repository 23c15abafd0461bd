"""The dependencies every router shares: the app's :class:`~facegate.service.state.Service` and
authentication.

Deny by default: each route declares ``p: Principal = Depends(require("<permission>"))``; the
dependency runs before the route reads its body, so an unauthenticated caller gets 401 (or 429
while its address is locked out) whatever it sent, and a key without the permission 403.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader
from starlette.concurrency import run_in_threadpool

from facegate.service.auth import Principal
from facegate.service.errors import ApiError
from facegate.service.state import Service

log = logging.getLogger(__name__)

api_key_header = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    description="An API key from 'facegate keys create --role admin|gate|viewer' (also accepted as Authorization: Bearer).",
)


def get_service(request: Request) -> Service:
    """The app's state (engine, database, settings, metrics)."""
    svc: Service = request.app.state.svc
    return svc


ServiceDep = Annotated[Service, Depends(get_service)]


def require(permission: str | None) -> Callable[..., Awaitable[Principal]]:
    """A dependency that authenticates the caller and checks one permission (None: any valid key)."""

    async def dependency(request: Request, key: str | None = Security(api_key_header)) -> Principal:
        svc = get_service(request)
        client = svc.client_of(request)
        wait = svc.limiter.retry_after(client)
        if wait > 0:
            svc.metrics.auth_failures.labels("locked_out").inc()
            raise ApiError(
                429, "too_many_failures",
                f"too many failed authentications from {client}; try again in {math.ceil(wait)} s",
                headers={"Retry-After": str(math.ceil(wait))},
            )
        if not key:
            auth = request.headers.get("authorization", "")
            if auth[:7].lower() == "bearer ":
                key = auth[7:].strip()
        if not key:
            await run_in_threadpool(svc.auth_failed, client, None, "missing key", request.url.path)
            raise ApiError(401, "unauthenticated", "this needs an API key in the X-API-Key header",
                           headers={"WWW-Authenticate": "ApiKey"})
        principal, reason = await run_in_threadpool(svc.keys.verify, key)
        if principal is None:
            await run_in_threadpool(svc.auth_failed, client, key, reason, request.url.path)
            raise ApiError(401, "unauthenticated", "invalid API key", headers={"WWW-Authenticate": "ApiKey"})
        if permission is not None and not principal.can(permission):
            log.info("key %s (role %s) refused %s on %s", principal.key_id, principal.role, permission, request.url.path)
            raise ApiError(403, "forbidden", f"role {principal.role!r} may not do this (needs {permission})")
        request.state.principal = principal
        return principal

    return dependency


def actor(request: Request) -> tuple[str | None, str]:
    """Who (the key id, once :func:`require` has passed) and from where (the client address), for the audit trail."""
    p: Principal | None = getattr(request.state, "principal", None)
    return (p.key_id if p else None), get_service(request).client_of(request)
