"""A CompreFace-compatible front door to facegate's gallery: the REST subset that CompreFace's SDKs
and Double Take use, answered in CompreFace's JSON shape with facegate's own figures beside it.

One gallery, two front doors: a CompreFace *subject* is a facegate *person* (same records, same
ids in the audit trail), an *example* is one of their stored faces. Every route calls the same
:class:`~facegate.service.engine.Engine` and gallery methods as the native routes, so enrolment
goes through the quality gate, deletion erases as ``DELETE /api/v1/people/{id}`` does, and whether
a face is somebody is the gallery's decision at its FPIR (:mod:`facegate.decide`); this module only
translates. ``similarity`` is a calibrated FAR scale (:mod:`.similarity`).

Authentication: CompreFace's ``x-api-key`` header is facegate's ``X-API-Key`` (header names are
case-insensitive): a facegate key, whose role decides what it may do (recognise/detect/verify:
``faces:analyse``, a gate or admin key; list: ``people:read``; add/rename/delete: ``people:write``).

What differs from CompreFace, on purpose, and is said in the answers and the docs:

* face plugins: only ``landmarks`` is offered; ``age``, ``gender``, ``mask``, ``pose`` and
  ``calculator`` (embeddings: biometric templates never leave the service) are listed in
  ``facegate.plugins_not_offered`` of the answer that asked for them;
* ``image_id`` is ``"<person id>-<face id>"``, not a UUID (clients treat it as opaque);
* renaming a subject onto another subject's name is refused (409), not merged;
* ``DELETE /recognition/faces`` needs ``subject=`` (CompreFace would delete every face);
* an example photo's face is the largest (facegate's one face-choice rule; ``pick=single`` refuses a photo
  with several), and it passes facegate's quality gate and integrity checks: an example that identifies as
  another subject, does not match the subject's other examples, or is the same photo as another subject's
  is refused (409, facegate's reason in the message; ``force=true`` stores it, recorded as forced).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from typing import Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from facegate.pipeline import DEFAULT_PICK, choose_face
from facegate.service import schemas as S
from facegate.service.compat.similarity import SimilarityScale, template_margin
from facegate.service.errors import ApiError
from facegate.service.inputs import clean_text, decode_base64, read_body, read_json
from facegate.service.params import FORCE_DOC, PICK_DOC

API = "/api/v1"
MAX_ID = 2**62
NO_FACE_CODE = 28  # CompreFace's "No face is found in the given image"; clients (Double Take) test for it
NO_FACE_MESSAGE = "No face is found in the given image"
PLUGINS_OFFERED = ("landmarks",)
PLUGIN_NOTES = {
    "calculator": "embeddings are biometric templates; facegate does not return them over the API",
    "age": "no age model ships with facegate",
    "gender": "no gender model ships with facegate",
    "mask": "no mask model ships with facegate",
    "pose": "no head-pose output; facegate's quality gate checks pose at enrolment",
}
IMAGE_ID_DOC = '"<person id>-<face id>" (as answered when the example was added)'
IMAGE_ID = re.compile(r"^([0-9]{1,19})-([0-9]{1,19})$")


# -- answers ----------------------------------------------------------------------------------------
F = S.F  # a field with a description and one example, as every answer of the API has
BOX_EX = {"probability": 0.99871, "x_min": 180, "y_min": 140, "x_max": 368, "y_max": 326}
LM_EX = [[231, 206], [311, 205], [272, 247], [240, 286], [306, 284]]


class CompatErrorOut(BaseModel):
    code: int | str = F("CompreFace's numeric code where clients test for one (28: no face found); facegate's error "
                        "code otherwise", 28)
    message: str = F("one line a person can act on", NO_FACE_MESSAGE)
    details: Any | None = F("more about the error (facegate_code; enrolment refusals: who the photo matched)",
                            {"facegate_code": "no_face"}, None)


class BoxOut(BaseModel):
    probability: float = F("facegate's calibrated face score (0..1, the same scale for every detector)", 0.99871)
    x_min: int = F("left edge, pixels", 180)
    y_min: int = F("top edge, pixels", 140)
    x_max: int = F("right edge, pixels", 368)
    y_max: int = F("bottom edge, pixels", 326)


class SubjectMatchOut(BaseModel):
    subject: str = F("the subject's name", "Ada Lovelace")
    similarity: float = F("calibrated: -log10(per-comparison FAR)/10 (facegate.similarity_scale)", 0.61)
    person_id: int = F("the facegate person", 7)
    score: float = F("cosine score against the person's template", 0.7132)
    threshold: float = F("the bar this person is held to at the gallery's FPIR", 0.6145)
    same: bool = F("the score clears the bar (only the first subject can name the face)", True)


class PluginsNotOffered(BaseModel):
    plugin: str = F("the face plugin asked for", "age")
    why: str = F("why facegate does not offer it", PLUGIN_NOTES["age"])


class FacegateOut(BaseModel):
    similarity_scale: Literal["log10_far", "cosine"] = F("what similarity means here: log10_far (calibrated) or "
                                                         "cosine (no calibration for this stack)", "log10_far")
    similarity_meaning: str = F("the scale in words", "similarity 0.3 = per-comparison FAR 1e-3")
    plugins_not_offered: list[PluginsNotOffered] = F("face plugins asked for and not offered, and why", [],
                                                     default_factory=list)
    faces_found: int | None = Field(default=None, description="faces in the image (recognize: after "
                                    "det_prob_threshold and limit; verify: of source_image)", examples=[2])
    face_used: dict[str, Any] | None = Field(
        default=None, description="the face facegate's one face-choice rule picks (the largest; what a facegate gate "
        "decides on; verify: the source_image face compared): its index in result, box and score",
        examples=[{"index": 0, "box": [180.2, 139.5, 367.8, 326.1], "score": 0.9987}])
    pick: str | None = Field(default=None, description="the face-choice rule: largest", examples=["largest"])
    decision: S.DecisionOut | None = Field(default=None, description="the 1:N operating point the faces were decided at")
    verify: dict[str, Any] | None = F("1:1: threshold and FAR applied, and the table they come from",
                                      {"threshold": 0.4572, "far": 0.001, "table": "shipped"}, None)


class RecognizedFaceOut(BaseModel):
    box: BoxOut = F("where the face is", BOX_EX)
    subjects: list[SubjectMatchOut] = F("the nearest subjects, best first", [])
    landmarks: list[list[int]] | None = F("five points (face_plugins=landmarks)", LM_EX, None)
    execution_time: dict[str, float] | None = F("milliseconds (status=true)", {"total": 41.5}, None)
    decision: Literal["allow", "deny"] = F("facegate's decision: the first subject is this person", "allow")
    person_id: int | None = F("who facegate decided it is; null: nobody", 7)
    identity: str | None = F("their name; null: nobody", "Ada Lovelace")
    threshold: float = F("the bar applied to the first subject", 0.6145)
    similarity_threshold: float = F("the similarity at which facegate's own decision flips", 0.5)
    far: float | None = F("per-comparison FAR given to each identity", 1e-5)
    fpir: float | None = F("false-positive identification rate decided at", 1e-2)
    tpir: float | None = F("expected true-positive identification rate, where calibrated", 0.9646)


class RecognizeOut(BaseModel):
    result: list[RecognizedFaceOut] = F("every face, largest first", [])
    plugins_versions: dict[str, str] | None = F("the detector and embedding model (status=true)",
                                                {"detector": "blazeface", "calculator": "mobilefacenet@d8ba40c0127f"},
                                                None)
    facegate: FacegateOut = F("facegate's own figures: the similarity scale, the operating point, the face used",
                              {"similarity_scale": "log10_far", "similarity_meaning": "...", "plugins_not_offered": []})


class DetectedFaceOut(BaseModel):
    box: BoxOut = F("where the face is", BOX_EX)
    landmarks: list[list[int]] | None = F("five points (face_plugins=landmarks)", LM_EX, None)
    execution_time: dict[str, float] | None = F("milliseconds (status=true)", {"total": 21.0}, None)


class DetectionOut(BaseModel):
    result: list[DetectedFaceOut] = F("every face, largest first", [])
    plugins_versions: dict[str, str] | None = F("the detector and embedding model (status=true)",
                                                {"detector": "blazeface"}, None)
    facegate: FacegateOut = F("facegate's own figures", {"similarity_scale": "log10_far", "similarity_meaning": "..."})


class VerifiedFaceOut(BaseModel):
    box: BoxOut = F("where the face is", BOX_EX)
    similarity: float = F("calibrated similarity to the other face (see facegate.similarity_meaning)", 0.52)
    landmarks: list[list[int]] | None = F("five points (face_plugins=landmarks)", LM_EX, None)
    execution_time: dict[str, float] | None = F("milliseconds (status=true)", {"total": 38.0}, None)
    score: float = F("cosine score against the stored face", 0.6931)
    threshold: float = F("the 1:1 threshold applied", 0.4572)
    far: float | None = F("the per-comparison FAR of that threshold", 1e-3)
    same: bool = F("whether the score clears the threshold", True)


class VerifyFaceOut(BaseModel):
    result: list[VerifiedFaceOut] = F("every face of the image, largest first, against the stored example", [])
    plugins_versions: dict[str, str] | None = F("the detector and embedding model (status=true)",
                                                {"detector": "blazeface"}, None)
    facegate: FacegateOut = F("facegate's own figures", {"similarity_scale": "log10_far", "similarity_meaning": "..."})


class SourceFaceOut(BaseModel):
    box: BoxOut = F("where the source face is", BOX_EX)
    landmarks: list[list[int]] | None = F("five points (face_plugins=landmarks)", LM_EX, None)


class VerificationItemOut(BaseModel):
    source_image_face: SourceFaceOut = F("the face of source_image compared (the largest)", {"box": BOX_EX})
    face_matches: list[VerifiedFaceOut] = F("every face of target_image against it", [])
    plugins_versions: dict[str, str] | None = F("the detector and embedding model (status=true)",
                                                {"detector": "blazeface"}, None)


class VerificationOut(BaseModel):
    result: list[VerificationItemOut] = F("one item: the source face and its matches", [])
    facegate: FacegateOut = F("facegate's own figures", {"similarity_scale": "log10_far", "similarity_meaning": "..."})


class AddFaceOut(BaseModel):
    image_id: str = F('"<person id>-<face id>"', "7-12")
    subject: str = F("the subject's name", "Ada Lovelace")
    person_id: int = F("the facegate person", 7)
    face_id: int = F("the face stored", 12)


class FaceItemOut(BaseModel):
    image_id: str = F('"<person id>-<face id>"', "7-12")
    subject: str = F("the subject's name", "Ada Lovelace")


class FacesOut(BaseModel):
    faces: list[FaceItemOut] = F("this page of examples", [])
    page_number: int = F("the page asked for, from 0", 0)
    page_size: int = F("examples per page", 20)
    total_pages: int = F("pages in all", 3)
    total_elements: int = F("examples in all", 41)


class SubjectsOut(BaseModel):
    subjects: list[str] = F("every subject", ["Ada Lovelace", "Charles Babbage"])


class SubjectOut(BaseModel):
    subject: str = F("the subject's name", "Ada Lovelace")


class UpdatedOut(BaseModel):
    updated: bool = F("whether it was renamed", True)


class DeletedOut(BaseModel):
    deleted: int = F("how many were deleted", 2)


_ERR = {"model": CompatErrorOut}
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {**_ERR, "description": "no face found (code 28), or a malformed image, multipart, base64 or JSON body"},
    401: {**_ERR, "description": "no key, or an unknown, wrong or revoked key (x-api-key)"},
    403: {**_ERR, "description": "the key's role may not do this"},
    404: {**_ERR, "description": "no such subject or image"},
    409: {**_ERR, "description": "name taken (facegate does not merge subjects), the gallery holds another model, or "
          "the example was refused by facegate's enrolment integrity checks (details.rejected: who it matched)"},
    413: {**_ERR, "description": "request body or image too large"},
    415: {**_ERR, "description": "send multipart/form-data or application/json"},
    422: {**_ERR, "description": "invalid parameters, or the example photo was refused by the quality gate"},
    429: {**_ERR, "description": "too many failed authentications from this address; see Retry-After"},
    503: {**_ERR, "description": "not ready: models loading or no calibrated threshold"},
}


# -- helpers ----------------------------------------------------------------------------------------
def subject_name(value: Any, field: str = "subject") -> str:
    """A subject name: the same rule as a facegate person's name (:func:`facegate.service.inputs.clean_text`)."""
    return clean_text(value, field)


