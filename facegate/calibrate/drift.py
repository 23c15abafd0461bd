"""Is the adopted site table still true? Structured warnings for gallery stats, status and the web page.

Two checks, each returning a :class:`DriftWarning` or nothing:

* :func:`enrolment_growth`: the gallery has grown (people or faces) by more than a stated share
  since the site calibration; the estimate saw fewer people than are enrolled now, and the
  new enrolments may come from another camera or light.
* :func:`denied_score_drift`: the best-match scores of denied gate checks (mostly strangers:
  exactly the site's impostor scores against its gallery) no longer look like the adopted table
  says they should. Under the table a stranger's best score over a gallery with ``n_k``
  identities of k faces exceeds a bar ``t`` with probability
  ``P(t) = 1 - prod_k (1 - FAR_k(t)) ** n_k`` (FAR_k the table's template FAR). The check takes
  the bar ``t_r`` where ``P`` is about one half among denied checks (denied means below the
  decision bar, so the expected share is conditioned on that) and compares how many denied best
  scores lie above ``t_r`` with that expectation: a one-sided binomial test, plus an effect size,
  the factor by which every identity's FAR would have to be multiplied for the observed share.
  A warning needs both (p < 0.001 and a factor over 2): successive captures of one stranger are
  correlated, so the test alone is too eager, and a factor under 2 is within what the
  calibration promised. Genuine users who were refused also land among denied checks and push
  their share up: a gate refusing many enrolled people is worth a look anyway.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from facegate.calibrate.table import SiteTable
from facegate.decide import FarCurve, TemplateTable

GROWTH_SHARE = 0.25  # recalibrate when enrolments have grown by a quarter
MIN_DENIED = 50  # fewer denied checks say nothing
P_VALUE = 1e-3
MIN_FACTOR = 2.0
TARGET_SHARE = 0.5  # the reference bar: about half of denied best scores above it


@dataclass(frozen=True)
class DriftWarning:
    """A reason to recalibrate (``code``: ``enrolment_growth``, ``impostor_drift``), with its numbers."""

    code: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)
    severity: str = "warning"  # "warning": stated rates may be too low; "info": stricter than needed

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "severity": self.severity, "message": self.message, "details": self.details}


def enrolment_growth(table: SiteTable, people: int, faces: int, share: float = GROWTH_SHARE) -> DriftWarning | None:
    """A warning when people or faces grew by more than ``share`` since the table was made."""
    p0, f0 = int(table.gallery.get("people") or 0), int(table.gallery.get("faces") or 0)
    seen = int(table.inputs.get("counts", {}).get("people") or p0)
    base_p = max(p0, seen, 1)
    grew_p = (people - base_p) / base_p
    grew_f = (faces - f0) / f0 if f0 else 0.0
    if max(grew_p, grew_f) <= share:
        return None
    return DriftWarning(
        "enrolment_growth",
        f"the gallery has grown from {base_p} to {people} people ({faces} faces, {f0} then) since the site calibration of "
        f"{table.created}: recalibrate so the site table sees the people enrolled since",
        {"people_then": base_p, "people_now": people, "faces_then": f0, "faces_now": faces, "share": share,
         "calibrated": table.created},
    )


def _share_above(table: TemplateTable, t: float, face_counts: Mapping[int, int], factor: float = 1.0) -> float:
    """P(a stranger's best score over the gallery > t) with every identity's FAR times ``factor``."""
    log_none = 0.0
    for k, n in face_counts.items():
        f = min(1.0 - 1e-12, factor * table.far(t, max(int(k), 1)))
        log_none += n * math.log1p(-f)
    return 1.0 - math.exp(log_none)


def denied_score_drift(
    table: SiteTable, denied_best: Sequence[float], face_counts: Mapping[int, int], decision_fpir: float,
) -> DriftWarning | None:
    """A warning when denied checks' best scores sit higher (or lower) than the adopted table
    says (see the module docstring). ``decision_fpir``: the FPIR the gate decides at (the share
    of strangers above the decision bar, excluded from denied checks)."""
    from scipy.stats import binomtest

    scores = np.asarray(denied_best, dtype=np.float64)
    scores = scores[np.isfinite(scores)]
    n = int(scores.size)
    if n < MIN_DENIED or not face_counts:
        return None
    curve = FarCurve.from_points(table.operating_points())
    if curve is None:
        return None
    tt = TemplateTable.build(curve, table.template_points)

    def expected(t: float, factor: float = 1.0) -> float:  # share above t among denied (below the decision bar)
        return max(0.0, (_share_above(tt, t, face_counts, factor) - decision_fpir) / (1.0 - decision_fpir))

    # the reference bar: where about TARGET_SHARE of denied best scores are expected above (bisection on t),
    # within the table's range (below it the table's FAR is a bound, not a value)
    lo, hi = curve.threshold(curve.highest_far), curve.threshold(curve.lowest_far)
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if expected(mid) > TARGET_SHARE else (lo, mid)
    t_r = (lo + hi) / 2
    p0 = expected(t_r)
    if not 0.02 < p0 < 0.98:  # the table cannot place a useful reference bar (a tiny gallery)
        return None
    k = int((scores > t_r).sum())
    share = k / n
    # the factor on every identity's FAR that would give the observed share (bisection in log)
    flo, fhi = -6.0, 6.0
    for _ in range(60):
        mid = (flo + fhi) / 2
        flo, fhi = (mid, fhi) if expected(t_r, 10**mid) < share else (flo, mid)
    factor = 10 ** ((flo + fhi) / 2)
    up = binomtest(k, n, p0, alternative="greater").pvalue
    down = binomtest(k, n, p0, alternative="less").pvalue
    details = {"denied_checks": n, "reference_threshold": round(t_r, 4), "expected_share": round(p0, 4),
               "observed_share": round(share, 4), "far_factor": float(f"{factor:.3g}"), "p_value": float(f"{min(up, down):.3g}"),
               "calibrated": table.created}
    if up < P_VALUE and factor > MIN_FACTOR:
        return DriftWarning(
            "impostor_drift",
            f"denied checks score higher than the site table says: {100 * share:.0f}% of {n} denied best scores are above "
            f"{t_r:.4f}, where {100 * p0:.0f}% were expected: at that bar strangers clear about {factor:.2g}x as often as the "
            "table states, and the stated false-accept rates are too low. Recalibrate the site", details)
    if down < P_VALUE and factor < 1 / MIN_FACTOR:
        return DriftWarning(
            "impostor_drift",
            f"denied checks score lower than the site table says ({100 * share:.0f}% above {t_r:.4f}, {100 * p0:.0f}% expected): "
            "the gate is stricter than it needs to be; recalibrate to refuse fewer enrolled people", details, severity="info")
    return None


def drift_warnings(
    table: SiteTable | None, *, people: int, faces: int, denied_best: Sequence[float] | None = None,
    face_counts: Mapping[int, int] | None = None, decision_fpir: float = 1e-2, growth_share: float = GROWTH_SHARE,
) -> list[DriftWarning]:
    """Every drift warning for the table in force (none for the shipped table: nothing was adopted)."""
    if table is None:
        return []
    out = [w for w in (enrolment_growth(table, people, faces, growth_share),) if w is not None]
    if denied_best is not None and face_counts:
        w = denied_score_drift(table, denied_best, face_counts, decision_fpir)
        if w is not None:
            out.append(w)
    return out


__all__ = ["GROWTH_SHARE", "MIN_DENIED", "DriftWarning", "denied_score_drift", "drift_warnings", "enrolment_growth"]
