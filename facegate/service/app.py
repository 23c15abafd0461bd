"""The FastAPI application: routes, authentication, limits, CORS, the web page.

:func:`create_app` builds one app over one gallery and one service database. All routes
live under ``/api/v1/`` except health (``/healthz``, ``/readyz``), metrics (``/metrics``),
the schema (``/openapi.json``, ``/docs``) and the operator page (``/ui/``).

Request flow: metrics -> security headers -> CORS (only when origins are configured) ->
body limit -> route. A route first authenticates (its ``require(permission)``
dependency: deny by default), then parses the body (:mod:`.inputs`), then runs the
blocking work (:class:`.engine.Engine`) in the thread pool so the event loop stays free.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import unicodedata
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from importlib import resources
from typing import Any, Literal

from fastapi import Depends, FastAPI, Path, Query, Request, Security
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.security import APIKeyHeader
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from facegate.config import Config
from facegate.service import schemas as S
from facegate.service.auth import (
    PERMISSIONS,
    ROLE_PERMISSIONS,
    FailureLimiter,
    KeyVerifier,
    Principal,
    create_key,
    key_id_of,
)
from facegate.service.db import ServiceDB
from facegate.service.engine import Engine
from facegate.service.errors import ApiError, install_handlers
from facegate.service.inputs import BodyLimitMiddleware, image_body, json_body, read_body, read_model
from facegate.service.metrics import Metrics, MetricsMiddleware
from facegate.service.server import client_address, parse_proxies
from facegate.service.settings import ServiceSettings

log = logging.getLogger(__name__)

API = "/api/v1"
MAX_ID = 2**62  # SQLite integers are 64-bit; larger ids cannot exist and must not reach the driver
GATE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"


class SafeJSONResponse(JSONResponse):
    """JSON that always encodes: ASCII escapes (a stray lone surrogate cannot break UTF-8
    encoding) and no NaN (not JSON)."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


_ERR = {"model": S.ErrorOut}
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {**_ERR, "description": "malformed request: bad image, multipart, base64 or JSON"},
    401: {**_ERR, "description": "no key, or an unknown, wrong or revoked key"},
    403: {**_ERR, "description": "the key's role may not do this"},
    404: {**_ERR, "description": "no such person, face, event or key"},
    409: {**_ERR, "description": "conflict: name taken, gallery of another model, unsupported by the backend"},
    413: {**_ERR, "description": "request body or image too large"},
    415: {**_ERR, "description": "send multipart/form-data or application/json"},
    422: {**_ERR, "description": "invalid fields; no face, several faces, or every enrolment photo rejected"},
    429: {**_ERR, "description": "too many failed authentications from this address; see Retry-After"},
    503: {**_ERR, "description": "not ready: models loading or no calibrated threshold"},
}

api_key_header = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    description="An API key from 'facegate keys create --role admin|gate|viewer' (also accepted as Authorization: Bearer).",
)

CSP = (
    "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob: mediastream:; "
    "style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'"
)


DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


class SecurityHeadersMiddleware:
    """nosniff, no framing, no referrer everywhere; a strict CSP on the web page and the API docs;
    no caching of API answers (face crops included) unless a route says otherwise, in one header."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")

        async def send_wrapper(msg: Message) -> None:
            if msg["type"] == "http.response.start":
                headers = list(msg.get("headers", []))
                headers += [
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"no-referrer"),
                ]
                if path.startswith("/ui"):
                    headers.append((b"content-security-policy", CSP.encode()))
                elif path == "/docs" or path.startswith("/docs/"):
                    headers.append((b"content-security-policy", DOCS_CSP.encode()))
                elif path.startswith(API) and not any(k.lower() == b"cache-control" for k, _ in headers):
                    headers.append((b"cache-control", b"no-store"))
                msg["headers"] = headers
            await send(msg)

        await self.app(scope, receive, send_wrapper)


def _json_cors() -> type:
    """Starlette's CORS middleware, with its refusals as ``{code, message}`` JSON like every other error."""
    from fastapi.middleware.cors import CORSMiddleware

    class JSONCORSMiddleware(CORSMiddleware):
        def preflight_response(self, request_headers: Any) -> Response:
            resp = super().preflight_response(request_headers)
            if resp.status_code < 400:
                return resp
            headers = {k: v for k, v in resp.headers.items() if k.lower() not in ("content-type", "content-length")}
            return JSONResponse(
                {"code": "cors_rejected", "message": bytes(resp.body).decode("utf-8", "replace")},
                status_code=resp.status_code, headers=headers,
            )

    return JSONCORSMiddleware


