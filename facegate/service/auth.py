"""API keys, roles and the failed-authentication limiter.

Keys look like ``fg_<id>_<secret>``: ``id`` (10 hex digits) is public and names the key in
logs, lists and the audit trail; ``secret`` (43 URL-safe characters, 256 random bits) is
shown once at creation and stored only as its SHA-256. A fast hash is enough because the
secret is random, not a password: there is nothing to brute-force offline.

Deny by default: every route declares the one permission it needs, and a role grants a
fixed set of permissions (:data:`ROLE_PERMISSIONS`). Routes without a declared
permission are only the public ones (health, readiness, the schema, the static page).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from facegate.errors import UsageError
from facegate.service.db import ServiceDB

log = logging.getLogger(__name__)

ROLES = ("admin", "gate", "viewer")

# What each role may do. Kept as data so the docs, the whoami answer and the tests read one table.
PERMISSIONS = {
    "gate:check": "POST /api/v1/gates/{gate}/check (one image or a burst)",
    "faces:analyse": "identify, detect, verify",
    "people:read": "list and show people, their faces and thumbnails, gallery stats",
    "people:write": "enrol, rename, delete people and faces",
    "events:read": "the access event log",
    "keys:manage": "create, list and revoke API keys",
    "access:manage": "per-gate access lists (rules and groups) and gate settings (liveness)",
    "metrics:read": "GET /metrics",
    "hooks:manage": "webhook and MQTT targets, the outbox and its dead letters",  # integrations (issue 24)
    "calibration:manage": "site calibration: estimate, show, adopt and revert the operating-point table",  # issue 22
}
ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    "admin": frozenset(PERMISSIONS),
    "gate": frozenset({"gate:check", "faces:analyse"}),
    "viewer": frozenset({"people:read", "events:read", "metrics:read"}),
}

_KEY_RE = re.compile(r"^fg_([0-9a-f]{10})_([A-Za-z0-9_-]{20,100})$")


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of one request."""

    key_id: str
    name: str
    role: str

    @property
    def permissions(self) -> frozenset[str]:
        return ROLE_PERMISSIONS.get(self.role, frozenset())

    def can(self, permission: str) -> bool:
        return permission in self.permissions


def create_key(db: ServiceDB, role: str, name: str = "") -> dict[str, Any]:
    """Make a key; the returned ``key`` is the only time the secret exists outside the caller."""
    if role not in ROLES:
        raise UsageError(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
    if len(name) > 200:
        raise UsageError("a key name is at most 200 characters")
    key_id = secrets.token_hex(5)
    secret = secrets.token_urlsafe(32)
    created = db.add_key(key_id, name, role, digest(secret))
    log.info("api key %s created (role %s, name %r)", key_id, role, name)
    return {"id": key_id, "key": f"fg_{key_id}_{secret}", "role": role, "name": name, "created": created}


def key_id_of(presented: str) -> str | None:
    """The public id of a presented key, if it is shaped like one (for logging failed attempts)."""
    m = _KEY_RE.match(presented or "")
    return m.group(1) if m else None


class KeyVerifier:
    """Checks presented keys against the database; revocation takes effect on the next request."""

    TOUCH_EVERY = 60.0  # seconds between last_used writes per key (not one write per request)

    def __init__(self, db: ServiceDB) -> None:
        self.db = db
        self._touched: dict[str, float] = {}
        self._lock = threading.Lock()

    def verify(self, presented: str) -> tuple[Principal | None, str]:
        """(principal, "") on success, else (None, reason) with a reason safe to log."""
        m = _KEY_RE.match(presented or "")
        if not m:
            return None, "malformed key"
        key_id, secret = m.groups()
        row = self.db.get_key(key_id)
        if row is None:
            hmac.compare_digest(digest(secret), "0" * 64)  # same work whether or not the id exists
            return None, "unknown key"
        if not hmac.compare_digest(digest(secret), row["hash"]):
            return None, "wrong secret"
        if row["revoked"] is not None:
            return None, "revoked key"
        now = time.time()
        with self._lock:
            stale = now - self._touched.get(key_id, 0.0) > self.TOUCH_EVERY
            if stale:
                self._touched[key_id] = now
        if stale:
            try:
                self.db.touch_key(key_id, now)
            except Exception as exc:  # noqa: BLE001 - bookkeeping only; never fail a request for it
                log.debug("could not record key use: %s", exc)
        return Principal(key_id=key_id, name=row["name"], role=row["role"]), ""


class FailureLimiter:
    """Counts failed authentications per client address in a sliding window.

    Past ``limit`` failures within ``window`` seconds the address is locked out: every
    request from it that needs a key gets 429 until its oldest failure leaves the window,
    valid key or not (checking keys during a lockout would tell a guesser when it guessed right).
    """

    def __init__(self, limit: int = 10, window: float = 60.0, max_clients: int = 100_000) -> None:
        self.limit = int(limit)
        self.window = float(window)
        self.max_clients = max_clients
        self._fails: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _prune(self, q: deque[float], now: float) -> None:
        while q and now - q[0] > self.window:
            q.popleft()

    def retry_after(self, client: str) -> float:
        """Seconds until ``client`` may try again; 0 when it is not locked out."""
        now = time.monotonic()
        with self._lock:
            q = self._fails.get(client)
            if not q:
                return 0.0
            self._prune(q, now)
            if len(q) < self.limit:
                return 0.0
            return max(0.0, self.window - (now - q[-self.limit]))

    def fail(self, client: str) -> int:
        """Record one failure; returns the failures now in the window."""
        now = time.monotonic()
        with self._lock:
            if client not in self._fails and len(self._fails) >= self.max_clients:
                # bounded memory under address-spraying: forget clients with nothing recent
                for c in [c for c, q in self._fails.items() if not q or now - q[-1] > self.window]:
                    del self._fails[c]
            q = self._fails.setdefault(client, deque(maxlen=self.limit * 2))
            self._prune(q, now)
            q.append(now)
            return len(q)
