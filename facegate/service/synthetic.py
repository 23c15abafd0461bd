"""A model-free stand-in for :class:`~facegate.pipeline.Pipeline`, for service tests and load tests.

The service's own behaviour (auth, limits, parsing, audit, concurrency, erasure) does not
depend on which network computes embeddings, and the real models cost seconds per image
on a small CPU. :class:`SyntheticPipeline` keeps every real stage that is not a network
(image decoding and its limits, alignment, the gallery's quality gate, crops) and swaps
detection and embedding for cheap deterministic rules on :func:`synthetic_face` images:

* detection: an image with almost no contrast has no face; one at least 2.5 times wider
  than tall holds two (left and right half); anything else holds one, centred, with the
  five landmarks of the mean frontal face, so pose checks pass and eye distance scales
  with the image (about 0.32 x its shorter side: images under about 75 px fail "too small");
* embedding: the aligned chip's colour layout on a 4x4 grid (mean removed, unit length).
  :func:`synthetic_face` paints each person a different random 4x4 colour layout plus
  per-shot fine noise, so two shots of one person score about 0.99 and two people about 0;
* liveness: an image framed by a white border (:func:`printed`, "a printed photo held up")
  is an attack, anything else live, so the service's liveness paths (refusals, audit,
  settings) are exercised without the cues; the real cues are tested on real images.

Never use it for real decisions: it recognises colour layouts, not faces.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import cv2
import numpy as np
from PIL import Image

from facegate.align import LANDMARK_ORDER, MEAN_FACE, template
from facegate.config import Config
from facegate.decide.tables import OPERATING_POINTS, TEMPLATE_POINTS, StackTables
from facegate.liveness import FACE_JUMPED, PRESENTATION_ATTACK, LinearHead, Liveness, LivenessDetector, LivenessModel, face_jump
from facegate.liveness.result import Mode
from facegate.pipeline import Pipeline
from facegate.types import Face, OperatingPoint

SYNTHETIC_MODEL = "synthetic-grid@0"
SYNTHETIC_THRESHOLD = 0.9
SYNTHETIC_FAR = 1e-3
_UNIT = np.array([MEAN_FACE[n] for n in LANDMARK_ORDER], dtype=np.float32)


class SyntheticDetector:
    """One centred "face" per image with contrast (two in very wide images)."""

    name = "synthetic"

    def _one(self, x0: float, w: float, h: float) -> Face:
        side = 0.6 * min(w, h)
        bx, by = x0 + (w - side) / 2, (h - side) / 2
        landmarks = (_UNIT * side + np.array([bx, by], dtype=np.float32)).astype(np.float32)
        box = np.array([bx, by, bx + side, by + side], dtype=np.float32)
        return Face(box=box, landmarks=landmarks, score=0.99, detector=self.name)

    def detect(self, image: np.ndarray) -> list[Face]:
        h, w = image.shape[:2]
        if float(image.std()) < 8.0 or min(h, w) < 8:
            return []
        if w >= 2.5 * h:
            return [self._one(0, w / 2, h), self._one(w / 2, w / 2, h)]
        return [self._one(0, w, h)]

    def detect_batch(self, images: list[np.ndarray]) -> list[list[Face]]:
        return [self.detect(im) for im in images]


class SyntheticEmbedder:
    """Colour layout of the chip on a 4x4 grid as a 48-d unit vector."""

    name = "synthetic"
    model_id = SYNTHETIC_MODEL
    dim = 48
    input_size = 150
    padding = 0.25

    @property
    def template(self):
        return template(self.input_size, self.padding)

    def embed(self, chips: np.ndarray) -> np.ndarray:
        chips = np.asarray(chips)
        out = np.zeros((len(chips), self.dim), dtype=np.float32)
        for i, chip in enumerate(chips):
            s = chip.shape[0]
            inner = chip[int(0.3 * s) : int(0.7 * s), int(0.3 * s) : int(0.7 * s)]  # inside the face box
            v = cv2.resize(inner, (4, 4), interpolation=cv2.INTER_AREA).astype(np.float32).reshape(-1)
            v -= v.mean()
            out[i] = v / max(float(np.linalg.norm(v)), 1e-6)
        return out

    def embed_plain(self, chips: np.ndarray) -> np.ndarray:
        return self.embed(chips)  # no mirror average: its embedding is the plain one

    def embed_and_plain(self, chips: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        emb = self.embed(chips)
        return emb, emb


def _border_share(image: np.ndarray) -> float:
    """Share of near-white pixels in the outer band (6% of the shorter side) of an image."""
    h, w = image.shape[:2]
    b = max(1, int(0.06 * min(h, w)))
    white: np.ndarray = np.all(np.asarray(image) >= 235, axis=-1)
    band = np.concatenate([white[:b].ravel(), white[-b:].ravel(), white[b:-b, :b].ravel(), white[b:-b, -b:].ravel()])
    return float(band.mean()) if band.size else 0.0


def _synthetic_head(mode: str) -> LinearHead:
    return LinearHead(mode, ("red_rel",), (0.0,), (1.0,), (1.0,), 0.0, 0.5)


class SyntheticLiveness(LivenessDetector):
    """Live unless the frame is framed by a white border: score = 1 - the border's white share."""

    name = "synthetic-border"

    def __init__(self) -> None:
        self.model = LivenessModel(
            name=self.name, version=1, source="facegate.service.synthetic (tests)", licence="test rule",
            permissive=True, provenance="a rule on synthetic images, not a model", training_data="none",
            heads={"still": _synthetic_head("still"), "burst": _synthetic_head("burst")},
        )

    def _verdict(self, score: float, mode: Mode, frames: int, no_face: int, reason: str | None = None) -> Liveness:
        live = reason is None and score >= 0.5
        return Liveness(live=live, score=score, threshold=0.5, mode=mode, apcer=None, bpcer=None,
                        measured_on="not measured (a test rule)", model=self.name,
                        reason=None if live else (reason or PRESENTATION_ATTACK), frames=frames,
                        frames_without_face=no_face)

    def check_still(self, image: np.ndarray, face: Face) -> Liveness:
        return self._verdict(1.0 - _border_share(image), "still", 1, 0)

    def check_burst(self, images: Sequence[np.ndarray], faces: Sequence[Face | None]) -> Liveness:
        kept = [(i, f) for i, f in zip(images, faces) if f is not None]
        for (ia, fa), (ib, fb) in zip(kept, kept[1:]):
            if face_jump(fa, fb, ia.shape, ib.shape):
                return self._verdict(float("nan"), "burst", len(kept), len(images) - len(kept), FACE_JUMPED)
        score = float(np.mean([1.0 - _border_share(i) for i, _ in kept]))
        return self._verdict(score, "burst", len(kept), len(images) - len(kept))


