"""The site table in force: what the decision layer reads of an adopted site calibration.

``facegate calibrate --site`` (:mod:`facegate.calibrate`) estimates a site's operating points and
``--adopt`` puts them in force. They are kept in one **site-table store** per deployment: the JSON
file ``<home>/site_tables.json`` (:func:`store_path`), keyed by stack, holding for each stack the
tables adopted (the last one is in force), those reverted, the last estimate made, and the audit
log of every adoption and revert. Why per ``<home>`` and not per gallery: a site is a camera, a
light and a kind of image, so the 1:1 ``verify`` (which has no gallery) must apply the same table
as ``identify``, the gate and ``watch``; and a gallery moved to another site must not carry its
old site's table with it.

This module is the store's *reader* for the decision layer: :func:`site_layers` gives
:func:`facegate.decide.tables.table_layers` one more layer (above the shipped and the user's
tables), re-read only when the file changes (:func:`store_signature`), so a table adopted by the
CLI applies in a running server at its next decision. Writing (adopt, revert, the audit log) is
:mod:`facegate.calibrate.store`'s, through :func:`read_store` and the names here.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from facegate.config import Config
from facegate.errors import UsageError

STORE_NAME = "site_tables.json"
STORE_VERSION = 1
SITE = "site"  # the layer's name in decide.tables' sources


class SiteTableError(UsageError):
    """A site table or its store cannot be used (unreadable, another stack, nothing to revert)."""

    code = "site_table"


def store_path(config: Config) -> Path:
    """The deployment's site-table store: ``<home>/site_tables.json``."""
    return Path(config.home) / STORE_NAME


def empty_store() -> dict[str, Any]:
    return {"version": STORE_VERSION, "stacks": {}, "log": []}


def read_store(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The whole store (an empty one when the file is missing); :class:`SiteTableError` when it
    cannot be read or is of another version."""
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        return empty_store()
    except (OSError, ValueError) as exc:
        raise SiteTableError(f"{p} is not readable JSON ({exc}); fix or delete it") from exc
    if not isinstance(data, dict) or data.get("version") != STORE_VERSION or not isinstance(data.get("stacks"), dict):
        raise SiteTableError(f"{p} is not a site-table store of version {STORE_VERSION}; move it aside and recalibrate")
    data.setdefault("log", [])
    return data


def store_signature(path: str | os.PathLike[str]) -> tuple[int, int, int] | None:
    """What changes when the store is rewritten (it is replaced atomically): None without a store."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino


@dataclass(frozen=True)
class AdoptedTable:
    """The site table in force for one stack: its points in the tables' own format (for
    :mod:`facegate.decide.tables`) and who made and adopted it, when."""

    stack: str
    created: str
    by: str
    adopted: str  # when it was put in force
    adopted_by: str
    forced: bool
    reliable: bool
    people: int
    pairs: int
    operating_points: dict[str, Any]  # an entry of operating_points.json: {"dataset", "points"}
    template_points: dict[str, Any]  # an entry of template_points.json: {"points"}

    @property
    def label(self) -> str:
        """Which table decides, for every answer that states a rate."""
        forced = ", forced although unreliable" if self.forced else ""
        return (f"site table of {self.created} ({self.pairs:,} impostor pairs of {self.people} people), adopted "
                f"{self.adopted} by {self.adopted_by}{forced}")

    def to_dict(self) -> dict[str, Any]:
        return {"source": SITE, "stack": self.stack, "created": self.created, "by": self.by, "adopted": self.adopted,
                "adopted_by": self.adopted_by, "forced": self.forced, "reliable": self.reliable, "people": self.people,
                "impostor_pairs": self.pairs, "label": self.label}


def adopted_table(stack: str, record: dict[str, Any]) -> AdoptedTable:
    """The decision layer's view of one stored site table (a :class:`facegate.calibrate.SiteTable`
    record with its ``adoption``)."""
    try:
        counts = record.get("inputs", {}).get("counts", {})
        adoption = record.get("adoption") or {}
        dataset = (f"site calibration of {record['created']} by {record['by']} ({counts.get('impostor_pairs', 0)} "
                   f"impostor pairs, {counts.get('people', 0)} people)")
        ops = {"dataset": dataset, "points": [{"far": float(p["far"]), "threshold": float(p["threshold"]),
                                               "tar": None if p.get("tar") is None else float(p["tar"])}
                                              for p in record["points"]]}
        tps = {"points": [{"k": int(t["k"]), "far": float(t["far"]), "threshold": float(t["threshold"]),
                           "tar": None if t.get("tar") is None else float(t["tar"])}
                          for t in record.get("template_points", [])]}
        return AdoptedTable(stack=stack, created=str(record["created"]), by=str(record["by"]),
                            adopted=str(adoption.get("when", record["created"])), adopted_by=str(adoption.get("by", record["by"])),
                            forced=bool(adoption.get("forced", False)), reliable=bool(record.get("reliable", True)),
                            people=int(counts.get("people", 0)), pairs=int(counts.get("impostor_pairs", 0)),
                            operating_points=ops, template_points=tps)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise SiteTableError(f"the site table in force for {stack} is not readable ({type(exc).__name__}: {exc}); "
                             "revert it or recalibrate") from exc


_cache: dict[str, tuple[tuple[int, int, int] | None, dict[str, AdoptedTable]]] = {}
_lock = threading.Lock()


def site_tables(config: Config) -> dict[str, AdoptedTable]:
    """Every stack's site table in force (stack key -> table); empty without a store. Read again only
    when the store file changed."""
    path = store_path(config)
    sig = store_signature(path)
    key = str(path)
    cached = _cache.get(key)
    if cached is not None and cached[0] == sig:
        return cached[1]
    tables: dict[str, AdoptedTable] = {}
    if sig is not None:
        for stack, entry in read_store(path)["stacks"].items():
            adopted = entry.get("adopted") if isinstance(entry, dict) else None
            if adopted:
                tables[stack] = adopted_table(stack, adopted[-1])
    with _lock:
        _cache[key] = (sig, tables)
    return tables


def site_table(config: Config, stack: str) -> AdoptedTable | None:
    """The site table in force for ``stack`` (None: the shipped or the user's table applies)."""
    return site_tables(config).get(stack)


def site_layers(config: Config) -> tuple[dict[str, Any], dict[str, Any]]:
    """The site layer of each table: (operating_points entries, template_points entries) by stack."""
    tables = site_tables(config)
    return ({k: t.operating_points for k, t in tables.items()},
            {k: t.template_points for k, t in tables.items() if t.template_points["points"]})


__all__ = [
    "SITE", "STORE_NAME", "STORE_VERSION", "AdoptedTable", "SiteTableError", "adopted_table", "empty_store", "read_store",
    "site_layers", "site_table", "site_tables", "store_path", "store_signature",
]
