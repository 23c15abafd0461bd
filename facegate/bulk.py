"""Bulk embedding: many files in, one JSONL record per face streamed to disk, resumable.

A run that is interrupted (Ctrl-C, kill, power) is resumed by running the same
command again: files already recorded in the output are skipped, and a partially
written last line is discarded. Unreadable files become error records instead of
stopping the run.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
from tqdm import tqdm

from facegate.errors import FacegateError, UsageError
from facegate.image import IMAGE_SUFFIXES
from facegate.pipeline import Pipeline

log = logging.getLogger(__name__)


def iter_image_files(inputs: Iterable[str | Path]) -> Iterator[Path]:
    """Files given directly, and image files found by walking given folders (sorted)."""
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            for root, dirs, files in os.walk(p):
                dirs.sort()
                for f in sorted(files):
                    if Path(f).suffix.lower() in IMAGE_SUFFIXES:
                        yield Path(root) / f
        else:
            yield p  # missing/unreadable files become error records


def _done_files(out: Path) -> set[str]:
    """Files already in a JSONL output; truncates a torn last line left by a crash."""
    if not out.exists():
        return set()
    done: set[str] = set()
    good_bytes = 0
    with open(out, "rb") as fh:
        for raw in fh:
            if not raw.endswith(b"\n"):
                break
            try:
                done.add(json.loads(raw)["file"])
            except (ValueError, KeyError):
                break
            good_bytes += len(raw)
    if good_bytes != out.stat().st_size:
        log.warning("%s: discarding a partly written last record", out)
        with open(out, "r+b") as fh:
            fh.truncate(good_bytes)
    return done


def embed_to_jsonl(
    pipeline: Pipeline, inputs: Iterable[str | Path], out: Path, chunk: int = 16, progress: bool = True
) -> dict[str, int]:
    """Embed every face of every image into ``out`` (JSONL). Returns counts."""
    if out.suffix.lower() not in (".jsonl", ".json"):
        raise UsageError(f"--out {out}: use a .jsonl file (one JSON record per face)")
    files = list(iter_image_files(inputs))
    done = _done_files(out)
    todo = [f for f in files if str(f) not in done]
    counts = {"files": len(files), "skipped_done": len(files) - len(todo), "faces": 0, "no_face": 0, "errors": 0}
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "a") as fh, tqdm(total=len(todo), unit="img", desc="embedding", disable=not progress) as bar:
        for start in range(0, len(todo), chunk):
            batch = todo[start : start + chunk]
            images, ok = [], []
            records: dict[int, list[dict]] = {}
            for i, f in enumerate(batch):
                try:
                    images.append(pipeline.load(f))
                    ok.append(i)
                except FacegateError as exc:
                    records[i] = [{"file": str(f), "error": exc.code, "message": str(exc)}]
                    counts["errors"] += 1
            for i, faces in zip(ok, pipeline.faces_batch(images) if images else []):
                if not faces:
                    records[i] = [{"file": str(batch[i]), "faces": 0}]
                    counts["no_face"] += 1
                    continue
                records[i] = []
                for k, face in enumerate(faces):
                    rec = {"file": str(batch[i]), "face": k, **face.to_dict()}
                    rec["embedding"] = [round(float(v), 7) for v in np.asarray(face.embedding)]
                    records[i].append(rec)
                    counts["faces"] += 1
            for i in range(len(batch)):
                for rec in records[i]:
                    fh.write(json.dumps(rec) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
            bar.update(len(batch))
    return counts