class SyntheticPipeline(Pipeline):
    """:class:`Pipeline` with :class:`SyntheticDetector`, :class:`SyntheticEmbedder` and
    :class:`SyntheticLiveness`, calibrated (by construction) at threshold 0.9 for FAR 1e-3 so
    the service reports a FAR."""

    def __init__(self, config: Config | None = None) -> None:
        super().__init__(config or Config())
        self.__dict__["detector"] = SyntheticDetector()
        self.__dict__["embedder"] = SyntheticEmbedder()
        self.liveness_detector = SyntheticLiveness()
        # its embedder has no mirror average: the plain stack is the same one, with the same point
        self.__dict__["plain_operating_points"] = list(self.tables().operating_points)

    def tables(self) -> StackTables:
        """One operating point by construction, no template calibration (not the shipped embedder's table)."""
        point = OperatingPoint(far=SYNTHETIC_FAR, threshold=SYNTHETIC_THRESHOLD, tar=None, dataset="synthetic faces")
        return StackTables("synthetic", (point,), (), {OPERATING_POINTS: "synthetic", TEMPLATE_POINTS: None})


def synthetic_face(person: int, shot: int = 0, size: int = 200, noise: float = 18.0) -> np.ndarray:
    """An RGB image that :class:`SyntheticPipeline` sees as one face of ``person``.

    The layout varies smoothly (bilinear 4x4 colours) so the grid features survive small
    shifts of the detected box; the per-``shot`` noise makes it sharp for the quality gate.
    """
    rng = np.random.default_rng(person * 7919 + 17)
    grid = rng.integers(30, 226, size=(4, 4, 3)).astype(np.uint8)
    base = cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    fine = np.random.default_rng(1_000_003 * (shot + 1) + person).normal(0, noise, (size, size, 3))
    return np.clip(base + fine, 0, 255).astype(np.uint8)


def printed(image: np.ndarray, border: float = 0.1) -> np.ndarray:
    """``image`` with a white frame (``border`` x its size on each side, painted over the edges):
    what :class:`SyntheticLiveness` calls a printed photo. The face in the middle is unchanged,
    so the synthetic pipeline still recognises whom it shows."""
    h, w = image.shape[:2]
    by, bx = max(1, int(border * h)), max(1, int(border * w))
    out = image.copy()
    out[:by], out[h - by :], out[:, :bx], out[:, w - bx :] = 250, 250, 250, 250
    return out


def encode(image: np.ndarray, fmt: str = "JPEG", quality: int = 90) -> bytes:
    """Image array -> file bytes (JPEG by default)."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format=fmt, **({"quality": quality} if fmt == "JPEG" else {}))
    return buf.getvalue()
