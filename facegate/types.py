"""Dataclasses shared by every stage of the pipeline.

Coordinates are pixels of the original image after EXIF rotation; boxes are
(x1, y1, x2, y2). Landmarks are five points of a named scheme (:data:`SCHEME_POINTS`; where
the points go in a chip is :mod:`facegate.align`'s business): ``Face.landmarks`` in
``Face.scheme``, plus any other scheme the detector produced natively in ``Face.more_landmarks``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

# Landmark schemes: which five points a detector reports, in which order (facegate.align says
# what each point is and where it goes in a chip). Here, in the base layer, because a Face names
# its points with them and every stage speaks of them.
DLIB5 = "dlib5"
MTCNN5 = "mtcnn5"
# dlib's 5-point shape predictor: subject's left eye outer and inner corner (right side of the
# image), right eye outer and inner corner, bottom of the nose.
LANDMARK_ORDER = ("left_eye_outer", "left_eye_inner", "right_eye_outer", "right_eye_inner", "nose_base")
SCHEME_POINTS: dict[str, tuple[str, ...]] = {
    DLIB5: LANDMARK_ORDER,
    MTCNN5: ("right_eye", "left_eye", "nose_tip", "mouth_right", "mouth_left"),  # image-left first
}


@dataclass
class Face:
    """One detected face: where it is, how sure the detector is, and (later) what it looks like."""

    box: np.ndarray  # (4,) float32: x1, y1, x2, y2
    landmarks: np.ndarray  # (5, 2) float32, in ``scheme``'s order
    score: float
    embedding: np.ndarray | None = None  # unit vector once embedded
    quality: float | None = None
    detector: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    scheme: str = DLIB5
    more_landmarks: dict[str, np.ndarray] = field(default_factory=dict)  # other native schemes

    def points(self, scheme: str) -> np.ndarray | None:
        """The detector's own points in ``scheme``, or None if it did not produce that scheme."""
        if scheme == self.scheme:
            return self.landmarks
        return self.more_landmarks.get(scheme)

    def __repr__(self) -> str:  # the embedding is 128-512 numbers: say it is there, do not print it
        box = ", ".join(f"{v:.1f}" for v in self.box)
        emb = f", embedding={len(self.embedding)}-d" if self.embedding is not None else ""
        return f"Face(box=[{box}], score={self.score:.3f}, detector={self.detector!r}, scheme={self.scheme!r}{emb})"

    @property
    def width(self) -> float:
        return float(self.box[2] - self.box[0])

    @property
    def height(self) -> float:
        return float(self.box[3] - self.box[1])

    @property
    def center(self) -> tuple[float, float]:
        return float(self.box[0] + self.box[2]) / 2, float(self.box[1] + self.box[3]) / 2

    def to_dict(self, with_embedding: bool = False) -> dict[str, Any]:
        names = SCHEME_POINTS.get(self.scheme, tuple(f"p{i}" for i in range(len(self.landmarks))))
        d: dict[str, Any] = {
            "box": [round(float(v), 2) for v in self.box],
            "landmarks": [[round(float(x), 2), round(float(y), 2)] for x, y in self.landmarks],
            "landmark_scheme": self.scheme,
            "points": {n: [round(float(x), 2), round(float(y), 2)] for n, (x, y) in zip(names, self.landmarks)},
            "score": round(float(self.score), 4),
            "detector": self.detector,
        }
        if self.quality is not None:
            d["quality"] = round(float(self.quality), 4)
        if with_embedding and self.embedding is not None:
            d["embedding"] = [float(v) for v in self.embedding]
        return d


@dataclass(frozen=True)
class FaceChoice:
    """Which face of a photo a one-face operation used, and how many there were to choose from.

    Every front end states it (``faces_found``, ``face_used`` in JSON, a line of text), so an answer
    about "the face in this photo" says which face that was when the photo held several.
    """

    face: Face
    index: int  # position of ``face`` in the detector's list (``facegate detect`` numbers faces the same way)
    found: int  # faces detected in the photo
    pick: str  # the rule that chose it: largest, center or single

    def to_dict(self) -> dict[str, Any]:
        return {
            "faces_found": self.found,
            "face_used": {"index": self.index, "box": [round(float(v), 2) for v in self.face.box],
                          "score": round(float(self.face.score), 4)},
            "pick": self.pick,
        }

    def describe(self) -> str:
        """One line for a person: ``1 face`` or ``3 faces, used #1 (largest) at (x1, y1, x2, y2)``."""
        if self.found == 1:
            return "1 face"
        box = ", ".join(f"{float(v):.0f}" for v in self.face.box)
        return f"{self.found} faces, used #{self.index} ({self.pick}) at ({box})"


@dataclass(frozen=True)
class OperatingPoint:
    """A threshold and the false-accept rate it was measured to give on a named data set."""

    far: float
    threshold: float
    tar: float | None
    dataset: str


@dataclass(frozen=True)
class Verdict:
    """The answer to "same person?" with the evidence behind it."""

    same: bool
    score: float  # cosine similarity of the two unit embeddings, higher = more alike
    threshold: float
    far: float | None  # false-accept rate the threshold stands for; None for a user-given threshold
    table: str | None = None  # which operating-point table the threshold and FAR come from (shipped, site, ...)
    faces: tuple[FaceChoice, ...] = ()  # the face used from each photo (from Pipeline.verify), in order

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "same": self.same,
            "score": round(self.score, 6),
            "threshold": round(self.threshold, 6),
            "far": self.far,
            "table": self.table,
        }
        if self.faces:
            d["faces"] = [c.to_dict() for c in self.faces]
        return d
