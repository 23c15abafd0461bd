"""Measure operating points: the threshold at which a stated share of impostor pairs is accepted.

Every shipped embedder carries operating points measured by :func:`calibrate` over all
cross-identity pairs of a named data set (for the shipped tables, LFW), written into the tables
of :mod:`facegate.decide.tables` (``facegate calibrate --write``), from which decisions read
them and report the FAR their threshold stands for. :func:`calibrate_folder` does the same on a
folder of labelled photos (one sub-folder per person) and says what more data a FAR it cannot
resolve would need (:func:`data_needed`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facegate.errors import DatasetError
from facegate.evaluate.embedding import FAILED, EmbeddedSet, embed_files
from facegate.image import IMAGE_SUFFIXES
from facegate.pipeline import Pipeline
from facegate.types import OperatingPoint

# FARs we calibrate and report; 1e-5 and 1e-6 need millions of impostor pairs (LFW gives 87M).
STANDARD_FARS = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6)
# The calibrated curve: four FARs per decade, so 1:N decisions can interpolate the threshold
# for the per-comparison FAR a gallery's size calls for.
CURVE_FARS = tuple(float(f"{10 ** (-k / 4):.3g}") for k in range(4, 25))
# A FAR is reported only when at least this many impostor pairs (of single photos) score above its
# threshold: with m above, the FAR is known to about 1/sqrt(m) (10: +-32%). Template calibration
# has its own, stricter floor (facegate.evaluate.templates.TEMPLATE_MIN_IMPOSTORS_ABOVE).
MIN_IMPOSTORS_ABOVE = 10


def impostor_pairs_needed(far: float) -> int:
    """Impostor pairs a calibration needs before it can resolve ``far`` (see :func:`calibrate`)."""
    return int(np.ceil(MIN_IMPOSTORS_ABOVE / far - 1e-9))


def _pair_scores_by_label(
    emb: np.ndarray, labels: np.ndarray, keep_top: int, chunk: int = 2048
) -> tuple[np.ndarray, np.ndarray, int]:
    """Genuine scores (all same-label pairs), the ``keep_top`` highest impostor scores,
    and the number of impostor pairs, from one pass over the upper triangle in chunks."""
    emb = np.ascontiguousarray(emb, dtype=np.float32)
    n = len(emb)
    genuine: list[np.ndarray] = []
    top = np.empty(0, dtype=np.float32)
    n_imp = 0
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        s = emb[start:stop] @ emb[start:].T  # rows start..stop vs columns start..n
        rows = np.arange(start, stop)[:, None]
        cols = np.arange(start, n)[None, :]
        upper = cols > rows
        same = labels[start:stop, None] == labels[None, start:]
        genuine.append(s[upper & same])
        imp = s[upper & ~same]
        n_imp += imp.size
        if keep_top > 0 and imp.size:
            k = min(keep_top, imp.size)
            cand = np.concatenate([top, np.partition(imp, imp.size - k)[imp.size - k :]])
            top = np.partition(cand, cand.size - min(keep_top, cand.size))[cand.size - min(keep_top, cand.size) :]
    return np.concatenate(genuine) if genuine else np.empty(0, np.float32), np.sort(top)[::-1], n_imp


def calibrate(
    embeddings: np.ndarray, labels: list | np.ndarray, dataset: str, fars: tuple[float, ...] = STANDARD_FARS
) -> list[OperatingPoint]:
    """Operating points from every pair of a labelled set of unit embeddings.

    For each FAR ``f`` the threshold is the smallest score such that at most
    ``f * N_impostor`` impostor pairs score strictly above it (decisions are
    ``score > threshold``); TAR is the share of genuine pairs above it. FARs that
    the number of impostor pairs cannot resolve (fewer than :data:`MIN_IMPOSTORS_ABOVE`
    impostors above threshold) are left out rather than reported with false precision.
    """
    labels = np.asarray(labels)
    codes = np.unique(labels, return_inverse=True)[1]
    n = len(codes)
    n_pairs = n * (n - 1) // 2
    usable = [f for f in fars if n_pairs >= impostor_pairs_needed(f)]
    keep = int(max(usable) * n_pairs) + 1 if usable else 0
    genuine, top, n_imp = _pair_scores_by_label(embeddings, codes, keep)
    points = []
    for f in sorted(usable, reverse=True):
        k = int(np.floor(f * n_imp))
        if k < MIN_IMPOSTORS_ABOVE or k >= len(top):
            continue
        thr = float(top[k])  # k impostors lie strictly above (ties aside)
        tar = float((genuine > thr).mean()) if genuine.size else None
        points.append(OperatingPoint(far=f, threshold=thr, tar=tar, dataset=dataset))
    return points


def labelled_images(root: Path) -> tuple[list[Path], list[str]]:
    """Images under ``root/<person>/``; the sub-folder name is the label."""
    paths, labels = [], []
    try:
        if not root.is_dir():
            raise DatasetError(f"{root}: not a folder (expected one sub-folder per person)")
        for person in sorted(p for p in root.iterdir() if p.is_dir()):
            for f in sorted(person.iterdir()):
                if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file():
                    paths.append(f)
                    labels.append(person.name)
    except OSError as exc:  # a name too long, a folder we may not read: the user's to fix, not an internal error
        raise DatasetError(f"{str(root)[:200]}: cannot read it ({exc.strerror or exc})") from exc
    if len(set(labels)) < 2:
        raise DatasetError(f"{root}: need photos of at least two people, one sub-folder each")
    return paths, labels


def calibrate_folder(
    pipeline: Pipeline, root: Path, dataset: str | None = None, pick: str = "largest",
    fars: tuple[float, ...] = CURVE_FARS, progress: bool = True,
) -> tuple[list[OperatingPoint], EmbeddedSet, dict]:
    """Embed every photo (no-face photos are skipped and counted), then calibrate over
    all cross-identity pairs. Returns the points, the embeddings and a summary."""
    paths, labels = labelled_images(root)
    emb = embed_files(pipeline, paths, pick=pick, fallback=(), progress=progress, desc="calibration images")
    ok = np.array([s != FAILED for s in emb.status])
    labels_ok = np.array(labels)[ok]
    name = dataset or f"{root} ({int(ok.sum())} photos of {len(set(labels_ok))} people)"
    points = calibrate(emb.embeddings[ok], labels_ok, name, fars)
    n = int(ok.sum())
    _, counts = np.unique(labels_ok, return_counts=True)
    genuine = int((counts * (counts - 1) // 2).sum())
    summary = {
        "photos": len(paths),
        "embedded": n,
        "skipped_no_face_or_unreadable": int((~ok).sum()),
        "people": int(len(counts)),
        "genuine_pairs": genuine,
        "impostor_pairs": n * (n - 1) // 2 - genuine,
        "dataset": name,
    }
    resolved = {p.far for p in points}
    missing = [f for f in sorted(fars, reverse=True) if f not in resolved]
    if missing:
        summary["needed"] = data_needed(missing[0], summary["people"], n)
    return points, emb, summary


def _impostor_pairs(photos: int, people: int) -> int:
    """Pairs of photos of different people when ``photos`` are spread evenly over ``people``."""
    base, extra = divmod(photos, people)
    sizes = [base + 1] * extra + [base] * (people - extra)
    return photos * (photos - 1) // 2 - sum(k * (k - 1) // 2 for k in sizes)


def data_needed(far: float, people: int, photos: int) -> dict:
    """What a calibration that cannot resolve ``far`` would need: the impostor pairs, and two
    ways to get them: more photos of the same ``people``, or more people with as many photos
    each as now."""
    pairs = impostor_pairs_needed(far)
    people = max(people, 2)
    more_photos = max(photos, people)
    while _impostor_pairs(more_photos, people) < pairs:
        more_photos += max(1, more_photos // 64)
    per_person = max(1, photos // people)
    more_people = people
    while per_person * per_person * more_people * (more_people - 1) // 2 < pairs:
        more_people += max(1, more_people // 64)
    return {"far": far, "impostor_pairs": pairs, "photos": more_photos, "people": people,
            "or_people": more_people, "photos_per_person": per_person}
