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

from facegate.cli.args import float_arg, int_arg, name_arg, person_arg, text_arg, time_zone_arg
from facegate.cli.common import config_from_args, emit
from facegate.cli.core import far_arg as _far
from facegate.cli.core import fpir_arg as _fpir
from facegate.cli.core import threshold_arg
from facegate.config import machine_time_zone
from facegate.errors import NotFoundError, UsageError

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
    parents = [common, service_options()]

    p = sub.add_parser(
        "serve", parents=parents,
        help="run the access-control REST service and operator web page",
        description="Serve the REST API (/api/v1/..., schema and docs at /openapi.json and /docs) and the operator "
        "web page (/ui/) over the gallery. Every API call needs a key: 'facegate keys create --role admin'.",
        example="facegate serve --port 8000 --fpir 1e-3",
        epilog="Also: health (/healthz, /readyz) and Prometheus metrics (/metrics).\n\n"
        "examples:\n"
        "  facegate keys create --role admin --name ops      the first key (printed once)\n"
        "  facegate serve                                    http://127.0.0.1:8000/ui/ (FPIR 1e-2)\n"
        "  facegate serve --fpir 1e-3                        name at most 1 stranger in 1,000\n"
        "  facegate serve --host 0.0.0.0 --ssl-certfile c.pem --ssl-keyfile k.pem\n"
        "notes: browsers allow the camera only on https or on localhost/127.0.0.1; on plain http\n"
        "keys cross the network readable, so expose the service beyond loopback only behind TLS.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1); 127.0.0.1: this machine only")
    p.add_argument("--port", type=int_arg(1, 65535), default=8000, help="port (default 8000)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--fpir", type=_fpir, help="identify, gates: share of strangers named (default 1e-2); the "
                   "false-positive identification rate, the threshold follows from the gallery's size")
    g.add_argument("--threshold", type=threshold_arg, help="explicit cosine threshold for every decision; the "
                   "FAR/FPIR the calibrated table gives for it is reported")
    p.add_argument("--far", type=_far, help="/verify only: false-accept rate (default 1e-3)")
    p.add_argument("--time-zone", type=time_zone_arg, default=None, metavar="ZONE",
                   help=f"time zone of access-rule hours (default {machine_time_zone()}, this machine's); "
                   "the site's IANA zone: rules made without a zone get it")
    p.add_argument("--ssl-certfile", metavar="CERT.pem", help="serve https with this certificate")
    p.add_argument("--ssl-keyfile", metavar="KEY.pem", help="the certificate's private key")
    p.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                   help="allow browser calls from this origin (repeatable); default: none, CORS closed")
    m = p.add_argument_group("more options")
    m.add_argument("--max-upload-mb", type=float_arg(0.0, 4096.0, lo_open=True), default=16.0,
                   help="largest request body in MiB (default 16)")
    m.add_argument("--max-pixels", type=int_arg(1, 10**10), default=None,
                   help="largest decoded image in pixels (default 60 million)")
    m.add_argument("--keep-event-images", action="store_true",
                   help="store the face crop with every access event (default: decisions only)")
    m.add_argument("--auth-fail-limit", type=int_arg(1, 10**6), default=10,
                   help="failed authentications per address per minute before it is locked out (default 10)")
    m.add_argument("--metrics-public", action="store_true", help="serve /metrics without a key")
    m.add_argument("--trusted-proxy", action="append", default=[], metavar="ADDR",
                   help="honour X-Forwarded-For only from this reverse-proxy address or network (repeatable); "
                   "default: none, so the TCP peer is the client")
    m.add_argument("--no-warmup", action="store_true", help="load the models on the first request, not at start")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("keys", parents=parents, help="create, list or revoke API keys of the service",
                       description="API keys of the service, stored hashed beside the gallery (without a "
                       "sub-command: list them).",
                       example="KEY=$(facegate keys create --role admin --name ops)")
    ksub = p.add_subparsers(dest="keys_command", metavar="SUBCOMMAND")
    q = ksub.add_parser("create", parents=parents, help="create a key; the secret is printed once",
                        description="Create an API key and print its secret, alone on standard output, once. Roles: "
                        "admin (enrol, delete, keys, everything), gate (gate checks, identify, detect, verify), "
                        "viewer (people list, events, metrics).",
                        example="KEY=$(facegate keys create --role gate --name 'front door camera')")
    q.add_argument("--role", required=True, choices=["admin", "gate", "viewer"], help="what the key may do (required)")
    q.add_argument("--name", type=text_arg(empty=True), default="", help="what the key is for, e.g. 'gate 3 camera'")
    q.set_defaults(func=cmd_keys_create)
    q = ksub.add_parser("list", parents=parents, help="list keys (ids, roles, last use; never secrets)",
                        description="Every key: id, role, when created, last used and revoked (never the secrets).",
                        example="facegate keys list --json")
    q.set_defaults(func=cmd_keys_list)
    q = ksub.add_parser("revoke", parents=parents, help="revoke a key by its id (effective immediately)",
                        description="Revoke a key by its id; it is refused from the next request on.",
                        example="facegate keys revoke 3f9a1c0b2e")
    q.add_argument("key_id", type=name_arg, metavar="KEY_ID",
                   help="the 10-hex-digit id from 'facegate keys list' (the part after fg_)")
    q.set_defaults(func=cmd_keys_revoke)
    p.set_defaults(func=cmd_keys_list)

    aparents = [common, service_options()]
    p = sub.add_parser(
        "access", parents=aparents,
        help="per-gate access lists: who (people or groups) may pass which gate, and when",
        description="A gate with no rule admits every recognised person; a gate with rules admits only the people "
        "its rules permit (directly or through a group), inside the rule's weekly window if it has one.",
        example="facegate access allow lab --group staff --from 08:00 --until 18:00",
        epilog="Every gate decision records the rule that decided. Hours are in the rule's time zone: the one given "
        "with\n--tz, else this machine's (the site's).\n\n"
        "examples:\n"
        "  facegate access allow front-door --person 'Ada Lovelace'\n"
        "  facegate access group staff Ada Bob                       add people to group 'staff'\n"
        "  facegate access allow lab --group staff --days mon-fri --from 08:00 --until 18:30 --tz Europe/London\n"
        "  facegate access list --gate lab\n"
        "  facegate access remove 3                                  rule id from 'access list'",
    )
    asub = p.add_subparsers(dest="access_command", metavar="SUBCOMMAND")
    q = asub.add_parser("list", parents=aparents, help="rules (of one gate) and groups",
                        description="Every access rule (of one gate) with its window and time zone, and every group "
                        "with its members.",
                        example="facegate access list --gate lab")
    q.add_argument("--gate", type=name_arg, default=None, help="only this gate's rules")
    q.set_defaults(func=cmd_access_list)
    q = asub.add_parser("allow", parents=aparents, help="permit a person or a group at a gate",
                        usage="%(prog)s GATE --person PERSON | --group GROUP  [options]",
                        description="Permit a person or a group at GATE, every day or in a weekly window (hours in "
                        "the rule's time zone).",
                        example="facegate access allow lab --group staff --from 08:00 --until 18:00")
    q.add_argument("gate", type=name_arg, metavar="GATE", help="the gate's name")
    who = q.add_mutually_exclusive_group(required=True)
    who.add_argument("--person", type=person_arg, help="enrolled name or id")
    who.add_argument("--group", type=name_arg, help="a group made with 'facegate access group'")
    q.add_argument("--days", type=name_arg, help="e.g. mon-fri or sat,sun (default: every day)")
    q.add_argument("--from", dest="start", type=name_arg, metavar="HH:MM", help="window start")
    q.add_argument("--until", dest="end", type=name_arg, metavar="HH:MM",
                   help="window end; at or before --from it crosses midnight")
    q.add_argument("--tz", type=time_zone_arg, metavar="ZONE",
                   help=f"IANA time zone of the window (default this machine's, {machine_time_zone()})")
    q.set_defaults(func=cmd_access_allow)
    q = asub.add_parser("remove", parents=aparents, help="remove a rule by its id",
                        description="Remove an access rule by its id.", example="facegate access remove 3")
    q.add_argument("rule_id", type=int_arg(1), metavar="RULE_ID", help="the rule's id, from 'facegate access list'")
    q.set_defaults(func=cmd_access_remove)
    q = asub.add_parser("group", parents=aparents, help="add people to a group (created on first use)",
                        description="Add enrolled people to GROUP (created on first use), or remove them.",
                        example="facegate access group staff 'Ada Lovelace' Bob")
    q.add_argument("group", type=name_arg, metavar="GROUP", help="the group's name")
    q.add_argument("people", nargs="+", type=person_arg, metavar="PERSON", help="enrolled names or ids")
    q.add_argument("--remove", action="store_true", help="remove them from the group instead")
    q.set_defaults(func=cmd_access_group)
    q = asub.add_parser("delete-group", parents=aparents, help="delete a group and the rules that name it",
                        description="Delete a group, its memberships and the rules that name it.",
                        example="facegate access delete-group staff")
    q.add_argument("group", type=name_arg, metavar="GROUP", help="the group's name")
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
            if row is None:
                raise NotFoundError(f"no API key with id {args.key_id!r}; see 'facegate keys list'")
            raise UsageError(f"key {args.key_id} is already revoked")
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
        **({"time_zone": args.time_zone} if args.time_zone else {}),
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
    from facegate.service.access import AccessError, AccessNotFoundError

    db = _db(args)
    try:
        return fn(db, *a, **kw)
    except AccessNotFoundError as exc:
        raise NotFoundError(f"{exc}; see 'facegate access list'") from exc
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
                        start=args.start, end=args.end, tz=args.tz or machine_time_zone())
    _access_call(args, lambda db: db.add_event("audit", action="access_rule_add", gate=args.gate, person_id=pid,
                                               client="cli", detail=rule.to_dict()))
    who = f"group {rule.group}" if rule.group else f"person {pid} ({args.person})"
    emit(args, rule.to_dict(), f"rule {rule.id}: {who} may pass {rule.gate} ({rule.window()})")
    return 0


def cmd_access_remove(args: argparse.Namespace) -> int:
    from facegate.service import access

    if not _access_call(args, access.delete_rule, args.rule_id):
        raise NotFoundError(f"no access rule with id {args.rule_id}; see 'facegate access list'")
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
        raise NotFoundError(f"no access group named {args.group!r}; see 'facegate access list'")
    emit(args, {"deleted": args.group}, f"deleted group {args.group} and the rules that named it")
    return 0
