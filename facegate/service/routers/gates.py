"""The gate check (tag ``gate``): allow or deny the person in front of a camera, recorded as an
access event. The access lists it consults are :mod:`.access`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Request
from starlette.concurrency import run_in_threadpool

from facegate.service import schemas as S
from facegate.service.auth import Principal
from facegate.service.deps import ServiceDep, actor, require
from facegate.service.inputs import image_body, read_body
from facegate.service.params import API, GATE_PATTERN
from facegate.service.responses import ERRORS

router = APIRouter(prefix=API, tags=["gate"], responses=ERRORS)


@router.post(
    "/gates/{gate}/check", response_model=S.GateCheckOut,
    summary="allow/deny for the person in front of a gate (largest face), recorded as an access event",
    openapi_extra=image_body(["image"], description="a camera frame"),
)
async def gate_check(
    request: Request,
    svc: ServiceDep,
    gate: str = Path(pattern=GATE_PATTERN, description="the gate's name"),
    p: Principal = Depends(require("gate:check")),
) -> dict[str, Any]:
    body = await read_body(request, max_files=2)
    _, data = body.one_image("image")
    key_id, client = actor(request)
    return await run_in_threadpool(svc.engine.gate_check, gate, data, key_id=key_id, client=client)
