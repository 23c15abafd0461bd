"""Response (and small request) models: they make ``/openapi.json`` an exact description of
what the service answers, which is what schemathesis checks every response against.

Every field has a description and an example (``tests/test_openapi_docs.py`` checks it), so ``/docs``
explains the API without this file. Times are ISO 8601 with the offset of the site's time zone
(``created``, ``updated``, ``last_used``, ``revoked``, an event's ``at``); events also carry ``time``, the
same moment in UTC.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from facegate.service.params import GATE_PATTERN, MAX_ID

# A stored id: SQLite integers are 64-bit, so ids past MAX_ID cannot exist and must not reach the driver
# (a 422, not an OverflowError answered 500); the same bound as the routes' path parameters.
PersonId = Annotated[int, Field(ge=1, le=MAX_ID, description="a person's id in the gallery", examples=[7])]


def F(description: str, example: Any, default: Any = ..., **kw: Any) -> Any:
    """``Field`` with a description and one example (every field of the API has both)."""
    return Field(default, description=description, examples=[example], **kw)


BOX = [180.2, 139.5, 367.8, 326.1]
LANDMARKS = [[231.0, 206.1], [311.2, 204.8], [272.5, 247.0], [240.3, 285.6], [305.9, 284.1]]
NOW = "2026-12-09T08:00:00.250000+01:00"  # how every time is answered: ISO 8601 with the site's offset
FACE_USED = {"index": 0, "box": BOX, "score": 0.9987}


class FaceUsedOut(BaseModel):
    """Which face of a photo a one-face operation used."""

    index: int = F("its position among the faces found (as POST /api/v1/detect lists them)", 0)
    box: list[float] = F("x1, y1, x2, y2 in pixels of the (EXIF-rotated) image", BOX)
    score: float = F("its detection score", 0.9987)
    frame: int | None = F("gate: the burst frame it is in (the one the person was identified from)", None, None)




def faces_found() -> Any:
    return F("faces found in the photo", 1)


def pick_field() -> Any:
    return F("the face-choice rule applied: largest (default), single (exactly one face) or center", "largest")


TABLE_DOC = ("which operating-point table the threshold and rates come from: the shipped one (measured on LFW), "
             "your own, or the site table adopted with 'facegate calibrate --site --adopt' (with its date)")
TABLE_EXAMPLE = ("site table of 2026-12-09T08:00:00+01:00 (435 impostor pairs of 30 people), adopted "
                 "2026-12-09T08:05:00+01:00 by ada")


class TableOut(BaseModel):
    """The operating-point table in force for the service's stack."""

    source: str | None = F("shipped, home (your own calibration), site (an adopted site table); null: none", "site")
    label: str | None = F("the table in words, as every answer's table field says it", TABLE_EXAMPLE)
    stack: str = F("the stack the table is for: embedder, detector, landmarks, mirroring",
                   "mobilefacenet|blazeface+onet|mtcnn5|flip")
    created: str | None = F("site table: when it was estimated (ISO 8601)", "2026-12-09T08:00:00+01:00", None)
    by: str | None = F("site table: who estimated it", "ada", None)
    adopted: str | None = F("site table: when it was put in force (ISO 8601)", "2026-12-09T08:05:00+01:00", None)
    adopted_by: str | None = F("site table: who put it in force", "ada", None)
    forced: bool | None = F("site table: adopted although the trust rule called it unreliable", False, None)
    reliable: bool | None = F("site table: whether the trust rule called it reliable", True, None)
    people: int | None = F("site table: people its impostor pairs came from", 30, None)
    impostor_pairs: int | None = F("site table: impostor pairs it was estimated from", 435, None)
    calibrated_people: int | None = F("site table: people enrolled when it was estimated", 30, None)
    calibrated_faces: int | None = F("site table: faces enrolled when it was estimated", 30, None)


class DriftWarningOut(BaseModel):
    code: Literal["enrolment_growth", "impostor_drift"] = F("what drifted", "enrolment_growth")
    severity: Literal["warning", "info"] = F("warning: stated rates may be too low; info: stricter than needed",
                                             "warning")
    message: str = F("what it means and what to do, in one paragraph",
                     "the gallery has grown from 30 to 45 people since the site calibration of ...: recalibrate")
    details: dict[str, Any] = F("the numbers behind it", {"people_then": 30, "people_now": 45, "share": 0.25})


SITE_STATUS_EXAMPLE = {"table": {"source": "shipped", "label": "shipped table (LFW deep-funneled)",
                                 "stack": "mobilefacenet|blazeface+onet|mtcnn5|flip"},
                       "warnings": [], "growth_share": 0.25}


