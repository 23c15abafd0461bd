"""The durable outbox: what is to be delivered, to whom, and what happened to it.

Guarantees (the docs' webhooks page states them for users):

* **Same transaction.** :func:`event_hook` runs inside :meth:`ServiceDB.add_event`'s transaction:
  an access event and its outbox rows commit together or not at all. The rows go under a
  SAVEPOINT, so a failure of the outbox (a bug, a full disk) is logged and the decision is
  still recorded and answered: integrations never fail a gate check.
* **At least once.** A row is deleted only after the receiver acknowledged it (HTTP 2xx, MQTT
  PUBACK). A crash between delivery and deletion delivers it again; the idempotency key (one per
  event, fixed at enqueue time, the same on every retry and for every target) lets a receiver
  drop the repeat.
* **Bounded.** At most ``max_pending`` undelivered rows: when full, the oldest are dropped,
  counted (per target and in ``outbox_counters``) and logged. At most ``max_dead`` dead letters.
* **Several deliverers.** Rows are claimed with a lease (``lease_until``), so two processes over
  one database (the service, ``watch --events-out``) never deliver the same row at once, and the
  rows of one that died are picked up when its lease runs out.
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from facegate.service.events_out.config import EventsOutSettings

log = logging.getLogger(__name__)

ROW_COLUMNS = ("id", "target_id", "event_id", "kind", "idem", "payload", "created", "state", "attempts", "next_at",
               "last_error", "dead_at")


@dataclass(frozen=True)
class Row:
    """One outbox row."""

    id: int
    target_id: int
    event_id: int | None
    kind: str
    idem: str
    payload: str
    created: float
    state: str
    attempts: int
    next_at: float
    last_error: str | None
    dead_at: float | None

    def data(self) -> dict[str, Any]:
        return dict(json.loads(self.payload))

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "target_id": self.target_id, "event_id": self.event_id, "kind": self.kind,
            "idempotency_key": self.idem, "payload": self.data(), "created": self.created, "state": self.state,
            "attempts": self.attempts, "next_at": self.next_at, "last_error": self.last_error, "dead_at": self.dead_at,
        }


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _num(v: Any, nd: int = 6) -> float | None:
    if v is None:
        return None
    f = float(v)
    return round(f, nd) if math.isfinite(f) else None


# -- payloads -----------------------------------------------------------------------------------------
def gate_payload(idem: str, event_id: int, at: float, fields: dict[str, Any]) -> dict[str, Any]:
    """The standard body of a gate decision: what the service answered the gate, no image, no embedding."""
    detail = fields.get("detail") or {}
    rule = detail.get("rule") or {}
    # a refused presentation (issue 21) names nobody to the gate, nor to the receivers of its decisions
    named = detail.get("named_to_caller", True) is not False
    return {
        "id": idem, "type": "gate.decision", "time": iso(at), "event_id": int(event_id),
        "gate": fields.get("gate"), "decision": fields.get("decision"),
        "person_id": fields.get("person_id") if named else None, "name": fields.get("name") if named else None,
        "score": _num(fields.get("score")) if named else None, "threshold": _num(fields.get("threshold")),
        "far": fields.get("far"), "fpir": detail.get("fpir"), "reason": detail.get("reason") or rule.get("reason"),
        "rule_id": (rule.get("rule") or {}).get("id"), "faces": fields.get("faces"),
    }


def identification_payload(idem: str, at: float, event: dict[str, Any], source: str) -> dict[str, Any]:
    """The body of a ``watch`` identification (an ``identified`` event of :mod:`facegate.track.events`)."""
    return {
        "id": idem, "type": "watch.identified", "time": iso(at), "source": source, "track": event.get("track"),
        "name": event.get("name"), "person_id": event.get("person_id"), "score": _num(event.get("score"), 4),
        "threshold": event.get("threshold"), "far": event.get("far"), "fpir": event.get("fpir"),
        "media_t": event.get("t"), "frame": event.get("frame"),
    }


def probe_payload(idem: str, at: float, target: str) -> dict[str, Any]:
    return {"id": idem, "type": "hook.test", "time": iso(at), "target": target,
            "message": "facegate hook test: if you can read this, delivery works"}


# -- writing ------------------------------------------------------------------------------------------
def _bump(c: sqlite3.Connection, name: str, n: int, now: float) -> None:
    c.execute(
        "INSERT INTO outbox_counters (name, value, updated) VALUES (?, ?, ?) "
        "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value, updated = excluded.updated",
        (name, int(n), now),
    )


def enqueue(
    c: sqlite3.Connection,
    kind: str,
    payload: dict[str, Any],
    *,
    gate: str | None,
    event_id: int | None,
    settings: EventsOutSettings,
    now: float | None = None,
    only_target: int | None = None,
) -> int:
    """Add one row per interested target inside the caller's transaction ``c``; returns how many.
    Keeps the outbox within ``max_pending`` by dropping its oldest undelivered rows."""
    from facegate.service.events_out.targets import Target

    now = time.time() if now is None else now
    rows = c.execute("SELECT id, events, gates FROM hook_targets WHERE enabled = 1").fetchall()
    wanted = []
    for tid, events, gates in rows:
        if only_target is not None and int(tid) != only_target:
            continue
        t = Target(id=int(tid), name="", kind="", url="", events=tuple(events.split(",")),
                   gates=tuple(gates.split(",")) if gates else None, template=None, options={}, allow_private=False,
                   enabled=True, created=0.0, updated=0.0)
        if t.wants(kind, gate):
            wanted.append(int(tid))
    if not wanted:
        return 0
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    c.executemany(
        "INSERT OR IGNORE INTO outbox (target_id, event_id, kind, idem, payload, created, next_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(tid, event_id, kind, payload["id"], body, now, now) for tid in wanted],
    )
    _enforce_bound(c, settings, now)
    return len(wanted)


DROP_LOG_EVERY = 60.0
_drops: list[float] = [-math.inf, 0]  # (time of the last warning, rows dropped since)
_drop_lock = threading.Lock()


def _enforce_bound(c: sqlite3.Connection, settings: EventsOutSettings, now: float) -> None:
    pending = c.execute("SELECT COUNT(*) FROM outbox WHERE state = 'pending'").fetchone()[0]
    excess = int(pending) - int(settings.max_pending)
    if excess <= 0:
        return
    doomed = c.execute(
        "SELECT id, target_id FROM outbox WHERE state = 'pending' ORDER BY id LIMIT ?", (excess,)
    ).fetchall()
    per: dict[int, int] = {}
    for _id, tid in doomed:
        per[int(tid)] = per.get(int(tid), 0) + 1
    c.executemany("DELETE FROM outbox WHERE id = ?", [(int(i),) for i, _ in doomed])
    for tid, n in per.items():
        c.execute("UPDATE hook_targets SET dropped = dropped + ? WHERE id = ?", (n, tid))
    _bump(c, "dropped", len(doomed), now)
    with _drop_lock:  # one warning a minute while full, not one per decision
        _drops[1] += len(doomed)
        if now - _drops[0] < DROP_LOG_EVERY:
            return
        n, _drops[0], _drops[1] = int(_drops[1]), now, 0
    log.warning("events out: the outbox is full (%d undelivered); dropped the %d oldest undelivered event(s) "
                "since the last warning (is a receiver down? 'facegate hooks list' shows which)", settings.max_pending, n)


def event_hook(settings: EventsOutSettings, wake: Callable[[], None]) -> Callable[..., None]:
    """The function :class:`ServiceDB` calls inside each event's transaction (``db.event_hooks``):
    access events become outbox rows of kind ``gate.decision``."""

    def hook(c: sqlite3.Connection, event_id: int, kind: str, at: float, fields: dict[str, Any]) -> None:
        if kind != "access":
            return
        c.execute("SAVEPOINT events_out")
        try:
            n = enqueue(c, "gate.decision", gate_payload(str(uuid.uuid4()), event_id, at, fields),
                        gate=fields.get("gate"), event_id=event_id, settings=settings)
        except Exception as exc:  # noqa: BLE001 - the decision is recorded and answered whatever happens here
            c.execute("ROLLBACK TO events_out")
            c.execute("RELEASE events_out")
            log.error("events out: could not queue event %d for delivery (%s: %s); the decision itself is recorded",
                      event_id, type(exc).__name__, exc)
            return
        c.execute("RELEASE events_out")
        if n:
            wake()

    return hook


# -- the worker's side --------------------------------------------------------------------------------
def _row(r: tuple) -> Row:
    return Row(*r)


def claim(db: Any, target_id: int, *, now: float, limit: int, lease: float) -> list[Row]:
    """Due rows of one target, oldest first, leased to the caller until ``now + lease``."""
    with db.write() as c:
        rows = c.execute(
            f"SELECT {', '.join(ROW_COLUMNS)} FROM outbox WHERE target_id = ? AND state = 'pending' AND next_at <= ? "
            "AND (lease_until IS NULL OR lease_until < ?) ORDER BY id LIMIT ?",
            (target_id, now, now, int(limit)),
        ).fetchall()
        if rows:
            c.executemany("UPDATE outbox SET lease_until = ? WHERE id = ?", [(now + lease, r[0]) for r in rows])
    return [_row(r) for r in rows]


def next_due(db: Any, target_id: int) -> float | None:
    """When the earliest pending row of a target may be tried (None: nothing pending)."""
    rows = db.query("SELECT MIN(MAX(next_at, COALESCE(lease_until, 0))) FROM outbox WHERE target_id = ? AND state = 'pending'",
                    (target_id,))
    return None if not rows or rows[0][0] is None else float(rows[0][0])


def make_due(db: Any, target_id: int, now: float) -> int:
    """Make a target's waiting rows due now (its broker just came back: no point waiting out the back-off)."""
    with db.write() as c:
        return int(c.execute("UPDATE outbox SET next_at = ? WHERE target_id = ? AND state = 'pending' AND next_at > ?",
                             (now, target_id, now)).rowcount)


