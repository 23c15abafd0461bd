"""Calibrate operating points on a folder of labelled photos (one sub-folder per person)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facegate.errors import DatasetError
from facegate.evaluate.embedding import FAILED, EmbeddedSet, embed_files
from facegate.image import IMAGE_SUFFIXES
from facegate.pipeline import Pipeline
from facegate.types import OperatingPoint
from facegate.verify import CURVE_FARS, calibrate, impostor_pairs_needed


def labelled_images(root: Path) -> tuple[list[Path], list[str]]:
    """Images under ``root/<person>/``; the sub-folder name is the label."""
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder (expected one sub-folder per person)")
    paths, labels = [], []
    for person in sorted(p for p in root.iterdir() if p.is_dir()):
        for f in sorted(person.iterdir()):
            if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file():
                paths.append(f)
                labels.append(person.name)
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