class SiteStatusOut(BaseModel):
    table: TableOut = F("the table in force", SITE_STATUS_EXAMPLE["table"])
    warnings: list[DriftWarningOut] = F("reasons to recalibrate the site; empty when none (or no site table)", [])
    growth_share: float = F("the share of enrolment growth since the site calibration that warns", 0.25)
    denied_checks: int | None = F("denied gate checks since the adoption that the drift check read", 120, None)
    min_denied_checks: int | None = F("fewer denied checks than this say nothing", 50, None)


class ErrorOut(BaseModel):
    code: str = F("machine-readable error code", "invalid_image")
    message: str = F("one line a person can act on", "image: not a recognised image format")
    details: Any | None = F("more about the error where there is more (e.g. the fields that failed validation)",
                            None, None)


class HealthOut(BaseModel):
    status: Literal["ok"] = F("the process answers", "ok")


class ReadyOut(BaseModel):
    ready: bool = F("whether the service can answer requests now (models loaded, stores open)", True)
    reasons: list[str] = F("why it is not ready, one line each; empty when ready", [])


LIVENESS_EXAMPLE = {
    "setting": "burst", "mode": "burst", "passed": False, "reason": "presentation_attack",
    "message": "liveness score 0.231 under the threshold 0.664 (burst check, APCER 0.0%, BPCER 3.6% at this "
    "threshold): looked like a printed photo or a screen",
    "live": False, "score": 0.231, "threshold": 0.664, "apcer": 0.0, "bpcer": 0.0357,
    "measured_on": "nuaa_dev across sessions (...)", "model": "pad_cues_nuaa", "frames": 3, "frames_without_face": 0,
    "cues": {"red_rel": 0.021, "follow_near": 0.87},
    "identity": {"same": True, "lowest": 0.81, "threshold": 0.4561, "far": 1e-3, "frames": 3, "mirrored": False},
}


class IdentityAcrossFramesOut(BaseModel):
    same: bool = F("whether every frame of the burst shows the identified person", True)
    lowest: float = F("the lowest 1:1 score of a frame's face against the identified face", 0.81)
    threshold: float = F("the 1:1 threshold each frame's face was held to", 0.4561)
    far: float | None = F("the false-accept rate of that threshold", 1e-3)
    frames: int = F("frames of the burst with a face", 3)
    mirrored: bool = F("whether the embeddings compared were mirror-averaged; false: each face's own embedding, held "
                       "to the threshold calibrated for such embeddings at the same FAR", False)


class GateLivenessOut(BaseModel):
    """The liveness part of a gate decision."""

    setting: Literal["off", "still", "burst"] = F("the gate's liveness setting", "burst")
    mode: Literal["still", "burst"] | None = F("the check that ran; null when none ran (off, or no model)", "burst")
    passed: bool = F("whether the presentation may go on to identity and access", False)
    reason: str | None = F("why the presentation was refused: presentation_attack, face_jumped, different_people, "
                           "liveness_unavailable", "presentation_attack")
    message: str | None = F("the refusal in one line: what was measured, or what to do", LIVENESS_EXAMPLE["message"])
    live: bool | None = F("the liveness verdict", False)
    score: float | None = F("live score 0..1; null when refused before scoring", 0.231)
    threshold: float | None = F("the liveness threshold applied (live when score >= threshold)", 0.664)
    apcer: float | None = F("attacks accepted as live at this threshold, where it was measured", 0.0)
    bpcer: float | None = F("live presentations refused at this threshold, where it was measured", 0.0357)
    measured_on: str | None = F("the data the APCER/BPCER were measured on", "nuaa_dev across sessions (...)")
    model: str | None = F("the liveness model in force", "pad_cues_nuaa")
    frames: int | None = F("frames whose face was scored", 3, None)
    frames_without_face: int | None = F("frames of the burst without a face (counted, not fatal)", 0, None)
    cues: dict[str, float | None] | None = F("the measured cues the head weighed", {"red_rel": 0.021}, None)
    identity: IdentityAcrossFramesOut | None = F("a burst's frames checked to show one person (1:1 at the stated FAR)",
                                                 LIVENESS_EXAMPLE["identity"])


