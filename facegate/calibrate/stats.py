"""The body of the shipped impostor score distribution, and weighted quantiles.

The shipped operating-point table gives the threshold at FARs from 1e-1 down to 1e-6: the
*tail* of the impostor distribution measured on LFW. Site calibration also needs its *body*
(where half, a quarter, a tenth of impostor pairs lie), because that is what a site's few
hundred pairs can measure. ``facegate/data/impostor_stats.json`` holds, per stack, the
thresholds that a share ``p`` of LFW impostor pairs exceed for ``p`` on :data:`SURVIVAL_GRID`,
with their mean and standard deviation, for single photos and for k-photo templates: a few
numbers fitted on LFW, with the provenance of the table they belong to
(``benchmarks/impostor_stats.py`` writes them).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from importlib import resources
from typing import Any

import numpy as np

# Survival probabilities (share of impostor pairs above) at which the body is recorded.
SURVIVAL_GRID = (0.95, 0.9, 0.75, 0.5, 0.25, 0.1, 0.05, 0.02, 0.01)
STATS_FILE = "impostor_stats.json"


@dataclass(frozen=True)
class ImpostorBody:
    """Where a share ``p`` of impostor pairs lie above, for each ``p`` in ``probs`` (descending
    thresholds ascend), with the scores' mean and standard deviation and how many pairs gave them."""

    probs: tuple[float, ...]
    thresholds: tuple[float, ...]
    mean: float
    sd: float
    pairs: int
    k: int = 1  # photos in the template on one side (1: photo against photo)

    def at(self, p: float) -> float:
        """The threshold a share ``p`` of pairs exceed (``p`` must be on the recorded grid)."""
        for q, t in zip(self.probs, self.thresholds):
            if math.isclose(q, p, rel_tol=1e-9):
                return t
        raise KeyError(f"survival probability {p:g} is not recorded (have {', '.join(f'{q:g}' for q in self.probs)})")

    @classmethod
    def from_scores(cls, scores: np.ndarray, probs: Sequence[float] = SURVIVAL_GRID, k: int = 1) -> ImpostorBody:
        s = np.asarray(scores, dtype=np.float64)
        return cls(tuple(float(p) for p in probs), tuple(float(t) for t in survival_thresholds(s, probs)),
                   float(s.mean()), float(s.std()), int(s.size), k)

    @classmethod
    def from_histogram(cls, counts: np.ndarray, edges: np.ndarray, total: float, total_sq: float,
                       probs: Sequence[float] = SURVIVAL_GRID, k: int = 1) -> ImpostorBody:
        """From a fine histogram of (possibly very many) scores and their sum and sum of squares:
        thresholds interpolated within a bin (bins of 1e-4 make that exact to 1e-4)."""
        n = float(counts.sum())
        above = n - np.cumsum(counts)  # pairs above each bin's upper edge
        thr = []
        for p in probs:
            i = int(np.searchsorted(-above, -p * n))  # first bin whose upper edge has <= p*n above
            hi_above = above[i]
            lo_above = above[i - 1] if i > 0 else n
            frac = (lo_above - p * n) / max(lo_above - hi_above, 1e-12)
            thr.append(float(edges[i] + frac * (edges[i + 1] - edges[i])))
        mean = total / n
        return cls(tuple(float(p) for p in probs), tuple(thr), float(mean), float(math.sqrt(max(total_sq / n - mean**2, 0.0))),
                   int(n), k)


def survival_thresholds(scores: np.ndarray, probs: Sequence[float], weights: np.ndarray | None = None,
                        presorted: bool = False) -> np.ndarray:
    """For each ``p``: the score a (weighted) share ``p`` of ``scores`` lie above (linear between
    order statistics). ``presorted``: ``scores`` ascend already (and ``weights`` follow them)."""
    s = np.asarray(scores, dtype=np.float64)
    if not presorted:
        order = np.argsort(s, kind="stable")
        s = s[order]
        weights = None if weights is None else np.asarray(weights, np.float64)[order]
    if weights is None:
        return np.quantile(s, 1 - np.asarray(probs, np.float64))
    w = np.asarray(weights, np.float64)
    cw = np.cumsum(w)
    total = cw[-1]
    # midpoint rule: the i-th sorted score stands at cumulative share (cw_i - w_i / 2) / total
    pos = (cw - w / 2) / total
    keep = w > 0
    return np.interp(1 - np.asarray(probs, np.float64), pos[keep], s[keep])


@dataclass(frozen=True)
class ShippedStats:
    """The shipped impostor distribution of one stack: its body for single photos and k-photo
    templates, and the point of the operating-point table it was measured with (a site table is
    built only on the table it belongs to: a user's own recalibration in ``<home>`` has another)."""

    stack: str
    dataset: str
    single: ImpostorBody
    templates: Mapping[int, ImpostorBody] = field(default_factory=dict)
    table_far: float = 1e-3
    table_threshold: float = float("nan")
    provenance: str = ""

    def matches(self, points: Sequence[Any]) -> bool:
        """Whether ``points`` (an operating-point table) is the one these statistics belong to."""
        for p in points:
            if math.isclose(float(p.far), self.table_far, rel_tol=1e-6):
                return abs(float(p.threshold) - self.table_threshold) < 1e-6
        return False

    def to_dict(self) -> dict[str, Any]:
        def body(b: ImpostorBody) -> dict[str, Any]:
            d = asdict(b)
            d["thresholds"] = [round(t, 6) for t in b.thresholds]
            d["mean"], d["sd"] = round(b.mean, 6), round(b.sd, 6)
            return d

        return {
            "dataset": self.dataset, "provenance": self.provenance,
            "table_point": {"far": self.table_far, "threshold": self.table_threshold},
            "single": body(self.single),
            "templates": {str(k): body(b) for k, b in sorted(self.templates.items())},
        }

    @classmethod
    def from_dict(cls, stack: str, d: Mapping[str, Any]) -> ShippedStats:
        def body(x: Mapping[str, Any]) -> ImpostorBody:
            return ImpostorBody(tuple(x["probs"]), tuple(x["thresholds"]), float(x["mean"]), float(x["sd"]),
                                int(x["pairs"]), int(x.get("k", 1)))

        tp = d.get("table_point", {})
        return cls(stack=stack, dataset=str(d.get("dataset", "")), single=body(d["single"]),
                   templates={int(k): body(v) for k, v in d.get("templates", {}).items()},
                   table_far=float(tp.get("far", 1e-3)), table_threshold=float(tp.get("threshold", float("nan"))),
                   provenance=str(d.get("provenance", "")))


def load_shipped_stats(stack: str) -> ShippedStats | None:
    """The shipped impostor statistics of a stack key; None where none are shipped."""
    table = json.loads(resources.files("facegate").joinpath(f"data/{STATS_FILE}").read_text())
    entry = table.get(stack)
    return ShippedStats.from_dict(stack, entry) if entry else None


__all__ = ["STATS_FILE", "SURVIVAL_GRID", "ImpostorBody", "ShippedStats", "load_shipped_stats", "survival_thresholds"]
