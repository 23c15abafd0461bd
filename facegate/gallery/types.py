"""Records the gallery hands back: people, matches, enrolment outcomes.

Kept apart from :mod:`facegate.types` because only the gallery (and the front ends over
it) uses them; they serialise with ``to_dict`` for the CLI's ``--json`` and the service.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from facegate.decide import OpenSetPolicy
from facegate.types import Face


@dataclass(frozen=True)
class GalleryState:
    """What a gallery holds at one moment, read together (:meth:`GalleryBackend.state`): the model
    of its embeddings, their dimension, how many people and faces, and how the people are
    templated (``face_counts``: number of faces -> number of people enrolled with that many)."""

    model: str | None
    dim: int | None
    people: int
    faces: int
    face_counts: Mapping[int, int]


@dataclass(frozen=True)
class GallerySnapshot:
    """One request's view of a gallery: its :class:`GalleryState` and the 1:N policy decided at
    for that state (the FPIR at that size). Identification and the gate read the gallery once
    into one of these and decide with it, so an enrolment landing mid-request cannot give one
    answer two gallery sizes (:meth:`facegate.gallery.Gallery.snapshot`)."""

    state: GalleryState
    policy: OpenSetPolicy

    @property
    def model(self) -> str | None:
        return self.state.model


@dataclass(frozen=True)
class Person:
    """One enrolled identity. ``faces`` is the number of stored face embeddings."""

    id: int
    name: str
    created: float
    updated: float
    faces: int
    model: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "created": self.created,
            "updated": self.updated,
            "faces": self.faces,
            "model": self.model,
        }


@dataclass(frozen=True)
class StoredFace:
    """One stored face of a person, without its embedding (``people show``)."""

    id: int
    person_id: int
    model: str
    quality: dict[str, Any]
    source: str | None
    created: float

    @property
    def forced(self) -> list[dict[str, Any]]:
        """The integrity refusals this face was enrolled over with ``force`` (empty for a normal enrolment)."""
        return list((self.quality or {}).get("forced") or [])

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "person_id": self.person_id,
            "model": self.model,
            "quality": self.quality,
            "source": self.source,
            "created": self.created,
            "forced": self.forced,
        }


@dataclass(frozen=True)
class Match:
    """A candidate identity for a probe face: ``same`` says whether ``score`` clears ``threshold``,
    the bar for this person (higher for a mean template of several photos, see ``Gallery``)."""

    person_id: int
    name: str
    score: float
    same: bool
    threshold: float = float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {
            "person_id": self.person_id,
            "name": self.name,
            "score": round(self.score, 6),
            "same": self.same,
            "threshold": round(self.threshold, 6),
        }


@dataclass
class Identification:
    """The answer for one probe face: ranked candidates and the decision under ``policy``.

    ``identity`` is the top candidate when it clears its own bar, else ``None`` ("unknown").
    ``threshold`` is the bar applied to the top candidate (the one-photo bar without candidates),
    so the threshold shown next to the best score is always the one that decided.
    """

    face: Face | None
    candidates: list[Match]
    policy: OpenSetPolicy

    @property
    def identity(self) -> Match | None:
        if self.candidates and self.candidates[0].same:
            return self.candidates[0]
        return None

    @property
    def name(self) -> str:
        m = self.identity
        return m.name if m is not None else "unknown"

    @property
    def threshold(self) -> float:
        return self.candidates[0].threshold if self.candidates else float(self.policy.threshold)

    @property
    def far(self) -> float | None:
        return self.policy.far

    @property
    def fpir(self) -> float | None:
        return self.policy.fpir

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        if self.face is not None:
            d.update(self.face.to_dict())
        d.update(
            {
                "identity": self.name,
                "person_id": self.identity.person_id if self.identity else None,
                "candidates": [m.to_dict() for m in self.candidates],
                "threshold": round(self.threshold, 6),
                "fpir": self.policy.fpir,
                "far": self.policy.far,
                "tpir": None if self.policy.tpir is None else round(self.policy.tpir, 4),
                "table": self.policy.table_label,
            }
        )
        return d


@dataclass(frozen=True)
class Rejection:
    """A photo the enrolment did not store, and why (one line a person can act on)."""

    source: str
    reason: str
    code: str  # no_face | multiple_faces | too_small | blurry | pose | invalid_image | ...
    metrics: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "reason": self.reason, "code": self.code, "metrics": self.metrics}


@dataclass
class FaceRecord:
    """What the gallery stores for one face: the embedding plus what is needed to audit it
    (quality metrics, source) and to re-embed it with another model later (an aligned-free
    crop around the face and the landmarks in crop coordinates)."""

    embedding: np.ndarray
    quality: dict[str, Any] = field(default_factory=dict)
    source: str | None = None
    box: list[float] | None = None
    crop_jpeg: bytes | None = None
    crop_landmarks: dict[str, list[list[float]]] | None = None  # {scheme: five points in crop pixels}


@dataclass
class EnrolResult:
    """Outcome of one enrolment call: who, which faces were stored (``faces``: per stored face, its photo,
    how many faces that photo held and which was used), which photos were refused, which were skipped
    (already enrolled for this person: same bytes), and which were stored over an integrity refusal
    (``forced``). ``checks`` says whether the integrity rules could be applied (they need a calibrated
    stack) and at which rates."""

    person: Person | None
    face_ids: list[int]
    rejected: list[Rejection]
    created: bool = False
    skipped: list[dict[str, Any]] = field(default_factory=list)
    forced: list[dict[str, Any]] = field(default_factory=list)
    faces: list[dict[str, Any]] = field(default_factory=list)
    checks: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "person": self.person.to_dict() if self.person else None,
            "created": self.created,
            "face_ids": self.face_ids,
            "faces": self.faces,
            "rejected": [r.to_dict() for r in self.rejected],
            "skipped": self.skipped,
            "forced": self.forced,
            "checks": self.checks,
        }


def stack_embeddings(faces: Sequence[Face]) -> np.ndarray:
    """The faces' embeddings as one (N, D) array; every face must have been embedded."""
    vecs = [f.embedding for f in faces]
    if any(v is None for v in vecs):
        raise ValueError("stack_embeddings: a face has no embedding (embed the faces first)")
    return np.stack([v for v in vecs if v is not None])