class GateCheckOut(BaseModel):
    """The gate decision (contract shared with the video gate mode: keep exactly; fields are only added)."""

    gate: str = F("the gate asked", "front")
    decision: Literal["allow", "deny"] = F("whether the gate opens", "allow")
    person_id: int | None = F("who was recognised; null when nobody was, and on a refused presentation (an attack "
                              "is never told whom it resembled: the audit event records it)", 7)
    name: str | None = F("their name now; null when nobody was recognised, and on a refused presentation",
                         "Ada Lovelace")
    score: float | None = F("cosine score of the best candidate; null without a face or candidates, and on a "
                            "refused presentation", 0.7132)
    threshold: float = F("the bar applied to the best candidate (higher for people enrolled with several "
                         "photos; the one-photo bar on a refused presentation)", 0.6145)
    far: float | None = F("per-comparison false-accept rate given to each enrolled identity", 1e-5)
    fpir: float | None = F("false-positive identification rate decided at (share of strangers named); for an "
                           "explicit threshold, what the calibrated table gives for it", 1e-2, None)
    tpir: float | None = F("expected true-positive identification rate, where calibrated", 0.9646, None)
    rule: dict[str, Any] | None = F(
        "the access-list decision: allowed, reason (no_face, unknown, no_list, permitted, outside_window, "
        "not_permitted) and the rule that decided, whose hours are in its time zone (tz, and window); null when the "
        "presentation was refused before the access list",
        {"allowed": True, "reason": "permitted", "rule": {"id": 3, "gate": "front", "person_id": None, "group_id": 1,
         "group": "staff", "days": "mon,tue,wed,thu,fri", "start": "08:00", "end": "18:00", "tz": "Europe/London",
         "created": NOW, "window": "mon,tue,wed,thu,fri 08:00-18:00 Europe/London"}}, None)
    warnings: list[str] = F("the FPIR cannot be held with a usable TPIR, or needs a FAR below the calibrated range",
                            [], default_factory=list)
    event_id: int = F("the access event recorded for this decision (GET /api/v1/events)", 1042)
    faces: int = F("faces found in the frame the person was identified from", 1)
    reason: str | None = F("why: no_face, unknown, no_list, permitted, outside_window, not_permitted, "
                           "presentation_attack, face_jumped, different_people, liveness_unavailable", "permitted", None)
    message: str | None = F("the reason in words", "allowed: recognised and permitted by the gate's access list", None)
    liveness: GateLivenessOut | None = F("the liveness check: the gate's setting, the check that ran and its verdict "
                                         "(null when no frame had a face)", LIVENESS_EXAMPLE, None)
    frames: int = F("frames received: one image, or a burst", 3, 1)
    frames_without_face: int = F("frames in which no face was found (counted, not fatal)", 0, 0)
    table: str | None = F(TABLE_DOC, TABLE_EXAMPLE, None)
    faces_found: int = F("faces found in the frame the person was identified from (as faces)", 1, 0)
    face_used: FaceUsedOut | None = F("the face decided on (the largest) and the frame it is in; null without a face",
                                      {**FACE_USED, "frame": 0}, None)
    pick: str = F("the face-choice rule applied", "largest", "largest")


class GateSettingsIn(BaseModel):
    liveness: Literal["off", "still", "burst"] = F(
        "off: no liveness check; still: the still check on the frame the person is identified from; burst (the "
        "default): the burst check when a request carries several frames with a face, else the still check", "burst"
    )


class LivenessModelOut(BaseModel):
    name: str | None = F("the liveness model in force", "pad_cues_nuaa")
    kind: str | None = F("shipped, or site (fitted on this site's captures)", "shipped")
    sha256: str | None = F("the sha256 of its file", "3f54c1d4afbdd3b2fa191844b53aadc38ebf8a47eac9c1ca221a67222646a8e2")
    available: bool = F("whether it may be used here (the licence policy can exclude it)", True)
    message: str | None = F("why not, and what to do", None)


class GateSettingsOut(BaseModel):
    gate: str = F("the gate", "front")
    liveness: Literal["off", "still", "burst"] = F("its liveness check", "burst")
    default: bool = F("true: nothing was set for this gate, these are the defaults", True)
    updated: str | None = F("the last change, ISO 8601; null for the defaults", None)
    max_frames: int = F("frames one gate check takes", 8)
    model: LivenessModelOut = F("the liveness model in force", {"name": "pad_cues_nuaa", "kind": "shipped",
                                "sha256": "3f54c1d4afbdd3b2fa191844b53aadc38ebf8a47eac9c1ca221a67222646a8e2",
                                "available": True, "message": None})


class GatesOut(BaseModel):
    default_liveness: Literal["off", "still", "burst"] = F("the setting of every gate not listed", "burst")
    gates: list[GateSettingsOut] = F("gates whose settings were changed", [])


class FaceOut(BaseModel):
    box: list[float] = F("x1, y1, x2, y2 in pixels of the (EXIF-rotated) image", BOX)
    landmarks: list[list[float]] = F("five points (x, y) in pixels, in the order of landmark_scheme", LANDMARKS)
    score: float = F("detection score, 0..1 on one calibrated scale for every detector", 0.9987)
    detector: str = F("the detector that found the face", "blazeface")
    quality: float | None = F("face quality 0..1 where measured", None, None)


class DetectOut(BaseModel):
    width: int = F("image width in pixels (after EXIF rotation)", 512)
    height: int = F("image height in pixels (after EXIF rotation)", 600)
    faces: list[FaceOut] = F("every face found", [])


