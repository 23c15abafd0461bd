"""Operating points for *templates*: the re-normalised mean of k embeddings of one person.

The shipped operating points (``facegate/data/operating_points.json``) are for one photo
against one photo. A video track is named from its template, the (quality-weighted) mean
of the k embeddings taken along the track, against an enrolled person. Averaging removes
per-image noise, and since every embedding of a face model shares a large common
direction, the re-normalised mean of k faces lies closer to *everybody*, not only to its
own person: the impostor scores of templates are higher than those of single photos. On
LFW (dlib ResNet, the shipped stack) the per-photo threshold at FAR 1e-3, 0.9284, accepts
2.6e-3 of impostor pairs when the probe is the mean of 2 photos and 5.3e-3 when it is the
mean of 8, and the threshold that does give 1e-3 rises from 0.9284 (k=1) to 0.935 (k=2),
0.939 (k=5) and about 0.941 (k=8 and more; it saturates).

:func:`calibrate_templates` measures this the way :func:`facegate.evaluate.calibration.calibrate`
measures single photos: for each k, templates of k photos of one person (disjoint groups
drawn at random, at most ``per_person`` per person so that the few people with hundreds
of photos do not dominate) are scored against every photo of every *other* person
(impostor pairs) and against the same person's photos outside the template (genuine
pairs); the threshold at FAR f is the score that f of the impostor pairs exceed.

Photos of one person taken years apart differ more than the frames of one video track, so
a track's template should gain less from averaging than k independent photos do, which
makes these thresholds the cautious side for tracks. That is an argument, not a
measurement (there is no labelled video set to measure it on), and it leaves out what LFW
does not show: blurred, dark or tiny video faces score higher against everybody than press
photos do.

The points go into the template table of :mod:`facegate.decide.tables`
(:func:`~facegate.decide.tables.save_template_points`), from which the decision layer reads them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from facegate.decide.tables import TemplatePoint
from facegate.evaluate.calibration import CURVE_FARS

log = logging.getLogger(__name__)

TEMPLATE_KS = (2, 3, 4, 5, 6, 8, 12, 16)
TEMPLATE_FARS = CURVE_FARS  # the per-comparison curve's FARs, where enough impostor pairs resolve them
# A (k, FAR) is reported only where at least this many impostor pairs lie above its threshold: the
# rule of facegate.evaluate.calibration.MIN_IMPOSTORS_ABOVE, with a floor ten times higher. The floor
# was set when template calibration was added, without a recorded reason; it suits a measurement with
# fewer independent draws (at most ``per_person`` templates per person, each scored against every
# photo of everybody else). The shipped template table was calibrated with it; 10 here would add
# points resolved by 10 pairs, 100 for single photos would drop FAR 1e-6 from LFW's table (87 above).
TEMPLATE_MIN_IMPOSTORS_ABOVE = 100


def make_templates(
    embeddings: np.ndarray, codes: np.ndarray, k: int, per_person: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Re-normalised means of ``k`` photos of one person: (templates, their person codes, member
    indices). Each person with at least ``k`` photos gives up to ``per_person`` disjoint random groups."""
    temps, owners, members = [], [], []
    order = np.argsort(codes, kind="stable")
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    for ids in np.split(order, bounds):
        if len(ids) < k:
            continue
        ids = rng.permutation(ids)
        for g in range(min(per_person, len(ids) // k)):
            grp = ids[g * k : (g + 1) * k]
            t = embeddings[grp].astype(np.float64).sum(axis=0)
            temps.append(t / max(float(np.linalg.norm(t)), 1e-12))
            owners.append(int(codes[grp[0]]))
            members.append(grp)
    if not temps:
        return np.zeros((0, embeddings.shape[1]), np.float32), np.zeros(0, int), []
    return np.stack(temps).astype(np.float32), np.asarray(owners), members


def calibrate_templates(
    embeddings: np.ndarray,
    labels: Sequence | np.ndarray,
    ks: Sequence[int] = TEMPLATE_KS,
    fars: Sequence[float] = TEMPLATE_FARS,
    per_person: int = 2,
    seed: int = 0,
    min_above: int = TEMPLATE_MIN_IMPOSTORS_ABOVE,
    chunk: int = 512,
) -> list[TemplatePoint]:
    """Thresholds for k-photo templates against single photos, per k and FAR (see the module
    docstring). ``embeddings`` are unit vectors, one per photo; ``labels`` name the person.
    A (k, FAR) pair whose threshold fewer than ``min_above`` impostor pairs would exceed is
    left out rather than reported with false precision."""
    emb = np.ascontiguousarray(embeddings, dtype=np.float32)
    codes = np.unique(np.asarray(labels), return_inverse=True)[1]
    counts = np.bincount(codes)
    rng = np.random.default_rng(seed)
    points: list[TemplatePoint] = []
    for k in ks:
        temps, owners, members = make_templates(emb, codes, k, per_person, rng)
        if not len(temps):
            continue
        n_imp = int((len(emb) - counts[owners]).sum())
        usable = sorted((f for f in fars if f * n_imp >= min_above), reverse=True)
        if not usable:
            continue
        keep = int(max(usable) * n_imp) + 1
        top = np.empty(0, np.float32)
        genuine: list[np.ndarray] = []
        for start in range(0, len(temps), chunk):
            s = temps[start : start + chunk] @ emb.T
            same = owners[start : start + chunk, None] == codes[None, :]
            for r, grp in enumerate(members[start : start + chunk]):
                # genuine: the same person's photos outside the template (its own are neither kind)
                genuine.append(np.delete(s[r], grp)[np.delete(same[r], grp)])
            imp = s[(owners[start : start + chunk, None] != codes[None, :])]
            m = min(keep, imp.size)
            cand = np.concatenate([top, np.partition(imp, imp.size - m)[imp.size - m :]])
            m = min(keep, cand.size)
            top = np.partition(cand, cand.size - m)[cand.size - m :]
        top = np.sort(top)[::-1]
        gen = np.concatenate(genuine) if genuine else np.empty(0, np.float32)
        for f in usable:
            i = int(np.floor(f * n_imp))
            if i >= len(top):
                continue
            thr = float(top[i])  # i impostor pairs lie strictly above (ties aside)
            points.append(TemplatePoint(
                k=int(k), far=float(f), threshold=thr, tar=float((gen > thr).mean()) if gen.size else None,
                templates=len(temps), people=len(set(owners.tolist())), impostor_pairs=n_imp,
            ))
        log.info("k=%d: %d templates of %d people, %d impostor pairs", k, len(temps), len(set(owners.tolist())), n_imp)
    return points


__all__ = ["TEMPLATE_FARS", "TEMPLATE_KS", "TEMPLATE_MIN_IMPOSTORS_ABOVE", "calibrate_templates", "make_templates"]
