"""Bulk enrolment from a folder of people: ``DIR/<person name>/<photos>``.

The layout of face_recognition's examples and of CompreFace imports: one sub-folder per
person, named after them, holding their photos. Each person is one enrolment (one
transaction), so an interrupted run loses at most the person it was on.

Resuming costs almost nothing: photos already enrolled for that name (same file sha256,
stored with each face) are skipped, and photos the quality gate refused before are remembered
in a journal (JSON lines beside the gallery, keyed by the photo's sha256) and not processed
again. Refusals of the gallery's integrity rules (a face that is another enrolled person, a
photo that does not match the person's others, a photo enrolled under another name; see
:meth:`facegate.gallery.Gallery.enroll`) are reported per photo like any refusal but not
journalled: they depend on who is enrolled, so a later run (or one with ``force``) decides
again. The report counts what was enrolled, skipped, refused and forced, and lists every
refusal and why.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from facegate.errors import UsageError
from facegate.files import open_private
from facegate.gallery.errors import INTEGRITY_CODES, EnrolmentRejectedError
from facegate.gallery.gallery import photo_sha256
from facegate.gallery.types import Rejection

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"}


@dataclass
class FolderReport:
    """What a bulk enrolment did (this run), and the refusals remembered from earlier runs."""

    people: int = 0  # person folders seen
    created: int = 0  # people new to the gallery
    added: int = 0  # existing people given new photos
    unchanged: int = 0  # people whose every photo was enrolled (or refused) before
    enrolled_photos: int = 0
    skipped_photos: int = 0  # already enrolled
    refused_photos: int = 0  # refused this run
    previously_refused: int = 0  # refused in an earlier run (journal), not tried again
    refusals: list[dict[str, Any]] = field(default_factory=list)
    forced: list[dict[str, Any]] = field(default_factory=list)  # stored over an integrity refusal (force)
    interrupted: bool = False
    journal: str = ""

    def to_dict(self) -> dict[str, Any]:
        by_code = Counter(r["code"] for r in self.refusals)
        return {
            # "new_people", not "created": answers write every "created" as a time (ISO 8601)
            "people": self.people, "new_people": self.created, "added": self.added, "unchanged": self.unchanged,
            "enrolled_photos": self.enrolled_photos, "skipped_photos": self.skipped_photos,
            "refused_photos": self.refused_photos, "previously_refused": self.previously_refused,
            "refused_by_reason": dict(by_code), "refusals": self.refusals, "forced": self.forced,
            "interrupted": self.interrupted,
            "journal": self.journal,
        }


def person_folders(root: Path) -> list[tuple[str, list[Path]]]:
    """(name, photos) per sub-folder of ``root``, sorted by name; hidden entries ignored."""
    root = Path(root)
    if not root.is_dir():
        raise UsageError(f"{root}: not a folder (expected one sub-folder per person)")
    out = []
    for d in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        photos = sorted(p for p in d.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if photos:
            out.append((d.name, photos))
    if not out:
        raise UsageError(f"{root}: no person sub-folders with photos (layout: {root}/<name>/<photo>.jpg)")
    return out


def default_journal(gallery_path: Path, root: Path) -> Path:
    """Beside the gallery, one journal per source folder."""
    tag = hashlib.sha256(str(Path(root).resolve()).encode()).hexdigest()[:10]
    return gallery_path.with_name(f"{gallery_path.name}.enrol-{tag}.jsonl")


def _read_journal(path: Path) -> dict[str, dict[str, Any]]:
    refused: dict[str, dict[str, Any]] = {}
    try:
        with open(path) as fh:
            for line in fh:
                try:
                    rec = json.loads(line)
                except ValueError:  # a line cut by an interrupt
                    continue
                if rec.get("sha256"):
                    refused[rec["sha256"]] = rec
    except FileNotFoundError:
        pass
    return refused


def enrol_folders(
    gallery: Any, root: Path, *, pick: str = "largest", journal: Path | None = None, progress: bool = True,
    keep_crops: bool = True, force: bool = False,
) -> FolderReport:
    """Enrol every person folder under ``root`` into ``gallery`` (see the module docstring)."""
    folders = person_folders(root)
    jpath = Path(journal) if journal is not None else default_journal(Path(gallery.config.gallery_path), root)
    refused_before = _read_journal(jpath)
    report = FolderReport(journal=str(jpath))
    bar = tqdm(folders, desc="enrolling", unit="person", disable=not progress, dynamic_ncols=True)
    jfh = open_private(jpath, "a")  # names and photo paths: 0600 beside the gallery
    try:
        for name, photos in bar:
            report.people += 1
            todo = []
            for p in photos:
                sha = photo_sha256(p)
                if sha is not None and sha in refused_before:
                    report.previously_refused += 1
                    rec = refused_before[sha]
                    report.refusals.append({"person": name, "photo": str(p), "code": rec.get("code"),
                                            "reason": rec.get("reason"), "earlier_run": True})
                    continue
                todo.append((str(p), p, sha))
            rejected: list[Rejection] = []
            result = None
            skipped: list[str] = []
            if todo:
                try:
                    result, skipped = gallery.enroll_new(name, [(lbl, p) for lbl, p, _ in todo], pick=pick,
                                                         keep_crops=keep_crops, force=force)
                    rejected = result.rejected if result is not None else []
                except EnrolmentRejectedError as exc:
                    rejected = exc.rejected
            report.skipped_photos += len(skipped)
            if result is not None and result.face_ids:
                report.enrolled_photos += len(result.face_ids)
                report.forced += [{"person": name, **f} for f in result.forced]
                if result.created:
                    report.created += 1
                else:
                    report.added += 1
            else:
                report.unchanged += 1
            shas = {lbl: sha for lbl, _, sha in todo}
            for r in rejected:
                report.refused_photos += 1
                report.refusals.append({"person": name, "photo": r.source, "code": r.code, "reason": r.reason,
                                        **({"matched": r.metrics} if r.code in INTEGRITY_CODES else {})})
                if shas.get(r.source) and r.code not in INTEGRITY_CODES:
                    jfh.write(json.dumps({"sha256": shas[r.source], "person": name, "photo": r.source,
                                          "code": r.code, "reason": r.reason}) + "\n")
            jfh.flush()
            bar.set_postfix(enrolled=report.enrolled_photos, refused=report.refused_photos, refresh=False)
    except KeyboardInterrupt:
        report.interrupted = True
        log.warning("bulk enrolment interrupted after %d of %d people; run the same command again to resume",
                    report.people, len(folders))
    finally:
        bar.close()
        jfh.close()
    return report


__all__ = ["FolderReport", "IMAGE_SUFFIXES", "default_journal", "enrol_folders", "person_folders"]