def swagger_ui_assets() -> Any:
    """The folder of Swagger UI's files from an installed package (``swagger-ui-bundle``), or None.
    /docs never loads anything from a CDN: without the package it is a plain page of the operations."""
    try:
        from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-not-found]
    except ImportError:
        return None
    from pathlib import Path as FsPath

    folder = FsPath(swagger_ui_path)
    return folder if (folder / "swagger-ui-bundle.js").is_file() else None


def _offline_docs(schema: dict[str, Any]) -> str:
    """A self-contained HTML list of the API's operations, for when Swagger UI is not installed."""
    from html import escape

    rows = []
    for path, ops in sorted(schema.get("paths", {}).items()):
        for method, op in ops.items():
            rows.append(f"<tr><td>{escape(method.upper())}</td><td><code>{escape(path)}</code></td>"
                        f"<td>{escape(str(op.get('summary', '')))}</td></tr>")
    info = schema.get("info", {})
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>facegate API</title></head><body>"
        f"<h1>{escape(str(info.get('title', 'API')))} API</h1><p>{escape(str(info.get('description', '')))}</p>"
        "<p>The OpenAPI schema is at <a href=/openapi.json>/openapi.json</a>. This page is plain because "
        "Swagger UI is not installed (<code>pip install swagger-ui-bundle</code> serves it here, from this "
        "machine).</p><table><tr><th>method</th><th>path</th><th>what</th></tr>"
        + "".join(rows) + "</table></body></html>"
    )


SWAGGER_INIT = (
    'window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true,'
    ' presets: [SwaggerUIBundle.presets.apis], layout: "BaseLayout"});\n'
)
SWAGGER_HTML = (
    "<!doctype html><html lang=en><head><meta charset=utf-8><title>facegate API</title>"
    "<link rel=stylesheet href=/docs/assets/swagger-ui.css></head><body><div id=swagger-ui></div>"
    "<script src=/docs/assets/swagger-ui-bundle.js></script><script src=/docs/init.js></script></body></html>"
)


class Service:
    """Everything one app instance holds; ``app.state.svc``."""

    def __init__(self, config: Config, settings: ServiceSettings, db: ServiceDB, engine: Engine, metrics: Metrics) -> None:
        self.config = config
        self.settings = settings
        self.db = db
        self.engine = engine
        self.metrics = metrics
        self.keys = KeyVerifier(db)
        self.limiter = FailureLimiter(settings.auth_fail_limit, settings.auth_fail_window)
        self.proxies = parse_proxies(settings.trusted_proxies)
        self.closed = False

    def client_of(self, request: Request) -> str:
        """The client address for lockouts and the audit trail (X-Forwarded-For only via a trusted proxy)."""
        host = request.client.host if request.client else "unknown"
        return client_address(host, request.headers.get("x-forwarded-for"), self.proxies)

    def auth_failed(self, client: str, presented: str | None, reason: str, path: str) -> None:
        n = self.limiter.fail(client)
        self.metrics.auth_failures.labels(reason).inc()
        kid = key_id_of(presented or "")
        log.warning("authentication failed from %s on %s: %s (key id %s, %d in window)", client, path, reason, kid, n)
        if n <= self.settings.auth_fail_limit:  # past the limit the address is locked out: no flood of rows
            try:
                self.db.add_event("auth_failure", key_id=kid, client=client, action=reason, detail={"path": path[:200]})
            except Exception as exc:  # noqa: BLE001 - recording is best-effort; the 401 must still be answered
                log.warning("could not record an authentication failure: %s", exc)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.engine.close()
            self.db.close()


def require(permission: str | None) -> Callable[..., Any]:
    """A dependency that authenticates the caller and checks one permission (None: any valid key)."""

    async def dependency(request: Request, key: str | None = Security(api_key_header)) -> Principal:
        svc: Service = request.app.state.svc
        client = svc.client_of(request)
        wait = svc.limiter.retry_after(client)
        if wait > 0:
            svc.metrics.auth_failures.labels("locked_out").inc()
            raise ApiError(
                429, "too_many_failures",
                f"too many failed authentications from {client}; try again in {math.ceil(wait)} s",
                headers={"Retry-After": str(math.ceil(wait))},
            )
        if not key:
            auth = request.headers.get("authorization", "")
            if auth[:7].lower() == "bearer ":
                key = auth[7:].strip()
        if not key:
            await run_in_threadpool(svc.auth_failed, client, None, "missing key", request.url.path)
            raise ApiError(401, "unauthenticated", "this needs an API key in the X-API-Key header",
                           headers={"WWW-Authenticate": "ApiKey"})
        principal, reason = await run_in_threadpool(svc.keys.verify, key)
        if principal is None:
            await run_in_threadpool(svc.auth_failed, client, key, reason, request.url.path)
            raise ApiError(401, "unauthenticated", "invalid API key", headers={"WWW-Authenticate": "ApiKey"})
        if permission is not None and not principal.can(permission):
            log.info("key %s (role %s) refused %s on %s", principal.key_id, principal.role, permission, request.url.path)
            raise ApiError(403, "forbidden", f"role {principal.role!r} may not do this (needs {permission})")
        request.state.principal = principal
        return principal

    return dependency


