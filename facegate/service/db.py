"""The service database: API keys and the audit trail (access decisions, failed logins, admin actions).

A separate SQLite file from the gallery (``gallery.service.sqlite`` beside ``gallery.sqlite``):
the gallery is a library usable without the service and owns its schema and migrations;
keys and events are the service's. Same durability rules as the gallery store, from the same
:class:`facegate.sqlite_db.SqliteDatabase`: WAL, ``synchronous=FULL`` (an acknowledged event
survives a crash), ``BEGIN IMMEDIATE`` for writes, numbered migrations in
``facegate/service/migrations`` recorded in ``PRAGMA user_version``; and ``secure_delete``.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from facegate.errors import ExitCode, FacegateError
from facegate.sqlite_db import SqliteDatabase

log = logging.getLogger(__name__)


class ServiceDBError(FacegateError):
    """The service database cannot be opened or migrated."""

    exit_code = ExitCode.GALLERY
    code = "service_db"


def migrations() -> list[tuple[int, str, str]]:
    """(number, file name, SQL) of the shipped service migrations, in order, numbered 1..N."""
    return ServiceDB.migrations()


EVENT_COLUMNS = (
    "id", "at", "kind", "gate", "decision", "person_id", "name", "score", "threshold", "far",
    "faces", "key_id", "client", "action", "detail",
)


class ServiceDB(SqliteDatabase):
    """One connection to the service database, shared by the threads of one process (one lock)."""

    migrations_package = "facegate.service"
    label = "service database"
    error = ServiceDBError
    # The site's IANA time zone for access rules made through this database without one (the service sets it
    # from ServiceSettings.time_zone); None: this machine's zone (facegate.config.machine_time_zone).
    time_zone: str | None = None

    def __init__(self, path: str | Path, *, timeout: float = 30.0) -> None:
        try:
            # secure_delete: erased face images are overwritten, not left in free pages
            super().__init__(path, timeout=timeout, pragmas={"secure_delete": "ON"})
        except sqlite3.Error as exc:
            raise ServiceDBError(f"{self.path}: cannot open the service database ({exc})") from exc
        # integrations (issue 24): called as hook(conn, event_id, kind, at, fields) inside each new event's
        # transaction, so what they write (the events-out outbox) commits with the event or not at all
        self.event_hooks: list[Callable[[sqlite3.Connection, int, str, float, dict[str, Any]], None]] = []

    def ping(self) -> bool:
        try:
            self.query("SELECT 1")
            return True
        except sqlite3.Error:
            return False

    # -- keys ------------------------------------------------------------------------------
    def add_key(self, key_id: str, name: str, role: str, digest: str) -> float:
        now = time.time()
        with self.write() as c:
            c.execute(
                "INSERT INTO api_keys (id, name, role, hash, created) VALUES (?, ?, ?, ?, ?)",
                (key_id, name, role, digest, now),
            )
        return now

    def get_key(self, key_id: str) -> dict[str, Any] | None:
        rows = self.query("SELECT id, name, role, hash, created, revoked, last_used FROM api_keys WHERE id = ?", (key_id,))
        if not rows:
            return None
        return dict(zip(("id", "name", "role", "hash", "created", "revoked", "last_used"), rows[0]))

    def list_keys(self) -> list[dict[str, Any]]:
        rows = self.query("SELECT id, name, role, created, revoked, last_used FROM api_keys ORDER BY created")
        return [dict(zip(("id", "name", "role", "created", "revoked", "last_used"), r)) for r in rows]

    def revoke_key(self, key_id: str) -> bool:
        """Revoke a key; False when there is no such (unrevoked) key."""
        with self.write() as c:
            n = c.execute("UPDATE api_keys SET revoked = ? WHERE id = ? AND revoked IS NULL", (time.time(), key_id)).rowcount
        return bool(n)

    def touch_key(self, key_id: str, at: float) -> None:
        with self.write() as c:
            c.execute("UPDATE api_keys SET last_used = ? WHERE id = ?", (at, key_id))

    # -- events ----------------------------------------------------------------------------
    def add_event(self, kind: str, *, image: bytes | None = None, image_embedding: np.ndarray | None = None,
                  op: str | None = None, **fields: Any) -> int:
        """Append one event (and its face image, with the probe's embedding, when given); returns its id
        once committed. ``op``: the token of the gallery write it records; an event with that token
        already there is kept and its id returned (replays after a crash are idempotent)."""
        cols = [c for c in EVENT_COLUMNS if c not in ("id", "at", "kind") and c in fields]
        values = [json.dumps(fields[c]) if c == "detail" and fields[c] is not None else fields[c] for c in cols]
        at = float(fields.get("at") or time.time())
        sql = (
            f"INSERT OR IGNORE INTO events (at, kind, op{''.join(', ' + c for c in cols)}) "
            f"VALUES (?, ?, ?{', ?' * len(cols)})"
        )
        with self.write() as c:
            cur = c.execute(sql, [at, kind, op, *values])
            if not cur.rowcount:  # this op's event is already recorded
                return int(c.execute("SELECT id FROM events WHERE op = ?", (op,)).fetchone()[0])
            eid = int(cur.lastrowid)
            for hook in self.event_hooks:  # integrations (issue 24): e.g. the outbox rows of this event
                hook(c, eid, kind, at, fields)
            if image is not None:
                emb = None if image_embedding is None else np.ascontiguousarray(image_embedding, dtype="<f4").tobytes()
                c.execute(
                    "INSERT INTO event_images (event_id, person_id, jpeg, embedding) VALUES (?, ?, ?, ?)",
                    (eid, fields.get("person_id"), image, emb),
                )
        return eid

    def events(
        self,
        *,
        kind: str | None = None,
        person_id: int | None = None,
        gate: str | None = None,
        decision: str | None = None,
        since: float | None = None,
        until: float | None = None,
        before_id: int | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Newest first, filtered; ``before_id`` pages backwards."""
        where, params = [], []
        for col, val in (("kind", kind), ("person_id", person_id), ("gate", gate), ("decision", decision)):
            if val is not None:
                where.append(f"{col} = ?")
                params.append(val)
        if since is not None:
            where.append("at >= ?")
            params.append(since)
        if until is not None:
            where.append("at < ?")
            params.append(until)
        if before_id is not None:
            where.append("id < ?")
            params.append(before_id)
        sql = (
            f"SELECT e.{', e.'.join(EVENT_COLUMNS)}, (SELECT 1 FROM event_images i WHERE i.event_id = e.id) "
            f"FROM events e {'WHERE ' + ' AND '.join(where) if where else ''} ORDER BY e.id DESC LIMIT ?"
        )
        out = []
        for row in self.query(sql, [*params, int(limit)]):
            d = dict(zip(EVENT_COLUMNS, row[:-1]))
            d["detail"] = json.loads(d["detail"]) if d["detail"] else None
            d["has_image"] = bool(row[-1])
            out.append(d)
        return out

    def event_image(self, event_id: int) -> bytes | None:
        rows = self.query("SELECT jpeg FROM event_images WHERE event_id = ?", (event_id,))
        return bytes(rows[0][0]) if rows else None

    def erase_person_images(self, person_id: int, embeddings: np.ndarray | None = None, bar: float | None = None) -> int:
        """Delete every stored event image of a person (their decisions stay in the log): those of events
        that recognised them, and, given their face ``embeddings``, those of unrecognised probes
        (person_id NULL) scoring at least ``bar`` against any of them, i.e. their denied attempts."""
        with self.write() as c:
            n = c.execute("DELETE FROM event_images WHERE person_id = ?", (person_id,)).rowcount
            if embeddings is not None and bar is not None and len(embeddings):
                ref = np.asarray(embeddings, np.float32)
                ref = ref / np.maximum(np.linalg.norm(ref, axis=1, keepdims=True), 1e-12)
                doomed = []
                cur = c.execute("SELECT event_id, embedding FROM event_images WHERE person_id IS NULL AND embedding IS NOT NULL")
                while rows := cur.fetchmany(1000):
                    vecs = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(len(rows), -1)
                    if vecs.shape[1] != ref.shape[1]:
                        continue  # another model's probes: not comparable
                    hit = (vecs @ ref.T).max(axis=1) >= bar
                    doomed += [int(r[0]) for r, h in zip(rows, hit) if h]
                for i in range(0, len(doomed), 500):
                    chunk = doomed[i : i + 500]
                    n += c.execute(f"DELETE FROM event_images WHERE event_id IN ({','.join('?' * len(chunk))})", chunk).rowcount
        if n:
            self.checkpoint()
        return int(n)

    def denied_best_scores(self, since: float | None = None, limit: int = 2000) -> tuple[list[float], list[float]]:
        """(best-match scores, the bars they were decided at) of the most recent gate checks that found a
        face and named nobody (``since``: unix seconds; newest ``limit``): a site's stranger scores
        against its gallery, which the drift check (:mod:`facegate.calibrate.drift`) compares with the
        adopted site table. Checks of recognised people refused by an access rule are not among them."""
        rows = self.query(
            "SELECT score, threshold FROM events WHERE kind = 'access' AND decision = 'deny' AND person_id IS NULL "
            "AND score IS NOT NULL AND threshold IS NOT NULL AND at >= ? ORDER BY id DESC LIMIT ?",
            (float(since or 0.0), int(limit)),
        )
        return [float(r[0]) for r in rows], [float(r[1]) for r in rows]

    def counts(self) -> dict[str, int]:
        rows = self.query("SELECT kind, COUNT(*) FROM events GROUP BY kind")
        return {k: int(n) for k, n in rows}