class NoFaceError(ApiError):
    """CompreFace's answer to an image without a (qualifying) face: HTTP 400, code 28, its message."""

    def __init__(self) -> None:
        super().__init__(400, "no_face", NO_FACE_MESSAGE, {"facegate_code": "no_face"})
        self.code = NO_FACE_CODE  # type: ignore[assignment]  # clients compare it with the number 28


def no_face() -> ApiError:
    return NoFaceError()


def plugins(face_plugins: str | None) -> tuple[bool, list[dict[str, str]]]:
    """(landmarks asked for, [the plugins asked for that are not offered, and why])."""
    asked = [p.strip().lower() for p in (face_plugins or "").split(",") if p.strip()]
    if len(asked) > 10:
        raise ApiError(422, "validation", "face_plugins: at most 10 plugins")
    missing = [{"plugin": p, "why": PLUGIN_NOTES.get(p, "no such face plugin")} for p in dict.fromkeys(asked)
               if p not in PLUGINS_OFFERED]
    return "landmarks" in asked, missing


def box(face: Any, size: tuple[int, int] | None = None) -> dict[str, Any]:
    x1, y1, x2, y2 = (float(v) for v in face.box)
    w, h = size if size else (math.inf, math.inf)
    return {"probability": round(float(face.score), 5), "x_min": int(max(0, round(x1))), "y_min": int(max(0, round(y1))),
            "x_max": int(min(w, round(x2))), "y_max": int(min(h, round(y2)))}