def clean_text(value: Any, field: str, max_len: int = 200) -> str:
    """A name-like string: non-empty after trimming, printable, encodable, bounded."""
    if not isinstance(value, str):
        raise ApiError(422, "validation", f"{field} must be a string")
    v = value.strip()
    if not v:
        raise ApiError(422, "validation", f"{field} must not be empty")
    if len(v) > max_len:
        raise ApiError(422, "validation", f"{field} is longer than {max_len} characters")
    try:
        v.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ApiError(422, "validation", f"{field} is not valid Unicode text") from exc
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in v):
        raise ApiError(422, "validation", f"{field} must not contain control characters")
    return v


def _iso(t: float) -> str:
    """ISO 8601 in UTC, truncated (not rounded) to the microsecond, so ``until=<an event's time>``
    leaves that event out and ``since=`` keeps it in."""
    whole = math.floor(t)
    micro = min(999_999, int((t - whole) * 1_000_000))
    d = datetime.fromtimestamp(whole, tz=UTC).replace(microsecond=micro)
    return d.isoformat().replace("+00:00", "Z")


def _epoch(d: datetime | float | None) -> float | None:
    if d is None:
        return None
    if isinstance(d, (int, float)):
        if not math.isfinite(d):
            raise ApiError(422, "validation", "time must be a finite number of seconds")
        return float(d)
    if d.tzinfo is None:
        d = d.replace(tzinfo=UTC)
    try:
        return d.timestamp()
    except (OverflowError, OSError, ValueError) as exc:
        raise ApiError(422, "validation", f"time out of range: {d}") from exc


def _face_dict(face: Any) -> dict[str, Any]:
    return face.to_dict()


def _static_dir() -> Any:
    return resources.files("facegate.service").joinpath("static")


