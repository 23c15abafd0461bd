"""The delivery worker: background threads that empty the outbox, off the request path.

One supervisor thread re-reads the target list (targets added or removed by the CLI in another
process are picked up within ``refresh`` seconds) and runs one thread per enabled target, so a
slow or dead receiver delays only its own deliveries. Each target thread claims its due rows
(oldest first), delivers them in order and deletes the acknowledged ones; on a failure it waits
an exponentially growing time with jitter (``backoff_base`` doubling up to ``backoff_cap``,
times a random factor in [0.5, 1]) before trying the same row again, so events reach a receiver
in order once it is back. The worker has its own database connection: a delivery never holds
the lock that a gate check's write needs, and no network I/O happens inside a transaction.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from pathlib import Path
from typing import Any

from facegate.service.events_out import outbox
from facegate.service.events_out.config import EventsOutSettings
from facegate.service.events_out.targets import Target, list_targets
from facegate.service.events_out.webhook import DeliveryError, post

log = logging.getLogger(__name__)


def backoff(failures: int, settings: EventsOutSettings, rnd: random.Random | None = None) -> float:
    """Seconds to wait after ``failures`` consecutive failures: base * 2^(failures-1), capped, times [0.5, 1]."""
    r = (rnd or random).random()
    raw = min(settings.backoff_cap, settings.backoff_base * 2 ** max(0, failures - 1))
    return raw * (0.5 + 0.5 * r)


class TargetLoop:
    """Delivers one target's rows until stopped."""

    def __init__(self, target: Target, db: Any, settings: EventsOutSettings) -> None:
        self.target = target
        self.db = db
        self.settings = settings
        self.wake = threading.Event()
        self.stop = threading.Event()
        self.interrupt = threading.Event()  # ends a back-off wait early: stopping, or the broker is back
        self.reconnected = threading.Event()
        self.failures = 0
        self.link: Any = None
        self.thread = threading.Thread(target=self._run, name=f"facegate-hook-{target.name}", daemon=True)

    def _known_gates(self) -> list[str]:
        rows = self.db.query("SELECT DISTINCT gate FROM events WHERE kind = 'access' AND gate IS NOT NULL LIMIT 1000")
        gates = sorted(str(r[0]) for r in rows)
        return [g for g in gates if self.target.gates is None or g in self.target.gates]

    def _link_connected(self) -> None:
        """paho's thread: the broker (re)connected; the loop stops waiting and sends what is pending."""
        self.reconnected.set()
        self.interrupt.set()
        self.wake.set()

    def _deliver(self, row: outbox.Row) -> None:
        payload = row.data()
        if self.target.kind == "webhook":
            post(self.target, payload, attempt=row.attempts + 1, timeout=self.settings.timeout)
        else:
            self.link.deliver(row.kind, payload)

    def _run(self) -> None:
        try:
            if self.target.kind == "mqtt":
                from facegate.service.events_out.mqtt import MqttLink

                self.link = MqttLink(self.target, self.settings.timeout, self._known_gates, self._link_connected)
            while not self.stop.is_set():
                self._cycle()
        except Exception:  # a broken target must not take the worker (or the service) down
            log.exception("events out: the delivery thread of %s stopped", self.target.name)
        finally:
            if self.link is not None:
                try:
                    self.link.close()
                except Exception as exc:  # noqa: BLE001 - closing is best-effort at shutdown
                    log.debug("closing the MQTT link of %s: %s", self.target.name, exc)

    def _cycle(self) -> None:
        s = self.settings
        if self.reconnected.is_set():  # the broker is back: what waited out the back-off is due now
            self.reconnected.clear()
            self.failures = 0
            outbox.make_due(self.db, self.target.id, time.time())
        if self.link is not None:  # an MQTT (re)connection: availability and discovery, even without events
            try:
                self.link.announce()
            except DeliveryError as exc:
                log.debug("mqtt %s: announce failed: %s", self.target.name, exc)
        now = time.time()
        rows = outbox.claim(self.db, self.target.id, now=now, limit=s.batch, lease=s.lease)
        if not rows:
            due = outbox.next_due(self.db, self.target.id)
            wait = s.poll if due is None else min(s.poll, max(0.0, due - time.time()))
            woke = self.wake.wait(max(wait, 0.005))
            self.wake.clear()
            if woke:  # woken from inside a transaction that may not have committed yet: look again shortly
                self.stop.wait(0.01)
            return
        done: list[int] = []
        last_flush = time.monotonic()
        for i, row in enumerate(rows):
            if self.stop.is_set():
                outbox.release(self.db, [r.id for r in rows[i:]])
                break
            try:
                self._deliver(row)
            except DeliveryError as exc:
                outbox.delivered(self.db, self.target.id, done, time.time())
                done = []
                now = time.time()
                if not exc.permanent:
                    self.failures += 1
                wait = 0.0 if exc.permanent else backoff(self.failures, s)
                outbox.failed(self.db, row, str(exc), now=now, retry_at=now + wait, permanent=exc.permanent, settings=s)
                outbox.release(self.db, [r.id for r in rows[i + 1:]])
                if not exc.permanent:
                    log.info("events out: %s: %s; next try in %.1f s", self.target.name, exc, wait)
                    self.interrupt.wait(wait)
                    self.interrupt.clear()
                return
            self.failures = 0
            done.append(row.id)
            if time.monotonic() - last_flush > 0.5:  # a long batch: acknowledge progress now and then
                outbox.delivered(self.db, self.target.id, done, time.time())
                done, last_flush = [], time.monotonic()
        outbox.delivered(self.db, self.target.id, done, time.time())

    def start(self) -> None:
        self.thread.start()

    def close(self, timeout: float) -> None:
        self.stop.set()
        self.wake.set()
        self.interrupt.set()
        self.thread.join(timeout)


