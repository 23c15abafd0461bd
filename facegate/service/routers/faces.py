"""Face analysis without side effects (tag ``faces``): identify against the gallery, detect,
verify two images. Nothing is stored and no access event is written."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from facegate.service import schemas as S
from facegate.service.auth import Principal
from facegate.service.deps import ServiceDep, require
from facegate.service.inputs import image_body, read_body
from facegate.service.params import API, PICK_DOC
from facegate.service.responses import ERRORS

router = APIRouter(prefix=API, tags=["faces"], responses=ERRORS)


@router.post(
    "/identify", response_model=S.IdentifyOut,
    summary="Who is every face in the image (top-k candidates, each with the threshold it was held to, and "
    "the decision at the gallery's FPIR); face_used: the face the one face-choice rule picks",
    openapi_extra=image_body(["image"]),
)
async def identify(
    request: Request,
    svc: ServiceDep,
    k: int = Query(default=3, ge=1, le=50, description="candidates per face"),
    pick: Literal["largest", "single", "center"] = Query(default="largest", description=PICK_DOC + "; every face "
                                                         "is answered, face_used marks the one a gate decides on"),
    p: Principal = Depends(require("faces:analyse")),
) -> dict[str, Any]:
    body = await read_body(request, max_files=2)
    _, data = body.one_image("image")
    found, policy, choice = await run_in_threadpool(svc.engine.identify_photo, data, k, pick)
    faces = []
    for ident in found:
        d = ident.to_dict()
        d["decision"] = "allow" if ident.identity is not None else "deny"
        faces.append(d)
    return {"faces": faces, **choice.to_dict(), "decision": (found[0].policy if found else policy).to_dict()}


@router.post(
    "/detect", response_model=S.DetectOut,
    summary="Faces in the image: boxes, landmarks, detector scores", openapi_extra=image_body(["image"]),
)
async def detect(request: Request, svc: ServiceDep, p: Principal = Depends(require("faces:analyse"))) -> dict[str, Any]:
    body = await read_body(request, max_files=2)
    _, data = body.one_image("image")
    (width, height), faces = await run_in_threadpool(svc.engine.detect, data)
    return {"width": width, "height": height, "faces": [f.to_dict() for f in faces]}


@router.post(
    "/verify", response_model=S.VerifyOut,
    summary="Are the faces in two images the same person? (at the configured FAR)",
    openapi_extra=image_body(["image1", "image2"]),
)
async def verify(
    request: Request,
    svc: ServiceDep,
    pick: Literal["largest", "single", "center"] = Query(default="largest", description=PICK_DOC),
    p: Principal = Depends(require("faces:analyse")),
) -> dict[str, Any]:
    body = await read_body(request, max_files=3)
    _, a = body.one_image("image1")
    _, b = body.one_image("image2")
    verdict, choices = await run_in_threadpool(svc.engine.verify, a, b, pick)
    return {**verdict.to_dict(), "faces": [{**c.face.to_dict(), **c.to_dict()} for c in choices]}
