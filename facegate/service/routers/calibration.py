"""Site calibration (tag ``calibration``), for admins: estimate the site's operating points from the
gallery (and photos of strangers), show the table in force with the audit log and the drift warnings,
adopt the estimate, revert it. Every change is audited in the event log, as access changes are. The
work is :mod:`facegate.service.calibration`'s."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from facegate.service import calibration
from facegate.service import schemas as S
from facegate.service.auth import Principal
from facegate.service.deps import ServiceDep, actor, require
from facegate.service.errors import ApiError
from facegate.service.inputs import B64_EXAMPLE, json_body, read_body, read_model
from facegate.service.params import API
from facegate.service.responses import ERRORS

router = APIRouter(prefix=API, tags=["calibration"], responses=ERRORS)

CALIBRATE_BODY = {
    "requestBody": {
        "required": False,
        "description": "optional photos of strangers (gate captures of nobody enrolled), each scored against the "
        "gallery: multipart/form-data with file parts named strangers, or application/json with strangers_base64; "
        "without a body the gallery alone is used",
        "content": {
            "multipart/form-data": {"schema": {"type": "object", "properties": {"strangers": {
                "type": "array", "items": {"type": "string", "format": "binary"},
                "description": "photos of strangers, as file parts (curl -F strangers=@1.jpg -F strangers=@2.jpg)"}}}},
            "application/json": {"schema": {"type": "object", "properties": {"strangers_base64": {
                "type": "array", "items": {"type": "string"}, "description": "photos of strangers, each base64",
                "examples": [[B64_EXAMPLE]]}}}},
        },
    }
}


def who(p: Principal) -> str:
    """The audit's "by": the key's name and id."""
    return f"{p.name or p.role} (key {p.key_id})"


@router.get("/calibration", response_model=S.CalibrationOut,
            summary="The operating-point table in force, the site table and last estimate, the audit log, drift warnings")
async def show(svc: ServiceDep, p: Principal = Depends(require("calibration:manage"))) -> dict[str, Any]:
    return await run_in_threadpool(calibration.show, svc.engine)


@router.post("/calibration", response_model=S.CalibrateOut, openapi_extra=CALIBRATE_BODY,
             summary="Estimate the site's operating points from the gallery (and photos of strangers); adopts nothing")
async def calibrate(request: Request, svc: ServiceDep, p: Principal = Depends(require("calibration:manage"))) -> dict[str, Any]:
    strangers: list[tuple[str, bytes]] = []
    if request.headers.get("content-type") or int(request.headers.get("content-length") or 0):
        body = await read_body(request, max_files=svc.settings.max_batch_images + 1, max_fields=10)
        extra = sorted(set(body.fields) - {"strangers_base64"} | set(body.files) - {"strangers"})
        if extra:
            raise ApiError(422, "validation", f"unknown field {extra[0]!r}: send strangers (files) or strangers_base64")
        if "strangers_base64" in body.fields and not isinstance(body.fields["strangers_base64"], list):
            raise ApiError(422, "validation", "strangers_base64 must be a list of base64 strings")
        if body.files.get("strangers") or body.fields.get("strangers_base64"):
            strangers = body.images("strangers", None) if body.kind == "multipart" else body.images("", "strangers")
        if len(strangers) > svc.settings.max_batch_images:
            raise ApiError(422, "validation", f"at most {svc.settings.max_batch_images} stranger photos per request")
    key_id, client = actor(request)
    return await run_in_threadpool(calibration.calibrate, svc.engine, strangers, by=who(p), key_id=key_id,
                                   client=client)


@router.post("/calibration/adopt", response_model=S.AdoptionOut, openapi_extra=json_body(S.AdoptIn),
             summary="Put the last site estimate in force for verify, identify, the gate and watch (audited)")
async def adopt(request: Request, svc: ServiceDep, p: Principal = Depends(require("calibration:manage"))) -> dict[str, Any]:
    body = await read_model(request, S.AdoptIn)
    key_id, client = actor(request)
    return await run_in_threadpool(calibration.adopt, svc.engine, force=body.force, note=body.note, by=who(p),
                                   key_id=key_id, client=client)


@router.post("/calibration/revert", response_model=S.AdoptionOut, openapi_extra=json_body(S.RevertIn),
             summary="Take the adopted site table out of force: the one before it (or the shipped table) applies (audited)")
async def revert(request: Request, svc: ServiceDep, p: Principal = Depends(require("calibration:manage"))) -> dict[str, Any]:
    body = await read_model(request, S.RevertIn)
    key_id, client = actor(request)
    return await run_in_threadpool(calibration.revert, svc.engine, note=body.note, by=who(p), key_id=key_id,
                                   client=client)