class CandidateOut(BaseModel):
    person_id: int = F("the candidate's id", 7)
    name: str = F("the candidate's name", "Ada Lovelace")
    score: float = F("cosine similarity of the face to the candidate's template", 0.7132)
    same: bool = F("whether the score clears this candidate's threshold", True)
    threshold: float = F("the bar this candidate was held to", 0.6145)


class IdentifiedFaceOut(FaceOut):
    identity: str = F('the name, or "unknown" below the threshold', "Ada Lovelace")
    person_id: int | None = F("the person's id; null for unknown", 7)
    decision: Literal["allow", "deny"] = F("allow when someone was named", "allow")
    candidates: list[CandidateOut] = F("the top-k enrolled people, best first", [])
    threshold: float = F("the bar applied to the best candidate", 0.6145)
    fpir: float | None = F("false-positive identification rate decided at", 1e-2)
    far: float | None = F("per-comparison false-accept rate given to each identity", 1e-5)
    tpir: float | None = F("expected true-positive identification rate, where calibrated", 0.9646)
    table: str | None = F(TABLE_DOC, TABLE_EXAMPLE, None)


class DecisionOut(BaseModel):
    """The 1:N operating point of the gallery now."""

    fpir: float | None = F("false-positive identification rate decided at", 1e-2)
    far: float | None = F("per-comparison false-accept rate: FPIR / identities", 1e-5)
    identities: int = F("people enrolled", 1000)
    rule: str = F("how a person's faces are matched: mean (their template) or max (best single face)", "mean")
    threshold: float = F("the bar of a one-photo identity", 0.6145)
    tpir: float | None = F("expected true-positive identification rate, where calibrated", 0.9646)
    explicit_threshold: bool = F("whether the threshold was set explicitly instead of from the FPIR", False)
    warnings: list[str] = F("the FPIR cannot be held with a usable TPIR, or needs a FAR below the calibrated range",
                            [])
    table: str | None = F(TABLE_DOC, TABLE_EXAMPLE, None)


class IdentifyOut(BaseModel):
    faces: list[IdentifiedFaceOut] = F("every face found, with who it is", [])
    faces_found: int = faces_found()
    face_used: FaceUsedOut = F("the face the face-choice rule picks: the one a gate decides on", FACE_USED)
    pick: str = pick_field()
    decision: DecisionOut = F("the operating point the faces were decided at",
                              {"fpir": 0.01, "far": 1e-5, "identities": 1000, "rule": "mean", "threshold": 0.6145,
                               "tpir": 0.9646, "explicit_threshold": False, "warnings": []})


class VerifiedFaceOut(FaceOut):
    faces_found: int = faces_found()
    face_used: FaceUsedOut = F("the face used (the same as box)", FACE_USED)
    pick: str = pick_field()


class VerifyOut(BaseModel):
    same: bool = F("whether the two faces are the same person at the threshold", True)
    score: float = F("cosine similarity of the two faces", 0.6931)
    threshold: float = F("the threshold applied", 0.4572)
    far: float | None = F("the false-accept rate the threshold stands for; null for an explicit threshold "
                          "outside the calibrated table", 1e-3)
    faces: list[VerifiedFaceOut] = F("the face used from each image, with how many each image held", [])
    table: str | None = F(TABLE_DOC, TABLE_EXAMPLE, None)


class PersonOut(BaseModel):
    id: int = F("the person's id", 7)
    name: str = F("the person's name (unique)", "Ada Lovelace")
    created: str = F("when enrolled, ISO 8601", NOW)
    updated: str = F("last change, ISO 8601", NOW)
    faces: int = F("faces stored", 2)
    model: str | None = F("the embedding model of their faces", "mobilefacenet", None)


class PeopleOut(BaseModel):
    people: list[PersonOut] = F("this page of people, by id", [])
    total: int = F("people enrolled in all", 1000)
    limit: int = F("the page size asked for", 20)
    offset: int = F("people skipped before this page", 0)


class StoredFaceOut(BaseModel):
    id: int = F("the face's id", 12)
    person_id: int = F("whose face", 7)
    model: str = F("the embedding model", "mobilefacenet")
    quality: dict[str, Any] = F("quality measures at enrolment (size, sharpness, pose)",
                                {"face_px": 187, "sharpness": 412.5, "yaw": 3.1})
    source: str | None = F("where the photo came from (file name)", "ada1.jpg")
    created: str = F("when stored, ISO 8601", NOW)
    forced: list[dict[str, Any]] = F("the integrity refusals this face was enrolled over with force=true (empty: "
                                     "none)", [], default_factory=list)


