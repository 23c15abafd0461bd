"""People and their faces (tag ``people``): enrolment (one person, or a folder of many), listing,
renaming, erasure, stored face crops, and the gallery's size and threshold."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from facegate.service import schemas as S
from facegate.service.auth import Principal
from facegate.service.deps import ServiceDep, actor, require
from facegate.service.errors import ApiError
from facegate.service.inputs import clean_text, image_body, json_body, read_model, read_photos
from facegate.service.params import API, FORCE_DOC, MAX_ID, PICK_DOC
from facegate.service.responses import ERRORS, JPEG, SafeJSONResponse
from facegate.service.times import site_times

router = APIRouter(prefix=API, tags=["people"], responses=ERRORS)

PID = Path(ge=1, le=MAX_ID, description="person id")
FID = Path(ge=1, le=MAX_ID, description="face id")

ENROL_BODY = image_body(
    [], plural="images", text_fields={"name": {"type": "string", "minLength": 1, "maxLength": 200}},
    required_text=["name"],
    description="the person's name and one or more photos of them (the largest face of each, see pick)",
)


@router.get("/people", response_model=S.PeopleOut, summary="Enrolled people")
async def list_people(
    svc: ServiceDep,
    limit: int = Query(default=100, ge=1, le=1000, description="at most this many people in the page"),
    offset: int = Query(default=0, ge=0, le=MAX_ID, description="people skipped before the page (by name order)"),
    q: str | None = Query(default=None, max_length=200, description="name contains (case-insensitive)"),
    p: Principal = Depends(require("people:read")),
) -> dict[str, Any]:
    gallery, tz = svc.engine.gallery, svc.settings.time_zone

    def work() -> dict[str, Any]:
        if q:
            needle = q.strip().casefold()
            matches = [x for x in gallery.people() if needle in x.name.casefold()]
            return site_times({"people": [x.to_dict() for x in matches[offset : offset + limit]],
                               "total": len(matches), "limit": limit, "offset": offset}, tz)
        total = gallery.backend.counts()[0]
        people = gallery.people(limit, offset) if offset < total else []
        return site_times({"people": [x.to_dict() for x in people], "total": total, "limit": limit, "offset": offset},
                          tz)

    return await run_in_threadpool(work)


@router.post(
    "/people", response_model=S.EnrolOut, status_code=201,
    responses={200: {"model": S.EnrolOut, "description": "photos added to an existing person of that name"}},
    summary="Enrol a person from photos (added to the person if the name exists)", openapi_extra=ENROL_BODY,
)
async def enrol(
    request: Request,
    svc: ServiceDep,
    pick: Literal["largest", "single", "center"] = Query(default="largest", description=PICK_DOC),
    force: bool = Query(default=False, description=FORCE_DOC),
    p: Principal = Depends(require("people:write")),
) -> Any:
    body, photos = await read_photos(request, svc.settings.max_images)
    name = clean_text(body.fields.get("name"), "name")
    key_id, client = actor(request)
    out = await run_in_threadpool(svc.engine.enrol, name, photos, pick=pick, force=force, key_id=key_id, client=client)
    out = site_times(out, svc.settings.time_zone)
    return SafeJSONResponse(S.EnrolOut(**out).model_dump(), status_code=201 if out["created"] else 200)


@router.post(
    "/enrol/batch", response_model=S.BatchEnrolOut,
    summary="Bulk enrolment: photos of several people, each file named PERSON/PHOTO (a folder upload); "
    "photos already enrolled for that name (same sha256) are skipped",
    openapi_extra=image_body([], plural="images", description="files named <person>/<photo> (the person is "
                             "the folder the photo is in)"),
)
async def enrol_batch(
    request: Request,
    svc: ServiceDep,
    pick: Literal["largest", "single", "center"] = Query(default="largest", description=PICK_DOC),
    force: bool = Query(default=False, description=FORCE_DOC + "; refusals are reported per photo either way"),
    p: Principal = Depends(require("people:write")),
) -> dict[str, Any]:
    _, photos = await read_photos(request, svc.settings.max_batch_images, "batch request")
    by_person: dict[str, list[tuple[str, bytes]]] = {}
    for filename, data in photos:
        parts = [x for x in str(filename).replace("\\", "/").split("/") if x]
        if len(parts) < 2:
            raise ApiError(422, "validation", f"file {filename!r} is not named PERSON/PHOTO")
        by_person.setdefault(clean_text(parts[-2], "person folder name"), []).append(("/".join(parts[-2:]), data))
    key_id, client = actor(request)
    return await run_in_threadpool(svc.engine.enrol_batch, by_person, pick=pick, force=force, key_id=key_id,
                                   client=client)


@router.get("/people/{person_id}", response_model=S.PersonDetailOut, summary="A person and their stored faces")
async def get_person(svc: ServiceDep, person_id: int = PID, p: Principal = Depends(require("people:read"))) -> dict[str, Any]:
    gallery = svc.engine.gallery

    def work() -> dict[str, Any]:
        person = gallery.person(person_id)
        return site_times({"person": person.to_dict(), "faces": [f.to_dict() for f in gallery.faces(person_id)]},
                          svc.settings.time_zone)

    return await run_in_threadpool(work)


@router.patch("/people/{person_id}", response_model=S.PersonOut, summary="Rename a person",
              openapi_extra=json_body(S.RenameIn))
async def rename_person(
    request: Request, svc: ServiceDep, person_id: int = PID, p: Principal = Depends(require("people:write"))
) -> dict[str, Any]:
    body = await read_model(request, S.RenameIn)  # after the key is checked: 401 before 422
    name = clean_text(body.name, "name")
    key_id, client = actor(request)
    person = await run_in_threadpool(svc.engine.rename, person_id, name, key_id=key_id, client=client)
    return site_times(person.to_dict(), svc.settings.time_zone)


@router.delete("/people/{person_id}", response_model=S.DeletePersonOut,
               summary="Delete a person: faces, embeddings, crops, index entries, event images (decisions stay)")
async def delete_person(
    request: Request, svc: ServiceDep, person_id: int = PID, p: Principal = Depends(require("people:write"))
) -> dict[str, Any]:
    key_id, client = actor(request)
    out = await run_in_threadpool(svc.engine.delete_person, person_id, key_id=key_id, client=client)
    return site_times(out, svc.settings.time_zone)


@router.post(
    "/people/{person_id}/faces", response_model=S.EnrolOut, summary="Enrol more photos of an existing person",
    openapi_extra=image_body([], plural="images", description="one or more photos of the person"),
)
async def add_faces(
    request: Request,
    svc: ServiceDep,
    person_id: int = PID,
    pick: Literal["largest", "single", "center"] = Query(default="largest", description=PICK_DOC),
    force: bool = Query(default=False, description=FORCE_DOC),
    p: Principal = Depends(require("people:write")),
) -> dict[str, Any]:
    _, photos = await read_photos(request, svc.settings.max_images)
    key_id, client = actor(request)
    person = await run_in_threadpool(svc.engine.gallery.person, person_id)
    out = await run_in_threadpool(svc.engine.enrol, person.name, photos, create=False, pick=pick, force=force,
                                  key_id=key_id, client=client)
    return site_times(out, svc.settings.time_zone)


@router.delete("/people/{person_id}/faces/{face_id}", response_model=S.DeleteFaceOut,
               summary="Delete one face (the person goes too with their last face)")
async def delete_face(
    request: Request, svc: ServiceDep, person_id: int = PID, face_id: int = FID,
    p: Principal = Depends(require("people:write")),
) -> dict[str, Any]:
    key_id, client = actor(request)
    return await run_in_threadpool(svc.engine.delete_face, person_id, face_id, key_id=key_id, client=client)


@router.get("/people/{person_id}/faces/{face_id}/thumbnail", response_class=Response, responses=JPEG,
            summary="The stored face crop (JPEG)")
async def thumbnail(
    svc: ServiceDep, person_id: int = PID, face_id: int = FID, p: Principal = Depends(require("people:read"))
) -> Response:
    jpeg = await run_in_threadpool(svc.engine.thumbnail, person_id, face_id)
    return Response(jpeg, media_type="image/jpeg")  # no-store like all API answers: a face crop


@router.get("/gallery", response_model=S.StatsOut, summary="Gallery size, model and decision threshold")
async def gallery_stats(svc: ServiceDep, p: Principal = Depends(require("people:read"))) -> dict[str, Any]:
    return await run_in_threadpool(svc.engine.stats)


@router.get("/gallery/check", response_model=S.ConsistencyOut,
            summary="The gallery against itself: people whose photos disagree (FAR 1e-3) and pairs of people who "
            "look like one (their templates clear the 1:N bar); reads every person's faces (admin)")
async def gallery_check(svc: ServiceDep, p: Principal = Depends(require("people:write"))) -> dict[str, Any]:
    return await run_in_threadpool(svc.engine.gallery.consistency)
