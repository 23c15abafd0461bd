"""Times on the API: answers say ISO 8601 in UTC; filters accept ISO 8601 or unix seconds."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from facegate.service.errors import ApiError


def iso_utc(t: float) -> str:
    """ISO 8601 in UTC, truncated (not rounded) to the microsecond, so ``until=<an event's time>``
    leaves that event out and ``since=`` keeps it in."""
    whole = math.floor(t)
    micro = min(999_999, int((t - whole) * 1_000_000))
    d = datetime.fromtimestamp(whole, tz=UTC).replace(microsecond=micro)
    return d.isoformat().replace("+00:00", "Z")


def epoch_seconds(d: datetime | float | None) -> float | None:
    """Unix seconds of a query parameter (a datetime without a zone is UTC); 422 for what is not a time."""
    if d is None:
        return None
    if isinstance(d, (int, float)):
        if not math.isfinite(d):
            raise ApiError(422, "validation", "time must be a finite number of seconds")
        return float(d)
    if d.tzinfo is None:
        d = d.replace(tzinfo=UTC)
    try:
        return d.timestamp()
    except (OverflowError, OSError, ValueError) as exc:
        raise ApiError(422, "validation", f"time out of range: {d}") from exc
