"""The shape of the service's API, checked over the whole schema rather than pinned to a snapshot,
so new endpoints pass as long as they follow the same rules: every operation has a summary, one
tag and a unique id; every authenticated operation documents its error answers; each tag is
served by one router module (:mod:`facegate.service.routers`); and the operations anyone may
call without a key are exactly the listed ones (deny by default: a new public route is a
decision, made here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")

from fastapi import FastAPI
from fastapi.routing import APIRoute

from facegate.config import Config
from facegate.service import ServiceSettings, create_app
from facegate.service.synthetic import SyntheticPipeline

API = "/api/v1"
PUBLIC = {("GET", "/healthz"), ("GET", "/readyz"), ("GET", f"{API}/roles")}
ERROR_REF = "#/components/schemas/ErrorOut"
# The CompreFace-compatible API answers errors in CompreFace's shape (a numeric code where its clients test
# for one), so its routes document that model instead.
COMPAT = (f"{API}/recognition/", f"{API}/detection/", f"{API}/verification/")
COMPAT_ERROR_REF = "#/components/schemas/CompatErrorOut"
# Where routes may live: one module per resource under routers/, the compat API and hook administration
# in their own packages (they bring their own models and workers).
ROUTE_PACKAGES = ("facegate.service.routers.", "facegate.service.compat.", "facegate.service.events_out.")


def build(tmp_path: Path, **settings: Any) -> FastAPI:
    cfg = Config(home=tmp_path, gallery=tmp_path / "g.sqlite")
    return create_app(cfg, ServiceSettings(**settings), pipeline=SyntheticPipeline(cfg))


def operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method.upper(), path, op) for path, ops in schema["paths"].items() for method, op in ops.items()]


def api_routes(app: FastAPI) -> list[Any]:
    """The app's FastAPI routes, looking inside included routers (FastAPI >= 0.16x keeps an included
    router as one entry of ``app.routes``; older versions copy its routes there)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:
        return [r for r in app.routes if isinstance(r, APIRoute)]
    return [c for c in iter_route_contexts(app.routes) if isinstance(c.original_route, APIRoute)]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    a = build(tmp_path_factory.mktemp("routes"))
    yield a
    a.state.svc.close()


def test_every_operation_is_described_and_tagged(app):
    ops = operations(app.openapi())
    assert len(ops) >= 30
    ids = [op["operationId"] for _, _, op in ops]
    assert len(ids) == len(set(ids)), "operation ids must be unique"
    for method, path, op in ops:
        assert op.get("summary", "").strip(), (method, path, "needs a summary")
        assert len(op.get("tags", [])) == 1, (method, path, "needs exactly one tag")
        assert any(code.startswith("2") for code in op["responses"]), (method, path, "documents no success answer")


def test_authenticated_operations_document_their_errors(app):
    for method, path, op in operations(app.openapi()):
        if (method, path) in PUBLIC:
            continue
        codes = {"401", "403", "429"} | ({"400", "404", "422"} if path.startswith(API) else set())
        for code in codes:
            answer = op["responses"].get(code)
            assert answer and answer.get("description"), (method, path, f"does not document {code}")
            ref = COMPAT_ERROR_REF if path.startswith(COMPAT) else ERROR_REF
            assert answer["content"]["application/json"]["schema"]["$ref"] == ref, (method, path, code)


@pytest.mark.parametrize("metrics_public", [False, True])
def test_only_the_listed_operations_are_public(tmp_path, metrics_public):
    app = build(tmp_path, metrics_public=metrics_public)
    try:
        public = {(m, p) for m, p, op in operations(app.openapi()) if not op.get("security")}
        assert public == PUBLIC | ({("GET", "/metrics")} if metrics_public else set())
    finally:
        app.state.svc.close()


def test_each_tag_is_one_router_module(app):
    """One router per resource: every route lives in :mod:`facegate.service.routers` (or the compat and
    hook packages), and a tag's
    routes all come from one module, which serves no other tag."""
    modules_of: dict[str, set[str]] = {}
    tags_of: dict[str, set[str]] = {}
    routes = [r for r in api_routes(app) if r.include_in_schema]
    assert len(routes) == len(operations(app.openapi()))
    for route in routes:
        module = route.endpoint.__module__
        assert module.startswith(ROUTE_PACKAGES), (route.path, module)
        for tag in route.original_route.tags if hasattr(route, "original_route") else route.tags:
            modules_of.setdefault(tag, set()).add(module)
            tags_of.setdefault(module, set()).add(tag)
    assert all(len(m) == 1 for m in modules_of.values()), modules_of
    assert all(len(t) == 1 for t in tags_of.values()), tags_of