class DeliveryWorker:
    """All target loops of one process, over its own connection to the service database."""

    def __init__(self, db_path: str | Path, settings: EventsOutSettings | None = None) -> None:
        self.db_path = Path(db_path)
        self.settings = settings or EventsOutSettings()
        self.db: Any = None
        self.loops: dict[int, TargetLoop] = {}
        self._versions: dict[int, float] = {}
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def wake(self) -> None:
        """Something was queued: the target loops look now rather than at their next poll."""
        for loop in list(self.loops.values()):
            loop.wake.set()

    def targets_changed(self) -> None:
        """A target was added or removed here: re-read the list now (other processes: within ``refresh``)."""
        self._wake.set()

    def start(self) -> None:
        from facegate.service.db import ServiceDB

        if self._thread is not None:
            return
        self.db = ServiceDB(self.db_path)
        self._stop.clear()
        self._thread = threading.Thread(target=self._supervise, name="facegate-hooks", daemon=True)
        self._thread.start()

    def refresh(self) -> None:
        """Start loops for new or changed targets, stop those of removed ones."""
        with self._lock:
            targets = {t.id: t for t in list_targets(self.db, enabled_only=True)}
            for tid in list(self.loops):
                if tid not in targets or targets[tid].updated != self._versions.get(tid):
                    self.loops.pop(tid).close(self.settings.timeout + 1)
                    self._versions.pop(tid, None)
            for tid, t in targets.items():
                if tid not in self.loops and not self._stop.is_set():
                    loop = TargetLoop(t, self.db, self.settings)
                    self.loops[tid], self._versions[tid] = loop, t.updated
                    loop.start()

    def _supervise(self) -> None:
        while not self._stop.is_set():
            try:
                self.refresh()
            except Exception:  # keep supervising; the next refresh may work
                log.exception("events out: could not read the hook targets")
            self._wake.wait(self.settings.refresh)
            self._wake.clear()

    def stop(self, timeout: float | None = None) -> None:
        timeout = self.settings.timeout + 2 if timeout is None else timeout
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        with self._lock:
            for loop in list(self.loops.values()):
                loop.stop.set()
                loop.wake.set()
                loop.interrupt.set()
            for loop in list(self.loops.values()):
                loop.thread.join(timeout)
            self.loops.clear()
        if self.db is not None:
            self.db.close()
            self.db = None
