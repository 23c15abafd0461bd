"""Health, readiness and Prometheus metrics (tag ``health``): outside ``/api/v1`` so probes and
scrapers need no version."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Response
from starlette.concurrency import run_in_threadpool

from facegate.service import schemas as S
from facegate.service.deps import ServiceDep, require
from facegate.service.responses import ERRORS, SafeJSONResponse

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=S.HealthOut, summary="Liveness: the process answers")
async def healthz() -> dict[str, Any]:
    return {"status": "ok"}


@router.get(
    "/readyz", response_model=S.ReadyOut, summary="Readiness: models loaded, databases reachable",
    responses={503: {"model": S.ReadyOut, "description": "not ready; reasons say why"}},
)
async def readyz(svc: ServiceDep) -> Any:
    ready, reasons = await run_in_threadpool(svc.engine.readiness)
    return SafeJSONResponse({"ready": ready, "reasons": reasons}, status_code=200 if ready else 503)


def metrics_router(public: bool) -> APIRouter:
    """``GET /metrics``: behind the ``metrics:read`` permission, or open (``public``, for a Prometheus
    scraper on a closed network); the schema states which, so it is built per app."""
    r = APIRouter(tags=["health"])

    @r.get(
        "/metrics", summary="Prometheus metrics", dependencies=[] if public else [Depends(require("metrics:read"))],
        response_class=Response,
        responses={
            200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
            **({} if public else {k: ERRORS[k] for k in (401, 403, 429)}),
        },
    )
    async def metrics_route(svc: ServiceDep) -> Response:
        body = await run_in_threadpool(svc.metrics.render)
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    return r
