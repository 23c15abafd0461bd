"""Times in answers: ISO 8601 with the UTC offset, in the site's time zone (default this machine's).

A float epoch says nothing to a person and an ISO time without an offset is ambiguous, so every time
facegate prints or writes as JSON for people goes through :func:`iso_time`: ``2026-12-09T08:00:00+01:00``;
:func:`iso_times` converts the times of a whole answer (the CLI's ``--json`` and the REST service's).
Base layer: imports nothing of facegate's.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

# Keys whose numbers are unix times in the library's dicts (people, faces, keys, access rules and groups, events,
# hook targets and dead letters).
TIME_KEYS = frozenset({"created", "updated", "last_used", "revoked", "at", "last_success", "last_error_at", "next_at",
                       "dead_at"})


def iso_time(t: float | None, timespec: str = "seconds", tz: str | None = None) -> str | None:
    """Unix time ``t`` as ISO 8601 with its offset, in the IANA zone ``tz`` (None: this machine's); None for
    None, NaN or infinity (never happened). Sub-second ``timespec``s truncate rather than round, so a time
    read back as a filter bound (``until=``) never lands after the moment it names."""
    if t is None or not math.isfinite(t):
        return None
    whole = math.floor(t)
    micro = min(999_999, int((t - whole) * 1_000_000))
    zone = ZoneInfo(tz) if tz else None
    d = (datetime.fromtimestamp(whole, tz=zone) if zone else datetime.fromtimestamp(whole).astimezone())
    return d.replace(microsecond=micro).isoformat(timespec=timespec)


def iso_times(payload: Any, *, tz: str | None = None, timespec: str = "seconds") -> Any:
    """``payload`` with the numbers under :data:`TIME_KEYS` as :func:`iso_time` strings (booleans, such as an
    enrolment's ``created: true``, and nulls are left as they are)."""
    if isinstance(payload, dict):
        return {k: (iso_time(v, timespec, tz) if k in TIME_KEYS and type(v) in (int, float)
                    else iso_times(v, tz=tz, timespec=timespec)) for k, v in payload.items()}
    if isinstance(payload, (list, tuple)):
        return [iso_times(v, tz=tz, timespec=timespec) for v in payload]
    return payload
