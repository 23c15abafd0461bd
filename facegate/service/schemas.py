"""Response (and small request) models: they make ``/openapi.json`` an exact description of
what the service answers, which is what schemathesis checks every response against."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from facegate.service.params import GATE_PATTERN, MAX_ID

PersonId = Annotated[int, Field(ge=1, le=MAX_ID)]  # a stored id: SQLite integers are 64-bit


class ErrorOut(BaseModel):
    code: str = Field(description="machine-readable error code, e.g. invalid_image, forbidden, not_found")
    message: str = Field(description="one line a person can act on")
    details: Any | None = None


class HealthOut(BaseModel):
    status: Literal["ok"]


class ReadyOut(BaseModel):
    ready: bool
    reasons: list[str]


class IdentityAcrossFramesOut(BaseModel):
    same: bool
    lowest: float = Field(description="the lowest 1:1 score of a frame's face against the identified face")
    threshold: float = Field(description="the 1:1 threshold each frame's face was held to")
    far: float | None = Field(description="the false-accept rate of that threshold")
    frames: int


class GateLivenessOut(BaseModel):
    """The liveness part of a gate decision (null when the gate's liveness is off)."""

    setting: Literal["off", "still", "burst"] = Field(description="the gate's liveness setting")
    mode: Literal["still", "burst"] | None = Field(description="the check that ran (null: none could run)")
    passed: bool
    reason: str | None = Field(description="why the presentation was refused: presentation_attack, face_jumped, "
                               "different_people, liveness_unavailable")
    message: str | None = Field(description="the refusal in one line: what was measured, or what to do")
    live: bool | None
    score: float | None = Field(description="live score 0..1 (null when refused before scoring)")
    threshold: float | None = Field(description="the liveness threshold applied (live when score >= threshold)")
    apcer: float | None = Field(description="attacks accepted as live at this threshold, where it was measured")
    bpcer: float | None = Field(description="live presentations refused at this threshold")
    measured_on: str | None = Field(description="the data the APCER/BPCER were measured on")
    model: str | None = Field(description="the liveness model in force")
    frames: int | None = Field(default=None, description="frames whose face was scored")
    frames_without_face: int | None = None
    cues: dict[str, float | None] | None = None
    identity: IdentityAcrossFramesOut | None = Field(description="a burst's frames checked to show one person")


class GateCheckOut(BaseModel):
    """The gate decision (contract shared with the video gate mode: keep exactly; fields are only added)."""

    gate: str
    decision: Literal["allow", "deny"]
    person_id: int | None = Field(description="who was recognised; null when nobody was, and on a refused "
                                  "presentation (an attack is never told whom it resembled)")
    name: str | None
    score: float | None = Field(description="cosine score of the best candidate; null without a face or candidates, "
                                "and on a refused presentation")
    threshold: float = Field(description="the bar applied to the best candidate (higher for people enrolled with "
                             "several photos; the one-photo bar on a refused presentation)")
    far: float | None = Field(description="per-comparison false-accept rate given to each enrolled identity")
    fpir: float | None = Field(default=None, description="false-positive identification rate decided at (share of "
                               "strangers named); for an explicit threshold, what the calibrated table gives for it")
    tpir: float | None = Field(default=None, description="expected true-positive identification rate, where calibrated")
    rule: dict[str, Any] | None = Field(default=None, description="the access-list rule that decided: allowed, reason "
                                        "(no_face, unknown, no_list, permitted, outside_window, not_permitted), rule; "
                                        "null when the presentation was refused before the access list")
    warnings: list[str] = Field(default_factory=list, description="the FPIR cannot be held with a usable TPIR, or "
                                "needs a FAR below the calibrated range")
    event_id: int
    faces: int = Field(description="faces found in the frame the person was identified from")
    reason: str | None = Field(default=None, description="why: no_face, unknown, no_list, permitted, outside_window, "
                               "not_permitted, presentation_attack, face_jumped, different_people, liveness_unavailable")
    message: str | None = Field(default=None, description="the reason in words")
    liveness: GateLivenessOut | None = Field(default=None, description="the liveness check: the gate's setting, the "
                                              "check that ran and its verdict (null when no frame had a face)")
    frames: int = Field(default=1, description="frames received (one image, or a burst)")
    frames_without_face: int = Field(default=0, description="frames in which no face was found (counted, not fatal)")


class GateSettingsIn(BaseModel):
    liveness: Literal["off", "still", "burst"] = Field(
        description="off: no liveness check; still: the still check on the frame the person is identified from; "
        "burst (the default): the burst check when a request carries several frames with a face, else the still check"
    )


class LivenessModelOut(BaseModel):
    name: str | None = Field(description="the liveness model in force")
    kind: str | None = Field(description="shipped, or site (fitted on this site's captures)")
    sha256: str | None
    available: bool = Field(description="whether it may be used here (the licence policy can exclude it)")
    message: str | None = Field(description="why not, and what to do")


class GateSettingsOut(BaseModel):
    gate: str
    liveness: Literal["off", "still", "burst"]
    default: bool = Field(description="true: nothing was set for this gate, these are the defaults")
    updated: float | None = Field(description="unix time of the last change; null for the defaults")
    max_frames: int = Field(description="frames one gate check takes")
    model: LivenessModelOut


class GatesOut(BaseModel):
    default_liveness: Literal["off", "still", "burst"] = Field(description="the setting of every gate not listed")
    gates: list[GateSettingsOut]


class FaceOut(BaseModel):
    box: list[float] = Field(description="x1, y1, x2, y2 in pixels of the (EXIF-rotated) image")
    landmarks: list[list[float]]
    score: float
    detector: str
    quality: float | None = None


class DetectOut(BaseModel):
    width: int
    height: int
    faces: list[FaceOut]


class CandidateOut(BaseModel):
    person_id: int
    name: str
    score: float
    same: bool
    threshold: float = Field(description="the bar this candidate was held to")


class IdentifiedFaceOut(FaceOut):
    identity: str = Field(description='the name, or "unknown" below the threshold')
    person_id: int | None
    decision: Literal["allow", "deny"]
    candidates: list[CandidateOut]
    threshold: float = Field(description="the bar applied to the best candidate")
    fpir: float | None
    far: float | None
    tpir: float | None


class DecisionOut(BaseModel):
    """The 1:N operating point of the gallery now."""

    fpir: float | None
    far: float | None
    identities: int
    rule: str
    threshold: float = Field(description="the bar of a one-photo identity")
    tpir: float | None
    explicit_threshold: bool
    warnings: list[str]


class IdentifyOut(BaseModel):
    faces: list[IdentifiedFaceOut]
    decision: DecisionOut


class VerifyOut(BaseModel):
    same: bool
    score: float
    threshold: float
    far: float | None
    faces: list[FaceOut]


class PersonOut(BaseModel):
    id: int
    name: str
    created: float
    updated: float
    faces: int
    model: str | None = None


class PeopleOut(BaseModel):
    people: list[PersonOut]
    total: int
    limit: int
    offset: int


class StoredFaceOut(BaseModel):
    id: int
    person_id: int
    model: str
    quality: dict[str, Any]
    source: str | None
    created: float


class PersonDetailOut(BaseModel):
    person: PersonOut
    faces: list[StoredFaceOut]


class RejectionOut(BaseModel):
    source: str
    reason: str
    code: str
    metrics: dict[str, Any]
    filename: str | None = None


class EnrolOut(BaseModel):
    person: PersonOut
    created: bool
    face_ids: list[int]
    rejected: list[RejectionOut]


class DeletePersonOut(BaseModel):
    person: PersonOut
    faces_deleted: int
    event_images_deleted: int
    index_vectors_zeroed: int
    snapshot_removed: bool


class DeleteFaceOut(BaseModel):
    face_id: int
    person_id: int
    person_deleted: bool
    event_images_deleted: int
    index_vectors_zeroed: int
    snapshot_removed: bool


class RenameIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)


