"""Service commands: ``facegate serve`` and ``facegate keys create|list|revoke``.

Thin wrappers over :mod:`facegate.service`. Keys are managed here, on the server's own
machine, because the first admin key cannot come from the API (deny by default).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from facegate.cli import config_from_args, emit
from facegate.cli.core import far_arg as _far
from facegate.errors import UsageError

log = logging.getLogger(__name__)




def service_options() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("service options")
    g.add_argument("--backend", choices=["sqlite", "milvus"], default=argparse.SUPPRESS,
                   help="gallery backend: sqlite (default) or milvus")
    g.add_argument("--milvus-uri", default=argparse.SUPPRESS, help="Milvus server or milvus-lite file")
    g.add_argument("--service-db", default=argparse.SUPPRESS,
                   help="keys and audit log database (default: <gallery>.service.sqlite beside the gallery)")
    return p


def _config(args: argparse.Namespace) -> Any:
    over: dict[str, Any] = {}
    for name in ("backend", "milvus_uri"):
        if getattr(args, name, None) is not None:
            over[name] = getattr(args, name)
    return config_from_args(args, **over)


def _settings(args: argparse.Namespace, **fields: Any) -> Any:
    from facegate.service.settings import ServiceSettings

    if getattr(args, "service_db", None):
        fields["db_path"] = Path(args.service_db)
    return ServiceSettings(**fields)


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    parents = [common, service_options()]

    p = sub.add_parser(
        "serve", parents=parents, formatter_class=fmt,
        help="run the access-control REST service and operator web page",
        description="Serve the REST API (/api/v1/..., schema at /openapi.json), health (/healthz, /readyz), "
        "Prometheus metrics (/metrics) and the operator web page (/ui/) over the gallery. Every API call "
        "needs a key: create the first one with 'facegate keys create --role admin'.",
        epilog="examples:\n"
        "  facegate keys create --role admin --name ops      the first key (printed once)\n"
        "  facegate serve --threshold 0.6                     http://127.0.0.1:8000/ui/\n"
        "  facegate serve --host 0.0.0.0 --ssl-certfile c.pem --ssl-keyfile k.pem\n"
        "notes: browsers allow the camera only on https or on localhost/127.0.0.1; on plain http\n"
        "keys cross the network readable, so expose the service beyond loopback only behind TLS.",
    )
    g = p.add_mutually_exclusive_group()
    g.add_argument("--far", type=_far, help="false-accept rate of the decision threshold (default 1e-3, calibrated)")
    g.add_argument("--threshold", type=float, help="explicit cosine threshold (the reported FAR is then null)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                   help="allow browser calls from this origin (repeatable; default: none, CORS closed)")
    p.add_argument("--max-upload-mb", type=float, default=16.0, help="largest request body in MiB (default 16)")
    p.add_argument("--max-pixels", type=int, default=None, help="largest decoded image in pixels (default 60 million)")
    p.add_argument("--keep-event-images", action="store_true",
                   help="store the face crop with every access event (default: decisions only)")
    p.add_argument("--auth-fail-limit", type=int, default=10,
                   help="failed authentications per address per minute before it is locked out (default 10)")
    p.add_argument("--metrics-public", action="store_true", help="serve /metrics without a key")
    p.add_argument("--trusted-proxy", action="append", default=[], metavar="ADDR",
                   help="honour X-Forwarded-For from this reverse-proxy address (repeatable)")
    p.add_argument("--no-warmup", action="store_true", help="load the models on the first request instead of at start")
    p.add_argument("--ssl-certfile", help="serve https with this certificate (PEM)")
    p.add_argument("--ssl-keyfile", help="the certificate's private key (PEM)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("keys", parents=parents, help="create, list or revoke API keys of the service")
    ksub = p.add_subparsers(dest="keys_command", metavar="SUBCOMMAND")
    q = ksub.add_parser("create", parents=parents, help="create a key; the secret is printed once",
                        description="Roles: admin (enrol, delete, keys, everything), gate (gate checks, identify, "
                        "detect, verify), viewer (people list, events, metrics).")
    q.add_argument("--role", required=True, choices=["admin", "gate", "viewer"])
    q.add_argument("--name", default="", help="what the key is for, e.g. 'gate 3 camera'")
    q.set_defaults(func=cmd_keys_create)
    q = ksub.add_parser("list", parents=parents, help="list keys (ids, roles, last use; never secrets)")
    q.set_defaults(func=cmd_keys_list)
    q = ksub.add_parser("revoke", parents=parents, help="revoke a key by its id (effective immediately)")
    q.add_argument("key_id", help="the 10-hex-digit id from 'facegate keys list' (the part after fg_)")
    q.set_defaults(func=cmd_keys_revoke)
    p.set_defaults(func=cmd_keys_list)


def _db(args: argparse.Namespace) -> Any:
    from facegate.service.db import ServiceDB

    config = _config(args)
    return ServiceDB(_settings(args).resolved_db(config))


def cmd_keys_create(args: argparse.Namespace) -> int:
    from facegate.service.auth import create_key

    db = _db(args)
    try:
        out = create_key(db, args.role, args.name)
        path = db.path
    finally:
        db.close()
    # Only the secret on stdout, so that KEY=$(facegate keys create ...) captures exactly the key.
    emit(args, out, out["key"])
    if not getattr(args, "json", False):
        print(f"facegate: created a {out['role']} key (id {out['id']}), stored hashed in {path}; "
              "this is the only time the secret is shown", file=sys.stderr)
    return 0


def cmd_keys_list(args: argparse.Namespace) -> int:
    import datetime as dt

    db = _db(args)
    try:
        keys = db.list_keys()
    finally:
        db.close()

    def when(t: float | None) -> str:
        return dt.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M") if t else "-"

    def text() -> str:
        rows = [f"{'id':<10}  {'role':<6}  {'created':<16}  {'last used':<16}  {'revoked':<16}  name"]
        rows += [f"{k['id']:<10}  {k['role']:<6}  {when(k['created']):<16}  {when(k['last_used']):<16}  "
                 f"{when(k['revoked']):<16}  {k['name']}" for k in keys]
        return "\n".join(rows) if keys else "no keys yet; create one with 'facegate keys create --role admin'"

    emit(args, {"keys": keys}, text)
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    db = _db(args)
    try:
        if not db.revoke_key(args.key_id):
            row = db.get_key(args.key_id)
            raise UsageError(f"no API key with id {args.key_id!r}" if row is None else f"key {args.key_id} is already revoked")
        db.add_event("audit", action="key_revoke", client="cli", detail={"key": args.key_id})
    finally:
        db.close()
    emit(args, {"revoked": args.key_id}, f"revoked key {args.key_id}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn
    except ImportError as exc:
        raise UsageError("the service needs its dependencies: pip install fastapi uvicorn python-multipart prometheus-client") from exc
    from facegate.service import create_app
    from facegate.service.errors import ApiError

    if bool(args.ssl_certfile) != bool(args.ssl_keyfile):
        raise UsageError("--ssl-certfile and --ssl-keyfile go together")
    if not 1 <= args.port <= 65535:
        raise UsageError(f"--port {args.port} is not a TCP port")
    over: dict[str, Any] = {}
    if args.max_pixels:
        over["max_pixels"] = args.max_pixels
    config = _config(args).replace(**over) if over else _config(args)
    settings = _settings(
        args,
        cors_origins=tuple(args.cors_origin),
        max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
        keep_event_images=args.keep_event_images,
        auth_fail_limit=args.auth_fail_limit,
        metrics_public=args.metrics_public,
        trusted_proxies=tuple(args.trusted_proxy),
        warmup=not args.no_warmup,
    )
    app = create_app(config, settings)
    try:
        app.state.svc.engine.decision_threshold()  # fail now, not on the first gate check
    except ApiError as exc:
        app.state.svc.close()
        raise UsageError(exc.message) from exc
    if args.host not in ("127.0.0.1", "localhost", "::1") and not args.ssl_certfile:
        log.warning("serving plain http on %s: API keys cross the network readable; put TLS in front", args.host)
    scheme = "https" if args.ssl_certfile else "http"
    print(f"facegate: serving on {scheme}://{args.host}:{args.port}/ui/ (API /api/v1, schema /openapi.json)", flush=True)
    level = {0: "warning", 1: "info"}.get(getattr(args, "verbose", 0) or 0, "debug")
    uvicorn.run(
        app, host=args.host, port=args.port, log_level=level, access_log=bool(getattr(args, "verbose", 0)),
        ssl_certfile=args.ssl_certfile, ssl_keyfile=args.ssl_keyfile, timeout_keep_alive=15,
        limit_concurrency=1000, server_header=False,
    )
    return 0