def area(face: Any) -> float:
    x1, y1, x2, y2 = (float(v) for v in face.box)
    return max(0.0, x2 - x1) * max(0.0, y2 - y1)


def keep(faces: list[Any], face_of: Callable[[Any], Any], det_prob_threshold: float | None, limit: int) -> list[Any]:
    """Faces at or above ``det_prob_threshold``, largest first, at most ``limit`` (0: no limit)."""
    out = [x for x in faces if det_prob_threshold is None or float(face_of(x).score) >= det_prob_threshold]
    out.sort(key=lambda x: area(face_of(x)), reverse=True)
    return out[:limit] if limit else out


def landmarks(face: Any) -> list[list[int]]:
    return [[int(round(float(x))), int(round(float(y)))] for x, y in face.landmarks]


def image_id(pid: int, fid: int) -> str:
    return f"{int(pid)}-{int(fid)}"


def parse_image_id(value: str) -> tuple[int, int]:
    m = IMAGE_ID.match(value or "")
    if not m or int(m.group(1)) > MAX_ID or int(m.group(2)) > MAX_ID:
        raise ApiError(404, "not_found", f"no image with id {value[:80]!r} (facegate image ids are '<person id>-<face id>')")
    return int(m.group(1)), int(m.group(2))


async def images(request: Request, *names: str) -> list[bytes]:
    """One image per field name: multipart file fields, or CompreFace's base64 JSON ({"file": "<base64>"})."""
    body = await read_body(request, max_files=len(names) + 1, max_fields=10)
    out = []
    for n in names:
        if body.kind == "multipart":
            files = body.files.get(n, [])
            if n in body.fields and not files:
                raise ApiError(400, "invalid_field", f"multipart field {n!r} must be a file upload, not text")
            if len(files) != 1:
                raise ApiError(422, "validation", f"expected exactly one image in multipart field {n!r}, got {len(files)}")
            out.append(files[0][1])
        else:
            if n not in body.fields:
                raise ApiError(422, "validation", f"JSON field {n!r} (the image as base64) is required")
            out.append(decode_base64(body.fields[n], n))
    return out