class EventOut(BaseModel):
    id: int
    at: float = Field(description="unix time, seconds")
    time: str = Field(description="ISO 8601, UTC")
    kind: Literal["access", "auth_failure", "audit"]
    gate: str | None
    decision: Literal["allow", "deny"] | None
    person_id: int | None
    name: str | None
    score: float | None
    threshold: float | None
    far: float | None
    faces: int | None
    key_id: str | None
    client: str | None
    action: str | None
    detail: dict[str, Any] | None
    has_image: bool
    message: str | None = Field(default=None, description="an access decision's reason in words, e.g. "
                                "'refused: looked like a printed photo or a screen'")


class EventsOut(BaseModel):
    events: list[EventOut]
    next_before_id: int | None = Field(description="pass as before_id for the next (older) page; null at the end")


class KeyCreateIn(BaseModel):
    role: Literal["admin", "gate", "viewer"]
    name: str = Field(default="", max_length=200)


class KeyOut(BaseModel):
    id: str
    name: str
    role: str
    created: float
    revoked: float | None
    last_used: float | None


class KeyCreatedOut(BaseModel):
    id: str
    key: str = Field(description="the secret key; shown only now, store it safely")
    role: str
    name: str
    created: float


class KeysOut(BaseModel):
    keys: list[KeyOut]


class WhoAmIOut(BaseModel):
    key_id: str
    name: str
    role: str
    permissions: list[str]


class StatsOut(BaseModel):
    backend: str
    people: int
    faces: int
    model: str | None
    dim: int | None
    rule: str
    threshold: float
    far: float | None
    fpir: float | None = None
    tpir: float | None = None
    warnings: list[str] = Field(default_factory=list)
    events: dict[str, int]


class AccessRuleIn(BaseModel):
    gate: str = Field(pattern=GATE_PATTERN)
    person_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    group: str | None = Field(default=None, min_length=1, max_length=200)
    days: str | None = Field(default=None, max_length=60, description="e.g. mon-fri or sat,sun; null: every day")
    start: str | None = Field(default=None, max_length=5, description="HH:MM")
    end: str | None = Field(default=None, max_length=5, description="HH:MM; at or before start: crosses midnight")
    tz: str | None = Field(default=None, max_length=64, description="IANA time zone of the window; null: UTC")


class AccessRuleOut(BaseModel):
    id: int
    gate: str
    person_id: int | None
    group_id: int | None
    group: str | None
    days: str | None
    start: str | None
    end: str | None
    tz: str | None
    created: float
    window: str


class AccessRulesOut(BaseModel):
    rules: list[AccessRuleOut]


class GroupMembersIn(BaseModel):
    person_ids: list[PersonId] = Field(min_length=1, max_length=1000)


class GroupOut(BaseModel):
    id: int
    name: str
    created: float
    members: list[int]


class GroupsOut(BaseModel):
    groups: list[GroupOut]


class BatchPersonOut(BaseModel):
    name: str
    status: Literal["enrolled", "skipped", "rejected"]
    person_id: int | None = None
    face_ids: list[int] = Field(default_factory=list)
    skipped: list[str] = Field(default_factory=list, description="photos already enrolled (same sha256)")
    rejected: list[RejectionOut] = Field(default_factory=list)


class BatchEnrolOut(BaseModel):
    people: list[BatchPersonOut]
    enrolled_faces: int
    skipped_photos: int
    rejected_photos: int