def delivered(db: Any, target_id: int, ids: list[int], now: float) -> None:
    if not ids:
        return
    with db.write() as c:
        c.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in ids])
        c.execute("UPDATE hook_targets SET delivered = delivered + ?, last_success = ? WHERE id = ?",
                  (len(ids), now, target_id))
        _bump(c, "delivered", len(ids), now)


def release(db: Any, ids: list[int]) -> None:
    """Give claimed rows back untried (a failure before them stopped the batch)."""
    if ids:
        with db.write() as c:
            c.executemany("UPDATE outbox SET lease_until = NULL WHERE id = ?", [(i,) for i in ids])


def failed(db: Any, row: Row, error: str, *, now: float, retry_at: float, permanent: bool,
           settings: EventsOutSettings) -> bool:
    """Record a failed attempt; returns True when the row became a dead letter."""
    error = " ".join(str(error).split())[:500]
    attempts = row.attempts + 1
    dead = permanent or attempts >= settings.max_attempts or now - row.created > settings.max_age
    with db.write() as c:
        if dead:
            c.execute("UPDATE outbox SET state = 'dead', attempts = ?, last_error = ?, dead_at = ?, lease_until = NULL "
                      "WHERE id = ?", (attempts, error, now, row.id))
            _bump(c, "dead", 1, now)
            n = c.execute("SELECT COUNT(*) FROM outbox WHERE state = 'dead'").fetchone()[0]
            if n > settings.max_dead:
                c.execute("DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE state = 'dead' ORDER BY dead_at, id "
                          "LIMIT ?)", (int(n - settings.max_dead),))
                _bump(c, "dead_dropped", int(n - settings.max_dead), now)
        else:
            c.execute("UPDATE outbox SET attempts = ?, last_error = ?, next_at = ?, lease_until = NULL WHERE id = ?",
                      (attempts, error, retry_at, row.id))
        c.execute("UPDATE hook_targets SET failures = failures + 1, last_error = ?, last_error_at = ? WHERE id = ?",
                  (error, now, row.target_id))
    if dead:
        log.warning("events out: %s %s for target %d is a dead letter after %d attempt(s): %s", row.kind, row.idem,
                    row.target_id, attempts, error)
    return dead