def file_body(*names: str) -> dict[str, Any]:
    """The ``requestBody`` of a CompreFace image route: multipart files, or JSON with the same names in base64."""
    mp = {n: {"type": "string", "format": "binary"} for n in names}
    js = {n: {"type": "string", "description": "the image, base64"} for n in names}
    return {"requestBody": {"required": True, "content": {
        "multipart/form-data": {"schema": {"type": "object", "properties": mp, "required": list(names)}},
        "application/json": {"schema": {"type": "object", "properties": js, "required": list(names)}},
    }}}


def subject_body() -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "properties": {"subject": {"type": "string", "minLength": 1, "maxLength": 200}},
        "required": ["subject"]}}}}}


def versions(svc: Any) -> dict[str, str]:
    cfg = svc.engine.pipeline.config
    return {"detector": str(getattr(svc.engine.pipeline.detector, "name", None) or cfg.detector),
            "calculator": svc.engine.model_id()}


# -- pending subjects (migration 006) ---------------------------------------------------------------
def pending(db: Any) -> list[str]:
    return [str(r[0]) for r in db.query("SELECT name FROM compat_subjects ORDER BY name")]


def pending_has(db: Any, name: str) -> bool:
    return bool(db.query("SELECT 1 FROM compat_subjects WHERE name = ?", (name,)))


def pending_drop(db: Any, name: str) -> bool:
    with db.write() as c:
        return bool(c.execute("DELETE FROM compat_subjects WHERE name = ?", (name,)).rowcount)


def person_named(gallery: Any, name: str) -> Any:
    """The person with exactly this name, or None (a digit string is a name here, never an id)."""
    from facegate.gallery import PersonNotFoundError

    try:
        p = gallery.person(name)
    except PersonNotFoundError:
        return None
    return p if p.name == name else None