class PersonDetailOut(BaseModel):
    person: PersonOut = F("the person", {"id": 7, "name": "Ada Lovelace", "created": NOW, "updated": NOW, "faces": 2,
                                         "model": "mobilefacenet"})
    faces: list[StoredFaceOut] = F("their stored faces", [])


class RejectionOut(BaseModel):
    source: str = F("the photo refused", "ada3.jpg")
    reason: str = F("why, in one line", "ada3.jpg: the face is too blurred (sharpness 21 < 40)")
    code: str = F("machine-readable reason", "quality")
    metrics: dict[str, Any] = F("the measures that decided", {"sharpness": 21.0})
    filename: str | None = F("the uploaded file's name", "ada3.jpg", None)


class EnrolledFaceOut(BaseModel):
    source: str = F("the photo", "photo 1")
    filename: str | None = F("the uploaded file's name", "ada1.jpg", None)
    face_id: int = F("the face stored from it", 12)
    faces_found: int = faces_found()
    face_used: FaceUsedOut = F("the face of the photo that was enrolled", FACE_USED)
    pick: str = pick_field()


class EnrolOut(BaseModel):
    person: PersonOut = F("the person enrolled or added to", {"id": 7, "name": "Ada Lovelace", "created": NOW,
                                                              "updated": NOW, "faces": 2, "model": "mobilefacenet"})
    created: bool = F("whether the person is new", True)
    face_ids: list[int] = F("ids of the faces stored (empty: every photo was already enrolled for them)", [12, 13])
    faces: list[EnrolledFaceOut] = F("per face stored: its photo, how many faces that held and which was used",
                                     [], default_factory=list)
    rejected: list[RejectionOut] = F("photos refused, with the reason", [])
    skipped: list[dict[str, Any]] = F("photos already enrolled for this person (the same bytes), not stored again",
                                      [], default_factory=list)
    forced: list[dict[str, Any]] = F("photos stored over an integrity refusal (force=true): the refusal, and who "
                                     "it matched", [], default_factory=list)
    checks: dict[str, Any] = F("the rates the integrity checks decided at, or why one was not applied",
                               {"identification": "FPIR 0.01 at 1000 identities: FAR 1e-05 per comparison",
                                "verification": "against Ada Lovelace's 2 photo(s): threshold 0.4572 (FAR 0.001)"},
                               default_factory=dict)


class DeletePersonOut(BaseModel):
    person: PersonOut = F("the person deleted", {"id": 7, "name": "Ada Lovelace", "created": NOW, "updated": NOW,
                                                 "faces": 2, "model": "mobilefacenet"})
    faces_deleted: int = F("faces deleted", 2)
    event_images_deleted: int = F("face images kept with access events that were erased", 0)
    index_vectors_zeroed: int = F("vectors overwritten in the index snapshot", 2)
    snapshot_removed: bool = F("whether the index snapshot was removed to be rebuilt", False)


class DeleteFaceOut(BaseModel):
    face_id: int = F("the face deleted", 13)
    person_id: int = F("whose face", 7)
    person_deleted: bool = F("whether it was their last face, so the person went too", False)
    event_images_deleted: int = F("face images kept with access events that were erased", 0)
    index_vectors_zeroed: int = F("vectors overwritten in the index snapshot", 1)
    snapshot_removed: bool = F("whether the index snapshot was removed to be rebuilt", False)


class RenameIn(BaseModel):
    name: str = F("the new name", "Ada King", min_length=1, max_length=200)


class EventOut(BaseModel):
    id: int = F("the event's id", 1042)
    at: str = F("when, ISO 8601 with the site's offset", NOW)
    time: str = F("the same moment, ISO 8601 in UTC", "2026-12-09T07:00:00.25Z")
    kind: Literal["access", "auth_failure", "audit"] = F("access decision, failed authentication or audit", "access")
    gate: str | None = F("access: the gate", "front")
    decision: Literal["allow", "deny"] | None = F("access: the decision", "allow")
    person_id: int | None = F("access: who was recognised (kept after the person is deleted)", 7)
    name: str | None = F("their name at the time", "Ada Lovelace")
    score: float | None = F("access: the best candidate's score", 0.7132)
    threshold: float | None = F("access: the bar applied", 0.6145)
    far: float | None = F("access: the per-comparison FAR", 1e-5)
    faces: int | None = F("access: faces in the image", 1)
    key_id: str | None = F("the API key that made the request (or was tried)", "3f9a1c0b2e")
    client: str | None = F("the client's address", "127.0.0.1")
    action: str | None = F("audit: what was done (enrol, delete_person, key_create, ...); auth_failure: why",
                           None)
    detail: dict[str, Any] | None = F("anything else worth keeping (access: the rule that decided, FPIR, TPIR)",
                                      {"fpir": 0.01})
    has_image: bool = F("whether a face image is kept with it (--keep-event-images)", False)
    message: str | None = F("an access decision's reason in words (and, for a refused presentation, whom it "
                            "resembled)", "refused: looked like a printed photo or a screen", None)


