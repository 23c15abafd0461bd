"""Events out: gate decisions (and, when asked, ``watch`` identifications) to webhooks and MQTT.

::

    decision ──ServiceDB.add_event (one transaction)──▶ events row + outbox rows
    outbox ──DeliveryWorker (background threads)──▶ signed webhook POST / MQTT QoS 1 (+ Home Assistant discovery)

Modules: :mod:`.config` (limits), :mod:`.targets` (what a target is, checks at configuration
time, storage), :mod:`.outbox` (the durable queue and its guarantees), :mod:`.webhook` (signing,
POST), :mod:`.mqtt` (paho, discovery), :mod:`.worker` (delivery threads), :mod:`.router` (the
admin REST API). The CLI is :mod:`facegate.cli.hooks`.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from facegate.service.events_out.config import EventsOutSettings
from facegate.service.events_out.outbox import event_hook
from facegate.service.events_out.targets import HookError, HookNotFoundError, Target
from facegate.service.events_out.webhook import DeliveryError, signature, verify_signature
from facegate.service.events_out.worker import DeliveryWorker


def install(db: Any, settings: EventsOutSettings | None = None) -> DeliveryWorker:
    """Make every access event ``db`` records also queue its deliveries (same transaction), and
    return the worker that delivers them (started and stopped by the app's lifespan)."""
    worker = DeliveryWorker(db.path, settings)
    db.event_hooks.append(event_hook(worker.settings, worker.wake))
    return worker


def send_test(target: Target, settings: EventsOutSettings | None = None) -> dict[str, Any]:
    """Deliver one ``hook.test`` payload to ``target`` now, outside the outbox: what happened."""
    from facegate.service.events_out.outbox import probe_payload

    s = settings or EventsOutSettings()
    payload = probe_payload(str(uuid.uuid4()), time.time(), target.name)
    try:
        if target.kind == "webhook":
            from facegate.service.events_out.webhook import post

            status: int | None = post(target, payload, attempt=1, timeout=s.timeout)
        else:
            from facegate.service.events_out.mqtt import deliver_once

            deliver_once(target, "hook.test", payload, s.timeout)
            status = None
    except DeliveryError as exc:
        return {"target": target.name, "delivered": False, "status": exc.status, "error": str(exc), "id": payload["id"]}
    return {"target": target.name, "delivered": True, "status": status, "error": None, "id": payload["id"]}


def queue_identification(db: Any, event: dict[str, Any], source: str, settings: EventsOutSettings | None = None) -> int:
    """Queue a ``watch`` identification (an ``identified`` event) for the targets that asked for
    ``watch.identified``; returns how many rows were queued."""
    from facegate.service.events_out.outbox import enqueue, identification_payload

    now = time.time()
    payload = identification_payload(str(uuid.uuid4()), now, event, source)
    with db.write() as c:
        return enqueue(c, "watch.identified", payload, gate=None, event_id=None,
                       settings=settings or EventsOutSettings(), now=now)


def safe_source(source: str) -> str:
    """A video source as it may appear in a payload: a stream URL without its user name and password."""
    import urllib.parse

    try:
        parts = urllib.parse.urlsplit(source)
    except ValueError:
        return "video"
    if parts.username is None and parts.password is None:
        return source[:300]
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))[:300]


class IdentificationSink:
    """A ``watch`` event sink (:class:`facegate.track.events.EventSink`) that queues every ``identified``
    event for the targets that asked for ``watch.identified``, and delivers them from this process
    (its own worker; rows are leased, so a running ``facegate serve`` over the same database does not
    send them twice). ``close`` waits up to ``drain`` seconds for the queue to empty."""

    def __init__(self, db_path: Any, source: str, settings: EventsOutSettings | None = None, drain: float = 10.0) -> None:
        from facegate.service.db import ServiceDB

        self.settings = settings or EventsOutSettings()
        self.source = safe_source(str(source))
        self.drain = float(drain)
        self.db = ServiceDB(db_path)
        self.worker = DeliveryWorker(db_path, self.settings)
        self.worker.start()
        self.queued = 0

    def emit(self, event: dict[str, Any]) -> None:
        if event.get("event") != "identified":
            return
        n = queue_identification(self.db, event, self.source, self.settings)
        if n:
            self.queued += n
            self.worker.wake()

    def close(self) -> None:
        deadline = time.monotonic() + self.drain
        while time.monotonic() < deadline:
            left = self.db.query("SELECT COUNT(*) FROM outbox WHERE kind = 'watch.identified' AND state = 'pending'")[0][0]
            if not left:
                break
            time.sleep(0.05)
        self.worker.stop()
        self.db.close()


__all__ = [
    "DeliveryError", "DeliveryWorker", "EventsOutSettings", "HookError", "HookNotFoundError", "IdentificationSink",
    "Target", "install",
    "queue_identification", "signature", "send_test", "verify_signature",
]
