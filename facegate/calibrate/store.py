"""Adopt and revert site tables, with an append-only record of who changed what, when.

The store is the deployment's site-table store (:func:`facegate.decide.site.store_path`:
``<home>/site_tables.json``; its format and reader are the decision layer's, this module
writes it): per stack the table in force now, the tables adopted before it (so a revert restores
the previous one, or the shipped table after the first), the last estimate made (so an estimate
can be looked at first and adopted after, as the REST API does), and the audit log. Each log
entry says what was in force before and after (the thresholds at FAR 1e-3 ... 1e-6), who did it
and when, and whether an unreliable estimate was forced in. Writes are atomic, private (0600) and
serialised by a lock file, so a CLI adopting while a server reads never leaves a half-written store.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from facegate.calibrate.errors import SiteTableError, UnreliableEstimateError
from facegate.calibrate.table import REPORT_FARS, SiteTable, now_iso
from facegate.decide.site import STORE_VERSION, read_store
from facegate.files import open_private, write_private

SHIPPED = "shipped"


@dataclass(frozen=True)
class AdoptionEvent:
    """One entry of the audit log."""

    action: str  # "adopt" or "revert"
    stack: str
    when: str
    by: str
    forced: bool
    before: dict[str, Any]  # {"table": "shipped" | created, "thresholds": {far: threshold}}
    after: dict[str, Any]
    reasons: tuple[str, ...] = ()  # why the estimate was unreliable (forced adoptions)
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "stack": self.stack, "when": self.when, "by": self.by, "forced": self.forced,
                "before": self.before, "after": self.after, "reasons": list(self.reasons), "note": self.note}


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    lock = path.with_name(f".{path.name}.lock")
    with open_private(lock, "a") as fh:
        try:
            import fcntl

            fcntl.flock(fh, fcntl.LOCK_EX)
        except ImportError:  # pragma: no cover - not POSIX: atomic replace alone
            pass
        yield


def _load(path: Path) -> dict[str, Any]:
    return read_store(path)


def _write(path: Path, data: dict[str, Any]) -> None:
    write_private(path, json.dumps(data, indent=2) + "\n")


def _snapshot(table: SiteTable | None, shipped_points: Any = None) -> dict[str, Any]:
    if table is None:
        thr = {f"{p.far:g}": round(float(p.threshold), 4) for p in (shipped_points or [])
               if any(abs(p.far - f) <= 1e-9 * f for f in REPORT_FARS)}
        return {"table": SHIPPED, "thresholds": thr}
    return {"table": table.created, "by": table.by,
            "thresholds": {f"{p.far:g}": round(p.threshold, 4) for p in table.points
                           if any(abs(p.far - f) <= 1e-9 * f for f in REPORT_FARS)}}


def table_in_force(store: str | os.PathLike[str], stack: str) -> SiteTable | None:
    """The site table in force for ``stack``; None when the shipped table is (no store, nothing
    adopted, or everything reverted)."""
    path = Path(store)
    if not path.exists():
        return None
    entry = _load(path)["stacks"].get(stack)
    if not entry or not entry.get("adopted"):
        return None
    return SiteTable.from_dict(entry["adopted"][-1])


def save_estimate(store: str | os.PathLike[str], table: SiteTable) -> None:
    """Keep ``table`` as the last estimate of its stack (not in force: :func:`adopt` puts it there)."""
    path = Path(store)
    with _locked(path):
        data = _load(path)
        data["stacks"].setdefault(table.stack, {"adopted": []})["estimate"] = table.to_dict()
        _write(path, data)


def last_estimate(store: str | os.PathLike[str], stack: str) -> SiteTable | None:
    """The last estimate kept for ``stack`` (by :func:`save_estimate` or :func:`adopt`); None if none."""
    path = Path(store)
    if not path.exists():
        return None
    entry = _load(path)["stacks"].get(stack) or {}
    return SiteTable.from_dict(entry["estimate"]) if entry.get("estimate") else None


def adopt(
    store: str | os.PathLike[str], table: SiteTable, *, by: str, force: bool = False, shipped_points: Any = None,
    note: str = "", when: str | None = None,
) -> AdoptionEvent:
    """Put ``table`` in force for its stack. An unreliable estimate raises
    :class:`UnreliableEstimateError` (with its reasons) unless ``force``; a forced adoption is
    logged as such. ``shipped_points`` (optional) only fills the "before" record when nothing
    was adopted before."""
    if not table.reliable and not force:
        raise UnreliableEstimateError(
            "the site estimate is unreliable and is not adopted without force: " + "; ".join(table.reasons), table.reasons)
    path = Path(store)
    with _locked(path):
        data = _load(path)
        entry = data["stacks"].setdefault(table.stack, {"adopted": []})
        entry.setdefault("adopted", [])
        before = SiteTable.from_dict(entry["adopted"][-1]) if entry["adopted"] else None
        forced = bool(force and not table.reliable)
        event = AdoptionEvent("adopt", table.stack, when or now_iso(), by, forced,
                              _snapshot(before, shipped_points), _snapshot(table), tuple(table.reasons) if forced else (), note)
        record = table.to_dict()
        record["adoption"] = {"when": event.when, "by": by, "forced": forced, "note": note}
        entry["adopted"].append(record)
        entry["estimate"] = table.to_dict()
        data["log"].append(event.to_dict())
        _write(path, data)
    return event


def revert(store: str | os.PathLike[str], stack: str, *, by: str, shipped_points: Any = None, note: str = "",
           when: str | None = None) -> AdoptionEvent:
    """Take the table in force for ``stack`` out of force: the previously adopted one (or the
    shipped table) applies again. Raises :class:`SiteTableError` when nothing is adopted."""
    path = Path(store)
    with _locked(path):
        data = _load(path)
        entry = data["stacks"].get(stack)
        if not entry or not entry.get("adopted"):
            raise SiteTableError(f"no site table is in force for {stack}: the shipped table applies, nothing to revert")
        record = entry["adopted"].pop()
        current = SiteTable.from_dict(record)
        when = when or now_iso()
        record["reversion"] = {"when": when, "by": by, "note": note}
        entry.setdefault("reverted", []).append(record)
        after = SiteTable.from_dict(entry["adopted"][-1]) if entry["adopted"] else None
        event = AdoptionEvent("revert", stack, when, by, False, _snapshot(current),
                              _snapshot(after, shipped_points), (), note)
        data["log"].append(event.to_dict())
        _write(path, data)
    return event


def audit_log(store: str | os.PathLike[str], stack: str | None = None) -> list[AdoptionEvent]:
    """Every adopt and revert, oldest first (optionally of one stack)."""
    path = Path(store)
    if not path.exists():
        return []
    out = []
    for e in _load(path)["log"]:
        if stack is None or e["stack"] == stack:
            out.append(AdoptionEvent(e["action"], e["stack"], e["when"], e["by"], bool(e["forced"]), e["before"], e["after"],
                                     tuple(e.get("reasons", ())), e.get("note", "")))
    return out


__all__ = ["SHIPPED", "STORE_VERSION", "AdoptionEvent", "SiteTableError", "adopt", "audit_log", "last_estimate", "revert",
           "save_estimate", "table_in_force"]