class EventsOut(BaseModel):
    events: list[EventOut] = F("events, newest first", [])
    next_before_id: int | None = F("pass as before_id for the next (older) page; null at the end", 1022)


class KeyCreateIn(BaseModel):
    role: Literal["admin", "gate", "viewer"] = F("what the key may do (GET /api/v1/roles)", "gate")
    name: str = F("what the key is for", "front door camera", "", max_length=200)


class KeyOut(BaseModel):
    id: str = F("the key's public id (the part after fg_)", "3f9a1c0b2e")
    name: str = F("what the key is for", "front door camera")
    role: str = F("admin, gate or viewer", "gate")
    created: str = F("when made, ISO 8601", NOW)
    revoked: str | None = F("when revoked, ISO 8601; null while valid", None)
    last_used: str | None = F("last use, ISO 8601", NOW)


class KeyCreatedOut(BaseModel):
    id: str = F("the key's public id", "3f9a1c0b2e")
    key: str = F("the secret key; shown only now, store it safely", "fg_3f9a1c0b2e_s3cr3t...")
    role: str = F("admin, gate or viewer", "gate")
    name: str = F("what the key is for", "front door camera")
    created: str = F("when made, ISO 8601", NOW)


class KeysOut(BaseModel):
    keys: list[KeyOut] = F("every key (never the secrets)", [])


class WhoAmIOut(BaseModel):
    key_id: str = F("the key's public id", "3f9a1c0b2e")
    name: str = F("what the key is for", "ops")
    role: str = F("admin, gate or viewer", "admin")
    permissions: list[str] = F("what the key may do", ["people:read", "gate:check"])


class StatsOut(BaseModel):
    backend: str = F("the gallery backend", "sqlite")
    people: int = F("people enrolled", 1000)
    faces: int = F("faces stored", 2400)
    model: str | None = F("the embedding model", "mobilefacenet")
    dim: int | None = F("embedding dimensions", 192)
    rule: str = F("mean or max", "mean")
    threshold: float = F("the bar of a one-photo identity now", 0.6145)
    far: float | None = F("per-comparison false-accept rate", 1e-5)
    fpir: float | None = F("false-positive identification rate", 1e-2, None)
    tpir: float | None = F("expected true-positive identification rate", 0.9646, None)
    warnings: list[str] = F("the FPIR cannot be held with a usable TPIR, or needs a FAR below the calibrated range",
                            [], default_factory=list)
    events: dict[str, int] = F("events logged, by kind", {"access": 1042, "audit": 35, "auth_failure": 2})
    table: str | None = F(TABLE_DOC, TABLE_EXAMPLE, None)
    site_calibration: SiteStatusOut | None = F(
        "the table in force and whether it still holds: enrolments grown since the site calibration, denied gate "
        "checks scoring higher or lower than the site table says", SITE_STATUS_EXAMPLE, None)


class AccessRuleIn(BaseModel):
    gate: str = F("the gate's name", "front", pattern=GATE_PATTERN)
    person_id: int | None = F("permit this person (or give group)", None, None, ge=1, le=MAX_ID)
    group: str | None = F("permit this group (or give person_id)", "staff", None, min_length=1, max_length=200)
    days: str | None = F("e.g. mon-fri or sat,sun; null: every day", "mon-fri", None, max_length=60)
    start: str | None = F("HH:MM, 24-hour, in the rule's time zone", "08:00", None, max_length=5)
    end: str | None = F("HH:MM; at or before start: crosses midnight", "18:00", None, max_length=5)
    tz: str | None = F("IANA time zone of the hours; null: the site's (facegate serve --time-zone, default the "
                       "server's zone)", "Europe/London", None, max_length=64)


class AccessRuleOut(BaseModel):
    id: int = F("the rule's id", 3)
    gate: str = F("the gate", "front")
    person_id: int | None = F("the person it permits, or null for a group rule", None)
    group_id: int | None = F("the group it permits, or null for a person rule", 1)
    group: str | None = F("the group's name", "staff")
    days: str | None = F("days it applies, mon..sun; null: every day", "mon,tue,wed,thu,fri")
    start: str | None = F("HH:MM in tz; null: all day", "08:00")
    end: str | None = F("HH:MM in tz", "18:00")
    tz: str | None = F("the time zone of its days and hours; null (older rules): UTC", "Europe/London")
    created: str = F("when made, ISO 8601", NOW)
    person_name: str | None = F("the permitted person's name now (null for a group rule, or a person deleted "
                                "since)", None, None)
    window: str = F("days, hours and time zone in words", "mon,tue,wed,thu,fri 08:00-18:00 Europe/London")


