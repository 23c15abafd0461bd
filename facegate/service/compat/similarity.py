"""What CompreFace's ``similarity`` means when facegate answers: a calibrated false-accept scale.

CompreFace clients (Double Take's ``MATCH``/``UNKNOWN`` confidence, an SDK user's ``if similarity
> 0.8``) cut on ``similarity`` in [0, 1] and expect the same cut to mean the same thing whatever
the model. A raw cosine does not: facegate's shipped table (``facegate/data/operating_points.json``,
LFW, every cross-identity pair) puts a per-comparison FAR of 1e-3 at cosine 0.457 for
MobileFaceNet and at 0.928 for dlib's ResNet, so a client's 0.8 would be far too strict for one
and far too loose for the other. facegate therefore answers

    similarity = -log10(FAR(score)) / 10,   clipped to [0, 1]

where FAR(score) is the per-comparison false-accept rate the calibrated curve of the stack in
use gives at that score (for a person enrolled with several photos, after removing the margin
their template is held to at the decision FAR, so their similarity reads on the same scale).
A client's cut-off c therefore means a per-comparison FAR of 10^(-10 c):

    0.3 -> 1e-3    0.4 -> 1e-4    0.5 -> 1e-5    0.6 -> 1e-6

Within the calibrated range (FAR 1e-1 .. 1e-6: similarity 0.1 .. 0.6) the scale is measured;
beyond it the curve's end segments are extended, which keeps the ranking but is not a measured
rate (the answer's ``far`` never claims more than the table says). Where the stack has fewer than
two calibrated points there is no curve to read, and ``similarity`` is the cosine itself; every
answer says which scale it used (``facegate.similarity_scale``).

This is presentation, not a decision: whether a face is somebody stays the gallery's decision at
its FPIR (:mod:`facegate.decide`), reported beside ``similarity`` (``decision``, ``threshold``, and
``similarity_threshold``: the similarity at which facegate's own decision flips).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from facegate.decide import FarCurve

DECADES = 10.0  # decades of FAR per unit of similarity

MEANING = {
    "log10_far": "similarity = -log10(per-comparison FAR at this score) / 10: a cut-off c means FAR 10^(-10c) "
                 "(0.4: 1e-4, 0.5: 1e-5, 0.6: 1e-6); measured between 0.1 and 0.6, extrapolated beyond",
    "cosine": "similarity = the cosine score (this stack has no calibrated curve to map it to a FAR)",
}


@dataclass(frozen=True)
class SimilarityScale:
    """Cosine score -> similarity for one stack (its per-comparison curve)."""

    curve: FarCurve | None

    @classmethod
    def of(cls, points_or_curve: Any) -> SimilarityScale:
        """From a :class:`FarCurve`, or from operating points (anything with far/threshold/tar)."""
        if isinstance(points_or_curve, FarCurve) or points_or_curve is None:
            curve = points_or_curve
        else:
            curve = FarCurve.from_points(list(points_or_curve))
        if curve is not None and len(set(curve.thresholds)) < 2:
            curve = None  # one point (or a flat table): no slope to read a FAR from
        return cls(curve)

    @property
    def name(self) -> str:
        return "cosine" if self.curve is None else "log10_far"

    @property
    def meaning(self) -> str:
        return MEANING[self.name]

    def log_far(self, score: float) -> float:
        """log10 per-comparison FAR at a single-photo ``score``: the calibrated curve, its end segments
        extended beyond the range, at most 0 (FAR 1)."""
        assert self.curve is not None
        # along rising score: thresholds ascending, log FAR descending (unique thresholds only)
        pairs = sorted({float(t): float(x) for t, x in zip(self.curve.thresholds, self.curve.log_fars)}.items())
        ts = np.array([p[0] for p in pairs])
        xs = np.array([p[1] for p in pairs])
        s = float(score)
        if s <= ts[0]:
            slope = (xs[1] - xs[0]) / (ts[1] - ts[0])
            v = xs[0] + slope * (s - ts[0])
        elif s >= ts[-1]:
            slope = (xs[-1] - xs[-2]) / (ts[-1] - ts[-2])
            v = xs[-1] + slope * (s - ts[-1])
        else:
            v = float(np.interp(s, ts, xs))
        return min(0.0, float(v))

    def similarity(self, score: float, margin: float = 0.0) -> float:
        """The similarity of a cosine ``score``; ``margin``: how much higher than a single photo's bar
        this candidate's bar is (templates), removed before reading the curve."""
        if not math.isfinite(float(score)):
            return 0.0
        if self.curve is None:
            return round(min(1.0, max(0.0, float(score))), 5)
        return round(min(1.0, max(0.0, -self.log_far(float(score) - margin) / DECADES)), 5)


def far_of_similarity(similarity: float) -> float:
    """The per-comparison FAR a client's cut-off stands for on the ``log10_far`` scale."""
    return float(10 ** (-DECADES * float(similarity)))


def template_margin(policy: Any, bar: float) -> float:
    """How far a candidate's bar sits above the one-photo bar at the policy's FAR (0 for an explicit
    threshold, which holds every identity to the same bar)."""
    if getattr(policy, "explicit", False) or getattr(policy, "table", None) is None or policy.far is None:
        return 0.0
    return max(0.0, float(bar) - float(policy.table.single.threshold(policy.far)))
