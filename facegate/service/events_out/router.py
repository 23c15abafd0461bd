"""REST administration of hook targets and the outbox (permission ``hooks:manage``: admins).

``router(require)`` takes the service's authentication dependency factory (``require(permission)``)
so this module does not import the app. Every change is an audit event, like access-list changes;
secrets are accepted, stored and never returned (a generated webhook secret is shown once, in the
answer that created it, like an API key).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from facegate.service import schemas as S
from facegate.service.errors import ApiError
from facegate.service.events_out import outbox, send_test
from facegate.service.events_out.targets import (
    EVENT_KINDS,
    HookError,
    HookNotFoundError,
    Target,
    add_target,
    get_target,
    list_targets,
    remove_target,
)
from facegate.service.inputs import json_body, read_model
from facegate.service.times import site_times

NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
TARGET_DOC = "only this target's (by name); default: every target's"
_ERR = {"model": S.ErrorOut}
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {**_ERR, "description": "malformed JSON"},
    401: {**_ERR, "description": "no key, or an unknown, wrong or revoked key"},
    403: {**_ERR, "description": "the key's role may not do this (needs hooks:manage)"},
    404: {**_ERR, "description": "no such hook target"},
    415: {**_ERR, "description": "send application/json"},
    422: {**_ERR, "description": "invalid target: bad URL, address refused, bad template, bad options"},
    429: {**_ERR, "description": "too many failed authentications from this address; see Retry-After"},
}


class HookIn(BaseModel):
    name: str = Field(pattern=NAME, description="how admins refer to the target")
    url: str = Field(min_length=1, max_length=2000, description="http(s)://... (webhook) or mqtt(s)://host[:port]")
    kind: Literal["webhook", "mqtt"] | None = Field(default=None, description="default: from the URL's scheme")
    secret: str | None = Field(default=None, min_length=1, max_length=512, description="webhook: the HMAC key (at "
                               "least 16 characters; left out: a random one, returned once); mqtt: the password")
    username: str | None = Field(default=None, min_length=1, max_length=200, description="mqtt only")
    events: list[Literal["gate.decision", "watch.identified"]] | None = Field(
        default=None, min_length=1, max_length=len(EVENT_KINDS), description="default: gate.decision")
    gates: list[str] | None = Field(default=None, max_length=100, description="only these gates (default: every gate)")
    template: dict[str, Any] | None = Field(default=None, description="webhook body template: a JSON object whose "
                                            "string values may hold {gate}, {decision}, {name}, ...")
    allow_private: bool = Field(default=False, description="allow loopback, link-local and private addresses")
    topic_prefix: str | None = Field(default=None, max_length=100)
    discovery_prefix: str | None = Field(default=None, max_length=100, description='"" turns discovery off')
    node_id: str | None = Field(default=None, max_length=64)


F = S.F  # a field with a description and one example, as every answer of the API has
NOW = S.NOW


class HookOut(BaseModel):
    id: int = F("the target's id", 3)
    name: str = F("how admins refer to the target", "door-log")
    kind: str = F("webhook or mqtt", "webhook")
    url: str = F("shortened: many services put a token in the path or query", "https://hooks.example.com/door/…")
    events: list[str] = F("the event kinds sent to it", ["gate.decision"])
    gates: list[str] | None = F("only these gates; null: every gate", None)
    template: bool = F("whether a webhook body template is set", False)
    options: dict[str, Any] = F("mqtt: topic_prefix, discovery_prefix, node_id", {})
    allow_private: bool = F("whether loopback, link-local and private addresses are allowed", False)
    enabled: bool = F("whether events are delivered to it", True)
    username: str | None = F("mqtt: the user name", None)
    has_secret: bool = F("whether a secret (webhook HMAC key, mqtt password) is set; never returned", True)
    created: str = F("when added, ISO 8601", NOW)
    updated: str = F("last change, ISO 8601", NOW)
    delivered: int = F("events delivered", 120)
    failures: int = F("failed delivery attempts", 2)
    dropped: int = F("events dropped (outbox full or too old)", 0)
    pending: int = F("events waiting to be delivered", 0)
    dead: int = F("dead letters (given up after the last attempt)", 0)
    last_success: str | None = F("last delivery, ISO 8601", NOW)
    last_error: str | None = F("the last delivery error, one line", None)
    last_error_at: str | None = F("when it happened, ISO 8601", None)


class HookCreatedOut(HookOut):
    secret: str | None = Field(default=None, description="the generated webhook secret: shown only now",
                               examples=["4c1f0e9a7b2d4e6f8a1b3c5d7e9f0a2b"])


class HooksOut(BaseModel):
    targets: list[HookOut] = F("every target, without secrets", [])
    counters: dict[str, int] = F("the outbox's counters", {"pending": 0, "dead": 0, "delivered": 120})
    limits: dict[str, float] = F("the outbox's limits", {"max_pending": 10000, "max_attempts": 12})


class HookTestOut(BaseModel):
    target: str = F("the target's name", "door-log")
    delivered: bool = F("whether the target accepted the test payload", True)
    status: int | None = F("webhook: the HTTP status answered; null for mqtt or no answer", 204)
    error: str | None = F("why it was not delivered, one line", None)
    id: str = F("the test payload's id (its idempotency key)", "test-6f1c2a")


class DeadLetterOut(BaseModel):
    id: int = F("the dead letter's id", 17)
    target_id: int = F("the target it was for", 3)
    event_id: int | None = F("the access event it came from, if any", 1042)
    kind: str = F("the event kind", "gate.decision")
    idempotency_key: str = F("the payload's id, the same on every attempt", "gate.decision-1042")
    payload: dict[str, Any] = F("the payload as it would have been sent", {"type": "gate.decision", "gate": "front"})
    created: str = F("when queued, ISO 8601", NOW)
    state: str = F("dead", "dead")
    attempts: int = F("delivery attempts made", 12)
    next_at: str = F("when the next attempt was due, ISO 8601", NOW)
    last_error: str | None = F("the last delivery error", "connection refused")
    dead_at: str | None = F("when it was given up, ISO 8601", NOW)


class DeadLettersOut(BaseModel):
    dead_letters: list[DeadLetterOut] = F("dead letters, newest first", [])


def short_url(url: str) -> str:
    """scheme://host[:port]/first-segment/… : enough to recognise a target, not its token."""
    import urllib.parse

    p = urllib.parse.urlsplit(url)
    segs = [s for s in p.path.split("/") if s]
    path = "/" + segs[0] if segs else ("/" if p.scheme.startswith("http") else "")
    if len(segs) > 1:
        path += "/…"
    return f"{p.scheme}://{p.netloc}{path}{'?…' if p.query else ''}"