class AccessRulesOut(BaseModel):
    rules: list[AccessRuleOut] = F("the rules, oldest first", [])


class GroupMembersIn(BaseModel):
    person_ids: list[PersonId] = F("people to add", [7, 9], min_length=1, max_length=1000)


class GroupOut(BaseModel):
    id: int = F("the group's id", 1)
    name: str = F("the group's name", "staff")
    created: str = F("when made, ISO 8601", NOW)
    members: list[int] = F("members' person ids", [7, 9])
    people: list[dict[str, Any]] = F("the members with their names now (null: deleted since)",
                                     [{"id": 7, "name": "Ada Lovelace"}, {"id": 9, "name": "Charles Babbage"}],
                                     default_factory=list)


class GroupsOut(BaseModel):
    groups: list[GroupOut] = F("every group", [])


class BatchPersonOut(BaseModel):
    name: str = F("the person (the folder part of the file names)", "Ada Lovelace")
    status: Literal["enrolled", "skipped", "rejected"] = F("what happened to them", "enrolled")
    person_id: int | None = F("their id", 7, None)
    face_ids: list[int] = F("faces stored", [12], default_factory=list)
    skipped: list[str] = F("photos already enrolled (same sha256)", [], default_factory=list)
    rejected: list[RejectionOut] = F("photos refused, with the reason (quality, or an integrity rule: who it "
                                     "matched is in metrics)", [], default_factory=list)
    forced: list[dict[str, Any]] = F("photos stored over an integrity refusal (force=true)", [], default_factory=list)


class BatchEnrolOut(BaseModel):
    people: list[BatchPersonOut] = F("each person in the batch", [])
    enrolled_faces: int = F("faces stored", 12)
    skipped_photos: int = F("photos already enrolled", 0)
    rejected_photos: int = F("photos refused", 1)
    forced_photos: int = F("photos stored over an integrity refusal (force=true)", 0, 0)


class ConsistencyOut(BaseModel):
    consistent: bool = F("no photos that disagree and no two people alike", True)
    people_checked: int = F("people read", 1000)
    verification: str = F("the 1:1 rule the photos of one person were compared at, or why not",
                          "threshold 0.4572 (FAR 0.001)")
    identification: str = F("the 1:N operating point two people's templates were compared at, or why not",
                            "FPIR 0.01 at 1000 identities: FAR 1e-05 per comparison")
    disagreeing: list[dict[str, Any]] = F(
        "people with two faces that do not verify against each other: the pairs, their photos and scores",
        [{"person_id": 7, "name": "Ada Lovelace", "faces": 3, "pairs": [
            {"face_ids": [12, 14], "sources": ["ada1.jpg", "bob.jpg"], "score": 0.1183}]}])
    lookalikes: list[dict[str, Any]] = F(
        "pairs of people whose templates clear the 1:N bar: one person enrolled twice, or a wrong photo",
        [{"people": [{"person_id": 7, "name": "Ada Lovelace", "faces": 2},
                     {"person_id": 9, "name": "Ada King", "faces": 1}], "score": 0.8121, "bar": 0.6145}])


# -- site calibration (tag calibration) -----------------------------------------------------------------------------
THRESHOLDS = {"0.001": 0.5187, "0.0001": 0.5874, "1e-05": 0.6437, "1e-06": 0.7322}


class TableStateOut(BaseModel):
    table: str = F("'shipped' (no site table), or the creation time of the site table", "2026-12-09T08:00:00+01:00")
    by: str | None = F("who estimated that site table", "ada", None)
    thresholds: dict[str, float] = F("its thresholds at FAR 1e-3 ... 1e-6", THRESHOLDS)


class AdoptionEventOut(BaseModel):
    action: Literal["adopt", "revert"] = F("put a site table in force, or took it out", "adopt")
    stack: str = F("the stack the table is for", "mobilefacenet|blazeface+onet|mtcnn5|flip")
    when: str = F("ISO 8601 with offset", "2026-12-09T08:05:00+01:00")
    by: str = F("who (an API key, or the OS user of the CLI)", "ops (key 3f9a1c0b2e)")
    forced: bool = F("an estimate the trust rule called unreliable, adopted anyway", False)
    before: TableStateOut = F("what was in force before", {"table": "shipped", "thresholds": THRESHOLDS})
    after: TableStateOut = F("what is in force after", {"table": "2026-12-09T08:00:00+01:00", "thresholds": THRESHOLDS})
    reasons: list[str] = F("forced: why the estimate was unreliable", [])
    note: str = F("a note given with the change", "new camera at the front door")


