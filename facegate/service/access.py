"""Per-gate access lists: who (people, or groups of people) may pass which gate, and when.

A gate with no rule keeps the behaviour of a gate without lists: every recognised person
is allowed. A gate with rules allows a recognised person only when one of its rules names
them (directly or through a group they belong to) and, if the rule has a time window, the
check falls inside it. Windows are weekly: optional days (``mon``..``sun``) and optional
``HH:MM`` start and end in the rule's time zone; an end at or before the start crosses
midnight, and the part after midnight belongs to the day it started on. A rule made without a
zone gets the site's (``ServiceSettings.time_zone``, default this machine's), stored with it, so
a door's "08:00" is local time and every answer that shows a rule's hours names its zone. Rules
stored before zones defaulted to the site's have none and keep meaning UTC, as they did.

Every decision says which rule decided (:class:`AccessDecision`), and the gate check puts
that in its audit event. Storage is the service database (migration ``002_access_lists``).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from facegate.config import machine_time_zone
from facegate.errors import NotFoundError, UsageError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
RULE_COLUMNS = ("id", "gate", "person_id", "group_id", "days", "start", "end", "tz", "created")


class AccessError(UsageError):
    """An access rule or group that cannot be stored as given (bad window, unknown group, ...)."""

    code = "access"


class AccessNotFoundError(AccessError, NotFoundError):
    """The access group named does not exist: not found (exit 11, HTTP 404) on every front end."""

    exit_code = NotFoundError.exit_code
    code = NotFoundError.code


def parse_days(text: str | None) -> str | None:
    """``"mon-fri"``, ``"sat,sun"`` or ``"mon,wed-fri"`` -> canonical ``"mon,tue,..."``; None/empty: every day."""
    if text is None or not str(text).strip():
        return None
    out: set[int] = set()
    for part in str(text).lower().replace(" ", "").split(","):
        if not part:
            continue
        a, _, b = part.partition("-")
        if a not in DAYS or (b and b not in DAYS):
            raise AccessError(f"unknown day {part!r}; use mon..sun, e.g. mon-fri or sat,sun")
        i, j = DAYS.index(a), DAYS.index(b or a)
        out.update(range(i, j + 1) if i <= j else [*range(i, 7), *range(0, j + 1)])
    return ",".join(DAYS[i] for i in sorted(out)) or None


def parse_hhmm(text: str | None, what: str) -> str | None:
    if text is None or not str(text).strip():
        return None
    if not _HHMM.match(str(text).strip()):
        raise AccessError(f"{what} must be HH:MM (24-hour), not {text!r}")
    return str(text).strip()


def parse_tz(name: str | None) -> str | None:
    if name is None or not str(name).strip():
        return None
    try:
        ZoneInfo(str(name).strip())
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise AccessError(f"unknown time zone {name!r}; use an IANA name such as Europe/Paris") from exc
    return str(name).strip()


@dataclass(frozen=True)
class AccessRule:
    """One rule of a gate's list."""

    id: int
    gate: str
    person_id: int | None
    group_id: int | None
    days: str | None
    start: str | None
    end: str | None
    tz: str | None
    created: float
    group: str | None = None  # the group's name, for display

    def in_window(self, at: float) -> bool:
        """Whether unix time ``at`` falls inside this rule's weekly window."""
        zone = ZoneInfo(self.tz) if self.tz else UTC
        local = datetime.fromtimestamp(at, zone)
        days = set(self.days.split(",")) if self.days else set(DAYS)
        if self.start is None or self.end is None:
            return DAYS[local.weekday()] in days
        s, e = dtime.fromisoformat(self.start), dtime.fromisoformat(self.end)
        now = local.time().replace(tzinfo=None)
        if s < e:
            return DAYS[local.weekday()] in days and s <= now < e
        if now >= s:  # overnight window, before midnight
            return DAYS[local.weekday()] in days
        if now < e:  # overnight window, after midnight: the day it started on counts
            return DAYS[(local - timedelta(days=1)).weekday()] in days
        return False

    def window(self) -> str:
        """``"mon,tue,wed 08:00-18:00 Europe/Paris"``: days, hours and the zone they are in (none for a rule
        without days or hours, whose zone does not matter)."""
        days = self.days or "every day"
        hours = f" {self.start}-{self.end}" if self.start else ""
        zone = f" {self.tz or 'UTC'}" if self.start or self.days else ""
        return f"{days}{hours}{zone}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "gate": self.gate, "person_id": self.person_id, "group_id": self.group_id,
            "group": self.group, "days": self.days, "start": self.start, "end": self.end, "tz": self.tz,
            "created": self.created, "window": self.window(),
        }


@dataclass(frozen=True)
class AccessDecision:
    """Whether a gate admits a recognised person now, and what decided it.

    ``reason``: ``no_face``, ``unknown`` (nobody recognised), ``no_list`` (allowed: the gate has
    no access list), ``permitted`` (allowed by ``rule``), ``outside_window`` (a rule names the
    person but not now), ``not_permitted`` (no rule names them)."""

    allowed: bool
    reason: str
    rule: AccessRule | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"allowed": self.allowed, "reason": self.reason, "rule": self.rule.to_dict() if self.rule else None}


# -- storage ---------------------------------------------------------------------------------------
def _rule(row: tuple, group: str | None = None) -> AccessRule:
    return AccessRule(*row, group=group)


