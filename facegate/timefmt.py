"""Times in answers: ISO 8601 with the UTC offset, in the machine's (the site's) time zone.

A float epoch says nothing to a person and an ISO time without an offset is ambiguous, so every time
facegate prints or writes as JSON for people goes through :func:`iso_time`: ``2026-12-09T08:00:00+01:00``.
Base layer: imports nothing of facegate's.
"""

from __future__ import annotations

import math
from datetime import datetime


def iso_time(t: float | None, timespec: str = "seconds") -> str | None:
    """Unix time ``t`` as local ISO 8601 with its offset; None for None, NaN or infinity (never happened)."""
    if t is None or not math.isfinite(t):
        return None
    return datetime.fromtimestamp(t).astimezone().isoformat(timespec=timespec)
