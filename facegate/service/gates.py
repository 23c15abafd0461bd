"""Per-gate settings (liveness ``off | still | burst``) and the words for every gate reason.

A gate is a name its checks use; it needs no creation. A gate without a stored setting has the
default one (:data:`facegate.liveness.DEFAULT_GATE_MODE`, liveness on), so existing gates got
liveness when this landed and new gates have it from their first check. Turning it off is an
administrator's explicit, audited act (``facegate gate set GATE --liveness off`` or
``PUT /api/v1/gates/{gate}/settings``). Storage: the service database (migration ``007``).

:data:`REASON_TEXT` is the one table of what each gate reason means in words: the gate's
answer carries it as ``message`` and the web page's event view shows it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from facegate.liveness.gate import DEFAULT_GATE_MODE, LIVENESS_UNAVAILABLE, check_mode
from facegate.liveness.result import DIFFERENT_PEOPLE, FACE_JUMPED, PRESENTATION_ATTACK

# Every reason a gate check answers, in words (the access reasons are facegate.service.access's).
REASON_TEXT: dict[str, str] = {
    PRESENTATION_ATTACK: "refused: looked like a printed photo or a screen",
    FACE_JUMPED: "refused: the face jumped between frames, so they are not one person seen over a moment",
    DIFFERENT_PEOPLE: "refused: the frames show different people",
    LIVENESS_UNAVAILABLE: "refused: no liveness model may be used here, so the gate stays closed",
    "no_face": "refused: no face found",
    "unknown": "refused: not recognised",
    "no_list": "allowed: recognised (this gate has no access list)",
    "permitted": "allowed: recognised and permitted by the gate's access list",
    "outside_window": "refused: recognised, but outside the hours the access list permits",
    "not_permitted": "refused: recognised, but the gate's access list does not name them",
}


def reason_text(reason: str | None) -> str | None:
    return REASON_TEXT.get(reason or "", None)


@dataclass(frozen=True)
class GateSettings:
    """A gate's settings; ``stored`` False means the defaults (nothing was ever set for it)."""

    gate: str
    liveness: str
    stored: bool
    updated: float | None

    def to_dict(self) -> dict[str, Any]:
        return {"gate": self.gate, "liveness": self.liveness, "default": not self.stored, "updated": self.updated}


def get(db: Any, gate: str) -> GateSettings:
    rows = db.query("SELECT liveness, updated FROM gate_settings WHERE gate = ?", (gate,))
    if not rows:
        return GateSettings(gate, DEFAULT_GATE_MODE, False, None)
    return GateSettings(gate, str(rows[0][0]), True, float(rows[0][1]))


def all_stored(db: Any) -> list[GateSettings]:
    """Every gate whose settings were set (the others have the defaults)."""
    return [GateSettings(str(g), str(m), True, float(u))
            for g, m, u in db.query("SELECT gate, liveness, updated FROM gate_settings ORDER BY gate")]


def set_liveness(db: Any, gate: str, mode: str, *, key_id: str | None = None, client: str | None = None) -> GateSettings:
    """Set a gate's liveness mode and audit the change (one transaction for the setting; the
    audit event names the previous and the new mode, who and from where)."""
    check_mode(mode)
    before = get(db, gate)
    now = time.time()
    with db.write() as c:
        c.execute(
            "INSERT INTO gate_settings (gate, liveness, updated) VALUES (?, ?, ?) "
            "ON CONFLICT (gate) DO UPDATE SET liveness = excluded.liveness, updated = excluded.updated",
            (gate, mode, now),
        )
    db.add_event("audit", action="gate_settings", gate=gate, key_id=key_id, client=client,
                 detail={"liveness": {"from": before.liveness, "to": mode}, "was_default": not before.stored})
    return get(db, gate)
