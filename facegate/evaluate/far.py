"""``eval far``: are the stated error rates true on this data?

On a labelled folder (one sub-folder per person, or CFP's layout), through the real pipeline:

* **1:1** (:func:`far_table`): for each stated operating point of the table in force (the
  shipped one, or a site table), the share of all cross-identity pairs that score above its
  threshold, its exact binomial interval, and the ratio measured / stated;
* **1:N in an open-set split** (:func:`open_set`): in each of ``splits`` random splits a share
  ``strangers`` of the people is held out; every other person with more than ``enrol`` photos
  is enrolled with ``enrol`` of them (a mean template, the gallery's rule); the held-out
  people's photos are probed (non-mated: FPIR = share named at all, against the FPIR stated
  at the gallery's size) and so are the enrolled people's other photos (mated: TPIR = share
  named correctly, and closed-set rank-1);
* **site calibration, simulated** (:func:`site_protocol`): in each split a gallery of at most
  ``site_gallery`` people with 1-3 photos each is enrolled, :mod:`facegate.calibrate` estimates
  the site table from that gallery alone, and the 1:1 FAR at 1e-3 and 1e-4, the strangers
  named and the TPIR are measured on the *other* people, before (shipped table) and after
  (site table).

Pairs within one person's photos are genuine, every other pair an impostor pair; photos where
no face is found are left out and counted.

    python -m facegate.evaluate.far --root ../shared/datasets/lfw
    python -m facegate.evaluate.far --root ../shared/datasets/cfp_dev --layout cfp --views frontal+profile
    python -m facegate.evaluate.far --root DIR --table site site_table.json --enrol 1 --strangers 0.3 --splits 10
    python -m facegate.evaluate.far --root DIR --site-gallery 50 --site-photos 1-3 --splits 10
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from facegate.calibrate.estimate import estimate_site
from facegate.calibrate.pairs import collect_pairs, template, unit_rows
from facegate.calibrate.stats import load_shipped_stats
from facegate.calibrate.table import SiteTable
from facegate.config import Config
from facegate.decide import FarCurve, open_set_policy
from facegate.decide.tables import stack_key
from facegate.errors import DatasetError, FacegateError, UsageError
from facegate.evaluate.calibration import labelled_images
from facegate.evaluate.embedding import FAILED, embed_files
from facegate.image import IMAGE_SUFFIXES
from facegate.pipeline import Pipeline
from facegate.types import OperatingPoint

log = logging.getLogger(__name__)

LAYOUTS = ("folders", "cfp")
DECADES = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6)
MIN_EXPECTED = 10  # a FAR is "resolved" when at least this many impostor pairs are expected above it


# -- data -------------------------------------------------------------------------------------------
def labelled_paths(root: Path, layout: str = "folders", views: str = "frontal") -> tuple[list[Path], list[str]]:
    """Photos and their person: ``folders`` = ``root/<person>/*``; ``cfp`` = ``root/Data/Images/<id>/<view>/*``
    for the views named (``frontal``, ``profile``, or ``frontal+profile``)."""
    if layout == "folders":
        return labelled_images(root)
    if layout != "cfp":
        raise UsageError(f"unknown layout {layout!r}; use one of {', '.join(LAYOUTS)}")
    images = root / "Data" / "Images"
    if not images.is_dir():
        raise DatasetError(f"{images}: not found (expected CFP's Data/Images/<id>/<view>/ layout)")
    paths, labels = [], []
    for person in sorted(p for p in images.iterdir() if p.is_dir()):
        for view in views.split("+"):
            for f in sorted((person / view).glob("*")):
                if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file():
                    paths.append(f)
                    labels.append(person.name)
    if len(set(labels)) < 2:
        raise DatasetError(f"{root}: need photos of at least two people")
    return paths, labels


def embed_labelled(pipeline: Pipeline, root: Path, layout: str = "folders", views: str = "frontal", pick: str = "largest",
                   progress: bool = True) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Unit embeddings and labels of every photo with a face (cached as ``eval lfw`` caches), and a summary."""
    paths, labels = labelled_paths(root, layout, views)
    emb = embed_files(pipeline, paths, pick=pick, fallback=(), progress=progress, desc=root.name)
    ok = np.array([s != FAILED for s in emb.status])
    lab = np.asarray(labels)[ok]
    summary = {"root": str(root), "layout": layout, "views": views if layout == "cfp" else None, "pick": pick,
               "photos": len(paths), "embedded": int(ok.sum()), "no_face": int((~ok).sum()), "people": int(len(set(lab.tolist())))}
    return unit_rows(emb.embeddings[ok]), lab, summary


# -- 1:1 ----------------------------------------------------------------------------------------------
def impostor_scores(emb: np.ndarray, labels: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """Every cross-identity pair's score, ascending."""
    codes = np.unique(labels, return_inverse=True)[1]
    out = []
    n = len(emb)
    for s0 in range(0, n, chunk):
        s1 = min(n, s0 + chunk)
        s = emb[s0:s1] @ emb[s0:].T
        upper = np.arange(s0, n)[None, :] > np.arange(s0, s1)[:, None]
        out.append(s[upper & (codes[s0:s1, None] != codes[None, s0:])])
    return np.sort(np.concatenate(out)) if out else np.zeros(0, np.float32)


def genuine_scores(emb: np.ndarray, labels: np.ndarray) -> np.ndarray:
    out = []
    for lab in np.unique(labels):
        e = emb[labels == lab]
        if len(e) > 1:
            s = e @ e.T
            out.append(s[np.triu_indices(len(e), 1)])
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def above(sorted_scores: np.ndarray, threshold: float) -> int:
    """How many scores lie strictly above ``threshold`` (decisions are ``score > threshold``)."""
    return int(sorted_scores.size - np.searchsorted(sorted_scores, threshold, side="right"))


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact binomial interval for k successes in n trials."""
    from scipy.stats import beta

    if n <= 0:
        return 0.0, 1.0
    a = (1 - level) / 2
    lo = 0.0 if k == 0 else float(beta.ppf(a, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - a, k + 1, n - k))
    return lo, hi


@dataclass(frozen=True)
class FarRow:
    """One stated operating point measured: ``false_accepts`` of ``impostor_pairs`` above ``threshold``."""

    far: float
    threshold: float
    impostor_pairs: int
    false_accepts: int
    measured: float
    ratio: float
    low: float  # 95% interval of the measured FAR
    high: float
    resolved: bool  # at least MIN_EXPECTED false accepts expected at the stated FAR
    tar: float | None  # measured TAR (genuine pairs above), None without genuine pairs


def far_table(emb: np.ndarray, labels: np.ndarray, points: Sequence[Any], fars: Sequence[float] | None = DECADES,
              imp: np.ndarray | None = None) -> list[FarRow]:
    """The measured FAR at each stated point (``fars``: which of the table's FARs; None for all)."""
    imp = impostor_scores(emb, labels) if imp is None else imp
    gen = genuine_scores(emb, labels)
    rows = []
    for p in sorted(points, key=lambda q: -q.far):
        if fars is not None and not any(math.isclose(p.far, f, rel_tol=1e-6) for f in fars):
            continue
        k = above(imp, p.threshold)
        n = int(imp.size)
        lo, hi = clopper_pearson(k, n)
        rows.append(FarRow(far=float(p.far), threshold=float(p.threshold), impostor_pairs=n, false_accepts=k,
                           measured=k / n if n else float("nan"), ratio=(k / n) / p.far if n else float("nan"),
                           low=lo, high=hi, resolved=n * p.far >= MIN_EXPECTED,
                           tar=float((gen > p.threshold).mean()) if gen.size else None))
    return rows


# -- 1:N -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Gallery:
    """An enrolled gallery in memory: one mean template per person, as the gallery's ``mean`` rule keeps."""

    labels: np.ndarray  # person of each template
    templates: np.ndarray
    faces: np.ndarray  # photos per template

    @classmethod
    def of(cls, people: Mapping[str, np.ndarray]) -> Gallery:
        names = list(people)
        return cls(np.asarray(names), np.stack([template(people[n]) for n in names]), np.asarray([len(people[n]) for n in names]))

    def face_counts(self) -> dict[int, int]:
        ks, cnt = np.unique(self.faces, return_counts=True)
        return {int(k): int(c) for k, c in zip(ks, cnt)}


def identify_rates(gallery: Gallery, points: Sequence[Any], template_points: Sequence[Any], fpir: float,
                   mated: np.ndarray, mated_labels: np.ndarray, strangers: np.ndarray) -> dict[str, Any]:
    """Measured FPIR (strangers named), TPIR (mated probes named correctly) and closed-set rank-1 at
    the policy of :func:`facegate.decide.open_set_policy` for this gallery: each person held to the
    bar of their template, only the best candidate can name. ``tpir_at_true_fpir``: the TPIR had
    every bar been moved so that exactly the stated FPIR of these strangers were named (the best
    any calibration could do for this gallery; a yardstick for the TPIR a true FPIR costs)."""
    policy = open_set_policy(Config(fpir=fpir), list(points), list(template_points), gallery.face_counts())
    bars = np.asarray([policy.bar(int(k)) for k in gallery.faces])
    out: dict[str, Any] = {"identities": int(len(gallery.labels)), "stated_fpir": fpir, "far_each": policy.far,
                           "bar_one_photo": float(policy.threshold), "warnings": list(policy.warnings)}
    shift = None
    if len(strangers):
        s = strangers @ gallery.templates.T
        best = s.argmax(1)
        best_s = s[np.arange(len(s)), best]
        named = best_s > bars[best]
        out.update(strangers=int(len(s)), named=int(named.sum()), fpir=float(named.mean()), fpir_ratio=float(named.mean()) / fpir)
        # a reference, not a decision rule: every bar moved by the one amount that makes these very
        # strangers named at the stated FPIR (what a perfect calibration for this gallery would give)
        lo, hi = -1.0, 1.0
        for _ in range(50):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if float((best_s > bars[best] + mid).mean()) > fpir else (lo, mid)
        shift = hi
    if len(mated):
        s = mated @ gallery.templates.T
        best = s.argmax(1)
        right = gallery.labels[best] == mated_labels
        best_m = s[np.arange(len(s)), best]
        hit = right & (best_m > bars[best])
        out.update(mated=int(len(s)), tpir=float(hit.mean()), rank1=float(right.mean()))
        if shift is not None:
            out["tpir_at_true_fpir"] = float((right & (best_m > bars[best] + shift)).mean())
    return out


def open_set(emb: np.ndarray, labels: np.ndarray, points: Sequence[Any], template_points: Sequence[Any], *, enrol: int = 1,
             strangers: float = 0.3, splits: int = 10, fpir: float = 1e-2, seed: int = 0) -> list[dict[str, Any]]:
    """Per split: FPIR, TPIR and rank-1 with a share ``strangers`` of the people held out and ``enrol``
    photos of each other person (with at least ``enrol + 1`` photos) enrolled."""
    if not 0 < strangers < 1:
        raise UsageError(f"--strangers is a share of people between 0 and 1 (got {strangers:g})")
    if enrol < 1:
        raise UsageError(f"--enrol is a number of photos of at least 1 (got {enrol})")
    rng = np.random.default_rng(seed)
    names = np.unique(labels)
    rows = []
    for sp in range(splits):
        held = set(rng.choice(names, size=max(1, int(round(strangers * len(names)))), replace=False).tolist())
        people, mated, mated_lab = {}, [], []
        for n in names:
            if n in held:
                continue
            idx = np.flatnonzero(labels == n)
            if len(idx) <= enrol:
                continue
            idx = rng.permutation(idx)
            people[str(n)] = emb[idx[:enrol]]
            mated.append(idx[enrol:])
            mated_lab += [str(n)] * (len(idx) - enrol)
        if len(people) < 2:
            raise DatasetError(f"fewer than two people have more than {enrol} photos outside the held-out share: nothing to enrol")
        stranger_idx = np.flatnonzero(np.isin(labels, list(held)))
        m = np.concatenate(mated)
        r = identify_rates(Gallery.of(people), points, template_points, fpir, emb[m], np.asarray(mated_lab), emb[stranger_idx])
        rows.append({"split": sp, **r})
    return rows


def site_protocol(
    emb: np.ndarray, labels: np.ndarray, points: Sequence[Any], template_points: Sequence[Any], stats: Any, *,
    gallery_people: int = 50, photos: tuple[int, int] = (1, 3), splits: int = 10, fpir: float = 1e-2, seed: int = 0,
    fars: Sequence[float] = (1e-3, 1e-4), **estimate: Any,
) -> list[dict[str, Any]]:
    """The "calibrate on the gallery, measure on everybody else" protocol (see the module docstring).
    Gallery people are drawn uniformly among all people (so the gallery is a fair sample of the
    site); a person with more photos than enrolled keeps the others as mated probes. ``estimate``: options
    of :func:`facegate.calibrate.estimate.estimate_site` (e.g. ``template_rule``)."""
    rng = np.random.default_rng(seed)
    names = np.unique(labels)
    if len(names) < 4:
        raise DatasetError("the site protocol needs photos of at least four people")
    rows = []
    for sp in range(splits):
        chosen = rng.choice(names, size=min(gallery_people, len(names) // 2), replace=False)
        people, mated, mated_lab = {}, [np.zeros(0, int)], []
        for n in chosen:
            idx = rng.permutation(np.flatnonzero(labels == n))
            k = int(rng.integers(photos[0], max(photos[0], min(photos[1], len(idx) - 1)) + 1))
            k = min(k, len(idx))
            people[str(n)] = emb[idx[:k]]
            mated.append(idx[k:])
            mated_lab += [str(n)] * (len(idx) - k)
        rest = ~np.isin(labels, chosen)
        imp_rest = impostor_scores(emb[rest], labels[rest])
        gallery = Gallery.of(people)
        m = np.concatenate(mated)
        pairs = collect_pairs(people)
        row: dict[str, Any] = {"split": sp, "gallery_people": len(people), "gallery_photos": int(gallery.faces.sum()),
                               "gallery_pairs": pairs.pairs, "rest_people": int(len(np.unique(labels[rest]))),
                               "rest_pairs": int(imp_rest.size)}
        tables: list[tuple[str, Sequence[Any], Sequence[Any]]] = [("shipped", points, template_points)]
        try:
            est = estimate_site(pairs, stats, points, template_points, seed=sp, **estimate)
        except UsageError as exc:  # e.g. one impostor pair: nothing to estimate, nothing adopted
            row.update(reliable=False, reasons=[str(exc)], calibrated=False)
        else:
            site_points = [OperatingPoint(far=p.far, threshold=p.threshold, tar=p.tar, dataset="site") for p in est.points]
            row.update(reliable=est.reliable, reasons=est.reasons, calibrated=True, map=[est.map.a, est.map.b])
            tables.append(("site", site_points, est.template_points))
        for tag, pts, tps in tables:
            curve = FarCurve.from_points(pts)
            assert curve is not None
            r = identify_rates(gallery, pts, tps, fpir, emb[m], np.asarray(mated_lab), emb[rest])
            for f in fars:
                r[far_key(f)] = above(imp_rest, curve.threshold(f)) / max(imp_rest.size, 1) / f
            row[tag] = r
        rows.append(row)
    return rows


def far_key(far: float) -> str:
    """The key of a measured/stated FAR ratio in a protocol row (no dot: keys are dotted paths)."""
    return f"far_{far:.0e}"


def summarise(rows: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> dict[str, dict[str, float]]:
    """Mean, standard deviation, min and max over splits of each key (dotted paths into the rows)."""
    out = {}
    for key in keys:
        vals = []
        for r in rows:
            v: Any = r
            for part in key.split("."):
                v = v.get(part) if isinstance(v, Mapping) else None
            if isinstance(v, (int, float)) and not (isinstance(v, float) and math.isnan(v)):
                vals.append(float(v))
        if vals:
            a = np.asarray(vals)
            out[key] = {"mean": float(a.mean()), "sd": float(a.std()), "min": float(a.min()), "max": float(a.max()), "n": len(vals)}
    return out


# -- entry point -------------------------------------------------------------------------------------------
TABLES = ("in-force", "shipped")


def table_of(arg: Sequence[str] | None, config: Config) -> tuple[str, list[Any], list[Any]]:
    """(name, points, template points) of the table to measure: ``in-force`` (default: the table that
    decides for the stack now, a site table if one is adopted), ``shipped`` (the table beneath an
    adopted site table) or ``site FILE`` (a saved site table)."""
    from facegate.decide.tables import in_force

    arg = list(arg or ["in-force"])
    if arg in (["in-force"], ["shipped"]):
        tables = in_force(config, site=arg[0] == "in-force")
        return tables.label or arg[0], list(tables.operating_points), list(tables.template_points)
    if arg[0] != "site" or len(arg) != 2:
        raise UsageError("--table is 'in-force', 'shipped' or 'site FILE'")
    table = SiteTable.load(arg[1])
    if table.stack != stack_key(config):
        raise UsageError(f"{arg[1]} is a site table for {table.stack}, not for this stack ({stack_key(config)})")
    return f"site table {arg[1]} ({table.created})", table.operating_points(), list(table.template_points)


def _fmt_stat(s: Mapping[str, float] | None, pct: bool = False) -> str:
    if not s:
        return "-"
    m = 100 if pct else 1
    return f"{m * s['mean']:.2f} +- {m * s['sd']:.2f} [{m * s['min']:.2f}, {m * s['max']:.2f}]"


def measure(
    pipe: Pipeline, root: Path, *, layout: str = "folders", views: str = "frontal", pick: str = "largest",
    table: Sequence[str] | None = None, all_points: bool = False, enrol: int = 0, strangers: float = 0.3,
    splits: int = 10, fpir: float = 1e-2, site_gallery: int = 0, site_photos: tuple[int, int] = (1, 3), seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Everything ``eval far`` reports, as one record (the CLI's ``facegate eval far`` and this module's
    runner print it with :func:`format_report`)."""
    if not 0 < fpir < 1:
        raise UsageError(f"--fpir is a rate between 0 and 1 (got {fpir:g})")
    if splits < 1:
        raise UsageError(f"--splits is at least 1 (got {splits})")
    name, points, tpoints = table_of(table, pipe.config)
    if not points:
        raise UsageError(f"no operating points are calibrated for {stack_key(pipe.config)}: nothing stated to measure")
    emb, labels, summary = embed_labelled(pipe, root, layout, views, pick, progress=progress)
    imp = impostor_scores(emb, labels)
    rows = far_table(emb, labels, points, None if all_points else DECADES, imp=imp)
    out: dict[str, Any] = {"data": summary, "table": name, "impostor_pairs": int(imp.size), "far": [asdict(r) for r in rows]}
    if enrol:
        rows_os = open_set(emb, labels, points, tpoints, enrol=enrol, strangers=strangers, splits=splits, fpir=fpir, seed=seed)
        out["open_set"] = {"enrol": enrol, "strangers": strangers, "splits": rows_os, "fpir": fpir,
                           "summary": summarise(rows_os, ("identities", "fpir", "fpir_ratio", "tpir", "rank1"))}
    if site_gallery:
        stats = load_shipped_stats(stack_key(pipe.config))
        if stats is None:
            raise UsageError(f"no shipped impostor statistics for {stack_key(pipe.config)}: site calibration is not available for it")
        _, ship_points, ship_tpoints = table_of(["shipped"], pipe.config)
        srows = site_protocol(emb, labels, ship_points, ship_tpoints, stats, gallery_people=site_gallery, photos=site_photos,
                              splits=splits, fpir=fpir, seed=seed)
        keys = [f"{t}.{k}" for t in ("shipped", "site")
                for k in (far_key(1e-3), far_key(1e-4), "fpir_ratio", "tpir", "rank1", "tpir_at_true_fpir")]
        out["site_protocol"] = {"gallery_people": site_gallery, "photos": list(site_photos), "splits": srows, "fpir": fpir,
                                "summary": summarise(srows, keys + ["gallery_pairs", "reliable", "calibrated"])}
    return out


def format_report(out: Mapping[str, Any]) -> str:
    """The record of :func:`measure` for a person."""
    summary = out["data"]
    lines = [f"{summary['embedded']} photos of {summary['people']} people ({summary['no_face']} without a face), "
             f"{out['impostor_pairs']:,} impostor pairs; table: {out['table']}",
             f"  {'stated FAR':>10}  {'threshold':>9}  {'false accepts':>13}  {'measured FAR':>12}  {'measured/stated':>15}  95% interval"]
    for r in out["far"]:
        flag = "" if r["resolved"] else "  (too few pairs to resolve)"
        lines.append(f"  {r['far']:>10g}  {r['threshold']:>9.4f}  {r['false_accepts']:>13,}  {r['measured']:>12.3g}  "
                     f"{r['ratio']:>14.2f}x  {r['low'] / r['far']:.2f}x .. {r['high'] / r['far']:.2f}x{flag}")
    if "open_set" in out:
        o = out["open_set"]
        s = o["summary"]
        lines.append(f"\nopen set: {o['enrol']} photo(s) enrolled per person, {100 * o['strangers']:.0f}% of people held out as "
                     f"strangers, {len(o['splits'])} splits; stated FPIR {o['fpir']:g} at {s['identities']['mean']:.0f} identities")
        lines.append(f"  strangers named (FPIR) {_fmt_stat(s.get('fpir'), True)}%  = {_fmt_stat(s.get('fpir_ratio'))} x stated")
        lines.append(f"  TPIR {_fmt_stat(s.get('tpir'), True)}%   rank-1 {_fmt_stat(s.get('rank1'), True)}%")
    if "site_protocol" in out:
        sp = out["site_protocol"]
        s = sp["summary"]
        lines.append(f"\nsite calibration simulated: gallery of {sp['gallery_people']} people with {sp['photos'][0]}-{sp['photos'][1]} "
                     f"photos, calibrated on it, measured on the other people; {len(sp['splits'])} splits (mean +- sd [min, max]); "
                     f"{_fmt_stat(s.get('gallery_pairs'))} gallery pairs; reliable in {100 * s['reliable']['mean']:.0f}% of splits")
        for t in ("shipped", "site"):
            lines.append(f"  {t:>7}: FAR 1e-3 {_fmt_stat(s.get(f'{t}.{far_key(1e-3)}'))}x  FAR 1e-4 "
                         f"{_fmt_stat(s.get(f'{t}.{far_key(1e-4)}'))}x  strangers named {_fmt_stat(s.get(f'{t}.fpir_ratio'))}x "
                         f"FPIR {sp['fpir']:g}  TPIR {_fmt_stat(s.get(f'{t}.tpir'), True)}%  "
                         f"rank-1 {_fmt_stat(s.get(f'{t}.rank1'), True)}%")
        lines.append(f"  TPIR had every bar been moved to name exactly {sp['fpir']:g} of these strangers (a yardstick): "
                     f"{_fmt_stat(s.get('shipped.tpir_at_true_fpir'), True)}%")
    return "\n".join(lines)


def photos_range(text: str) -> tuple[int, int]:
    """``1-3`` or ``2``: photos per gallery person, min-max."""
    try:
        lo, hi = (int(x) for x in text.split("-")) if "-" in text else (int(text),) * 2
    except ValueError as exc:
        raise UsageError(f"--site-photos is MIN-MAX or N, e.g. 1-3 (got {text!r})") from exc
    if not 1 <= lo <= hi:
        raise UsageError(f"--site-photos needs 1 <= MIN <= MAX (got {text!r})")
    return lo, hi


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m facegate.evaluate.far", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", type=Path, required=True, help="labelled folder")
    p.add_argument("--layout", "--labelled", choices=LAYOUTS, default="folders", help="folders: ROOT/<person>/*; cfp: CFP's layout")
    p.add_argument("--views", default="frontal", help="cfp layout: frontal, profile or frontal+profile")
    p.add_argument("--pick", choices=("largest", "center"), default="largest", help="the face of a photo with several")
    p.add_argument("--embedder", default="", help="embedder (default: the licence policy's default)")
    p.add_argument("--table", nargs="+", metavar="in-force|shipped|site FILE", help="the table to measure (default in-force)")
    p.add_argument("--all-points", action="store_true", help="every point of the table, not only the decades")
    p.add_argument("--enrol", type=int, default=0, help="open-set split: photos enrolled per person (0: no open-set split)")
    p.add_argument("--strangers", type=float, default=0.3, help="open-set split: share of people held out")
    p.add_argument("--splits", type=int, default=10)
    p.add_argument("--fpir", type=float, default=1e-2, help="the FPIR identification is stated at")
    p.add_argument("--site-gallery", type=int, default=0, help="simulate site calibration from a gallery of this many people")
    p.add_argument("--site-photos", default="1-3", help="photos per gallery person, min-max")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        config = Config(embedder=args.embedder) if args.embedder else Config()
        out = measure(Pipeline(config), args.root, layout=args.layout, views=args.views, pick=args.pick, table=args.table,
                      all_points=args.all_points, enrol=args.enrol, strangers=args.strangers, splits=args.splits, fpir=args.fpir,
                      site_gallery=args.site_gallery, site_photos=photos_range(args.site_photos), seed=args.seed,
                      progress=not args.json)
    except FacegateError as exc:
        print(json.dumps({"error": exc.code, "message": str(exc)}) if args.json else f"error: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    print(json.dumps(out, indent=1, default=float) if args.json else format_report(out))
    return 0


__all__ = ["DECADES", "LAYOUTS", "TABLES", "FarRow", "Gallery", "clopper_pearson", "embed_labelled", "far_table", "format_report",
           "identify_rates", "impostor_scores", "labelled_paths", "measure", "open_set", "photos_range", "site_protocol",
           "summarise", "table_of"]

if __name__ == "__main__":
    sys.exit(main())
