"""The audit trail (tag ``events``): access decisions, failed authentications, admin actions,
newest first, paged by id; and the face crop kept with an access event."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Response
from starlette.concurrency import run_in_threadpool

from facegate.service import schemas as S
from facegate.service.auth import Principal
from facegate.service.deps import ServiceDep, require
from facegate.service.errors import ApiError
from facegate.service.gates import reason_text
from facegate.service.params import API, GATE_PATTERN, MAX_ID
from facegate.service.responses import ERRORS, JPEG
from facegate.service.times import epoch_seconds, iso_utc, site_times

router = APIRouter(prefix=API, tags=["events"], responses=ERRORS)


def event_message(event: dict[str, Any]) -> str | None:
    """An access decision's reason in words (:data:`facegate.service.gates.REASON_TEXT`), with whom a
    refused presentation resembled, for the audit trail's readers."""
    if event.get("kind") != "access":
        return None
    detail = event.get("detail") or {}
    reason = detail.get("reason") or (detail.get("rule") or {}).get("reason")
    text = reason_text(reason)
    if text and detail.get("named_to_caller") is False and event.get("name"):
        text += f" (it resembled {event['name']}, person {event.get('person_id')}; the gate was not told)"
    return text


@router.get("/events", response_model=S.EventsOut,
            summary="The audit trail, newest first: access decisions, failed authentications, admin actions")
async def events(
    svc: ServiceDep,
    person_id: int | None = Query(default=None, ge=1, le=MAX_ID, description="only events of this person"),
    gate: str | None = Query(default=None, pattern=GATE_PATTERN, description="only events at this gate"),
    kind: Literal["access", "auth_failure", "audit"] | None = Query(
        default=None, description="only access decisions, failed authentications or audit records"),
    decision: Literal["allow", "deny"] | None = Query(default=None, description="only access events so decided"),
    since: str | None = Query(default=None, max_length=64, description="from: ISO 8601 as events' at (UTC if no zone) "
                              "or unix seconds", examples=["2026-12-09T08:00:00+01:00"]),
    until: str | None = Query(default=None, max_length=64, description="before: ISO 8601 (UTC if no zone) or unix "
                              "seconds; until=<an event's at> leaves that event out", examples=["1796803200"]),
    before_id: int | None = Query(default=None, ge=1, le=MAX_ID, description="page: events older than this id"),
    limit: int = Query(default=100, ge=1, le=1000, description="at most this many events"),
    p: Principal = Depends(require("events:read")),
) -> dict[str, Any]:
    t0, t1 = epoch_seconds(since), epoch_seconds(until)

    def work() -> dict[str, Any]:
        rows = svc.db.events(kind=kind, person_id=person_id, gate=gate, decision=decision, since=t0, until=t1,
                             before_id=before_id, limit=limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        for r in rows:
            r["time"] = iso_utc(r["at"])
            r["message"] = event_message(r)
        return {"events": site_times(rows, svc.settings.time_zone),
                "next_before_id": rows[-1]["id"] if more and rows else None}

    return await run_in_threadpool(work)


@router.get("/events/{event_id}/image", response_class=Response, responses=JPEG,
            summary="The face crop kept with an access event (only with --keep-event-images)")
async def event_image(
    svc: ServiceDep, event_id: int = Path(ge=1, le=MAX_ID, description="the event's id"),
    p: Principal = Depends(require("events:read")),
) -> Response:
    jpeg = await run_in_threadpool(svc.db.event_image, event_id)
    if jpeg is None:
        raise ApiError(404, "not_found", f"no image kept for event {event_id}")
    return Response(jpeg, media_type="image/jpeg")
