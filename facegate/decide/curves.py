"""Calibrated curves: FAR <-> threshold <-> TAR of one stack, for single photos and k-photo templates.

* :class:`FarCurve`: per-comparison FAR <-> threshold <-> TAR, interpolated log-linearly between
  calibrated points (``log10 FAR`` is close to linear in the threshold over a decade), so it works
  with a handful of points or with a dense table;
* :class:`TemplateTable`, :class:`TemplateThreshold`: a person enrolled with k photos is matched on
  the mean of their embeddings, which scores higher against *everybody* than one photo does, so the
  same FAR needs a higher threshold (:mod:`facegate.evaluate.templates` measures it; the points are
  read from :mod:`facegate.decide.tables`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from facegate.decide.tables import load_template_points

log = logging.getLogger(__name__)


class TemplatePointLike(Protocol):
    """What the template table needs of a calibrated template point (:class:`facegate.decide.tables.TemplatePoint`);
    read-only, so frozen dataclasses qualify."""

    @property
    def k(self) -> int: ...

    @property
    def far(self) -> float: ...

    @property
    def threshold(self) -> float: ...

    @property
    def tar(self) -> float | None: ...


@dataclass(frozen=True)
class FarCurve:
    """FAR <-> threshold (<-> TAR) of one stack, from its calibrated points (any number, any order).

    Between points ``log10(FAR)`` is interpolated linearly in the threshold; beyond the lowest
    calibrated FAR the last segment is extended (and :meth:`threshold` says it was); above the
    highest one the highest point's threshold is kept (stricter than needed, never looser).
    """

    log_fars: tuple[float, ...]  # ascending (FAR ascending)
    thresholds: tuple[float, ...]  # non-increasing along log_fars
    tars: tuple[float | None, ...]

    @classmethod
    def from_points(cls, points: Sequence[Any]) -> FarCurve | None:
        """From objects with ``far``, ``threshold``, ``tar``; None without a usable point."""
        pts = sorted((p for p in points if p.far and p.far > 0), key=lambda p: p.far)
        if not pts:
            return None
        thr = np.minimum.accumulate(np.asarray([float(p.threshold) for p in pts]))  # a lower FAR is never a lower bar
        return cls(tuple(math.log10(p.far) for p in pts), tuple(thr.tolist()), tuple(p.tar for p in pts))

    @property
    def lowest_far(self) -> float:
        return 10 ** self.log_fars[0]

    @property
    def highest_far(self) -> float:
        return 10 ** self.log_fars[-1]

    def in_range(self, far: float) -> bool:
        return self.lowest_far * (1 - 1e-9) <= far <= self.highest_far * (1 + 1e-9)

    def threshold(self, far: float) -> float:
        """The threshold at which ``far`` of impostor comparisons score above it."""
        x = math.log10(max(far, 1e-300))
        xs, ts = self.log_fars, self.thresholds
        if len(xs) == 1 or x >= xs[-1]:
            return ts[-1] if x >= xs[-1] else ts[0]
        if x < xs[0]:  # below the calibrated range: extend the last segment
            slope = (ts[1] - ts[0]) / (xs[1] - xs[0]) if xs[1] != xs[0] else 0.0
            return float(ts[0] + slope * (x - xs[0]))
        return float(np.interp(x, xs, ts))

    def far(self, threshold: float) -> float:
        """The FAR the table gives for ``threshold`` (the inverse of :meth:`threshold`). Past the
        calibrated range it is the range's end, a bound and not an extrapolation: above the
        strictest calibrated threshold the FAR is at most the lowest calibrated FAR, and nothing
        more is known."""
        xs, ts = np.asarray(self.log_fars), np.asarray(self.thresholds)
        if len(xs) == 1 or threshold <= ts[-1]:
            return float(10 ** xs[-1])
        if threshold > ts[0]:
            return float(10 ** xs[0])
        # thresholds descend along xs: interpolate on the reversed arrays
        return float(10 ** np.interp(threshold, ts[::-1], xs[::-1]))

    def tar(self, far: float) -> float | None:
        """Calibrated TAR at ``far`` (interpolated linearly in log FAR); None outside the range or without TARs."""
        if not self.in_range(far) or any(t is None for t in self.tars):
            return None
        return float(np.interp(math.log10(far), self.log_fars, [float(t) for t in self.tars]))  # type: ignore[arg-type]


@dataclass(frozen=True)
class TemplateTable:
    """Thresholds (and TARs) for k-photo mean templates at any FAR, from the single-photo curve and
    the calibrated template points.

    At a calibrated k the template's own curve gives its *margin* over the single-photo threshold
    at the same FAR; beyond the FARs calibrated for that k (template tables stop at 1e-4 on LFW)
    the margin at the nearest calibrated FAR is kept. Between calibrated ks the margin is
    interpolated (0 at k = 1), beyond the largest k it is held (the thresholds saturate). A larger
    template is never held to a lower bar than a smaller one.
    """

    single: FarCurve
    curves: Mapping[int, FarCurve] = field(default_factory=dict)  # k > 1 -> that k's curve

    @classmethod
    def build(cls, single: FarCurve, points: Sequence[TemplatePointLike]) -> TemplateTable:
        by_k: dict[int, list[TemplatePointLike]] = {}
        for p in points:
            if int(p.k) > 1:
                by_k.setdefault(int(p.k), []).append(p)
        curves = {k: c for k, ps in sorted(by_k.items()) if (c := FarCurve.from_points(ps)) is not None}
        return cls(single, curves)

    @property
    def has_templates(self) -> bool:
        return bool(self.curves)

    def margins(self, far: float) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """(ks, margins over the single-photo threshold at ``far``), k = 1 first, non-decreasing."""
        ks, ms = [1.0], [0.0]
        for k, c in sorted(self.curves.items()):
            f = min(max(far, c.lowest_far), c.highest_far)
            ks.append(float(k))
            ms.append(c.threshold(f) - self.single.threshold(f))
        return tuple(ks), tuple(np.maximum.accumulate(np.maximum(np.asarray(ms), 0.0)).tolist())

    def threshold(self, far: float, k: float = 1.0) -> float:
        """The bar for a template of ``k`` (possibly fractional, effective) photos at per-comparison ``far``."""
        t1 = self.single.threshold(far)
        if k <= 1 or not self.curves:
            return t1
        ks, ms = self.margins(far)
        return float(t1 + np.interp(float(k), ks, ms))

    def tar(self, far: float, k: float = 1.0) -> float | None:
        """Calibrated TAR of a k-photo template at ``far`` (the nearest calibrated k at or below ``k``)."""
        if k <= 1 or not self.curves:
            return self.single.tar(far)
        below = [kk for kk in self.curves if kk <= k]
        return self.curves[max(below)].tar(far) if below else self.single.tar(far)

    def far(self, threshold: float, k: float = 1.0) -> float:
        """The per-comparison FAR of ``threshold`` for a k-photo template (inverse of :meth:`threshold`)."""
        f0 = self.single.far(threshold)
        if k <= 1 or not self.curves:
            return f0
        # a template scores higher against everybody: at the same bar its FAR is higher than one photo's
        lo, hi = math.log10(f0), min(0.0, math.log10(f0) + 6)
        for _ in range(60):  # bisection in log FAR: threshold() falls as FAR rises
            mid = (lo + hi) / 2
            if self.threshold(10**mid, k) > threshold:
                lo = mid
            else:
                hi = mid
        return float(10**hi)


@dataclass(frozen=True)
class TemplateThreshold:
    """The bar for a template of ``n`` (possibly fractional, effective) samples at one FAR: the
    single-photo threshold at n = 1, the calibrated template thresholds at the calibrated k,
    straight lines in between, and the largest calibrated k's value beyond it."""

    far: float | None
    ks: tuple[float, ...]
    thresholds: tuple[float, ...]

    def __call__(self, n: float) -> float:
        return float(np.interp(max(float(n), 1.0), self.ks, self.thresholds))

    @classmethod
    def constant(cls, threshold: float, far: float | None = None) -> TemplateThreshold:
        """The same threshold for every template size (an explicit user threshold, or a model
        without a template table)."""
        return cls(far, (1.0,), (float(threshold),))

    @classmethod
    def from_table(cls, table: TemplateTable, far: float) -> TemplateThreshold:
        ks, ms = table.margins(far)
        t1 = table.single.threshold(far)
        return cls(far, ks, tuple(t1 + m for m in ms))

    @classmethod
    def from_points(cls, single: float, far: float, points: Sequence[TemplatePointLike]) -> TemplateThreshold | None:
        """From a single-photo threshold and the table's points at exactly ``far``; None when the
        table has no point at that FAR."""
        at = sorted((p for p in points if np.isclose(p.far, far, rtol=1e-6) and p.k > 1), key=lambda p: p.k)
        if not at:
            return None
        ks = (1.0,) + tuple(float(p.k) for p in at)
        thr = (float(single),) + tuple(float(p.threshold) for p in at)
        return cls(far, ks, tuple(np.maximum.accumulate(np.asarray(thr)).tolist()))


def template_threshold(embedder: Any, single: float, far: float | None) -> TemplateThreshold:
    """The template bar at (``single``, a calibrated ``far``) from the table of ``embedder`` (a Config,
    a stack key, or an embedder name for its default stack);
    an explicit threshold (``far`` None) is the same for every size. Without a template point the
    single-photo threshold is used, with a warning that track decisions then understate their FAR."""
    if far is None:
        return TemplateThreshold.constant(single, None)
    tt = TemplateThreshold.from_points(single, far, load_template_points(embedder))
    if tt is None:
        log.warning(
            "no template calibration for %s at FAR %g: templates are held to the single-photo threshold %.4f, "
            "whose false-accept rate for a mean of several photos is higher than %g", embedder, far, single, far,
        )
        return TemplateThreshold.constant(single, far)
    return tt


__all__ = ["FarCurve", "TemplatePointLike", "TemplateTable", "TemplateThreshold", "template_threshold"]