# -- admin ---------------------------------------------------------------------------------------------
def dead_letters(db: Any, target_id: int | None = None, limit: int = 100) -> list[Row]:
    sql = f"SELECT {', '.join(ROW_COLUMNS)} FROM outbox WHERE state = 'dead'"
    params: list[Any] = []
    if target_id is not None:
        sql += " AND target_id = ?"
        params.append(target_id)
    return [_row(r) for r in db.query(sql + " ORDER BY dead_at DESC, id DESC LIMIT ?", [*params, int(limit)])]


def retry_dead(db: Any, target_id: int | None = None, ids: list[int] | None = None) -> int:
    """Put dead letters back in the queue (attempts reset); returns how many."""
    now = time.time()
    sql = "UPDATE outbox SET state = 'pending', attempts = 0, next_at = ?, dead_at = NULL, lease_until = NULL, created = ? " \
          "WHERE state = 'dead'"
    params: list[Any] = [now, now]
    if target_id is not None:
        sql += " AND target_id = ?"
        params.append(target_id)
    if ids:
        sql += f" AND id IN ({','.join('?' * len(ids))})"
        params += [int(i) for i in ids]
    with db.write() as c:
        return int(c.execute(sql, params).rowcount)


def purge_dead(db: Any, target_id: int | None = None) -> int:
    sql, params = "DELETE FROM outbox WHERE state = 'dead'", []
    if target_id is not None:
        sql += " AND target_id = ?"
        params.append(target_id)
    with db.write() as c:
        return int(c.execute(sql, params).rowcount)


def counters(db: Any) -> dict[str, int]:
    out = {"enqueued_pending": 0, "dead": 0}
    for state, n in db.query("SELECT state, COUNT(*) FROM outbox GROUP BY state"):
        out["enqueued_pending" if state == "pending" else "dead"] = int(n)
    for name, value in db.query("SELECT name, value FROM outbox_counters"):
        out[str(name)] = int(value)
    out["pending"] = out.pop("enqueued_pending")
    return out