class SiteRowOut(BaseModel):
    far: float = F("the stated false-accept rate", 1e-4)
    shipped_threshold: float = F("the shipped (LFW) threshold for it", 0.5425)
    site_threshold: float = F("the site's threshold for it", 0.5874)
    interval: list[float] = F("90% interval of the site threshold (bootstrap over people)", [0.5631, 0.6151])
    far_interval: list[float] = F("90% interval of the FAR the site threshold stands for", [4.3e-05, 0.00029])


class FpirRowOut(BaseModel):
    fpir: float = F("the stated false-positive identification rate", 0.01)
    identities: int = F("people enrolled when estimated", 30)
    far: float = F("per-comparison FAR each identity gets (FPIR / identities)", 0.00033)
    shipped_threshold: float = F("a one-photo identity's bar under the shipped table", 0.4992)
    site_threshold: float = F("the same bar under the site table", 0.5526)
    warnings: list[str] = F("the FPIR cannot be held with a usable TPIR, or needs a FAR below the calibrated range", [])


class SiteEstimateOut(BaseModel):
    stack: str = F("the stack it is for", "mobilefacenet|blazeface+onet|mtcnn5|flip")
    created: str = F("when it was estimated (ISO 8601)", "2026-12-09T08:00:00+01:00")
    by: str = F("who estimated it", "ops (key 3f9a1c0b2e)")
    reliable: bool = F("whether the trust rule lets it be adopted without force", True)
    reasons: list[str] = F("why it is unreliable; empty when reliable", [])
    people: int = F("people its impostor pairs came from", 30)
    impostor_pairs: int = F("impostor pairs it was estimated from", 435)
    stranger_photos: int = F("photos of strangers among its sources", 0)
    map: dict[str, Any] = F("site scores = a + b x shipped scores, with 90% intervals",
                            {"a": 0.0886, "b": 0.974, "interval": {"a": [0.07, 0.1], "b": [0.94, 1.0]}})
    rows: list[SiteRowOut] = F("shipped and site thresholds at FAR 1e-3 ... 1e-6", [])
    fpir: list[FpirRowOut] = F("shipped and site bars at FPIR 1e-2 ... 1e-3 at the gallery's size", [])
    suspects: list[dict[str, Any]] = F("pairs scoring like one person (enrolled twice?), left out of the estimate", [])
    adoption: dict[str, Any] | None = F("when it was adopted, by whom, forced or not; null if not adopted",
                                        {"when": "2026-12-09T08:05:00+01:00", "by": "ada", "forced": False, "note": ""},
                                        None)


class CalibrateOut(BaseModel):
    estimate: SiteEstimateOut = F("the site estimate (kept as the last estimate; POST .../adopt puts it in force)",
                                  {"stack": "mobilefacenet|blazeface+onet|mtcnn5|flip", "created": "2026-12-09T08:00:00+01:00",
                                   "by": "ops", "reliable": True, "reasons": [], "people": 30, "impostor_pairs": 435,
                                   "stranger_photos": 0, "map": {"a": 0.0886, "b": 0.974}, "rows": [], "fpir": [],
                                   "suspects": []})
    in_force: TableOut = F("the table in force now (unchanged by an estimate)", SITE_STATUS_EXAMPLE["table"])
    strangers: int = F("stranger photos used", 0)
    strangers_without_face: int = F("stranger photos left out: no face found", 0)


class CalibrationOut(BaseModel):
    stack: str = F("the service's stack", "mobilefacenet|blazeface+onet|mtcnn5|flip")
    in_force: TableOut = F("the table in force", SITE_STATUS_EXAMPLE["table"])
    site_table: SiteEstimateOut | None = F("the site table in force; null when none is adopted", None)
    last_estimate: SiteEstimateOut | None = F("the last estimate made (in force or not); null before the first", None)
    log: list[AdoptionEventOut] = F("every adoption and revert, oldest first", [])
    status: SiteStatusOut = F("drift warnings: recalibrate when they say so", SITE_STATUS_EXAMPLE)


class AdoptIn(BaseModel):
    force: bool = F("adopt an estimate the trust rule calls unreliable (recorded as forced)", False, False)
    note: str = F("why, for the audit log", "new camera at the front door", "", max_length=500)


class RevertIn(BaseModel):
    note: str = F("why, for the audit log", "the new camera was taken down", "", max_length=500)


class AdoptionOut(BaseModel):
    event: AdoptionEventOut = F("the audit record of the change", {
        "action": "adopt", "stack": "mobilefacenet|blazeface+onet|mtcnn5|flip", "when": "2026-12-09T08:05:00+01:00",
        "by": "ops (key 3f9a1c0b2e)", "forced": False, "before": {"table": "shipped", "thresholds": THRESHOLDS},
        "after": {"table": "2026-12-09T08:00:00+01:00", "thresholds": THRESHOLDS}, "reasons": [], "note": ""})
    in_force: TableOut = F("the table in force after the change", SITE_STATUS_EXAMPLE["table"])
