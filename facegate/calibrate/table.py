"""The site table: a site's operating points with everything needed to judge and undo them.

A :class:`SiteTable` is what ``calibrate --site`` produces and ``--adopt`` puts in force: the
site's 1:1 curve (every FAR of the shipped curve, 1e-1 ... 1e-6, mapped to the site) and
template points, the estimate's inputs (pairs, people, sources), its uncertainty, when and by
whom it was made, the stack it belongs to, and the shipped values beside it. It is plain JSON
(:meth:`SiteTable.to_dict` / :meth:`SiteTable.from_dict`, :meth:`save` / :meth:`load`), and
gives the decision layer the same kinds of points the shipped table does
(:meth:`SiteTable.operating_points`, :attr:`SiteTable.template_points`), so 1:1, 1:N at a
stated FPIR, templates and ``watch`` apply it through the one policy in :mod:`facegate.decide`.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facegate.calibrate.errors import SiteTableError
from facegate.config import Config
from facegate.decide import open_set_policy
from facegate.types import OperatingPoint

VERSION = 1
REPORT_FARS = (1e-3, 1e-4, 1e-5, 1e-6)  # printed 1:1 points
REPORT_FPIRS = (1e-2, 3e-3, 1e-3)  # printed 1:N points, at the gallery's size


@dataclass(frozen=True)
class SitePoint:
    """One site operating point: the threshold for ``far``, its interval over the bootstrap, and
    the interval of the FAR that threshold stands for at the site."""

    far: float
    threshold: float
    shipped_threshold: float
    low: float  # threshold interval
    high: float
    far_low: float  # the FAR the adopted threshold stands for, interval
    far_high: float
    tar: float | None  # the shipped TAR at this FAR (not re-measured at the site)

    def to_dict(self) -> dict[str, Any]:
        """Thresholds to 7 decimals, rates to 6 significant digits (a FAR of 5.62e-06 stays one)."""
        out: dict[str, Any] = {}
        for k, v in self.__dict__.items():
            if v is None:
                out[k] = None
            elif k.startswith("far"):
                out[k] = float(f"{float(v):.6g}")
            else:
                out[k] = round(float(v), 7)
        return out


@dataclass
class TemplateSitePoint:
    """A k-photo template threshold at the site (the shipped template point mapped)."""

    k: int
    far: float
    threshold: float
    tar: float | None



def now_iso() -> str:
    """Now, ISO 8601 with the local offset (the project's timestamp format)."""
    return dt.datetime.now().astimezone().isoformat(timespec="seconds")


@dataclass
class SiteTable:
    """A site's operating points and their record (see the module docstring)."""

    stack: str
    created: str
    by: str
    method: str
    map: dict[str, Any]  # {"a", "b", "interval": {"a": [lo, hi], "b": [lo, hi]}}
    points: list[SitePoint]
    template_points: list[TemplateSitePoint]
    inputs: dict[str, Any]  # sources, counts, the site body, fit residual, bootstrap, level
    reliable: bool
    reasons: list[str]
    shipped: dict[str, Any]  # the shipped table it was built on: dataset, threshold at FAR 1e-3
    gallery: dict[str, Any] = field(default_factory=dict)  # people, faces, model at calibration
    suspects: list[dict[str, Any]] = field(default_factory=list)
    fpir: list[dict[str, Any]] = field(default_factory=list)  # FPIR rows at the gallery's size, shipped vs site
    genuine: dict[str, Any] = field(default_factory=dict)
    adoption: dict[str, Any] = field(default_factory=dict)  # when, by, forced: set by the store when adopted
    version: int = VERSION

    # -- building ------------------------------------------------------------------------------
    @classmethod
    def from_estimate(
        cls,
        estimate: Any,  # a facegate.calibrate.estimate.SiteEstimate (estimate imports this module)
        *,
        by: str,
        sources: Mapping[str, Any],
        shipped_points: Sequence[Any],
        shipped_template_points: Sequence[Any] = (),
        shipped_dataset: str = "",
        face_counts: Mapping[int, int] | None = None,
        model: str | None = None,
        created: str | None = None,
    ) -> SiteTable:
        """The record of one estimate. ``sources`` says where the pairs came from (gallery path,
        strangers folder, labelled folder); ``face_counts`` the gallery's faces-per-person histogram
        (for the FPIR rows and the enrolment-growth check)."""
        face_counts = dict(face_counts or {})
        at3 = [p for p in shipped_points if math.isclose(float(p.far), 1e-3, rel_tol=1e-6)]
        table = cls(
            stack=estimate.stack, created=created or now_iso(), by=by, method=estimate.method,
            map={"a": estimate.map.a, "b": estimate.map.b,
                 "interval": {k: list(v) for k, v in estimate.map_interval.items()}},
            points=list(estimate.points), template_points=list(estimate.template_points),
            inputs={"sources": dict(sources), "counts": dict(estimate.counts), "site_body": dict(estimate.site_body),
                    "fit_residual": estimate.fit_residual, "bootstrap": estimate.bootstrap, "level": estimate.level,
                    "tail_decay": round(float(estimate.tail_decay), 4)},
            reliable=estimate.reliable, reasons=list(estimate.reasons),
            shipped={"dataset": shipped_dataset, "far": 1e-3, "threshold": float(at3[0].threshold) if at3 else None},
            gallery={"people": int(sum(face_counts.values())), "faces": int(sum(k * n for k, n in face_counts.items())),
                     "model": model},
            suspects=list(estimate.suspects), genuine=dict(estimate.genuine),
        )
        if face_counts:
            table.fpir = fpir_rows(shipped_points, shipped_template_points, table, face_counts)
        return table

    # -- what the decision layer reads ------------------------------------------------------------
    @property
    def dataset(self) -> str:
        return f"site calibration of {self.created} by {self.by} ({self.inputs.get('counts', {}).get('impostor_pairs', 0)} " \
               f"impostor pairs, {self.inputs.get('counts', {}).get('people', 0)} people)"

    def operating_points(self) -> list[OperatingPoint]:
        """The site's 1:1 curve as the decision layer's points (TAR: the shipped TAR at the same
        FAR, not re-measured at the site). The template points are :attr:`template_points`."""
        return [OperatingPoint(far=p.far, threshold=p.threshold, tar=p.tar, dataset=self.dataset) for p in self.points]

    def point(self, far: float) -> SitePoint | None:
        for p in self.points:
            if math.isclose(p.far, far, rel_tol=1e-6):
                return p
        return None

    # -- presentation rows (front ends render them) --------------------------------------------------
    def rows(self) -> list[dict[str, Any]]:
        """Shipped vs site at FAR 1e-3 ... 1e-6: threshold, interval, the FAR interval it stands for."""
        out = []
        for f in REPORT_FARS:
            p = self.point(f)
            if p is not None:
                out.append({"far": f, "shipped_threshold": round(p.shipped_threshold, 4), "site_threshold": round(p.threshold, 4),
                            "interval": [round(p.low, 4), round(p.high, 4)],
                            "far_interval": [float(f"{p.far_low:.3g}"), float(f"{p.far_high:.3g}")]})
        return out

    def describe(self) -> str:
        """A few lines for a person: what was measured and what it changes."""
        c = self.inputs.get("counts", {})
        lines = [f"site table for {self.stack}, {self.created} by {self.by}: {c.get('impostor_pairs', 0):,} impostor pairs of "
                 f"{c.get('people', 0)} people" + (f" and {c['stranger_photos']} stranger photos" if c.get("stranger_photos") else "")
                 + f"; site scores = {self.map['a']:+.4f} + {self.map['b']:.3f} x shipped"]
        lines.append(f"  {'FAR':>7}  {'shipped':>8}  {'site':>8}  {int(100 * self.inputs.get('level', 0.9))}% interval     "
                     f"the site threshold stands for FAR")
        for r in self.rows():
            lines.append(f"  {r['far']:>7g}  {r['shipped_threshold']:>8.4f}  {r['site_threshold']:>8.4f}  "
                         f"[{r['interval'][0]:.4f}, {r['interval'][1]:.4f}]  {r['far_interval'][0]:.2g} .. {r['far_interval'][1]:.2g}")
        for r in self.fpir:
            lines.append(f"  FPIR {r['fpir']:g} at {r['identities']} identities (FAR {r['far']:.2g} each): one-photo bar "
                         f"{r['shipped_threshold']:.4f} shipped, {r['site_threshold']:.4f} site")
        if self.genuine.get("tar"):
            tar = ", ".join(f"{100 * v:.0f}% at FAR {f}" for f, v in self.genuine["tar"].items())
            lines.append(f"  the site's own same-person pairs ({self.genuine.get('pairs', 0)} of {self.genuine.get('people', 0)} "
                         f"people) above the site thresholds: {tar}")
        if self.suspects:
            s = self.suspects[0]
            lines.append(f"  {len(self.suspects)} pair(s) score like the same person, e.g. {s['a']} and {s['b']} ({s['score']:.3f}): "
                         "left out of the estimate; enrolled twice?")
        lines.append("  trust: reliable (adoptable without --force)" if self.reliable else
                     "  UNRELIABLE (not adopted without --force): " + "; ".join(self.reasons))
        return "\n".join(lines)

    # -- JSON -------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version, "stack": self.stack, "created": self.created, "by": self.by, "method": self.method,
            "map": self.map, "points": [p.to_dict() for p in self.points],
            "template_points": [{"k": t.k, "far": t.far, "threshold": round(t.threshold, 7), "tar": t.tar}
                                for t in self.template_points],
            "inputs": self.inputs, "reliable": self.reliable, "reasons": self.reasons, "shipped": self.shipped,
            "gallery": self.gallery, "suspects": self.suspects, "fpir": self.fpir, "genuine": self.genuine,
            **({"adoption": self.adoption} if self.adoption else {}),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SiteTable:
        try:
            if int(d.get("version", 0)) != VERSION:
                raise SiteTableError(f"site table version {d.get('version')!r} is not {VERSION}: recalibrate")
            points = [SitePoint(**{k: p[k] for k in SitePoint.__dataclass_fields__}) for p in d["points"]]
            tps = [TemplateSitePoint(k=int(t["k"]), far=float(t["far"]), threshold=float(t["threshold"]), tar=t.get("tar"))
                   for t in d.get("template_points", [])]
            return cls(stack=str(d["stack"]), created=str(d["created"]), by=str(d["by"]), method=str(d["method"]),
                       map=dict(d["map"]), points=points, template_points=tps, inputs=dict(d.get("inputs", {})),
                       reliable=bool(d["reliable"]), reasons=list(d.get("reasons", [])), shipped=dict(d.get("shipped", {})),
                       gallery=dict(d.get("gallery", {})), suspects=list(d.get("suspects", [])), fpir=list(d.get("fpir", [])),
                       genuine=dict(d.get("genuine", {})), adoption=dict(d.get("adoption") or {}))
        except (KeyError, TypeError, ValueError) as exc:
            raise SiteTableError(f"not a site table ({type(exc).__name__}: {exc})") from exc

    def save(self, path: str | os.PathLike[str]) -> None:
        write_json(Path(path), self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SiteTable:
        return cls.from_dict(read_json(Path(path)))


def fpir_rows(shipped_points: Sequence[Any], shipped_template_points: Sequence[Any], table: SiteTable,
              face_counts: Mapping[int, int]) -> list[dict[str, Any]]:
    """FPIR 1e-2 ... 1e-3 at the gallery's size: the per-identity FAR (FPIR / N) and the bar of a
    one-photo identity under the shipped and the site table (the rule of :func:`facegate.decide.open_set_policy`)."""
    rows = []
    for fpir in REPORT_FPIRS:
        cfg = Config(fpir=fpir)
        ship = open_set_policy(cfg, list(shipped_points), list(shipped_template_points), face_counts)
        site = open_set_policy(cfg, table.operating_points(), table.template_points, face_counts)
        rows.append({"fpir": fpir, "identities": ship.identities, "far": ship.far, "shipped_threshold": round(ship.threshold, 4),
                     "site_threshold": round(site.threshold, 4), "warnings": list(site.warnings)})
    return rows


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise SiteTableError(f"{path}: no such file") from exc
    except (OSError, ValueError) as exc:
        raise SiteTableError(f"{path} is not readable JSON ({exc}); fix or delete it") from exc


def write_json(path: Path, data: Any) -> None:
    """Write atomically (a reader never sees half a table)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


__all__ = ["REPORT_FARS", "REPORT_FPIRS", "VERSION", "SitePoint", "SiteTable", "TemplateSitePoint", "fpir_rows", "now_iso",
           "read_json", "write_json"]