def public(t: Target) -> dict[str, Any]:
    d = t.public()
    d["url"] = short_url(t.url)
    return d


def router(require: Callable[[str | None], Any]) -> APIRouter:
    """The ``/api/v1/hooks`` and ``/api/v1/outbox`` routes, authenticated by ``require``."""
    r = APIRouter(prefix="/api/v1", tags=["hooks"])
    manage = require("hooks:manage")

    def ctx(request: Request) -> tuple[str | None, str, Any]:
        svc = request.app.state.svc
        p = getattr(request.state, "principal", None)
        return (p.key_id if p else None), svc.client_of(request), svc.db

    def tz(request: Request) -> str | None:
        """The site's time zone: answers give times in it (ISO 8601 with its offset)."""
        return request.app.state.svc.settings.time_zone

    def wake(request: Request) -> None:
        worker = getattr(request.app.state, "events_out", None)
        if worker is not None:
            worker.targets_changed()

    @r.get("/hooks", response_model=HooksOut, responses=ERRORS, summary="Hook targets, their delivery counters, "
           "and the outbox's counters and limits (never secrets)")
    async def hooks_list(request: Request, p: Any = Depends(manage)) -> dict[str, Any]:
        _, _, db = ctx(request)
        worker = getattr(request.app.state, "events_out", None)
        s = worker.settings if worker is not None else None

        def work() -> dict[str, Any]:
            limits = {} if s is None else {"max_pending": s.max_pending, "max_dead": s.max_dead,
                                           "max_attempts": s.max_attempts, "max_age_s": s.max_age,
                                           "replay_window_s": s.replay_window}
            return site_times({"targets": [public(t) for t in list_targets(db)], "counters": outbox.counters(db),
                               "limits": limits}, tz(request))

        return await run_in_threadpool(work)

    @r.post("/hooks", response_model=HookCreatedOut, status_code=201, responses=ERRORS,
            summary="Add a webhook or MQTT target (checked now: URL, address, template)", openapi_extra=json_body(HookIn))
    async def hooks_add(request: Request, p: Any = Depends(manage)) -> dict[str, Any]:
        body = await read_model(request, HookIn)  # after the key is checked: 401 before 422
        key_id, client, db = ctx(request)
        import json

        options = {k: getattr(body, k) for k in ("topic_prefix", "discovery_prefix", "node_id") if getattr(body, k) is not None}

        def work() -> dict[str, Any]:
            try:
                target, generated = add_target(
                    db, body.name, body.url, kind=body.kind, secret=body.secret, username=body.username,
                    events=body.events, gates=body.gates, allow_private=body.allow_private, options=options or None,
                    template=None if body.template is None else json.dumps(body.template),
                )
            except HookError as exc:
                raise ApiError(422, "invalid_hook", str(exc)) from exc
            db.add_event("audit", action="hook_add", key_id=key_id, client=client, detail={
                "name": target.name, "kind": target.kind, "url": short_url(target.url), "events": list(target.events),
                "gates": None if target.gates is None else list(target.gates), "allow_private": target.allow_private,
                "template": target.template is not None})
            return site_times({**public(target), "secret": generated}, tz(request))

        out = await run_in_threadpool(work)
        wake(request)
        return out

    @r.delete("/hooks/{name}", response_model=HookOut, responses=ERRORS,
              summary="Remove a target with its undelivered events and dead letters")
    async def hooks_remove(request: Request, name: str = Path(pattern=NAME, description="the target's name"),
                           p: Any = Depends(manage)) -> dict[str, Any]:
        key_id, client, db = ctx(request)

        def work() -> dict[str, Any]:
            try:
                target = remove_target(db, name)
            except HookNotFoundError as exc:
                raise ApiError(404, "not_found", str(exc)) from exc
            db.add_event("audit", action="hook_remove", key_id=key_id, client=client,
                         detail={"name": target.name, "kind": target.kind, "url": short_url(target.url),
                                 "pending_dropped": target.stats.get("pending", 0),
                                 "dead_dropped": target.stats.get("dead", 0)})
            return site_times(public(target), tz(request))

        out = await run_in_threadpool(work)
        wake(request)
        return out

    @r.post("/hooks/{name}/test", response_model=HookTestOut, responses=ERRORS,
            summary="Deliver one signed hook.test payload to the target now and say what happened")
    async def hooks_test(request: Request, name: str = Path(pattern=NAME, description="the target's name"),
                         p: Any = Depends(manage)) -> dict[str, Any]:
        key_id, client, db = ctx(request)
        worker = getattr(request.app.state, "events_out", None)

        def work() -> dict[str, Any]:
            try:
                target = get_target(db, name)
            except HookNotFoundError as exc:
                raise ApiError(404, "not_found", str(exc)) from exc
            out = send_test(target, worker.settings if worker is not None else None)
            db.add_event("audit", action="hook_test", key_id=key_id, client=client,
                         detail={"name": name, "delivered": out["delivered"], "error": out["error"]})
            return out

        return await run_in_threadpool(work)

    def target_id(db: Any, name: str | None) -> int | None:
        if name is None:
            return None
        try:
            return get_target(db, name).id
        except HookNotFoundError as exc:
            raise ApiError(404, "not_found", str(exc)) from exc

    @r.get("/outbox/dead-letters", response_model=DeadLettersOut, responses=ERRORS,
           summary="Events that could not be delivered (newest first): payload, attempts, last error")
    async def dead_list(
        request: Request, target: str | None = Query(default=None, pattern=NAME, description=TARGET_DOC),
        limit: int = Query(default=100, ge=1, le=1000, description="at most this many"), p: Any = Depends(manage),
    ) -> dict[str, Any]:
        _, _, db = ctx(request)

        def work() -> dict[str, Any]:
            return site_times({"dead_letters": [d.to_dict() for d in outbox.dead_letters(db, target_id(db, target), limit)]},
                              tz(request))

        return await run_in_threadpool(work)

    @r.post("/outbox/dead-letters/retry", responses=ERRORS, summary="Queue dead letters again (of one target with ?target=)")
    async def dead_retry(request: Request, target: str | None = Query(default=None, pattern=NAME, description=TARGET_DOC),
                         p: Any = Depends(manage)) -> dict[str, int]:
        key_id, client, db = ctx(request)

        def work() -> dict[str, int]:
            n = outbox.retry_dead(db, target_id(db, target))
            db.add_event("audit", action="hook_dead_letters_retry", key_id=key_id, client=client,
                         detail={"target": target, "requeued": n})
            return {"requeued": n}

        out = await run_in_threadpool(work)
        worker = getattr(request.app.state, "events_out", None)
        if worker is not None:
            worker.wake()
        return out

    @r.delete("/outbox/dead-letters", responses=ERRORS, summary="Delete dead letters (of one target with ?target=)")
    async def dead_purge(request: Request, target: str | None = Query(default=None, pattern=NAME, description=TARGET_DOC),
                         p: Any = Depends(manage)) -> dict[str, int]:
        key_id, client, db = ctx(request)

        def work() -> dict[str, int]:
            n = outbox.purge_dead(db, target_id(db, target))
            db.add_event("audit", action="hook_dead_letters_purge", key_id=key_id, client=client,
                         detail={"target": target, "purged": n})
            return {"purged": n}

        return await run_in_threadpool(work)

    return r
