"""The site-calibration status every front end shows: which table decides, and whether it is still true.

``facegate gallery stats``, the service's ``GET /api/v1/gallery`` and its web page all show the
same record (:func:`site_status`): the table in force for the stack (shipped, the user's own, or an
adopted site table with its date and who adopted it) and the drift warnings of
:mod:`facegate.calibrate.drift` (enrolments grown by more than :data:`GROWTH_SHARE` since the site
calibration; best scores of denied gate checks since the adoption sitting higher or lower than the
adopted table says).
"""

from __future__ import annotations

import datetime as dt
import getpass
import os
from collections.abc import Mapping, Sequence
from typing import Any

from facegate.calibrate.drift import GROWTH_SHARE, MIN_DENIED, drift_warnings
from facegate.calibrate.store import table_in_force
from facegate.calibrate.table import SiteTable
from facegate.config import Config
from facegate.decide.site import SITE, store_path
from facegate.decide.tables import StackTables, in_force


def operator() -> str:
    """Who is adopting, when the caller does not say (``--by``): the OS user."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (a container's arbitrary uid)
        return os.environ.get("USER") or f"uid {os.getuid()}"


def adopted_at(table: SiteTable | None) -> float | None:
    """When ``table`` was put in force, unix seconds (None when unknown): denied checks older than that
    were decided under another table and say nothing about this one."""
    when = (table.adoption or {}).get("when") if table is not None else None
    if not when:
        return None
    try:
        return dt.datetime.fromisoformat(str(when)).timestamp()
    except ValueError:
        return None


def adopted_site_table(config: Config, tables: StackTables | None = None) -> SiteTable | None:
    """The whole adopted site table (its record, for the drift checks) when one decides for ``config``'s stack."""
    tables = tables or in_force(config)
    if tables.source != SITE:
        return None
    return table_in_force(store_path(config), tables.key)


def site_status(
    config: Config, *, people: int, faces: int, face_counts: Mapping[int, int],
    denied_best: Sequence[float] | None = None, bars: Sequence[float] | None = None, decision_fpir: float | None = None,
    growth_share: float = GROWTH_SHARE, tables: StackTables | None = None,
) -> dict[str, Any]:
    """``{"table": the table in force, "warnings": [drift warnings], "growth_share", "denied_checks"}``.

    ``denied_best``: best-match scores of denied gate checks since the adoption (None: not looked at,
    e.g. no service database), ``bars``: the bar each was decided at (else ``decision_fpir``, the FPIR
    they were decided at, default ``config.fpir``)."""
    tables = tables or in_force(config)
    site = adopted_site_table(config, tables)
    warnings = drift_warnings(site, people=people, faces=faces, denied_best=denied_best, face_counts=face_counts,
                              decision_fpir=config.fpir if decision_fpir is None else decision_fpir, growth_share=growth_share,
                              bars=bars)
    out: dict[str, Any] = {"table": tables.describe(), "warnings": [w.to_dict() for w in warnings],
                           "growth_share": growth_share}
    if site is not None:
        out["table"]["calibrated_people"] = int(site.gallery.get("people") or 0)
        out["table"]["calibrated_faces"] = int(site.gallery.get("faces") or 0)
        out["denied_checks"] = None if denied_best is None else len(denied_best)
        out["min_denied_checks"] = MIN_DENIED
    return out


def status_lines(status: Mapping[str, Any]) -> list[str]:
    """The status for a person: the table in force and each warning, one line each."""
    t = status["table"]
    lines = [f"table in force: {t.get('label') or 'none (nothing calibrated for this stack)'}"]
    if t.get("source") == SITE:
        checks = status.get("denied_checks")
        lines.append(f"  calibrated on {t.get('calibrated_people', 0)} people, {t.get('calibrated_faces', 0)} faces; "
                     f"recalibrate when enrolments grow by {100 * status['growth_share']:.0f}%"
                     + ("" if checks is None else f"; {checks} denied gate checks since adoption"))
    for w in status.get("warnings", []):
        lines.append(f"  {'WARNING' if w['severity'] == 'warning' else 'note'}: {w['message']}")
    return lines


__all__ = ["adopted_at", "adopted_site_table", "operator", "site_status", "status_lines"]
