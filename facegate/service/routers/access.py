"""Per-gate access lists (tag ``access``): rules that permit a person or a group at a gate, and
the groups. The rules themselves live in :mod:`facegate.service.access`; a gate without rules
admits every recognised person."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request
from starlette.concurrency import run_in_threadpool

from facegate.service import access
from facegate.service import schemas as S
from facegate.service.auth import Principal
from facegate.service.deps import ServiceDep, actor, require
from facegate.service.errors import ApiError
from facegate.service.inputs import clean_text
from facegate.service.params import API, GATE_PATTERN, MAX_ID
from facegate.service.responses import ERRORS
from facegate.service.times import site_times

router = APIRouter(prefix=API, tags=["access"], responses=ERRORS)


def _names(svc: Any, ids: list[int]) -> dict[int, str]:
    """Names now of the people with these ids (people deleted since are left out)."""
    from facegate.gallery import PersonNotFoundError

    out: dict[int, str] = {}
    for pid in dict.fromkeys(ids):
        try:
            out[pid] = svc.engine.gallery.person(int(pid)).name
        except PersonNotFoundError:
            continue
    return out


def _rule_out(svc: Any, rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rules as answered: the permitted person's name beside their id, times in the site's zone."""
    names = _names(svc, [int(r["person_id"]) for r in rules if r.get("person_id") is not None])
    return site_times([{**r, "person_name": names.get(r["person_id"]) if r.get("person_id") is not None else None}
                       for r in rules], svc.settings.time_zone)


def _group_out(svc: Any, group: dict[str, Any]) -> dict[str, Any]:
    """A group as answered: its members' names beside their ids, times in the site's zone."""
    names = _names(svc, [int(m) for m in group["members"]])
    return site_times({**group, "people": [{"id": int(m), "name": names.get(int(m))} for m in group["members"]]},
                      svc.settings.time_zone)

GROUP = Path(min_length=1, max_length=200, description="the group's name")


@router.get("/access/rules", response_model=S.AccessRulesOut,
            summary="Access-list rules (of one gate with ?gate=); a gate without rules admits every recognised person")
async def access_rules(
    svc: ServiceDep,
    gate: str | None = Query(default=None, pattern=GATE_PATTERN, description="only this gate's rules"),
    p: Principal = Depends(require("people:read")),
) -> dict[str, Any]:
    def work() -> dict[str, Any]:
        return {"rules": _rule_out(svc, [r.to_dict() for r in access.rules(svc.db, gate)])}

    return await run_in_threadpool(work)


@router.post("/access/rules", response_model=S.AccessRuleOut, status_code=201,
             summary="Permit a person or a group at a gate, optionally in a weekly time window")
async def access_rule_add(
    request: Request, body: S.AccessRuleIn, svc: ServiceDep, p: Principal = Depends(require("access:manage"))
) -> dict[str, Any]:
    key_id, client = actor(request)

    def work() -> dict[str, Any]:
        if body.person_id is not None:
            svc.engine.gallery.person(body.person_id)  # 404 for somebody not enrolled
        try:
            rule = access.add_rule(svc.db, body.gate, person_id=body.person_id, group=body.group, days=body.days,
                                   start=body.start, end=body.end, tz=body.tz)
        except access.AccessNotFoundError as exc:
            raise ApiError(404, "not_found", f"{exc}; GET /api/v1/access/groups lists the groups") from exc
        except access.AccessError as exc:
            raise ApiError(422, "validation", str(exc)) from exc
        svc.db.add_event("audit", action="access_rule_add", gate=body.gate, person_id=body.person_id, key_id=key_id,
                         client=client, detail=rule.to_dict())
        return _rule_out(svc, [rule.to_dict()])[0]

    return await run_in_threadpool(work)


@router.delete("/access/rules/{rule_id}", summary="Remove an access rule")
async def access_rule_delete(
    request: Request, svc: ServiceDep, rule_id: int = Path(ge=1, le=MAX_ID, description="the rule's id"),
    p: Principal = Depends(require("access:manage")),
) -> dict[str, Any]:
    key_id, client = actor(request)

    def work() -> dict[str, Any]:
        if not access.delete_rule(svc.db, rule_id):
            raise ApiError(404, "not_found", f"no access rule with id {rule_id}")
        svc.db.add_event("audit", action="access_rule_delete", key_id=key_id, client=client, detail={"rule": rule_id})
        return {"deleted": rule_id}

    return await run_in_threadpool(work)


@router.get("/access/groups", response_model=S.GroupsOut, summary="Access groups and their members (person ids)")
async def access_groups(svc: ServiceDep, p: Principal = Depends(require("people:read"))) -> dict[str, Any]:
    def work() -> dict[str, Any]:
        return {"groups": [_group_out(svc, g) for g in access.groups(svc.db)]}

    return await run_in_threadpool(work)


@router.post("/access/groups/{group}/members", response_model=S.GroupOut,
             summary="Add people to a group (created on first use)")
async def access_group_add(
    request: Request, body: S.GroupMembersIn, svc: ServiceDep, group: str = GROUP,
    p: Principal = Depends(require("access:manage")),
) -> dict[str, Any]:
    name = clean_text(group, "group")
    key_id, client = actor(request)

    def work() -> dict[str, Any]:
        for pid in body.person_ids:
            svc.engine.gallery.person(int(pid))  # 404 for somebody not enrolled
        out = access.add_members(svc.db, name, list(body.person_ids))
        svc.db.add_event("audit", action="access_group_add", key_id=key_id, client=client,
                         detail={"group": name, "person_ids": list(body.person_ids)})
        return _group_out(svc, out)

    return await run_in_threadpool(work)


@router.delete("/access/groups/{group}/members/{person_id}", response_model=S.GroupOut,
               summary="Remove a person from a group")
async def access_group_remove(
    request: Request, svc: ServiceDep, group: str = GROUP,
    person_id: int = Path(ge=1, le=MAX_ID, description="the member's person id"),
    p: Principal = Depends(require("access:manage")),
) -> dict[str, Any]:
    key_id, client = actor(request)

    def work() -> dict[str, Any]:
        try:
            out = access.remove_members(svc.db, group, [person_id])
        except access.AccessError as exc:
            raise ApiError(404, "not_found", str(exc)) from exc
        svc.db.add_event("audit", action="access_group_remove", person_id=person_id, key_id=key_id, client=client,
                         detail={"group": group})
        return _group_out(svc, out)

    return await run_in_threadpool(work)