def create_app(
    config: Config | None = None,
    settings: ServiceSettings | None = None,
    *,
    pipeline: Any = None,
    gallery: Any = None,
) -> FastAPI:
    """Build the service over ``config``'s gallery (opened here) and the service database.

    ``pipeline`` replaces the models (tests and load tests pass a
    :class:`~facegate.service.synthetic.SyntheticPipeline`); ``gallery`` an already open
    gallery (then the caller closes it). The app closes what it opened on shutdown.
    """
    config = config or Config()
    settings = settings or ServiceSettings()
    parse_proxies(settings.trusted_proxies)  # a bad --trusted-proxy fails before anything opens
    metrics = Metrics()
    db = ServiceDB(settings.resolved_db(config))
    try:
        engine = Engine(config, settings, db, metrics, pipeline=pipeline, gallery=gallery)
    except BaseException:
        db.close()
        raise
    svc = Service(config, settings, db, engine, metrics)
    metrics.watch_gallery(engine.gallery.backend.counts)
    from facegate.service import events_out  # integrations (issue 24)

    hooks_worker = events_out.install(db, settings.events_out)  # integrations: outbox rows commit with access events

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.warmup:
            threading.Thread(target=engine.warmup, name="facegate-warmup", daemon=True).start()
        else:
            engine.warm.set()
        hooks_worker.start()  # integrations: delivery off the request path
        try:
            yield
        finally:
            hooks_worker.stop()  # integrations
            svc.close()

    app = FastAPI(
        title="facegate",
        version="1",
        description=(
            "Face access control: enrol people, decide allow/deny at gates, audit every decision. "
            "Authenticate with an API key in the X-API-Key header; roles: "
            + "; ".join(f"{r}: {', '.join(sorted(p))}" for r, p in ROLE_PERMISSIONS.items())
            + ". Errors are JSON {code, message}."
        ),
        lifespan=lifespan,
        default_response_class=SafeJSONResponse,
        docs_url=None,  # served below, from this machine only
        redoc_url=None,
    )
    app.state.svc = svc
    app.state.events_out = hooks_worker  # integrations (issue 24)
    install_handlers(app)
    # the last added runs first: metrics -> security headers -> CORS -> body limit -> routes
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_upload_bytes)
    if settings.cors_origins:
        app.add_middleware(
            _json_cors(),
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["X-API-Key", "Authorization", "Content-Type"],
            max_age=600,
        )
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(MetricsMiddleware, metrics=metrics)

    async def read_photos(request: Request, limit: int, per: str = "request") -> tuple[Any, list[tuple[str, bytes]]]:
        """The body and its photos (fields ``image``/``images``), at most ``limit`` of them."""
        body = await read_body(request, max_files=limit + 1, max_fields=10)
        photos = body.images("image", "images")
        if len(photos) > limit:
            raise ApiError(422, "validation", f"at most {limit} photos per {per}")
        return body, photos

    def ctx(request: Request) -> tuple[str | None, str]:
        p: Principal | None = getattr(request.state, "principal", None)
        return (p.key_id if p else None), svc.client_of(request)

    # -- health ------------------------------------------------------------------------------------
    @app.get("/healthz", response_model=S.HealthOut, tags=["health"], summary="Liveness: the process answers")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok"}

    @app.get(
        "/readyz", response_model=S.ReadyOut, tags=["health"], summary="Readiness: models loaded, databases reachable",
        responses={503: {"model": S.ReadyOut, "description": "not ready; reasons say why"}},
    )
    async def readyz() -> Any:
        ready, reasons = await run_in_threadpool(engine.readiness)
        return SafeJSONResponse({"ready": ready, "reasons": reasons}, status_code=200 if ready else 503)

    metrics_deps = [] if settings.metrics_public else [Depends(require("metrics:read"))]

    @app.get(
        "/metrics", tags=["health"], summary="Prometheus metrics", dependencies=metrics_deps,
        response_class=Response,
        responses={
            200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
            **({} if settings.metrics_public else {k: ERRORS[k] for k in (401, 403, 429)}),
        },
    )
    async def metrics_route() -> Response:
        body = await run_in_threadpool(metrics.render)
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    # -- who am I ------------------------------------------------------------------------------------
    @app.get(f"{API}/whoami", response_model=S.WhoAmIOut, tags=["keys"], responses=ERRORS,
             summary="The calling key's role and permissions")
    async def whoami(p: Principal = Depends(require(None))) -> dict[str, Any]:
        return {"key_id": p.key_id, "name": p.name, "role": p.role, "permissions": sorted(p.permissions)}

    # -- gate ---------------------------------------------------------------------------------------
    @app.post(
        f"{API}/gates/{{gate}}/check", response_model=S.GateCheckOut, tags=["gate"], responses=ERRORS,
        summary="allow/deny for the person in front of a gate (largest face), recorded as an access event",
        openapi_extra=image_body(["image"], description="a camera frame"),
    )
    async def gate_check(
        request: Request,
        gate: str = Path(pattern=GATE_PATTERN, description="the gate's name"),
        p: Principal = Depends(require("gate:check")),
    ) -> dict[str, Any]:
        body = await read_body(request, max_files=2)
        _, data = body.one_image("image")
        key_id, client = ctx(request)
        return await run_in_threadpool(engine.gate_check, gate, data, key_id=key_id, client=client)

    # -- analysis -----------------------------------------------------------------------------------
    @app.post(
        f"{API}/identify", response_model=S.IdentifyOut, tags=["faces"], responses=ERRORS,
        summary="Who is every face in the image (top-k candidates, each with the threshold it was held to, and "
        "the decision at the gallery's FPIR)",
        openapi_extra=image_body(["image"]),
    )
    async def identify(
        request: Request,
        k: int = Query(default=3, ge=1, le=50, description="candidates per face"),
        p: Principal = Depends(require("faces:analyse")),
    ) -> dict[str, Any]:
        body = await read_body(request, max_files=2)
        _, data = body.one_image("image")
        found, policy = await run_in_threadpool(engine.identify, data, k)
        faces = []
        for ident in found:
            d = ident.to_dict()
            d["decision"] = "allow" if ident.identity is not None else "deny"
            faces.append(d)
        return {"faces": faces, "decision": (found[0].policy if found else policy).to_dict()}

    @app.post(
        f"{API}/detect", response_model=S.DetectOut, tags=["faces"], responses=ERRORS,
        summary="Faces in the image: boxes, landmarks, detector scores", openapi_extra=image_body(["image"]),
    )
    async def detect(request: Request, p: Principal = Depends(require("faces:analyse"))) -> dict[str, Any]:
        body = await read_body(request, max_files=2)
        _, data = body.one_image("image")

        (width, height), faces = await run_in_threadpool(engine.detect, data)
        return {"width": width, "height": height, "faces": [_face_dict(f) for f in faces]}

    @app.post(
        f"{API}/verify", response_model=S.VerifyOut, tags=["faces"], responses=ERRORS,
        summary="Are the faces in two images the same person? (at the configured FAR)",
        openapi_extra=image_body(["image1", "image2"]),
    )
    async def verify(
        request: Request,
        pick: Literal["single", "largest", "center"] = Query(default="single", description="which face when several"),
        p: Principal = Depends(require("faces:analyse")),
    ) -> dict[str, Any]:
        body = await read_body(request, max_files=3)
        _, a = body.one_image("image1")
        _, b = body.one_image("image2")
        verdict, faces = await run_in_threadpool(engine.verify, a, b, pick)
        return {**verdict.to_dict(), "faces": [_face_dict(f) for f in faces]}

    # -- people -------------------------------------------------------------------------------------
    @app.get(f"{API}/people", response_model=S.PeopleOut, tags=["people"], responses=ERRORS, summary="Enrolled people")
    async def list_people(
        limit: int = Query(default=100, ge=1, le=1000),
        offset: int = Query(default=0, ge=0, le=MAX_ID),
        q: str | None = Query(default=None, max_length=200, description="name contains (case-insensitive)"),
        p: Principal = Depends(require("people:read")),
    ) -> dict[str, Any]:
        def work() -> dict[str, Any]:
            if q:
                needle = q.strip().casefold()
                matches = [x for x in engine.gallery.people() if needle in x.name.casefold()]
                return {"people": [x.to_dict() for x in matches[offset : offset + limit]], "total": len(matches),
                        "limit": limit, "offset": offset}
            total = engine.gallery.backend.counts()[0]
            people = engine.gallery.people(limit, offset) if offset < total else []
            return {"people": [x.to_dict() for x in people], "total": total, "limit": limit, "offset": offset}

        return await run_in_threadpool(work)

    enrol_body = image_body(
        [], plural="images", text_fields={"name": {"type": "string", "minLength": 1, "maxLength": 200}},
        required_text=["name"],
        description="the person's name and one or more photos (each must show only them)",
    )

    @app.post(
        f"{API}/people", response_model=S.EnrolOut, status_code=201, tags=["people"],
        responses={**ERRORS, 200: {"model": S.EnrolOut, "description": "photos added to an existing person of that name"}},
        summary="Enrol a person from photos (added to the person if the name exists)", openapi_extra=enrol_body,
    )
    async def enrol(
        request: Request,
        pick: Literal["single", "largest"] = Query(default="single", description="photos with several faces: refuse or take the largest"),
        p: Principal = Depends(require("people:write")),
    ) -> Any:
        body, photos = await read_photos(request, settings.max_images)
        name = clean_text(body.fields.get("name"), "name")
        key_id, client = ctx(request)
        out = await run_in_threadpool(engine.enrol, name, photos, pick=pick, key_id=key_id, client=client)
        return SafeJSONResponse(S.EnrolOut(**out).model_dump(), status_code=201 if out["created"] else 200)

    @app.post(
        f"{API}/enrol/batch", response_model=S.BatchEnrolOut, tags=["people"], responses=ERRORS,
        summary="Bulk enrolment: photos of several people, each file named PERSON/PHOTO (a folder upload); "
        "photos already enrolled for that name (same sha256) are skipped",
        openapi_extra=image_body([], plural="images", description="files named <person>/<photo> (the person is "
                                 "the folder the photo is in)"),
    )
    async def enrol_batch(
        request: Request,
        pick: Literal["single", "largest"] = Query(default="single"),
        p: Principal = Depends(require("people:write")),
    ) -> dict[str, Any]:
        _, photos = await read_photos(request, settings.max_batch_images, "batch request")
        by_person: dict[str, list[tuple[str, bytes]]] = {}
        for filename, data in photos:
            parts = [x for x in str(filename).replace("\\", "/").split("/") if x]
            if len(parts) < 2:
                raise ApiError(422, "validation", f"file {filename!r} is not named PERSON/PHOTO")
            by_person.setdefault(clean_text(parts[-2], "person folder name"), []).append(("/".join(parts[-2:]), data))
        key_id, client = ctx(request)
        return await run_in_threadpool(engine.enrol_batch, by_person, pick=pick, key_id=key_id, client=client)

    # -- access lists ------------------------------------------------------------------------------
    @app.get(f"{API}/access/rules", response_model=S.AccessRulesOut, tags=["access"], responses=ERRORS,
             summary="Access-list rules (of one gate with ?gate=); a gate without rules admits every recognised person")
    async def access_rules(
        gate: str | None = Query(default=None, pattern=GATE_PATTERN), p: Principal = Depends(require("people:read"))
    ) -> dict[str, Any]:
        from facegate.service import access

        return {"rules": [r.to_dict() for r in await run_in_threadpool(access.rules, db, gate)]}

    @app.post(f"{API}/access/rules", response_model=S.AccessRuleOut, status_code=201, tags=["access"],
              responses=ERRORS, summary="Permit a person or a group at a gate, optionally in a weekly time window")
    async def access_rule_add(
        request: Request, body: S.AccessRuleIn, p: Principal = Depends(require("access:manage"))
    ) -> dict[str, Any]:
        from facegate.service import access

        key_id, client = ctx(request)

        def work() -> dict[str, Any]:
            if body.person_id is not None:
                engine.gallery.person(body.person_id)  # 404 for somebody not enrolled
            try:
                rule = access.add_rule(db, body.gate, person_id=body.person_id, group=body.group, days=body.days,
                                       start=body.start, end=body.end, tz=body.tz)
            except access.AccessError as exc:
                raise ApiError(422, "validation", str(exc)) from exc
            db.add_event("audit", action="access_rule_add", gate=body.gate, person_id=body.person_id, key_id=key_id,
                         client=client, detail=rule.to_dict())
            return rule.to_dict()

        return await run_in_threadpool(work)

    @app.delete(f"{API}/access/rules/{{rule_id}}", tags=["access"], responses=ERRORS, summary="Remove an access rule")
    async def access_rule_delete(
        request: Request, rule_id: int = Path(ge=1, le=MAX_ID), p: Principal = Depends(require("access:manage"))
    ) -> dict[str, Any]:
        from facegate.service import access

        key_id, client = ctx(request)

        def work() -> dict[str, Any]:
            if not access.delete_rule(db, rule_id):
                raise ApiError(404, "not_found", f"no access rule with id {rule_id}")
            db.add_event("audit", action="access_rule_delete", key_id=key_id, client=client, detail={"rule": rule_id})
            return {"deleted": rule_id}

        return await run_in_threadpool(work)

    @app.get(f"{API}/access/groups", response_model=S.GroupsOut, tags=["access"], responses=ERRORS,
             summary="Access groups and their members (person ids)")
    async def access_groups(p: Principal = Depends(require("people:read"))) -> dict[str, Any]:
        from facegate.service import access

        return {"groups": await run_in_threadpool(access.groups, db)}

    GROUP = Path(min_length=1, max_length=200, description="the group's name")

    @app.post(f"{API}/access/groups/{{group}}/members", response_model=S.GroupOut, tags=["access"], responses=ERRORS,
              summary="Add people to a group (created on first use)")
    async def access_group_add(
        request: Request, body: S.GroupMembersIn, group: str = GROUP, p: Principal = Depends(require("access:manage"))
    ) -> dict[str, Any]:
        from facegate.service import access

        name = clean_text(group, "group")
        key_id, client = ctx(request)

        def work() -> dict[str, Any]:
            for pid in body.person_ids:
                engine.gallery.person(int(pid))  # 404 for somebody not enrolled
            out = access.add_members(db, name, list(body.person_ids))
            db.add_event("audit", action="access_group_add", key_id=key_id, client=client,
                         detail={"group": name, "person_ids": list(body.person_ids)})
            return out

        return await run_in_threadpool(work)

    @app.delete(f"{API}/access/groups/{{group}}/members/{{person_id}}", response_model=S.GroupOut, tags=["access"],
                responses=ERRORS, summary="Remove a person from a group")
    async def access_group_remove(
        request: Request, group: str = GROUP, person_id: int = Path(ge=1, le=MAX_ID),
        p: Principal = Depends(require("access:manage")),
    ) -> dict[str, Any]:
        from facegate.service import access

        key_id, client = ctx(request)

        def work() -> dict[str, Any]:
            try:
                out = access.remove_members(db, group, [person_id])
            except access.AccessError as exc:
                raise ApiError(404, "not_found", str(exc)) from exc
            db.add_event("audit", action="access_group_remove", person_id=person_id, key_id=key_id, client=client,
                         detail={"group": group})
            return out

        return await run_in_threadpool(work)

    PID = Path(ge=1, le=MAX_ID, description="person id")

    @app.get(f"{API}/people/{{person_id}}", response_model=S.PersonDetailOut, tags=["people"], responses=ERRORS,
             summary="A person and their stored faces")
    async def get_person(person_id: int = PID, p: Principal = Depends(require("people:read"))) -> dict[str, Any]:
        def work() -> dict[str, Any]:
            person = engine.gallery.person(person_id)
            return {"person": person.to_dict(), "faces": [f.to_dict() for f in engine.gallery.faces(person_id)]}

        return await run_in_threadpool(work)

    @app.patch(f"{API}/people/{{person_id}}", response_model=S.PersonOut, tags=["people"], responses=ERRORS,
               summary="Rename a person", openapi_extra=json_body(S.RenameIn))
    async def rename_person(
        request: Request, person_id: int = PID, p: Principal = Depends(require("people:write"))
    ) -> dict[str, Any]:
        body = await read_model(request, S.RenameIn)  # after the key is checked: 401 before 422
        name = clean_text(body.name, "name")
        key_id, client = ctx(request)

        person = await run_in_threadpool(engine.rename, person_id, name, key_id=key_id, client=client)
        return person.to_dict()

    @app.delete(f"{API}/people/{{person_id}}", response_model=S.DeletePersonOut, tags=["people"], responses=ERRORS,
                summary="Delete a person: faces, embeddings, crops, index entries, event images (decisions stay)")
    async def delete_person(request: Request, person_id: int = PID, p: Principal = Depends(require("people:write"))) -> dict[str, Any]:
        key_id, client = ctx(request)
        return await run_in_threadpool(engine.delete_person, person_id, key_id=key_id, client=client)

    @app.post(
        f"{API}/people/{{person_id}}/faces", response_model=S.EnrolOut, tags=["people"], responses=ERRORS,
        summary="Enrol more photos of an existing person",
        openapi_extra=image_body([], plural="images", description="one or more photos of the person"),
    )
    async def add_faces(
        request: Request,
        person_id: int = PID,
        pick: Literal["single", "largest"] = Query(default="single"),
        p: Principal = Depends(require("people:write")),
    ) -> dict[str, Any]:
        _, photos = await read_photos(request, settings.max_images)
        key_id, client = ctx(request)
        person = await run_in_threadpool(engine.gallery.person, person_id)
        return await run_in_threadpool(engine.enrol, person.name, photos, create=False, pick=pick, key_id=key_id, client=client)

    FID = Path(ge=1, le=MAX_ID, description="face id")

    @app.delete(f"{API}/people/{{person_id}}/faces/{{face_id}}", response_model=S.DeleteFaceOut, tags=["people"],
                responses=ERRORS, summary="Delete one face (the person goes too with their last face)")
    async def delete_face(request: Request, person_id: int = PID, face_id: int = FID,
                          p: Principal = Depends(require("people:write"))) -> dict[str, Any]:
        key_id, client = ctx(request)
        return await run_in_threadpool(engine.delete_face, person_id, face_id, key_id=key_id, client=client)

    @app.get(
        f"{API}/people/{{person_id}}/faces/{{face_id}}/thumbnail", tags=["people"], response_class=Response,
        responses={**ERRORS, 200: {"content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}}}},
        summary="The stored face crop (JPEG)",
    )
    async def thumbnail(person_id: int = PID, face_id: int = FID, p: Principal = Depends(require("people:read"))) -> Response:
        jpeg = await run_in_threadpool(engine.thumbnail, person_id, face_id)
        return Response(jpeg, media_type="image/jpeg")  # no-store like all API answers: a face crop

    @app.get(f"{API}/gallery", response_model=S.StatsOut, tags=["people"], responses=ERRORS,
             summary="Gallery size, model and decision threshold")
    async def gallery_stats(p: Principal = Depends(require("people:read"))) -> dict[str, Any]:
        return await run_in_threadpool(engine.stats)

    # -- events -------------------------------------------------------------------------------------
    @app.get(f"{API}/events", response_model=S.EventsOut, tags=["events"], responses=ERRORS,
             summary="The audit trail, newest first: access decisions, failed authentications, admin actions")
    async def events(
        person_id: int | None = Query(default=None, ge=1, le=MAX_ID),
        gate: str | None = Query(default=None, pattern=GATE_PATTERN),
        kind: Literal["access", "auth_failure", "audit"] | None = Query(default=None),
        decision: Literal["allow", "deny"] | None = Query(default=None),
        since: float | datetime | None = Query(default=None, description="from: ISO 8601 (UTC if no zone) or unix seconds"),
        until: float | datetime | None = Query(default=None, description="before: ISO 8601 (UTC if no zone) or unix seconds"),
        before_id: int | None = Query(default=None, ge=1, le=MAX_ID, description="page: events older than this id"),
        limit: int = Query(default=100, ge=1, le=1000),
        p: Principal = Depends(require("events:read")),
    ) -> dict[str, Any]:
        t0, t1 = _epoch(since), _epoch(until)

        def work() -> dict[str, Any]:
            rows = db.events(kind=kind, person_id=person_id, gate=gate, decision=decision, since=t0, until=t1,
                             before_id=before_id, limit=limit + 1)
            more = len(rows) > limit
            rows = rows[:limit]
            for r in rows:
                r["time"] = _iso(r["at"])
            return {"events": rows, "next_before_id": rows[-1]["id"] if more and rows else None}

        return await run_in_threadpool(work)

    @app.get(
        f"{API}/events/{{event_id}}/image", tags=["events"], response_class=Response,
        responses={**ERRORS, 200: {"content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}}}},
        summary="The face crop kept with an access event (only with --keep-event-images)",
    )
    async def event_image(event_id: int = Path(ge=1, le=MAX_ID), p: Principal = Depends(require("events:read"))) -> Response:
        jpeg = await run_in_threadpool(db.event_image, event_id)
        if jpeg is None:
            raise ApiError(404, "not_found", f"no image kept for event {event_id}")
        return Response(jpeg, media_type="image/jpeg")

    # -- keys ---------------------------------------------------------------------------------------
    @app.post(f"{API}/keys", response_model=S.KeyCreatedOut, status_code=201, tags=["keys"], responses=ERRORS,
              summary="Create an API key (the secret is shown once)", openapi_extra=json_body(S.KeyCreateIn))
    async def keys_create(request: Request, p: Principal = Depends(require("keys:manage"))) -> dict[str, Any]:
        body = await read_model(request, S.KeyCreateIn)  # after the key is checked: 401 before 422
        name = clean_text(body.name, "name") if body.name.strip() else ""
        key_id, client = ctx(request)

        def work() -> dict[str, Any]:
            out = create_key(db, body.role, name)
            db.add_event("audit", action="key_create", key_id=key_id, client=client,
                         detail={"key": out["id"], "role": out["role"], "name": name})
            return out

        return await run_in_threadpool(work)

    @app.get(f"{API}/keys", response_model=S.KeysOut, tags=["keys"], responses=ERRORS, summary="API keys (no secrets)")
    async def keys_list(p: Principal = Depends(require("keys:manage"))) -> dict[str, Any]:
        return {"keys": await run_in_threadpool(db.list_keys)}

    @app.delete(f"{API}/keys/{{key_id}}", response_model=S.KeyOut, tags=["keys"], responses=ERRORS,
                summary="Revoke an API key (effective on its next request)")
    async def keys_revoke(
        request: Request,
        key_id: str = Path(pattern=r"^[0-9a-f]{10}$"),
        p: Principal = Depends(require("keys:manage")),
    ) -> dict[str, Any]:
        actor, client = ctx(request)

        if key_id == actor:
            raise ApiError(409, "self_revoke", "a key cannot revoke itself; revoke it with another admin key")

        def work() -> dict[str, Any]:
            if not db.revoke_key(key_id):
                row = db.get_key(key_id)
                if row is None:
                    raise ApiError(404, "not_found", f"no API key with id {key_id}")
                raise ApiError(409, "already_revoked", f"key {key_id} is already revoked")
            db.add_event("audit", action="key_revoke", key_id=actor, client=client, detail={"key": key_id})
            row = db.get_key(key_id)
            assert row is not None
            row.pop("hash", None)
            return row

        return await run_in_threadpool(work)

    @app.get(f"{API}/roles", tags=["keys"], summary="What each role may do (public: no secrets here)")
    async def roles() -> dict[str, Any]:
        return {"permissions": PERMISSIONS, "roles": {r: sorted(p) for r, p in ROLE_PERMISSIONS.items()}}

    # -- integrations (issue 24): the CompreFace-compatible API and hook administration -----------------
    from facegate.service.compat import compreface
    from facegate.service.events_out import router as hooks_router

    app.include_router(compreface.router(require))
    app.include_router(hooks_router.router(require))

    # -- API docs ------------------------------------------------------------------------------------
    if settings.docs:
        from fastapi.responses import HTMLResponse, PlainTextResponse

        assets = swagger_ui_assets()
        if assets is not None:
            from fastapi.staticfiles import StaticFiles

            app.mount("/docs/assets", StaticFiles(directory=str(assets)), name="docs-assets")

            @app.get("/docs/init.js", include_in_schema=False)
            async def docs_init() -> Response:
                return PlainTextResponse(SWAGGER_INIT, media_type="text/javascript")

        @app.get("/docs", include_in_schema=False)
        async def docs() -> HTMLResponse:
            return HTMLResponse(SWAGGER_HTML if assets is not None else _offline_docs(app.openapi()))

    # -- the web page --------------------------------------------------------------------------------
    if settings.static:
        from fastapi.staticfiles import StaticFiles

        @app.get("/", include_in_schema=False)
        async def root() -> RedirectResponse:
            return RedirectResponse("/ui/")

        app.mount("/ui", StaticFiles(directory=str(_static_dir()), html=True), name="ui")

    return app
