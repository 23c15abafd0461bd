"""``facegate hooks add|list|remove|test|dead-letters``: where gate decisions go (webhooks, MQTT).

Thin wrappers over :mod:`facegate.service.events_out`, on the service database of the same
``--home``/``--gallery`` as ``facegate serve`` (a running service picks changes up within seconds).
Every change is recorded in the audit trail (client ``cli``), like ``facegate access``. Secrets are
read from an environment variable or standard input, never from the command line (it would stay in
the shell history and the process list), and never printed back; a generated webhook secret is
printed once.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from facegate.cli.args import int_arg
from facegate.cli.common import config_from_args, emit
from facegate.errors import UsageError


def _db(args: argparse.Namespace) -> Any:
    from facegate.service.db import ServiceDB
    from facegate.service.settings import ServiceSettings

    over = {k: getattr(args, k) for k in ("backend", "milvus_uri") if getattr(args, k, None) is not None}
    config = config_from_args(args, **over)
    settings = ServiceSettings(db_path=Path(args.service_db)) if getattr(args, "service_db", None) else ServiceSettings()
    return ServiceDB(settings.resolved_db(config))


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from facegate.cli.service import service_options

    fmt = argparse.RawDescriptionHelpFormatter
    parents = [common, service_options()]
    p = sub.add_parser(
        "hooks", parents=parents, formatter_class=fmt,
        help="send gate decisions to webhooks (signed) and MQTT (Home Assistant discovery)",
        description="Targets that every gate decision (and, when asked, every 'watch' identification) is delivered "
        "to, from a durable outbox in the service database: signed JSON POSTs (HMAC-SHA256, see "
        "docs/integrations/webhooks.md) or MQTT QoS 1 messages with Home Assistant discovery "
        "(docs/integrations/home-assistant.md). Addresses on this machine or a private network are refused "
        "unless --allow-private.",
        example="facegate hooks add door https://door.example.com/facegate",
        epilog="examples:\n"
        "  facegate hooks add door https://door.example.com/facegate           prints a new signing secret once\n"
        "  WEBHOOK_SECRET=... facegate hooks add door https://... --secret-env WEBHOOK_SECRET\n"
        "  facegate hooks add ha mqtt://192.168.1.10:1883 --allow-private --username fg --password-env MQTT_PW\n"
        "  facegate hooks add chat https://chat.example.com/hook --template '{\"text\": \"{name} at {gate}: {decision}\"}'\n"
        "  facegate hooks test door                                             deliver a signed test event now\n"
        "  facegate hooks dead-letters --retry                                  queue what failed again",
    )
    hsub = p.add_subparsers(dest="hooks_command", metavar="SUBCOMMAND")
    q = hsub.add_parser("add", parents=parents, formatter_class=fmt, help="add a webhook or MQTT target (checked now)",
                        description="Add a target that gate decisions are delivered to: a webhook (a signed POST; a "
                        "new signing secret is printed once unless given) or an MQTT broker.",
                        example="facegate hooks add door https://door.example.com/hook --gate front")
    q.add_argument("name", metavar="NAME", help="how you will refer to it (letters, digits, _ . -)")
    q.add_argument("url", metavar="URL", help="http(s)://... (a webhook) or mqtt(s)://host[:port] (a broker)")
    sec = q.add_mutually_exclusive_group()
    sec.add_argument("--secret-env", metavar="VAR", help="webhook: the signing secret, from this environment variable")
    sec.add_argument("--secret-stdin", action="store_true", help="webhook: read the signing secret from standard input")
    sec.add_argument("--password-env", metavar="VAR", help="mqtt: read the password from this environment variable")
    q.add_argument("--username", help="mqtt: the broker username")
    q.add_argument("--events", default="gate.decision",
                   help="gate.decision (default), watch.identified; comma-separated")
    q.add_argument("--gate", action="append", default=None, metavar="GATE", help="only this gate (repeatable)")
    q.add_argument("--allow-private", action="store_true",
                   help="allow a target on this machine or a private network")
    more = q.add_argument_group("more options")
    more.add_argument("--kind", choices=("webhook", "mqtt"), help="default: from the URL's scheme")
    more.add_argument("--template", help="webhook body: a JSON object whose string values may hold {gate}, {decision}, "
                      "{name}, {score}, ... (or @file.json)")
    more.add_argument("--topic-prefix", help="mqtt: topic prefix (default facegate)")
    more.add_argument("--discovery-prefix", help="mqtt: Home Assistant discovery prefix (default homeassistant; '' for none)")
    more.add_argument("--node-id", help="mqtt: node id in discovery ids (default facegate)")
    q.set_defaults(func=cmd_add)
    q = hsub.add_parser("list", parents=parents, help="targets and their delivery counters (never secrets)",
                        description="Every target with its delivery counters (never its secret).",
                        example="facegate hooks list --json")
    q.set_defaults(func=cmd_list)
    q = hsub.add_parser("remove", parents=parents, help="remove a target with its undelivered events and dead letters",
                        description="Remove a target with its undelivered events and dead letters.",
                        example="facegate hooks remove door")
    q.add_argument("name", metavar="NAME", help="the target's name, from 'facegate hooks list'")
    q.set_defaults(func=cmd_remove)
    q = hsub.add_parser("test", parents=parents, help="deliver one signed hook.test event to a target now",
                        description="Deliver one signed hook.test event to a target now and say how it went.",
                        example="facegate hooks test door")
    q.add_argument("name", metavar="NAME", help="the target's name, from 'facegate hooks list'")
    q.set_defaults(func=cmd_test)
    q = hsub.add_parser("dead-letters", parents=parents, help="events that could not be delivered; --retry or --purge them",
                        description="Events that could not be delivered after every retry; queue them again or delete "
                        "them.",
                        example="facegate hooks dead-letters --target door --retry")
    q.add_argument("--target", help="only this target's")
    act = q.add_mutually_exclusive_group()
    act.add_argument("--retry", action="store_true", help="queue them again")
    act.add_argument("--purge", action="store_true", help="delete them")
    q.add_argument("--limit", type=int_arg(1, 100_000), default=50, help="how many to show (default 50)")
    q.set_defaults(func=cmd_dead_letters)
    p.set_defaults(func=cmd_list)


def _secret(args: argparse.Namespace) -> str | None:
    var = args.secret_env or args.password_env
    if var:
        value = os.environ.get(var)
        if not value:
            raise UsageError(f"environment variable {var} is not set or empty")
        return value
    if args.secret_stdin:
        value = sys.stdin.readline().rstrip("\r\n")
        if not value:
            raise UsageError("no secret on standard input")
        return value
    return None


def _template(text: str | None) -> str | None:
    if text is None:
        return None
    if text.startswith("@"):
        try:
            return Path(text[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot read the template file {text[1:]}: {exc.strerror or exc}") from exc
    return text


def _call(args: argparse.Namespace, fn: Any, *a: Any, **kw: Any) -> Any:
    db = _db(args)
    try:
        return fn(db, *a, **kw)
    finally:
        db.close()


def cmd_add(args: argparse.Namespace) -> int:
    from facegate.service.events_out.router import public, short_url
    from facegate.service.events_out.targets import add_target

    if args.secret_stdin and args.kind == "mqtt":
        raise UsageError("--secret-stdin is for a webhook's secret; give an MQTT password with --password-env")
    options = {k: v for k, v in (("topic_prefix", args.topic_prefix), ("discovery_prefix", args.discovery_prefix),
                                 ("node_id", args.node_id)) if v is not None}

    def work(db: Any) -> tuple[Any, str | None]:
        target, generated = add_target(
            db, args.name, args.url, kind=args.kind, secret=_secret(args), username=args.username, events=args.events,
            gates=args.gate, template=_template(args.template), options=options or None, allow_private=args.allow_private,
        )
        db.add_event("audit", action="hook_add", client="cli", detail={
            "name": target.name, "kind": target.kind, "url": short_url(target.url), "events": list(target.events),
            "gates": None if target.gates is None else list(target.gates), "allow_private": target.allow_private,
            "template": target.template is not None})
        return target, generated

    target, generated = _call(args, work)
    out = {**public(target), "secret": generated}
    text = f"added {target.kind} target {target.name} -> {short_url(target.url)} ({', '.join(target.events)})"
    if generated:
        text += f"\nsigning secret (shown only now; give it to the receiver): {generated}"
    emit(args, out, text)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from facegate.service.events_out import outbox
    from facegate.service.events_out.router import public
    from facegate.service.events_out.targets import list_targets

    targets = _call(args, list_targets)
    counters = _call(args, outbox.counters)

    def text() -> str:
        if not targets:
            return "no hook targets; add one with 'facegate hooks add NAME URL'"
        rows = [f"{'name':<20} {'kind':<8} {'pending':>7} {'dead':>5} {'sent':>6} {'dropped':>7}  url / last error"]
        for t in targets:
            s = t.stats
            rows.append(f"{t.name:<20} {t.kind:<8} {s['pending']:>7} {s['dead']:>5} {s['delivered']:>6} {s['dropped']:>7}  "
                        f"{public(t)['url']}" + (f"  [last error: {s['last_error']}]" if s.get("last_error") else ""))
        if counters.get("dropped"):
            rows.append(f"the outbox was full {counters['dropped']} time(s): the oldest undelivered events were dropped")
        return "\n".join(rows)

    emit(args, {"targets": [public(t) for t in targets], "counters": counters}, text)
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    from facegate.service.events_out.router import short_url
    from facegate.service.events_out.targets import remove_target

    def work(db: Any) -> Any:
        t = remove_target(db, args.name)
        db.add_event("audit", action="hook_remove", client="cli", detail={
            "name": t.name, "kind": t.kind, "url": short_url(t.url), "pending_dropped": t.stats.get("pending", 0),
            "dead_dropped": t.stats.get("dead", 0)})
        return t

    t = _call(args, work)
    emit(args, {"removed": t.name}, f"removed {t.name} ({t.stats.get('pending', 0)} undelivered event(s) dropped)")
    return 0


def cmd_test(args: argparse.Namespace) -> int:
    from facegate.service.events_out import send_test
    from facegate.service.events_out.targets import get_target

    target = _call(args, get_target, args.name)
    out = send_test(target)
    _call(args, lambda db: db.add_event("audit", action="hook_test", client="cli",
                                        detail={"name": args.name, "delivered": out["delivered"], "error": out["error"]}))
    if not out["delivered"]:
        emit(args, out, f"{args.name}: not delivered: {out['error']}")
        return 1
    emit(args, out, f"{args.name}: delivered (event {out['id']}{', HTTP ' + str(out['status']) if out['status'] else ''})")
    return 0


def cmd_dead_letters(args: argparse.Namespace) -> int:
    from facegate.service.events_out import outbox
    from facegate.service.events_out.targets import get_target

    if args.limit < 1:
        raise UsageError("--limit must be at least 1")

    def work(db: Any) -> dict[str, Any]:
        tid = get_target(db, args.target).id if args.target else None
        if args.retry:
            n = outbox.retry_dead(db, tid)
            db.add_event("audit", action="hook_dead_letters_retry", client="cli", detail={"target": args.target, "requeued": n})
            return {"requeued": n}
        if args.purge:
            n = outbox.purge_dead(db, tid)
            db.add_event("audit", action="hook_dead_letters_purge", client="cli", detail={"target": args.target, "purged": n})
            return {"purged": n}
        return {"dead_letters": [d.to_dict() for d in outbox.dead_letters(db, tid, args.limit)]}

    out = _call(args, work)

    def text() -> str:
        if "requeued" in out:
            return f"queued {out['requeued']} dead letter(s) again (a running service delivers them within seconds)"
        if "purged" in out:
            return f"deleted {out['purged']} dead letter(s)"
        if not out["dead_letters"]:
            return "no dead letters"
        return "\n".join(f"{d['id']:>6}  {d['kind']:<16} event {d['event_id']}  {d['attempts']} attempt(s)  {d['last_error']}"
                         for d in out["dead_letters"])

    emit(args, out, text)
    return 0
