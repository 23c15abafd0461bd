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

from facegate.cli.common import config_from_args, emit
from facegate.cli.core import far_arg as _far
from facegate.cli.core import fpir_arg as _fpir
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
        "  facegate serve                                    http://127.0.0.1:8000/ui/ (FPIR 1e-2)\n"
        "  facegate serve --fpir 1e-3                        name at most 1 stranger in 1,000\n"
        "  facegate serve --host 0.0.0.0 --ssl-certfile c.pem --ssl-keyfile k.pem\n"
        "notes: browsers allow the camera only on https or on localhost/127.0.0.1; on plain http\n"
        "keys cross the network readable, so expose the service beyond loopback only behind TLS.",
    )
    g = p.add_mutually_exclusive_group()
    g.add_argument("--fpir", type=_fpir, help="identify and gate checks: false-positive identification rate (share "
                   "of strangers named, default 1e-2); the threshold follows from the gallery's size")
    g.add_argument("--threshold", type=float, help="explicit cosine threshold for every decision (the FAR/FPIR the "
                   "calibrated table gives for it is reported)")
    p.add_argument("--far", type=_far, help="1:1 /verify only: per-comparison false-accept rate (default 1e-3)")
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
                   help="honour X-Forwarded-For only from this reverse-proxy address or network (repeatable; "
                   "default: none, so the TCP peer is the client)")
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

    aparents = [common, service_options()]
    p = sub.add_parser(
        "access", parents=aparents, formatter_class=fmt,
        help="per-gate access lists: who (people or groups) may pass which gate, and when",
        description="A gate with no rule admits every recognised person; a gate with rules admits only the people "
        "its rules permit (directly or through a group), inside the rule's weekly time window if it has one. "
        "Every gate decision records the rule that decided.",
        epilog="examples:\n"
        "  facegate access allow front-door --person 'Ada Lovelace'\n"
        "  facegate access group staff Ada Bob                       add people to group 'staff'\n"
        "  facegate access allow lab --group staff --days mon-fri --from 08:00 --until 18:30 --tz Europe/London\n"
        "  facegate access list --gate lab\n"
        "  facegate access remove 3                                  rule id from 'access list'",
    )
    asub = p.add_subparsers(dest="access_command", metavar="SUBCOMMAND")
    q = asub.add_parser("list", parents=aparents, help="rules (of one gate) and groups")
    q.add_argument("--gate", default=None)
    q.set_defaults(func=cmd_access_list)
    q = asub.add_parser("allow", parents=aparents, help="permit a person or a group at a gate")
    q.add_argument("gate")
    who = q.add_mutually_exclusive_group(required=True)
    who.add_argument("--person", help="enrolled name or id")
    who.add_argument("--group", help="a group made with 'facegate access group'")
    q.add_argument("--days", help="e.g. mon-fri or sat,sun (default: every day)")
    q.add_argument("--from", dest="start", metavar="HH:MM", help="window start")
    q.add_argument("--until", dest="end", metavar="HH:MM", help="window end (at or before --from: crosses midnight)")
    q.add_argument("--tz", help="IANA time zone of the window (default UTC)")
    q.set_defaults(func=cmd_access_allow)
    q = asub.add_parser("remove", parents=aparents, help="remove a rule by its id")
    q.add_argument("rule_id", type=int)
    q.set_defaults(func=cmd_access_remove)
    q = asub.add_parser("group", parents=aparents, help="add people to a group (created on first use)")
    q.add_argument("group")
    q.add_argument("people", nargs="+", help="enrolled names or ids")
    q.add_argument("--remove", action="store_true", help="remove them from the group instead")
    q.set_defaults(func=cmd_access_group)
    q = asub.add_parser("delete-group", parents=aparents, help="delete a group and the rules that name it")
    q.add_argument("group")
    q.set_defaults(func=cmd_access_delete_group)
    p.set_defaults(func=cmd_access_list, gate=None)


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
    from facegate.service.server import uvicorn_options

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
        ssl_certfile=args.ssl_certfile, ssl_keyfile=args.ssl_keyfile, **uvicorn_options(settings),
    )
    return 0


# -- access lists ------------------------------------------------------------------------------------
def _person_ids(args: argparse.Namespace, refs: list[str]) -> list[tuple[int, str]]:
    """(id, name) of enrolled people given by name or id."""
    from facegate.gallery import open_gallery

    with open_gallery(_config(args)) as g:
        out = []
        for ref in refs:
            p = g.person(ref)
            out.append((p.id, p.name))
        return out


def _access_call(args: argparse.Namespace, fn: Any, *a: Any, **kw: Any) -> Any:
    from facegate.service.access import AccessError

    db = _db(args)
    try:
        return fn(db, *a, **kw)
    except AccessError as exc:
        raise UsageError(str(exc)) from exc
    finally:
        db.close()


def cmd_access_list(args: argparse.Namespace) -> int:
    from facegate.service import access

    rules = _access_call(args, access.rules, args.gate)
    groups = _access_call(args, access.groups)

    def text() -> str:
        lines = [f"{'rule':>5}  {'gate':<20} {'who':<30} window"]
        for r in rules:
            who = f"group {r.group}" if r.group_id is not None else f"person {r.person_id}"
            lines.append(f"{r.id:>5}  {r.gate:<20} {who:<30} {r.window()}")
        if not rules:
            lines = ["no access rules: every gate admits every recognised person"]
        lines += [f"group {g['name']}: {len(g['members'])} member(s) {g['members']}" for g in groups]
        return "\n".join(lines)

    emit(args, {"rules": [r.to_dict() for r in rules], "groups": groups}, text)
    return 0


def cmd_access_allow(args: argparse.Namespace) -> int:
    from facegate.service import access

    pid = _person_ids(args, [args.person])[0][0] if args.person else None
    rule = _access_call(args, access.add_rule, args.gate, person_id=pid, group=args.group, days=args.days,
                        start=args.start, end=args.end, tz=args.tz)
    _access_call(args, lambda db: db.add_event("audit", action="access_rule_add", gate=args.gate, person_id=pid,
                                               client="cli", detail=rule.to_dict()))
    who = f"group {rule.group}" if rule.group else f"person {pid} ({args.person})"
    emit(args, rule.to_dict(), f"rule {rule.id}: {who} may pass {rule.gate} ({rule.window()})")
    return 0


def cmd_access_remove(args: argparse.Namespace) -> int:
    from facegate.service import access

    if not _access_call(args, access.delete_rule, args.rule_id):
        raise UsageError(f"no access rule with id {args.rule_id}")
    _access_call(args, lambda db: db.add_event("audit", action="access_rule_delete", client="cli",
                                               detail={"rule": args.rule_id}))
    emit(args, {"deleted": args.rule_id}, f"removed rule {args.rule_id}")
    return 0


def cmd_access_group(args: argparse.Namespace) -> int:
    from facegate.service import access

    people = _person_ids(args, args.people)
    fn = access.remove_members if args.remove else access.add_members
    out = _access_call(args, fn, args.group, [pid for pid, _ in people])
    names = ", ".join(n for _, n in people)
    emit(args, out, f"{'removed' if args.remove else 'added'} {names} {'from' if args.remove else 'to'} group "
         f"{out['name']} ({len(out['members'])} member(s))")
    return 0


def cmd_access_delete_group(args: argparse.Namespace) -> int:
    from facegate.service import access

    if not _access_call(args, access.delete_group, args.group):
        raise UsageError(f"no access group named {args.group!r}")
    emit(args, {"deleted": args.group}, f"deleted group {args.group} and the rules that named it")
    return 0
