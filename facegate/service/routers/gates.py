"""Gates (tag ``gate``): the gate check (allow or deny the person in front of a camera, from one
image or a burst of frames, recorded as an access event) and each gate's settings (liveness
``off | still | burst``, :mod:`facegate.service.gates`). The access lists a check consults are
:mod:`.access`."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from starlette.concurrency import run_in_threadpool

from facegate.liveness import DEFAULT_GATE_MODE, MAX_GATE_FRAMES
from facegate.service import gates
from facegate.service import schemas as S
from facegate.service.auth import Principal
from facegate.service.deps import ServiceDep, actor, require
from facegate.service.errors import ApiError
from facegate.service.inputs import B64_EXAMPLE, json_body, read_body, read_model
from facegate.service.params import API, GATE_PATTERN, PICK_DOC
from facegate.service.responses import ERRORS
from facegate.service.state import Service
from facegate.service.times import site_times

router = APIRouter(prefix=API, tags=["gate"], responses=ERRORS)

GATE = Path(pattern=GATE_PATTERN, description="the gate's name")
_FRAMES = (f"one camera frame, or a burst of up to {MAX_GATE_FRAMES} consecutive frames of the person (taken within "
           "about 2 s; frames of different sizes are fine)")
CHECK_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": f"{_FRAMES}: multipart, the field `image` once per frame; JSON, `image_base64` (one frame) or "
        "`images_base64` (a list). A burst's frames together hold at most 8 MiB (413 beyond), and more than "
        f"{MAX_GATE_FRAMES} frames are refused with 422 before any is decoded.",
        "content": {
            "multipart/form-data": {"schema": {
                "type": "object", "required": ["image"],
                "properties": {"image": {
                    "type": "array", "minItems": 1, "maxItems": MAX_GATE_FRAMES,
                    "items": {"type": "string", "format": "binary"},
                    "description": f"a camera frame, or up to {MAX_GATE_FRAMES} consecutive frames in order, as file "
                    "parts (curl -F image=@frame.jpg, or -F image=@1.jpg -F image=@2.jpg -F image=@3.jpg)",
                }},
            }},
            "application/json": {"schema": {
                "type": "object",
                "properties": {
                    "image_base64": {"type": "string", "description": "one camera frame, base64 (a data: URL is fine)",
                                     "examples": [B64_EXAMPLE]},
                    "images_base64": {"type": "array", "minItems": 1, "maxItems": MAX_GATE_FRAMES,
                                      "items": {"type": "string"}, "examples": [[B64_EXAMPLE, B64_EXAMPLE]],
                                      "description": "a burst: consecutive frames, each base64, in order"},
                },
            }},
        },
    }
}


def _too_many() -> ApiError:
    # 422 like any other body the schema refuses (maxItems); too many *bytes* are the 413s
    return ApiError(422, "too_many_frames",
                    f"a gate check takes at most {MAX_GATE_FRAMES} frames (one image or a burst); send fewer")


@router.post(
    "/gates/{gate}/check", response_model=S.GateCheckOut,
    summary="allow/deny for the person in front of a gate (the largest face, one image or a burst; faces_found "
    "and face_used say which), refusing presentation attacks, recorded as an access event",
    openapi_extra=CHECK_BODY,
)
async def gate_check(
    request: Request,
    svc: ServiceDep,
    gate: str = GATE,
    pick: Literal["largest", "single", "center"] = Query(default="largest", description=PICK_DOC),
    p: Principal = Depends(require("gate:check")),
) -> dict[str, Any]:
    try:
        body = await read_body(request, max_files=MAX_GATE_FRAMES, max_fields=10)
    except ApiError as exc:
        if exc.code == "too_many_files":
            raise _too_many() from exc
        raise
    many = body.fields.get("images_base64") if body.kind == "json" else None
    if isinstance(many, list) and len(many) + (body.fields.get("image_base64") is not None) > MAX_GATE_FRAMES:
        raise _too_many()  # counted before any frame is decoded
    frames = [data for _, data in body.images("image", "images")]
    key_id, client = actor(request)
    out = await run_in_threadpool(svc.engine.gate_check, gate, frames, key_id=key_id, client=client, pick=pick)
    return site_times(out, svc.settings.time_zone)


def _settings_out(svc: Service, settings: gates.GateSettings) -> dict[str, Any]:
    from facegate.errors import FacegateError
    from facegate.liveness import in_force

    model: dict[str, Any] = {"name": None, "kind": None, "sha256": None, "available": False, "message": None}
    try:
        record = in_force(svc.config)
        model.update(name=record.name, kind=record.kind, sha256=record.sha256)
        det = svc.engine.pipeline.liveness_detector
        model.update(name=det.name, available=True)
    except FacegateError as exc:
        from facegate.liveness.gate import UNAVAILABLE_HINT

        model["message"] = f"{exc}; {UNAVAILABLE_HINT}"
    return site_times({**settings.to_dict(), "max_frames": MAX_GATE_FRAMES, "model": model}, svc.settings.time_zone)


@router.get("/gates", response_model=S.GatesOut,
            summary="Gates whose settings were changed (every other gate has the defaults: liveness on)")
async def gates_list(svc: ServiceDep, p: Principal = Depends(require(None))) -> dict[str, Any]:
    def work() -> dict[str, Any]:
        return {"default_liveness": DEFAULT_GATE_MODE, "gates": [_settings_out(svc, g) for g in gates.all_stored(svc.db)]}

    return await run_in_threadpool(work)


@router.get("/gates/{gate}/settings", response_model=S.GateSettingsOut,
            summary="A gate's settings: its liveness check (off, still, burst) and the liveness model in force")
async def gate_settings(svc: ServiceDep, gate: str = GATE, p: Principal = Depends(require(None))) -> dict[str, Any]:
    return await run_in_threadpool(lambda: _settings_out(svc, gates.get(svc.db, gate)))


@router.put("/gates/{gate}/settings", response_model=S.GateSettingsOut,
            summary="Set a gate's liveness check (off, still, burst); audited",
            openapi_extra=json_body(S.GateSettingsIn))
async def gate_settings_set(
    request: Request, svc: ServiceDep, gate: str = GATE, p: Principal = Depends(require("access:manage"))
) -> dict[str, Any]:
    body = await read_model(request, S.GateSettingsIn)
    key_id, client = actor(request)

    def work() -> dict[str, Any]:
        return _settings_out(svc, gates.set_liveness(svc.db, gate, body.liveness, key_id=key_id, client=client))

    return await run_in_threadpool(work)
