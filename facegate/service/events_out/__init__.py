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


__all__ = [
    "DeliveryError", "DeliveryWorker", "EventsOutSettings", "HookError", "HookNotFoundError", "Target", "install",
    "queue_identification", "signature", "send_test", "verify_signature",
]
