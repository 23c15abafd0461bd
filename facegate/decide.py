"""Decision policy: the one place where a score becomes a decision.

Everything that turns cosine scores into "same person" / "this is Ada" / "unknown" lives
here, so the gallery, the service, ``watch`` and the gate client cannot disagree:

* **1:1** (:func:`decision_threshold`, :func:`decide`): the calibrated per-comparison
  threshold for ``config.far``, or an explicit threshold;
* **the calibrated curve** (:class:`FarCurve`): per-comparison FAR <-> threshold <-> TAR of
  the stack in use, interpolated log-linearly between calibrated points (``log10 FAR`` is
  close to linear in the threshold over a decade), so it works with a handful of points
  or with a dense table;
* **templates** (:class:`TemplateTable`): a person enrolled with k photos is matched on the
  mean of their embeddings, which scores higher against *everybody* than one photo does,
  so the same FAR needs a higher threshold (``facegate.evaluate.templates`` measures it);
* **the rule** (``mean`` template or ``max`` over single faces) and **1:N at a stated FPIR**
  (:func:`open_set_policy`): with N identities searched, a stranger is named when any of
  them clears its bar; by the union bound FPIR <= sum of the identities' FARs, so giving
  every identity the per-comparison FAR ``FPIR / N`` (each held to the threshold for that
  FAR *and its templating*) keeps the false-positive identification rate at or below the
  stated one whatever the impostors' correlation. The threshold therefore rises as people
  are enrolled and falls as they are deleted;
* **the model check** (:func:`check_model`): scores across embedding models are meaningless.

The expected true-positive identification rate (TPIR) is the mean over identities of the
calibrated TAR at each one's bar (rank errors, a right person outscored by a wrong one, are
not counted: they are rare at thresholds this strict). When the FPIR asks for a FAR below
the calibrated range, or the expected TPIR is under :data:`MIN_USABLE_TPIR`, the policy
carries a warning that every front end shows.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from facegate.config import Config
from facegate.errors import UsageError
from facegate.types import OperatingPoint, Verdict

log = logging.getLogger(__name__)

# 1:N default: one stranger in a hundred named. A door that names 1% of passers-by who are not
# enrolled is the loosest an access gate should run (NIST FRVT 1:N reports FNIR at FPIR 0.003-0.01);
# stricter rates cost TPIR quickly at gallery sizes of thousands with one photo per person.
DEFAULT_FPIR = 1e-2
MIN_USABLE_TPIR = 0.5  # below this expected TPIR the operating point is flagged as unusable
RULES = ("mean", "max")


class TemplatePointLike(Protocol):
    """What the template table needs of a calibrated template point (``facegate.evaluate.templates.TemplatePoint``)."""

    k: int
    far: float
    threshold: float
    tar: float | None


# -- 1:1 -----------------------------------------------------------------------------------------
def decision_threshold(config: Config, points: list[OperatingPoint]) -> tuple[float, float | None]:
    """(threshold, FAR it stands for) for 1:1 verification. An explicit ``config.threshold`` wins
    (FAR None: see :meth:`FarCurve.far` for what the table says of it); otherwise ``config.far``
    must be a calibrated FAR (a stated FAR is a measured one, not an interpolation)."""
    if config.threshold is not None:
        return float(config.threshold), None
    for p in points:
        if np.isclose(p.far, config.far, rtol=1e-6):
            return p.threshold, p.far
    from facegate.errors import UncalibratedError
    from facegate.verify import calibrated_stacks, stack_key  # local: verify imports this module

    key = stack_key(config)
    if not points:
        others = ", ".join(calibrated_stacks(config.embedder)) or "none"
        raise UncalibratedError(
            f"no operating points are calibrated for this stack ({key}); thresholds of another detector, "
            f"landmark scheme or mirror setting would not give the FAR they state. Calibrated stacks of "
            f"{config.embedder}: {others}. Use one of them, set an explicit threshold, or calibrate this stack "
            f"on your own photos into {config.home / 'operating_points.json'}"
        )
    have = ", ".join(f"{p.far:g}" for p in points)
    raise UncalibratedError(
        f"no calibrated threshold for FAR {config.far:g} with {key} "
        f"(calibrated: {have}); set an explicit threshold, or calibrate one on your own photos"
    )


def decide(score: float, threshold: float, far: float | None) -> Verdict:
    """The 1:1 verdict: same person when the score is strictly above the threshold."""
    return Verdict(same=bool(score > threshold), score=float(score), threshold=float(threshold), far=far)


def check_model(stored: str | None, current: str) -> None:
    """Refuse to compare embeddings of two models (the gallery's and the pipeline's)."""
    from facegate.gallery.errors import ModelMismatchError

    if stored is not None and stored != current:
        raise ModelMismatchError(
            f"this gallery holds embeddings from model {stored!r}, but the current model is {current!r}; "
            f"scores across models are meaningless. Use the gallery's model, or convert the gallery "
            f"with 'facegate reembed'"
        )


# -- the calibrated per-comparison curve ---------------------------------------------------------
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


# -- templates ------------------------------------------------------------------------------------
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
    from facegate.evaluate.templates import load_template_points

    tt = TemplateThreshold.from_points(single, far, load_template_points(embedder))
    if tt is None:
        log.warning(
            "no template calibration for %s at FAR %g: templates are held to the single-photo threshold %.4f, "
            "whose false-accept rate for a mean of several photos is higher than %g", embedder, far, single, far,
        )
        return TemplateThreshold.constant(single, far)
    return tt


def stack_points(pipeline: Any) -> tuple[list[OperatingPoint], list[TemplatePointLike]]:
    """The calibrated per-comparison points and template points of ``pipeline``'s stack.

    ``pipeline.operating_points`` is the per-comparison table; ``pipeline.template_points``, where a
    pipeline has it, the template table (else the shipped one for the configured embedder).
    """
    points = list(getattr(pipeline, "operating_points", None) or [])
    tpts = getattr(pipeline, "template_points", None)
    if tpts is None:
        from facegate.evaluate.templates import load_template_points

        tpts = load_template_points(pipeline.config)
    return points, list(tpts)


# -- 1:N at a stated FPIR ----------------------------------------------------------------------------
@dataclass(frozen=True)
class OpenSetPolicy:
    """How a gallery of ``identities`` decides now: the FPIR stated, the per-comparison FAR given to
    each identity, and the bar for an identity of k faces (:meth:`bar`).

    ``explicit``: a user threshold applies to every identity as given; ``fpir`` and ``far`` are then
    what the calibrated table says of it (None without a table).
    """

    fpir: float | None
    far: float | None
    identities: int
    rule: str
    threshold: float  # the bar of a one-photo identity
    tpir: float | None
    explicit: bool = False
    warnings: tuple[str, ...] = ()
    table: TemplateTable | None = None

    def bar(self, faces: int | float = 1) -> float:
        """The threshold an identity enrolled with ``faces`` faces (or a template of that many
        effective samples) is held to."""
        if self.explicit or self.table is None or self.far is None:
            return self.threshold
        k = max(float(faces), 1.0)
        if self.rule == "max":  # best of k single faces: k chances to clear, each at FAR far / k
            return self.table.single.threshold(self.far / k)
        return self.table.threshold(self.far, k)

    def template_bar(self, n: float, faces: int = 1) -> float:
        """The bar for a track's template of ``n`` effective samples against an identity of ``faces``
        faces: the stricter of the two templatings (template-vs-template pairs are not calibrated;
        taking the larger template is an assumption, stated here, not a measurement)."""
        return self.bar(max(float(n), float(faces)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "fpir": self.fpir, "far": self.far, "identities": self.identities, "rule": self.rule,
            "threshold": round(self.threshold, 6), "tpir": None if self.tpir is None else round(self.tpir, 4),
            "explicit_threshold": self.explicit, "warnings": list(self.warnings),
        }

    def describe(self) -> str:
        """One line for a person: the rate decided at and what it means here."""
        if self.explicit:
            est = "" if self.far is None else (
                f" (calibrated table: FAR {self.far:.2g} per comparison, FPIR {self.fpir:.2g} at {self.identities} identities)")
            return f"explicit threshold {self.threshold:.4f}{est}"
        tp = "" if self.tpir is None else f", expected TPIR {100 * self.tpir:.0f}%"
        return f"FPIR {self.fpir:g} at {self.identities} identities: FAR {self.far:.2g} per comparison{tp}"


def open_set_policy(
    config: Config,
    points: Sequence[OperatingPoint],
    template_points: Sequence[TemplatePointLike],
    face_counts: Mapping[int, int],
    *,
    rule: str = "mean",
    fpir: float | None = None,
) -> OpenSetPolicy:
    """The 1:N policy for a gallery whose identities have the given face counts
    (``face_counts``: number of faces -> number of identities with that many).

    ``fpir`` defaults to ``config.fpir``; ``config.threshold`` (explicit) wins over both.
    Raises :class:`UsageError` when the stack has no calibrated curve and no explicit threshold.
    """
    if rule not in RULES:
        raise UsageError(f"unknown matching rule {rule!r}; use one of {', '.join(RULES)}")
    n = int(sum(face_counts.values()))
    curve = FarCurve.from_points(points)
    table = TemplateTable.build(curve, template_points) if curve is not None else None
    warnings: list[str] = []
    if config.threshold is not None:
        thr = float(config.threshold)
        far = f_sum = None
        if table is not None:
            far = table.single.far(thr)
            f_sum = sum(cnt * (table.far(thr, k) if rule == "mean" else min(1.0, k * table.single.far(thr)))
                        for k, cnt in face_counts.items())
        return OpenSetPolicy(fpir=None if f_sum is None else min(1.0, f_sum), far=far, identities=n, rule=rule,
                             threshold=thr, tpir=None, explicit=True, table=table)
    target = float(fpir if fpir is not None else config.fpir)
    if not 0 < target < 1:
        raise UsageError(f"FPIR must be between 0 and 1 (got {target:g})")
    if table is None:
        raise UsageError(
            f"no calibrated operating points for embedder {config.embedder!r}: identification at a stated FPIR "
            "needs them; pass --threshold, or run 'facegate calibrate' on your own photos"
        )
    far = target / max(n, 1)  # union bound: FPIR <= sum over identities of their FAR
    if far < table.single.lowest_far * (1 - 1e-9):
        warnings.append(
            f"FPIR {target:g} with {n} identities needs a per-comparison FAR of {far:.2g}, below the calibrated "
            f"range (lowest {table.single.lowest_far:g}): the threshold is extrapolated"
        )
    if rule == "mean" and not table.has_templates and any(k > 1 for k in face_counts):
        warnings.append("no template calibration for this stack: people with several photos are held to the "
                        "one-photo threshold, so the real FPIR is higher than stated")
    policy = OpenSetPolicy(fpir=target, far=far, identities=n, rule=rule, threshold=table.threshold(far, 1),
                           tpir=None, table=table)
    tpir = expected_tpir(policy, face_counts)
    if tpir is not None and tpir < MIN_USABLE_TPIR:
        warnings.append(
            f"FPIR {target:g} cannot be held with a usable TPIR at {n} identities: expected TPIR "
            f"{100 * tpir:.0f}% (enrol more photos per person, or accept a higher FPIR)"
        )
    return OpenSetPolicy(fpir=target, far=far, identities=n, rule=rule, threshold=policy.threshold, tpir=tpir,
                         warnings=tuple(warnings), table=table)


def expected_tpir(policy: OpenSetPolicy, face_counts: Mapping[int, int]) -> float | None:
    """Mean over identities of the calibrated TAR at each one's bar; None where the table has no TAR there."""
    if policy.table is None or policy.far is None or not face_counts:
        return None
    total = acc = 0.0
    for k, cnt in face_counts.items():
        if policy.rule == "max":
            tar = policy.table.single.tar(policy.far / max(k, 1))  # one face alone clearing: a lower bound
        else:
            tar = policy.table.tar(policy.far, k)
        if tar is None:
            return None
        acc += cnt * tar
        total += cnt
    return acc / total if total else None


# -- candidates and answers ---------------------------------------------------------------------------
def choose(candidates: Sequence[tuple[int, str, float]], bar: Callable[[int], float]) -> list[tuple[int, str, float, float, bool]]:
    """(person id, name, score, threshold applied, cleared) per candidate, best score first. Only the
    best candidate can name the face (:func:`named`): a lower-ranked person clearing their own bar
    while the best does not is no identification."""
    out = []
    for pid, name, s in candidates:
        t = float(bar(int(pid)))
        out.append((int(pid), name, float(s), t, bool(s > t)))
    return out


def named(cleared: Sequence[bool]) -> bool:
    """Whether a face is identified: its best candidate cleared its bar."""
    return bool(cleared) and bool(cleared[0])


__all__ = [
    "DEFAULT_FPIR", "MIN_USABLE_TPIR", "RULES", "FarCurve", "OpenSetPolicy", "TemplateTable", "TemplateThreshold",
    "check_model", "choose", "decide", "decision_threshold", "expected_tpir", "named", "open_set_policy",
    "stack_points", "template_threshold",
]
