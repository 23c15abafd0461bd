"""Limits and timings of the outbox and its delivery (one frozen dataclass, no I/O).

Kept in its own module so :class:`facegate.service.settings.ServiceSettings` can carry one
without importing the delivery code. Defaults are for production; tests shorten the back-off.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class EventsOutSettings:
    """How much the outbox holds and how hard delivery tries.

    Bounded on purpose: a receiver that stays down must not grow the service database without
    end. Past ``max_pending`` undelivered rows the oldest are dropped (counted per target and in
    ``outbox_counters``, logged); past ``max_dead`` dead letters the oldest dead letters go.
    """

    max_pending: int = 10_000  # undelivered rows, all targets together
    max_dead: int = 1_000  # dead letters kept for admins to inspect and retry
    max_attempts: int = 20  # delivery attempts of one row before it becomes a dead letter
    max_age: float = 24 * 3600.0  # seconds a row may wait before it becomes a dead letter
    backoff_base: float = 1.0  # seconds after the first failure of a target; doubled per failure
    backoff_cap: float = 300.0  # longest wait between attempts
    timeout: float = 5.0  # one webhook request or one MQTT publish acknowledgement
    batch: int = 50  # rows one worker claims at a time
    lease: float = 120.0  # a claim expires after this (a crashed worker's rows are picked up again)
    poll: float = 1.0  # seconds between looks at the outbox when nothing woke the worker
    refresh: float = 2.0  # seconds between re-reads of the target list (changes by the CLI)
    replay_window: float = 300.0  # documented for receivers: reject signatures older than this

    def replace(self, **changes: object) -> EventsOutSettings:
        return replace(self, **changes)  # type: ignore[arg-type]
