"""``calibrate --site`` as one call: gather a site's pairs, estimate, and return the site table.

The front ends (CLI, REST) call :func:`calibrate_site` with whatever the site has (its gallery,
a folder of strangers, a labelled folder) and then print or return the table, plot it
(:func:`facegate.calibrate.plot.plot_site`), and adopt it (:func:`facegate.calibrate.store.adopt`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from facegate.calibrate.estimate import BOOTSTRAP, DEFAULT_METHOD, estimate_site
from facegate.calibrate.pairs import SitePairs, collect_pairs, unit_rows
from facegate.calibrate.stats import ShippedStats, load_shipped_stats
from facegate.calibrate.table import SiteTable
from facegate.decide.tables import in_force
from facegate.errors import DatasetError, FacegateError, UsageError
from facegate.image import IMAGE_SUFFIXES
from facegate.pipeline import Pipeline, pick_face

log = logging.getLogger(__name__)


@dataclass
class FolderEmbeddings:
    """Embeddings of a folder's photos (one face each), their labels, and the photos skipped."""

    embeddings: np.ndarray
    labels: list[str]
    skipped: list[str]


MAX_PEOPLE = 2000  # a larger gallery is calibrated from a uniform sample of this many people (~2M pairs)


def gallery_people(gallery: Any, page: int = 1000, max_people: int | None = MAX_PEOPLE,
                   seed: int = 0) -> tuple[dict[str, np.ndarray], dict[int, int]]:
    """Enrolled people's embeddings (name -> rows) and the faces-per-person histogram of the whole
    gallery, from a :class:`facegate.gallery.Gallery` (or anything with ``people(limit, offset)`` and
    ``embeddings(id)``). Past ``max_people`` people the embeddings are those of a uniform sample of
    them (the estimate's uncertainty is over people, and its cost stays bounded: every pair of the
    sample is scored); the histogram still counts everyone (the FPIR is stated at the gallery's size)."""
    records: list[Any] = []
    offset = 0
    while True:
        batch = gallery.people(limit=page, offset=offset)
        records += list(batch)
        if len(batch) < page:
            break
        offset += page
    known = all(isinstance(getattr(p, "faces", None), int) for p in records)
    chosen = records
    if known and max_people is not None and len(records) > max_people:
        idx = np.sort(np.random.default_rng(seed).choice(len(records), size=max_people, replace=False))
        chosen = [records[i] for i in idx]
    people: dict[str, np.ndarray] = {}
    for p in chosen:
        e = np.asarray(gallery.embeddings(p.id), dtype=np.float32)
        if e.size:
            people[p.name] = np.atleast_2d(e)
    counts: dict[int, int] = {}
    for n in ([int(p.faces) for p in records if p.faces] if known else [len(e) for e in people.values()]):
        counts[n] = counts.get(n, 0) + 1
    return people, counts


def embed_folder(pipeline: Pipeline, folder: Path, *, labelled: bool = False, pick: str = "largest",
                 progress: bool = True, batch: int = 16) -> FolderEmbeddings:
    """One embedding per photo (the ``pick`` face; photos without a face or unreadable are skipped
    and listed). ``labelled``: ``folder/<person>/*``, the sub-folder naming the person."""
    try:
        if not folder.is_dir():
            raise DatasetError(f"{folder}: not a folder")
        if labelled:
            items = [(f, d.name) for d in sorted(p for p in folder.iterdir() if p.is_dir()) for f in sorted(d.iterdir())
                     if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES]
        else:
            items = [(f, "") for f in sorted(folder.iterdir()) if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES]
    except OSError as exc:  # a name too long, a folder we may not read
        raise DatasetError(f"{str(folder)[:200]}: cannot read it ({exc.strerror or exc})") from exc
    if not items:
        raise DatasetError(f"{folder}: no photos" + (" in per-person sub-folders" if labelled else ""))
    vecs: list[np.ndarray] = []
    labels: list[str] = []
    skipped: list[str] = []
    bar = tqdm(total=len(items), desc=folder.name, unit="img", disable=not progress, dynamic_ncols=True)
    try:
        for start in range(0, len(items), batch):
            chunk = items[start : start + batch]
            images, kept = [], []
            for f, lab in chunk:
                try:
                    images.append(pipeline.load(f))
                    kept.append((f, lab))
                except FacegateError as exc:
                    log.warning("%s", exc)
                    skipped.append(str(f))
            for (f, lab), img, faces in zip(kept, images, pipeline.faces_batch(images)):
                if not faces:
                    skipped.append(str(f))
                    continue
                face = pick_face(faces, img.shape, pick)  # type: ignore[arg-type]
                vecs.append(np.asarray(face.embedding, dtype=np.float32))
                labels.append(lab)
            bar.update(len(chunk))
    finally:
        bar.close()
    emb = unit_rows(np.stack(vecs)) if vecs else np.zeros((0, pipeline.embedder.dim), np.float32)
    return FolderEmbeddings(emb, labels, skipped)


