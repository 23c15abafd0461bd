"""Hook targets: where events go (a webhook URL or an MQTT broker), checked when they are configured.

Everything a target can get wrong is refused here, at configuration time, with one line that
says what to change: a URL that is not http(s)/mqtt(s), one with credentials in it (they would
be shown back in every list), a host that does not resolve, an address on this machine or a
private network (unless ``allow_private``: a webhook service must not become a way to reach
the machine's own admin ports), a payload template that is not a JSON object or names a field
that does not exist. Secrets (the webhook's HMAC key, the MQTT password) are stored in the
service database (a 0600 file) and never returned: :meth:`Target.public` leaves them out.
"""

from __future__ import annotations

import ipaddress
import json
import re
import secrets
import socket
import string
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from facegate.errors import UsageError

KINDS = ("webhook", "mqtt")
EVENT_KINDS = ("gate.decision", "watch.identified")
MAX_TARGETS = 32
MAX_URL = 2000
MAX_TEMPLATE = 8192
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
GATE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")  # the service's gate names
TOPIC_RE = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")
NODE_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
SCHEMES = {"webhook": ("http", "https"), "mqtt": ("mqtt", "mqtts")}
DEFAULT_PORTS = {"http": 80, "https": 443, "mqtt": 1883, "mqtts": 8883}
# Fields a webhook body template may use, as {field}; the payload's own keys (see payloads.py).
TEMPLATE_FIELDS = (
    "id", "type", "time", "event_id", "gate", "decision", "person_id", "name", "score", "threshold", "far",
    "fpir", "reason", "faces", "track", "source", "message",
)


class HookError(UsageError):
    """A hook target that cannot be stored or used as given."""

    code = "hook"


class HookNotFoundError(HookError):
    code = "not_found"


@dataclass(frozen=True)
class Target:
    """One configured target (a row of ``hook_targets``)."""

    id: int
    name: str
    kind: str
    url: str
    events: tuple[str, ...]
    gates: tuple[str, ...] | None
    template: str | None
    options: dict[str, Any]
    allow_private: bool
    enabled: bool
    created: float
    updated: float
    username: str | None = None
    secret: str | None = field(default=None, repr=False)
    stats: dict[str, Any] = field(default_factory=dict)

    def wants(self, kind: str, gate: str | None) -> bool:
        """Whether an event of ``kind`` (at ``gate``) goes to this target."""
        if kind == "hook.test":
            return True
        if kind not in self.events:
            return False
        return self.gates is None or gate is None or gate in self.gates

    def public(self) -> dict[str, Any]:
        """Everything but the secret (whether one is set is said)."""
        return {
            "id": self.id, "name": self.name, "kind": self.kind, "url": self.url, "events": list(self.events),
            "gates": None if self.gates is None else list(self.gates), "template": self.template is not None,
            "options": self.options, "allow_private": self.allow_private, "enabled": self.enabled,
            "username": self.username, "has_secret": bool(self.secret), "created": self.created,
            "updated": self.updated, **self.stats,
        }

    @property
    def host(self) -> str:
        return urllib.parse.urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        parts = urllib.parse.urlsplit(self.url)
        return int(parts.port or DEFAULT_PORTS[parts.scheme])


# -- checks ---------------------------------------------------------------------------------------
Resolver = Callable[[str, int], list[str]]