# -- the routes -------------------------------------------------------------------------------------
def router(require: Callable[[str | None], Any]) -> APIRouter:
    """CompreFace's recognition, detection and verification routes, authenticated by ``require``."""
    r = APIRouter(prefix=API, tags=["compreface"])
    analyse, read, write = require("faces:analyse"), require("people:read"), require("people:write")
    DET = Query(default=None, ge=0.0, le=1.0, description="minimum face score (facegate's calibrated 0..1 score)")
    LIMIT = Query(default=0, ge=0, le=1000, description="at most this many faces, largest first; 0: no limit")
    PLUGINS = Query(default=None, max_length=200, description="comma-separated; only 'landmarks' is offered")
    STATUS = Query(default=False, description="add execution_time and plugins_versions")

    def ctx(request: Request) -> tuple[Any, str | None, str]:
        svc = request.app.state.svc
        p = getattr(request.state, "principal", None)
        return svc, (p.key_id if p else None), svc.client_of(request)

    def info(scale: SimilarityScale, missing: list[dict[str, str]], **more: Any) -> dict[str, Any]:
        return {"similarity_scale": scale.name, "similarity_meaning": scale.meaning, "plugins_not_offered": missing, **more}

    # -- recognition ----------------------------------------------------------------------------------
    @r.post("/recognition/recognize", response_model=RecognizeOut, response_model_exclude_unset=True,
            responses=ERRORS, summary="CompreFace: recognise the faces in an image (subjects by similarity)",
            openapi_extra=file_body("file"))
    async def recognize(
        request: Request, limit: int = LIMIT, det_prob_threshold: float | None = DET,
        prediction_count: int = Query(default=1, ge=1, le=50, description="subjects per face"),
        face_plugins: str | None = PLUGINS, status: bool = STATUS, p: Any = Depends(analyse),
    ) -> dict[str, Any]:
        want_lm, missing = plugins(face_plugins)
        (data,) = await images(request, "file")
        svc, _, _ = ctx(request)
        t0 = time.perf_counter()
        found, policy = await run_in_threadpool(svc.engine.identify, data, prediction_count)
        ms = round((time.perf_counter() - t0) * 1000, 1)
        found = keep(found, lambda i: i.face, det_prob_threshold, limit)
        if not found:
            raise no_face()
        chosen = choose_face([i.face for i in found], (0, 0), DEFAULT_PICK, "file")
        pol = found[0].policy
        scale = SimilarityScale.of(pol.table.single if pol.table is not None else svc.engine.pipeline.operating_points)
        result = []
        for ident in found:
            subjects = [{"subject": m.name, "similarity": scale.similarity(m.score, template_margin(pol, m.threshold)),
                         "person_id": m.person_id, "score": round(m.score, 6), "threshold": round(m.threshold, 6),
                         "same": m.same} for m in ident.candidates]
            who = ident.identity
            item: dict[str, Any] = {
                "box": box(ident.face), "subjects": subjects, "decision": "allow" if who is not None else "deny",
                "person_id": who.person_id if who else None, "identity": who.name if who else None,
                "threshold": round(ident.threshold, 6),
                "similarity_threshold": scale.similarity(ident.threshold, template_margin(pol, ident.threshold)),
                "far": pol.far, "fpir": pol.fpir, "tpir": None if pol.tpir is None else round(pol.tpir, 4),
            }
            if want_lm:
                item["landmarks"] = landmarks(ident.face)
            if status:
                item["execution_time"] = {"total": ms}
            result.append(item)
        out: dict[str, Any] = {"result": result, "facegate": info(scale, missing, decision=pol.to_dict(),
                                                                  **chosen.to_dict())}
        if status:
            out["plugins_versions"] = versions(svc)
        return out

    @r.post("/detection/detect", response_model=DetectionOut, response_model_exclude_unset=True, responses=ERRORS,
            summary="CompreFace: the faces in an image (boxes with probability)", openapi_extra=file_body("file"))
    async def detect(
        request: Request, limit: int = LIMIT, det_prob_threshold: float | None = DET, face_plugins: str | None = PLUGINS,
        status: bool = STATUS, p: Any = Depends(analyse),
    ) -> dict[str, Any]:
        want_lm, missing = plugins(face_plugins)
        (data,) = await images(request, "file")
        svc, _, _ = ctx(request)
        t0 = time.perf_counter()
        size, faces = await run_in_threadpool(svc.engine.detect, data)
        ms = round((time.perf_counter() - t0) * 1000, 1)
        faces = keep(faces, lambda f: f, det_prob_threshold, limit)
        if not faces:
            raise no_face()
        result = []
        for f in faces:
            item: dict[str, Any] = {"box": box(f, size)}
            if want_lm:
                item["landmarks"] = landmarks(f)
            if status:
                item["execution_time"] = {"total": ms}
            result.append(item)
        out: dict[str, Any] = {"result": result,
                               "facegate": info(SimilarityScale.of(svc.engine.pipeline.operating_points), missing)}
        if status:
            out["plugins_versions"] = versions(svc)
        return out

    def verify_setup(svc: Any) -> tuple[float, float | None, SimilarityScale]:
        thr, far = svc.engine.decision_threshold()
        return thr, far, SimilarityScale.of(svc.engine.pipeline.operating_points)

    def compare(face: Any, ref: Any, thr: float, far: float | None, scale: SimilarityScale) -> dict[str, Any]:
        from facegate.decide import cosine, decide

        verdict = decide(cosine(face.embedding, ref), thr, far)
        return {"similarity": scale.similarity(verdict.score), "score": round(verdict.score, 6),
                "threshold": round(verdict.threshold, 6), "far": verdict.far, "same": verdict.same}

    @r.post("/recognition/faces/{image_id}/verify", response_model=VerifyFaceOut, response_model_exclude_unset=True,
            responses=ERRORS, summary="CompreFace: compare the faces in an image with one stored face (1:1 at the "
            "configured FAR)", openapi_extra=file_body("file"))
    async def verify_stored(
        request: Request, image_id: str = Path(max_length=50, description=IMAGE_ID_DOC), limit: int = LIMIT,
        det_prob_threshold: float | None = DET,
        face_plugins: str | None = PLUGINS, status: bool = STATUS, p: Any = Depends(analyse),
    ) -> dict[str, Any]:
        want_lm, missing = plugins(face_plugins)
        pid, fid = parse_image_id(image_id)
        (data,) = await images(request, "file")
        svc, _, _ = ctx(request)

        def stored() -> Any:
            from facegate.gallery import PersonNotFoundError, UnsupportedError

            try:
                faces = svc.engine.gallery.faces(pid)
                emb = svc.engine.gallery.embeddings(pid)
            except PersonNotFoundError as exc:
                raise ApiError(404, "not_found", f"no image with id {image_id}") from exc
            except UnsupportedError as exc:
                raise ApiError(409, "unsupported", f"this gallery backend cannot compare with one stored face: {exc}") from exc
            ids = [f.id for f in faces]
            if fid not in ids or len(ids) != len(emb):
                raise ApiError(404, "not_found", f"no image with id {image_id}")
            return emb[ids.index(fid)]

        ref = await run_in_threadpool(stored)
        thr, far, scale = verify_setup(svc)
        t0 = time.perf_counter()
        found, _ = await run_in_threadpool(svc.engine.identify, data, 1)
        ms = round((time.perf_counter() - t0) * 1000, 1)
        found = keep(found, lambda i: i.face, det_prob_threshold, limit)
        if not found:
            raise no_face()
        result = []
        for ident in found:
            item = {"box": box(ident.face), **compare(ident.face, ref, thr, far, scale)}
            if want_lm:
                item["landmarks"] = landmarks(ident.face)
            if status:
                item["execution_time"] = {"total": ms}
            result.append(item)
        out: dict[str, Any] = {"result": result,
                               "facegate": info(scale, missing, verify={"threshold": round(thr, 6), "far": far,
                                                                       "table": svc.engine.pipeline.table_label})}
        if status:
            out["plugins_versions"] = versions(svc)
        return out

    @r.post("/verification/verify", response_model=VerificationOut, response_model_exclude_unset=True, responses=ERRORS,
            summary="CompreFace: the largest face of source_image against the faces of target_image (1:1)",
            openapi_extra=file_body("source_image", "target_image"))
    async def verification(
        request: Request, limit: int = LIMIT, det_prob_threshold: float | None = DET, face_plugins: str | None = PLUGINS,
        status: bool = STATUS, p: Any = Depends(analyse),
    ) -> dict[str, Any]:
        want_lm, missing = plugins(face_plugins)
        src, dst = await images(request, "source_image", "target_image")
        svc, _, _ = ctx(request)
        thr, far, scale = verify_setup(svc)
        a, _ = await run_in_threadpool(svc.engine.identify, src, 1)
        b, _ = await run_in_threadpool(svc.engine.identify, dst, 1)
        a = keep(a, lambda i: i.face, det_prob_threshold, 0)
        b = keep(b, lambda i: i.face, det_prob_threshold, limit)
        if not a or not b:
            raise no_face()
        chosen = choose_face([i.face for i in a], (0, 0), DEFAULT_PICK, "source_image")  # the one rule
        source = chosen.face
        matches = []
        for ident in b:
            m = {"box": box(ident.face), **compare(ident.face, source.embedding, thr, far, scale)}
            if want_lm:
                m["landmarks"] = landmarks(ident.face)
            matches.append(m)
        item: dict[str, Any] = {"source_image_face": {"box": box(source), **({"landmarks": landmarks(source)} if want_lm else {})},
                                "face_matches": matches}
        if status:
            item["plugins_versions"] = versions(svc)
        return {"result": [item], "facegate": info(scale, missing, verify={"threshold": round(thr, 6), "far": far,
                                                                       "table": svc.engine.pipeline.table_label},
                                                   **chosen.to_dict())}

    # -- examples (faces) -----------------------------------------------------------------------------
    @r.post("/recognition/faces", response_model=AddFaceOut, status_code=201, responses=ERRORS,
            summary="CompreFace: add an example photo of a subject (the person is created with their first face)",
            openapi_extra=file_body("file"))
    async def add_face(
        request: Request, subject: str = Query(min_length=1, max_length=200, description="the subject's name"),
        det_prob_threshold: float | None = DET,
        pick: Literal["largest", "single", "center"] = Query(default="largest", description=PICK_DOC),
        force: bool = Query(default=False, description=FORCE_DOC),
        p: Any = Depends(write),
    ) -> dict[str, Any]:
        name = subject_name(subject)
        (data,) = await images(request, "file")
        svc, key_id, client = ctx(request)
        from facegate.gallery import PersonNotFoundError

        def work() -> dict[str, Any]:
            try:
                out = svc.engine.enrol(name, [("file", data)], pick=pick, force=force, key_id=key_id, client=client)
            except ApiError as exc:
                rejected = (exc.details or {}).get("rejected") or []
                if rejected and all(r.get("code") == "no_face" for r in rejected):
                    raise no_face() from exc
                if exc.code == "enrolment_conflict":  # CompreFace's error shape, facegate's reason and who it matched
                    raise ApiError(409, "enrolment_conflict", f"facegate refused this example: {exc.message}",
                                   {"facegate_code": "enrolment_conflict", "rejected": rejected}) from exc
                raise
            except PersonNotFoundError as exc:  # pragma: no cover - enrol creates the person
                raise ApiError(404, "not_found", str(exc)) from exc
            pending_drop(svc.db, name)
            person = out["person"]
            if not out["face_ids"]:  # the same photo is already an example of this subject: that example
                fid = int((out.get("skipped") or [{}])[0].get("face_id") or 0)
                if not fid:
                    raise ApiError(409, "already_enrolled", "this photo is already an example of this subject")
                return {"image_id": image_id(person["id"], fid), "subject": person["name"], "person_id": person["id"],
                        "face_id": fid}
            fid = out["face_ids"][0]
            return {"image_id": image_id(person["id"], fid), "subject": person["name"], "person_id": person["id"],
                    "face_id": fid}

        return await run_in_threadpool(work)

    @r.get("/recognition/faces", response_model=FacesOut, responses=ERRORS,
           summary="CompreFace: the stored examples (faces), page by page, of every subject or of one")
    async def list_faces(
        request: Request, page: int = Query(default=0, ge=0, le=10**9, description="the page, from 0"),
        size: int = Query(default=20, ge=1, le=1000, description="examples per page"),
        subject: str | None = Query(default=None, max_length=200, description="only this subject's examples"),
        p: Any = Depends(read),
    ) -> dict[str, Any]:
        svc, _, _ = ctx(request)
        g = svc.engine.gallery

        def work() -> dict[str, Any]:
            if subject is not None:
                who = person_named(g, subject_name(subject))
                people = [who] if who is not None else []
            else:
                people = g.people()
            total = sum(int(x.faces) for x in people)
            start, stop = page * size, (page + 1) * size
            faces, seen = [], 0
            for person in people:
                n = int(person.faces)
                if seen + n > start and seen < stop:
                    for f in g.faces(person.id)[max(0, start - seen): stop - seen]:
                        faces.append({"image_id": image_id(person.id, f.id), "subject": person.name})
                seen += n
                if seen >= stop:
                    break
            return {"faces": faces, "page_number": page, "page_size": size,
                    "total_pages": math.ceil(total / size) if total else 0, "total_elements": total}

        return await run_in_threadpool(work)

    @r.delete("/recognition/faces", response_model=DeletedOut, responses=ERRORS,
              summary="CompreFace: delete every example of a subject (the facegate person goes with them)")
    async def delete_faces(
        request: Request, subject: str | None = Query(default=None, max_length=200,
                                                      description="the subject whose examples go (required)"),
        p: Any = Depends(write),
    ) -> dict[str, Any]:
        if subject is None:
            raise ApiError(422, "validation", "subject is required: facegate does not delete every face at once here; "
                           "DELETE /api/v1/recognition/subjects deletes every subject")
        name = subject_name(subject)
        svc, key_id, client = ctx(request)

        def work() -> dict[str, Any]:
            who = person_named(svc.engine.gallery, name)
            if who is None:
                return {"deleted": 0}
            out = svc.engine.delete_person(who.id, key_id=key_id, client=client)
            return {"deleted": int(out["faces_deleted"])}

        return await run_in_threadpool(work)

    @r.delete("/recognition/faces/{image_id}", response_model=FaceItemOut, responses=ERRORS,
              summary="CompreFace: delete one example (the person goes too with their last face)")
    async def delete_face(request: Request, image_id: str = Path(max_length=50, description=IMAGE_ID_DOC),
                          p: Any = Depends(write)) -> dict[str, Any]:
        pid, fid = parse_image_id(image_id)
        svc, key_id, client = ctx(request)

        def work() -> dict[str, Any]:
            from facegate.gallery import PersonNotFoundError

            try:
                person = svc.engine.gallery.person(pid)
                svc.engine.delete_face(pid, fid, key_id=key_id, client=client)
            except PersonNotFoundError as exc:
                raise ApiError(404, "not_found", f"no image with id {image_id}") from exc
            return {"image_id": image_id, "subject": person.name}

        return await run_in_threadpool(work)

    @r.get("/recognition/faces/{image_id}/img", response_class=Response, responses={
        **ERRORS, 200: {"content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}}}},
        summary="CompreFace: the stored example (facegate keeps a face crop, not the uploaded photo)")
    async def face_image(request: Request, image_id: str = Path(max_length=50, description=IMAGE_ID_DOC),
                         p: Any = Depends(read)) -> Response:
        pid, fid = parse_image_id(image_id)
        svc, _, _ = ctx(request)

        def work() -> bytes:
            from facegate.gallery import PersonNotFoundError

            try:
                return bytes(svc.engine.thumbnail(pid, fid))
            except PersonNotFoundError as exc:
                raise ApiError(404, "not_found", f"no image with id {image_id}") from exc

        return Response(await run_in_threadpool(work), media_type="image/jpeg")

    # -- subjects -------------------------------------------------------------------------------------
    @r.get("/recognition/subjects", response_model=SubjectsOut, responses=ERRORS,
           summary="CompreFace: every subject (facegate's people, and subjects still without a face)")
    async def subjects(request: Request, p: Any = Depends(read)) -> dict[str, Any]:
        svc, _, _ = ctx(request)

        def work() -> dict[str, Any]:
            names = [x.name for x in svc.engine.gallery.people()]
            have = set(names)
            return {"subjects": names + [n for n in pending(svc.db) if n not in have]}

        return await run_in_threadpool(work)

    @r.post("/recognition/subjects", response_model=SubjectOut, status_code=201, responses=ERRORS,
            summary="CompreFace: add a subject (it becomes a facegate person with its first face)",
            openapi_extra=subject_body())
    async def add_subject(request: Request, p: Any = Depends(write)) -> dict[str, Any]:
        name = subject_name((await read_json(request)).get("subject"))
        svc, key_id, client = ctx(request)

        def work() -> dict[str, Any]:
            if person_named(svc.engine.gallery, name) is not None or pending_has(svc.db, name):
                raise ApiError(409, "name_taken", f"a subject named {name!r} exists")
            with svc.db.write() as c:
                c.execute("INSERT INTO compat_subjects (name, created) VALUES (?, ?)", (name, time.time()))
            svc.db.add_event("audit", action="subject_add", name=name, key_id=key_id, client=client,
                             detail={"pending": True})
            return {"subject": name}

        return await run_in_threadpool(work)

    @r.put("/recognition/subjects/{subject}", response_model=UpdatedOut, responses=ERRORS,
           summary="CompreFace: rename a subject (onto another subject's name: refused, not merged)",
           openapi_extra=subject_body())
    async def rename_subject(request: Request,
                             subject: str = Path(min_length=1, max_length=200, description="the subject's name"),
                             p: Any = Depends(write)) -> dict[str, Any]:
        old = subject_name(subject)
        new = subject_name((await read_json(request)).get("subject"))
        svc, key_id, client = ctx(request)

        def work() -> dict[str, Any]:
            who = person_named(svc.engine.gallery, old)
            if who is not None:
                if old != new and (person_named(svc.engine.gallery, new) is not None):
                    raise ApiError(409, "name_taken", f"a subject named {new!r} exists; facegate does not merge "
                                   "subjects (delete one, or add its photos to the other)")
                svc.engine.rename(who.id, new, key_id=key_id, client=client)
                pending_drop(svc.db, new)
                return {"updated": True}
            if not pending_has(svc.db, old):
                raise ApiError(404, "not_found", f"no subject named {old!r}")
            with svc.db.write() as c:
                c.execute("DELETE FROM compat_subjects WHERE name = ?", (old,))
                if person_named(svc.engine.gallery, new) is None:
                    c.execute("INSERT OR IGNORE INTO compat_subjects (name, created) VALUES (?, ?)", (new, time.time()))
            svc.db.add_event("audit", action="subject_rename", name=new, key_id=key_id, client=client,
                             detail={"from": old, "pending": True})
            return {"updated": True}

        return await run_in_threadpool(work)

    @r.delete("/recognition/subjects/{subject}", response_model=SubjectOut, responses=ERRORS,
              summary="CompreFace: delete a subject with all their faces (erased as DELETE /api/v1/people/{id})")
    async def delete_subject(request: Request,
                             subject: str = Path(min_length=1, max_length=200, description="the subject's name"),
                             p: Any = Depends(write)) -> dict[str, Any]:
        name = subject_name(subject)
        svc, key_id, client = ctx(request)

        def work() -> dict[str, Any]:
            who = person_named(svc.engine.gallery, name)
            if who is not None:
                svc.engine.delete_person(who.id, key_id=key_id, client=client)
                return {"subject": name}
            if pending_drop(svc.db, name):
                svc.db.add_event("audit", action="subject_delete", name=name, key_id=key_id, client=client,
                                 detail={"pending": True})
                return {"subject": name}
            raise ApiError(404, "not_found", f"no subject named {name!r}")

        return await run_in_threadpool(work)

    @r.delete("/recognition/subjects", response_model=DeletedOut, responses=ERRORS,
              summary="CompreFace: delete every subject and all their faces")
    async def delete_subjects(request: Request, p: Any = Depends(write)) -> dict[str, Any]:
        svc, key_id, client = ctx(request)

        def work() -> dict[str, Any]:
            n = 0
            for person in svc.engine.gallery.people():
                svc.engine.delete_person(person.id, key_id=key_id, client=client)
                n += 1
            for name in pending(svc.db):
                n += int(pending_drop(svc.db, name))
            return {"deleted": n}

        return await run_in_threadpool(work)

    return r