def calibrate_site(
    pipeline: Pipeline,
    *,
    people: Mapping[str, np.ndarray] | None = None,
    face_counts: Mapping[int, int] | None = None,
    strangers: np.ndarray | None = None,
    labelled: tuple[np.ndarray, Sequence[str]] | None = None,
    sources: Mapping[str, Any] | None = None,
    by: str = "",
    model: str | None = None,
    shipped_points: Sequence[Any] | None = None,
    shipped_template_points: Sequence[Any] | None = None,
    stats: ShippedStats | None = None,
    method: str = DEFAULT_METHOD,
    bootstrap: int = BOOTSTRAP,
    seed: int = 0,
) -> tuple[SiteTable, SitePairs]:
    """The site table from the site's sources (any or all; see :func:`facegate.calibrate.pairs.collect_pairs`).

    ``shipped_points`` / ``shipped_template_points`` default to the stack's shipped table (never a
    site table in force: the estimate maps the shipped curve). Raises :class:`UsageError` for a
    stack without shipped impostor statistics, and when there is nothing to pair.
    """
    beneath = in_force(pipeline.config, site=False)  # the table a site table maps (never one adopted before)
    own = getattr(pipeline, "tables", None)  # a pipeline with tables of its own (a synthetic one) is not the shipped stack
    key = own().key if callable(own) else beneath.key
    stats = stats or load_shipped_stats(key)
    if stats is None:
        raise UsageError(f"no shipped impostor statistics for {key}: site calibration needs the stack's LFW impostor "
                         "distribution (benchmarks/impostor_stats.py); use a shipped stack")
    points = list(shipped_points) if shipped_points is not None else list(beneath.operating_points)
    tpoints = list(shipped_template_points) if shipped_template_points is not None else list(beneath.template_points)
    if not people and strangers is None and labelled is None:
        raise UsageError("site calibration needs a gallery, a folder of strangers or a labelled folder")
    if strangers is not None and not people:
        raise UsageError("strangers are scored against the gallery's photos: enrol people first")
    pairs = collect_pairs(people, strangers, labelled, seed=seed)
    estimate = estimate_site(pairs, stats, points, tpoints, method=method, bootstrap=bootstrap, seed=seed)
    table = SiteTable.from_estimate(estimate, by=by, sources=dict(sources or {}), shipped_points=points,
                                    shipped_template_points=tpoints, shipped_dataset=stats.dataset,
                                    face_counts=face_counts, model=model)
    return table, pairs


def calibrate_gallery(
    pipeline: Pipeline,
    gallery: Any,
    *,
    strangers: np.ndarray | None = None,
    labelled: tuple[np.ndarray, Sequence[str]] | None = None,
    sources: Mapping[str, Any] | None = None,
    by: str = "",
    seed: int = 0,
) -> tuple[SiteTable, SitePairs]:
    """:func:`calibrate_site` from an open :class:`facegate.gallery.Gallery` (its people and faces
    per person), with optional stranger and labelled embeddings. The gallery must hold the
    pipeline's model: scores of another model's embeddings would calibrate nothing."""
    from facegate.decide import check_model
    from facegate.gallery import model_id

    model = model_id(pipeline)
    have = gallery.model()
    if have is None:
        raise UsageError("the gallery is empty: enrol the site's people first (site calibration pairs their photos)")
    check_model(have, model)
    people, counts = gallery_people(gallery, seed=seed)
    sources = dict(sources or {})
    enrolled = sum(counts.values())
    if len(people) < enrolled:
        sources["gallery_sample"] = f"{len(people)} of {enrolled} people, drawn uniformly"
    return calibrate_site(pipeline, people=people, face_counts=counts, strangers=strangers, labelled=labelled,
                          sources=sources, by=by, model=model, seed=seed)


__all__ = ["MAX_PEOPLE", "FolderEmbeddings", "calibrate_gallery", "calibrate_site", "embed_folder", "gallery_people"]
