"""The caller's own key, API keys and roles (tag ``keys``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Request
from starlette.concurrency import run_in_threadpool

from facegate.service import schemas as S
from facegate.service.auth import PERMISSIONS, ROLE_PERMISSIONS, Principal, create_key
from facegate.service.deps import ServiceDep, actor, require
from facegate.service.errors import ApiError
from facegate.service.inputs import clean_text, json_body, read_model
from facegate.service.params import API
from facegate.service.responses import ERRORS
from facegate.service.times import site_times

router = APIRouter(prefix=API, tags=["keys"])


@router.get("/whoami", response_model=S.WhoAmIOut, responses=ERRORS, summary="The calling key's role and permissions")
async def whoami(p: Principal = Depends(require(None))) -> dict[str, Any]:
    return {"key_id": p.key_id, "name": p.name, "role": p.role, "permissions": sorted(p.permissions)}


@router.post("/keys", response_model=S.KeyCreatedOut, status_code=201, responses=ERRORS,
             summary="Create an API key (the secret is shown once)", openapi_extra=json_body(S.KeyCreateIn))
async def keys_create(request: Request, svc: ServiceDep, p: Principal = Depends(require("keys:manage"))) -> dict[str, Any]:
    body = await read_model(request, S.KeyCreateIn)  # after the key is checked: 401 before 422
    name = clean_text(body.name, "name") if body.name.strip() else ""
    key_id, client = actor(request)

    def work() -> dict[str, Any]:
        out = create_key(svc.db, body.role, name)
        svc.db.add_event("audit", action="key_create", key_id=key_id, client=client,
                         detail={"key": out["id"], "role": out["role"], "name": name})
        return site_times(out, svc.settings.time_zone)

    return await run_in_threadpool(work)


@router.get("/keys", response_model=S.KeysOut, responses=ERRORS, summary="API keys (no secrets)")
async def keys_list(svc: ServiceDep, p: Principal = Depends(require("keys:manage"))) -> dict[str, Any]:
    return site_times({"keys": await run_in_threadpool(svc.db.list_keys)}, svc.settings.time_zone)


@router.delete("/keys/{key_id}", response_model=S.KeyOut, responses=ERRORS,
               summary="Revoke an API key (effective on its next request)")
async def keys_revoke(
    request: Request,
    svc: ServiceDep,
    key_id: str = Path(pattern=r"^[0-9a-f]{10}$", description="the key's public id (GET /api/v1/keys)"),
    p: Principal = Depends(require("keys:manage")),
) -> dict[str, Any]:
    caller, client = actor(request)
    if key_id == caller:
        raise ApiError(409, "self_revoke", "a key cannot revoke itself; revoke it with another admin key")

    def work() -> dict[str, Any]:
        if not svc.db.revoke_key(key_id):
            row = svc.db.get_key(key_id)
            if row is None:
                raise ApiError(404, "not_found", f"no API key with id {key_id}")
            raise ApiError(409, "already_revoked", f"key {key_id} is already revoked")
        svc.db.add_event("audit", action="key_revoke", key_id=caller, client=client, detail={"key": key_id})
        row = svc.db.get_key(key_id)
        assert row is not None
        row.pop("hash", None)
        return site_times(row, svc.settings.time_zone)

    return await run_in_threadpool(work)


@router.get("/roles", summary="What each role may do (public: no secrets here)")
async def roles() -> dict[str, Any]:
    return {"permissions": PERMISSIONS, "roles": {r: sorted(p) for r, p in ROLE_PERMISSIONS.items()}}