def resolve(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to now (the system resolver)."""
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError, OSError) as exc:
        raise HookError(f"cannot resolve host {host!r} ({exc}); check the name, or use an IP address") from exc
    return sorted({str(i[4][0]) for i in infos})


def address_problem(addr: str, allow_private: bool) -> str | None:
    """Why a delivery must not go to ``addr`` (None: it may)."""
    try:
        ip = ipaddress.ip_address(addr.split("%", 1)[0])
    except ValueError:
        return f"{addr!r} is not an IP address"
    mapped = getattr(ip, "ipv4_mapped", None)
    if mapped is not None:
        ip = mapped
    if ip.is_multicast or ip.is_unspecified:
        return f"{ip} is a multicast or unspecified address"
    if allow_private:
        return None
    if ip.is_loopback:
        return f"{ip} is on this machine (loopback)"
    if ip.is_link_local:
        return f"{ip} is link-local (cloud metadata services live there)"
    if not ip.is_global:
        return f"{ip} is a private or reserved address"
    return None


def check_destination(host: str, port: int, allow_private: bool, resolver: Resolver = resolve) -> list[str]:
    """Resolve ``host`` and refuse it when any of its addresses is one deliveries must not reach.
    Checked at configuration time and again before every delivery (the name may change)."""
    addrs = resolver(host, port)
    if not addrs:
        raise HookError(f"host {host!r} has no address")
    for a in addrs:
        why = address_problem(a, allow_private)
        if why:
            hint = "" if allow_private else " (a receiver on this machine or your network: allow it explicitly with --allow-private)"
            raise HookError(f"refusing {host}: {why}{hint}")
    return addrs


def check_url(url: str, kind: str | None = None) -> tuple[str, str]:
    """(kind, normalised url) of a target URL; the kind follows from the scheme when not given."""
    if not isinstance(url, str) or not url.strip():
        raise HookError("a target needs a URL")
    url = url.strip()
    if len(url) > MAX_URL:
        raise HookError(f"the URL is longer than {MAX_URL} characters")
    if any(ord(c) < 33 or ord(c) > 126 for c in url):
        raise HookError("the URL must be printable ASCII without spaces (percent-encode anything else)")
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise HookError(f"not a valid URL: {url!r} ({exc})") from exc
    scheme = parts.scheme.lower()
    if kind is None:
        kind = next((k for k, s in SCHEMES.items() if scheme in s), None)
        if kind is None:
            raise HookError(f"unsupported URL scheme {scheme or '(none)'!r}: use http(s):// for a webhook or "
                            "mqtt(s)://host:port for an MQTT broker")
    if kind not in KINDS:
        raise HookError(f"unknown target kind {kind!r}; use one of {', '.join(KINDS)}")
    if scheme not in SCHEMES[kind]:
        raise HookError(f"a {kind} URL starts with {' or '.join(s + '://' for s in SCHEMES[kind])}, not {scheme}://")
    if parts.username is not None or parts.password is not None:
        raise HookError("credentials in the URL would be shown back in every list; give them as the target's "
                        "secret (webhook) or username and password (MQTT) instead")
    if not parts.hostname:
        raise HookError(f"the URL {url!r} names no host")
    if parts.fragment:
        raise HookError("the URL must not have a #fragment")
    if port == 0:
        raise HookError("port 0 is not a port")
    if kind == "mqtt" and (parts.path not in ("", "/") or parts.query):
        raise HookError("an MQTT URL is mqtt(s)://host[:port] only; topics are set with topic_prefix")
    return kind, urllib.parse.urlunsplit((scheme, parts.netloc, parts.path or ("/" if kind == "webhook" else ""),
                                          parts.query, ""))


def template_fields(template: str) -> set[str]:
    """The {fields} a template uses; a template is a JSON object whose string values may hold them."""
    if len(template) > MAX_TEMPLATE:
        raise HookError(f"the payload template is longer than {MAX_TEMPLATE} characters")
    try:
        doc = json.loads(template)
    except (ValueError, RecursionError) as exc:
        raise HookError(f"the payload template is not valid JSON ({exc})") from exc
    if not isinstance(doc, dict):
        raise HookError("the payload template must be a JSON object, e.g. {\"text\": \"{name} at {gate}: {decision}\"}")
    used: set[str] = set()

    def walk(v: Any, depth: int) -> None:
        if depth > 10:
            raise HookError("the payload template is nested more than 10 levels deep")
        if isinstance(v, dict):
            for x in v.values():
                walk(x, depth + 1)
        elif isinstance(v, list):
            for x in v:
                walk(x, depth + 1)
        elif isinstance(v, str):
            try:
                parsed = list(string.Formatter().parse(v))
            except ValueError as exc:
                raise HookError(f"bad placeholder in the payload template value {v[:60]!r}: {exc} "
                                "(write a literal brace as {{ or }})") from exc
            for _lit, name, spec, conv in parsed:
                if name is None:
                    continue
                if name not in TEMPLATE_FIELDS:
                    raise HookError(f"the payload template uses {{{name}}}, which is not a field; "
                                    f"fields: {', '.join(TEMPLATE_FIELDS)}")
                if spec or conv:
                    raise HookError(f"the payload template's {{{name}}} may not carry a format or conversion")
                used.add(name)

    walk(doc, 0)
    return used


def render_template(template: str, payload: dict[str, Any]) -> bytes:
    """The body a template gives for one payload: each {field} in a string value replaced by the field
    (empty for null); the result is JSON again, so a name cannot break out of its string."""
    values = {k: "" if payload.get(k) is None else str(payload.get(k)) for k in TEMPLATE_FIELDS}

    def sub(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: sub(x) for k, x in v.items()}
        if isinstance(v, list):
            return [sub(x) for x in v]
        if isinstance(v, str):
            return string.Formatter().vformat(v, (), values)
        return v

    return json.dumps(sub(json.loads(template)), ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def check_options(kind: str, options: dict[str, Any] | None) -> dict[str, Any]:
    """MQTT: topic_prefix, discovery_prefix ("" turns Home Assistant discovery off), node_id."""
    options = dict(options or {})
    if kind != "mqtt":
        if options:
            raise HookError(f"options {sorted(options)} apply to MQTT targets only")
        return {}
    unknown = set(options) - {"topic_prefix", "discovery_prefix", "node_id"}
    if unknown:
        raise HookError(f"unknown MQTT option(s) {sorted(unknown)}; use topic_prefix, discovery_prefix, node_id")
    out = {"topic_prefix": options.get("topic_prefix") or "facegate",
           "discovery_prefix": "homeassistant" if options.get("discovery_prefix") is None else options["discovery_prefix"],
           "node_id": options.get("node_id") or "facegate"}
    for key in ("topic_prefix", "discovery_prefix"):
        v = out[key]
        if not isinstance(v, str) or (v and (len(v) > 100 or not TOPIC_RE.match(v))):
            raise HookError(f"{key} {v!r} must be topic levels of letters, digits, _ . - separated by / "
                            "(no wildcards, no leading or trailing /)")
    if not isinstance(out["node_id"], str) or not NODE_RE.match(out["node_id"]):
        raise HookError("node_id must be 1-64 letters, digits, _ or -")
    return out


def check_secret(secret: str | None, what: str) -> str | None:
    if secret is None:
        return None
    if not isinstance(secret, str) or not 1 <= len(secret) <= 512:
        raise HookError(f"the {what} must be 1-512 characters")
    if any(ord(c) < 32 for c in secret):
        raise HookError(f"the {what} must not contain control characters")
    return secret


def check_events(events: Any) -> tuple[str, ...]:
    if events is None:
        return ("gate.decision",)
    items = events.split(",") if isinstance(events, str) else list(events)
    out = tuple(dict.fromkeys(str(e).strip() for e in items if str(e).strip()))
    bad = [e for e in out if e not in EVENT_KINDS]
    if bad or not out:
        raise HookError(f"unknown event kind(s) {bad or '(none)'}; use {', '.join(EVENT_KINDS)}")
    return out


def check_gates(gates: Any) -> tuple[str, ...] | None:
    if gates is None:
        return None
    items = gates.split(",") if isinstance(gates, str) else list(gates)
    out = tuple(dict.fromkeys(str(g).strip() for g in items if str(g).strip()))
    if not out:
        return None
    if len(out) > 100:
        raise HookError("at most 100 gates per target")
    bad = [g for g in out if not GATE_RE.match(g)]
    if bad:
        raise HookError(f"not a gate name: {bad[0]!r} (letters, digits, _ . : - ; at most 64)")
    return out


# -- storage ----------------------------------------------------------------------------------------
COLUMNS = ("id", "name", "kind", "url", "events", "gates", "template", "options", "allow_private", "enabled",
           "created", "updated", "username", "secret", "delivered", "failures", "dropped", "last_success",
           "last_error", "last_error_at")


def _target(row: tuple, counts: dict[int, dict[str, int]] | None = None) -> Target:
    d = dict(zip(COLUMNS, row))
    stats = {k: d[k] for k in ("delivered", "failures", "dropped", "last_success", "last_error", "last_error_at")}
    stats.update((counts or {}).get(int(d["id"]), {"pending": 0, "dead": 0}))
    return Target(
        id=int(d["id"]), name=d["name"], kind=d["kind"], url=d["url"], events=tuple(d["events"].split(",")),
        gates=tuple(d["gates"].split(",")) if d["gates"] else None, template=d["template"],
        options=json.loads(d["options"] or "{}"), allow_private=bool(d["allow_private"]), enabled=bool(d["enabled"]),
        created=d["created"], updated=d["updated"], username=d["username"], secret=d["secret"], stats=stats,
    )


def _counts(db: Any) -> dict[int, dict[str, int]]:
    out: dict[int, dict[str, int]] = {}
    for tid, state, n in db.query("SELECT target_id, state, COUNT(*) FROM outbox GROUP BY target_id, state"):
        out.setdefault(int(tid), {"pending": 0, "dead": 0})[state] = int(n)
    return out


def list_targets(db: Any, *, enabled_only: bool = False) -> list[Target]:
    sql = f"SELECT {', '.join(COLUMNS)} FROM hook_targets"
    if enabled_only:
        sql += " WHERE enabled = 1"
    counts = _counts(db)
    return [_target(r, counts) for r in db.query(sql + " ORDER BY name")]


def get_target(db: Any, name: str) -> Target:
    rows = db.query(f"SELECT {', '.join(COLUMNS)} FROM hook_targets WHERE name = ?", (name,))
    if not rows:
        raise HookNotFoundError(f"no hook target named {name!r}; 'facegate hooks list' shows them")
    return _target(rows[0], _counts(db))


def add_target(
    db: Any,
    name: str,
    url: str,
    *,
    kind: str | None = None,
    secret: str | None = None,
    username: str | None = None,
    events: Any = None,
    gates: Any = None,
    template: str | None = None,
    options: dict[str, Any] | None = None,
    allow_private: bool = False,
    resolver: Resolver = resolve,
) -> tuple[Target, str | None]:
    """Check and store a target: (target, the webhook secret if one was generated here; shown once)."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise HookError(f"a target name is 1-64 letters, digits, _ . - (got {name!r})")
    kind, url = check_url(url, kind)
    parts = urllib.parse.urlsplit(url)
    check_destination(parts.hostname or "", int(parts.port or DEFAULT_PORTS[parts.scheme]), allow_private, resolver)
    events_t, gates_t = check_events(events), check_gates(gates)
    if template is not None:
        if kind != "webhook":
            raise HookError("payload templates apply to webhooks only (MQTT carries the standard payload)")
        template_fields(template)
    opts = check_options(kind, options)
    generated = None
    if kind == "webhook":
        if username is not None:
            raise HookError("a webhook has no username; its secret signs every request")
        secret = check_secret(secret, "webhook secret")
        if secret is None:
            secret = generated = "whsec_" + secrets.token_urlsafe(32)
        elif len(secret) < 16:
            raise HookError("a webhook secret must be at least 16 characters (or leave it out to get a random one)")
    else:
        secret = check_secret(secret, "MQTT password")
        if username is not None and (not isinstance(username, str) or not 1 <= len(username) <= 200):
            raise HookError("the MQTT username must be 1-200 characters")
        if secret is not None and username is None:
            raise HookError("an MQTT password needs a username")
    now = time.time()
    with db.write() as c:
        n = c.execute("SELECT COUNT(*) FROM hook_targets").fetchone()[0]
        if n >= MAX_TARGETS:
            raise HookError(f"at most {MAX_TARGETS} hook targets; remove one first")
        if c.execute("SELECT 1 FROM hook_targets WHERE name = ?", (name,)).fetchone():
            raise HookError(f"a hook target named {name!r} exists; remove it first or pick another name")
        c.execute(
            "INSERT INTO hook_targets (name, kind, url, secret, username, events, gates, template, options, "
            "allow_private, enabled, created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?)",
            (name, kind, url, secret, username, ",".join(events_t), ",".join(gates_t) if gates_t else None, template,
             json.dumps(opts, sort_keys=True), int(bool(allow_private)), now, now),
        )
    return get_target(db, name), generated


def remove_target(db: Any, name: str) -> Target:
    """Remove a target and its undelivered rows and dead letters."""
    target = get_target(db, name)
    with db.write() as c:
        c.execute("DELETE FROM outbox WHERE target_id = ?", (target.id,))
        c.execute("DELETE FROM hook_targets WHERE id = ?", (target.id,))
    return target
