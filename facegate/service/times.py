"""Times on the API: answers say ISO 8601 with the offset of the site's time zone (``serve --time-zone``,
default the machine's): ``created``, ``updated``, ``last_used``, ``revoked`` and an event's ``at``
(:func:`site_times`; an event's ``time`` is the same moment in UTC). Filters accept ISO 8601 or unix seconds."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any

from facegate.service.errors import ApiError
from facegate.timefmt import iso_times


def site_times(payload: Any, tz: str | None) -> Any:
    """``payload`` with its unix times (:data:`facegate.timefmt.TIME_KEYS`) as ISO 8601 in the site's zone
    ``tz``, to the microsecond, truncated: ``until=<a time answered>`` leaves that record out."""
    return iso_times(payload, tz=tz, timespec="microseconds")


def iso_utc(t: float) -> str:
    """ISO 8601 in UTC, truncated (not rounded) to the microsecond, so ``until=<an event's time>``
    leaves that event out and ``since=`` keeps it in."""
    whole = math.floor(t)
    micro = min(999_999, int((t - whole) * 1_000_000))
    d = datetime.fromtimestamp(whole, tz=UTC).replace(microsecond=micro)
    return d.isoformat().replace("+00:00", "Z")


_SPACED_OFFSET = re.compile(r"^(\d{4}-\d\d-\d\d[T ][0-9:.]+) (\d\d:?\d\d)$")


def epoch_seconds(d: datetime | float | str | None) -> float | None:
    """Unix seconds of a query parameter: unix seconds, or ISO 8601 (without a zone: UTC), as the answers
    write it; an offset whose ``+`` a URL turned into a space is read as ``+``. 422 for what is not a time."""
    if d is None:
        return None
    if isinstance(d, str):
        text = d.strip()
        try:
            return epoch_seconds(float(text))
        except ValueError:
            pass
        m = _SPACED_OFFSET.match(text)
        if m:
            text = f"{m.group(1)}+{m.group(2)}"
        try:
            d = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError as exc:
            raise ApiError(422, "validation", f"not a time: {text[:60]!r}; send ISO 8601 (2026-12-09T08:00:00+01:00) "
                           "or unix seconds") from exc
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
