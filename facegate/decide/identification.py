"""1:N identification at a stated FPIR: the open-set policy for a gallery of N identities.

With N identities searched, a stranger is named when any of them clears its bar; by the union
bound FPIR <= sum of the identities' FARs, so giving every identity the per-comparison FAR
``FPIR / N`` (each held to the threshold for that FAR *and its templating*, see
:mod:`facegate.decide.curves`) keeps the false-positive identification rate at or below the stated
one whatever the impostors' correlation. The threshold therefore rises as people are enrolled and
falls as they are deleted. The rule is ``mean`` (one template per person) or ``max`` (best of the
person's single faces).

The expected true-positive identification rate (TPIR) is the mean over identities of the
calibrated TAR at each one's bar (rank errors, a right person outscored by a wrong one, are
not counted: they are rare at thresholds this strict). When the FPIR asks for a FAR below
the calibrated range, or the expected TPIR is under :data:`MIN_USABLE_TPIR`, the policy
carries a warning that every front end shows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from facegate.config import Config
from facegate.decide.curves import FarCurve, TemplatePointLike, TemplateTable
from facegate.decide.tables import load_template_points
from facegate.errors import UsageError
from facegate.types import OperatingPoint

log = logging.getLogger(__name__)

# 1:N default: one stranger in a hundred named. A door that names 1% of passers-by who are not
# enrolled is the loosest an access gate should run (NIST FRVT 1:N reports FNIR at FPIR 0.003-0.01);
# stricter rates cost TPIR quickly at gallery sizes of thousands with one photo per person.
DEFAULT_FPIR = 1e-2
MIN_USABLE_TPIR = 0.5  # below this expected TPIR the operating point is flagged as unusable
RULES = ("mean", "max")


def stack_points(pipeline: Any) -> tuple[list[OperatingPoint], list[TemplatePointLike]]:
    """The calibrated per-comparison points and template points of ``pipeline``'s stack.

    ``pipeline.operating_points`` is the per-comparison table; ``pipeline.template_points``, where a
    pipeline has it, the template table (else the one in force for the configured stack).
    """
    points = list(getattr(pipeline, "operating_points", None) or [])
    tpts = getattr(pipeline, "template_points", None)
    if tpts is None:
        tpts = load_template_points(pipeline.config)
    return points, list(tpts)


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
    table_label: str | None = None  # which operating-point table the rates come from (shipped, site, ...)

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
            "explicit_threshold": self.explicit, "warnings": list(self.warnings), "table": self.table_label,
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
    table_label: str | None = None,
) -> OpenSetPolicy:
    """The 1:N policy for a gallery whose identities have the given face counts
    (``face_counts``: number of faces -> number of identities with that many).

    ``fpir`` defaults to ``config.fpir``; ``config.threshold`` (explicit) wins over both.
    ``table_label`` names the table ``points`` come from; the answers carry it.
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
                             threshold=thr, tpir=None, explicit=True, table=table, table_label=table_label)
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
                         warnings=tuple(warnings), table=table, table_label=table_label)


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
    "DEFAULT_FPIR", "MIN_USABLE_TPIR", "RULES", "OpenSetPolicy", "choose", "expected_tpir", "named", "open_set_policy",
    "stack_points",
]