def rules(db: Any, gate: str | None = None) -> list[AccessRule]:
    """Every rule (of one gate, when given), oldest first."""
    sql = (f"SELECT r.{', r.'.join(RULE_COLUMNS)}, g.name FROM access_rules r "
           "LEFT JOIN access_groups g ON g.id = r.group_id")
    params: list[Any] = []
    if gate is not None:
        sql += " WHERE r.gate = ?"
        params.append(gate)
    return [_rule(r[:-1], r[-1]) for r in db.query(sql + " ORDER BY r.id", params)]


def add_rule(
    db: Any, gate: str, *, person_id: int | None = None, group: str | None = None, days: str | None = None,
    start: str | None = None, end: str | None = None, tz: str | None = None, site_tz: str | None = None,
) -> AccessRule:
    """Permit a person (by gallery id) or a group (by name) at ``gate``, optionally in a window whose hours
    are in ``tz``, else in ``site_tz``, else in the database's ``time_zone`` (the service sets it from its
    ``time_zone`` setting), else this machine's zone."""
    if (person_id is None) == (group is None):
        raise AccessError("a rule names either a person or a group")
    days, start, end = parse_days(days), parse_hhmm(start, "start"), parse_hhmm(end, "end")
    tz = parse_tz(tz) or parse_tz(site_tz) or parse_tz(getattr(db, "time_zone", None)) or machine_time_zone()
    if (start is None) != (end is None):
        raise AccessError("a time window needs both a start and an end")
    with db.write() as c:
        gid = None
        if group is not None:
            row = c.execute("SELECT id FROM access_groups WHERE name = ?", (group,)).fetchone()
            if row is None:
                raise AccessNotFoundError(f"no access group named {group!r}; add members to create it")
            gid = int(row[0])
        rid = int(c.execute(
            "INSERT INTO access_rules (gate, person_id, group_id, days, start, end, tz, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (gate, person_id, gid, days, start, end, tz, time.time()),
        ).lastrowid)
    return next(r for r in rules(db, gate) if r.id == rid)


def delete_rule(db: Any, rule_id: int) -> bool:
    with db.write() as c:
        return bool(c.execute("DELETE FROM access_rules WHERE id = ?", (int(rule_id),)).rowcount)


def groups(db: Any) -> list[dict[str, Any]]:
    """Every group with its members' person ids."""
    out = []
    for gid, name, created in db.query("SELECT id, name, created FROM access_groups ORDER BY name"):
        members = [int(r[0]) for r in db.query(
            "SELECT person_id FROM access_group_members WHERE group_id = ? ORDER BY person_id", (gid,))]
        out.append({"id": int(gid), "name": name, "created": created, "members": members})
    return out


def add_members(db: Any, group: str, person_ids: list[int]) -> dict[str, Any]:
    """Add people to a group (created on first use)."""
    if not group or not group.strip():
        raise AccessError("a group needs a non-empty name")
    with db.write() as c:
        c.execute("INSERT OR IGNORE INTO access_groups (name, created) VALUES (?, ?)", (group, time.time()))
        gid = int(c.execute("SELECT id FROM access_groups WHERE name = ?", (group,)).fetchone()[0])
        for pid in person_ids:
            c.execute("INSERT OR IGNORE INTO access_group_members (group_id, person_id) VALUES (?, ?)", (gid, int(pid)))
    return next(g for g in groups(db) if g["id"] == gid)


def remove_members(db: Any, group: str, person_ids: list[int]) -> dict[str, Any]:
    with db.write() as c:
        row = c.execute("SELECT id FROM access_groups WHERE name = ?", (group,)).fetchone()
        if row is None:
            raise AccessNotFoundError(f"no access group named {group!r}")
        for pid in person_ids:
            c.execute("DELETE FROM access_group_members WHERE group_id = ? AND person_id = ?", (int(row[0]), int(pid)))
    return next(g for g in groups(db) if g["id"] == int(row[0]))


def delete_group(db: Any, group: str) -> bool:
    """Delete a group, its memberships and the rules that name it."""
    with db.write() as c:
        row = c.execute("SELECT id FROM access_groups WHERE name = ?", (group,)).fetchone()
        if row is None:
            return False
        c.execute("DELETE FROM access_rules WHERE group_id = ?", (int(row[0]),))
        c.execute("DELETE FROM access_group_members WHERE group_id = ?", (int(row[0]),))
        c.execute("DELETE FROM access_groups WHERE id = ?", (int(row[0]),))
    return True


def forget_person(db: Any, person_id: int) -> int:
    """Remove a deleted person's rules and memberships; returns the rows removed."""
    with db.write() as c:
        n = c.execute("DELETE FROM access_rules WHERE person_id = ?", (int(person_id),)).rowcount
        n += c.execute("DELETE FROM access_group_members WHERE person_id = ?", (int(person_id),)).rowcount
    return int(n)


# -- the decision ------------------------------------------------------------------------------------
def check_access(db: Any, gate: str, person_id: int | None, at: float, *, face: bool = True) -> AccessDecision:
    """Whether ``gate`` admits ``person_id`` (None: nobody recognised) at unix time ``at``."""
    if person_id is None:
        return AccessDecision(False, "unknown" if face else "no_face")
    gate_rules = rules(db, gate)
    if not gate_rules:
        return AccessDecision(True, "no_list")
    mine = {int(r[0]) for r in db.query(
        "SELECT group_id FROM access_group_members WHERE person_id = ?", (int(person_id),))}
    naming = [r for r in gate_rules if r.person_id == person_id or (r.group_id is not None and r.group_id in mine)]
    for r in naming:
        if r.in_window(at):
            return AccessDecision(True, "permitted", r)
    if naming:
        return AccessDecision(False, "outside_window", naming[0])
    return AccessDecision(False, "not_permitted")
