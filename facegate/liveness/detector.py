"""Liveness detectors: one small contract, ``check_still`` and ``check_burst``.

A detector is given images and the faces the face detector already found in them (boxes
and landmarks, :class:`facegate.types.Face`); it never detects faces itself, so its cost
is its own cues only. Every answer is a :class:`Liveness` carrying the threshold applied
and the APCER/BPCER measured at it.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

from facegate.errors import InvalidImageError, NoFaceError
from facegate.liveness.cues import PAIR_CUES, STILL_CUES, Frame, pair_cues, still_cues
from facegate.liveness.head import LinearHead, LivenessModel
from facegate.liveness.result import (
    FACE_JUMPED,
    PRESENTATION_ATTACK,
    BurstMismatchError,
    BurstTooLongError,
    Liveness,
    Mode,
)
from facegate.types import Face

MAX_BURST_FRAMES = 8  # a burst of more frames is refused: cost grows with every frame
# Consecutive frames of one take: the face moves less than this many face sizes between
# them, and its size changes by less than this factor. Past either, the frames are not
# one face seen over a short time (or the detector picked another face): refused.
JUMP_MAX_SHIFT = 1.0
JUMP_MAX_SCALE = 1.6


def face_jump(a: Face, b: Face, shape_a: tuple[int, ...] | None = None, shape_b: tuple[int, ...] | None = None) -> str | None:
    """Why face ``b`` (next frame) cannot be face ``a`` moved a little, from box geometry alone;
    None when it can. Boxes of frames of different sizes are compared in relative coordinates."""
    ba = np.asarray(a.box, dtype=np.float64)
    bb = np.asarray(b.box, dtype=np.float64)
    if shape_a is not None and shape_b is not None and tuple(shape_a[:2]) != tuple(shape_b[:2]):
        sy, sx = shape_a[0] / shape_b[0], shape_a[1] / shape_b[1]
        bb = bb * np.array([sx, sy, sx, sy])
    size_a = math.sqrt(max(ba[2] - ba[0], 1.0) * max(ba[3] - ba[1], 1.0))
    size_b = math.sqrt(max(bb[2] - bb[0], 1.0) * max(bb[3] - bb[1], 1.0))
    ratio = max(size_a, size_b) / min(size_a, size_b)
    if ratio > JUMP_MAX_SCALE:
        return f"face size changed {ratio:.2f}x between consecutive frames (limit {JUMP_MAX_SCALE}x)"
    shift = math.hypot((bb[0] + bb[2] - ba[0] - ba[2]) / 2, (bb[1] + bb[3] - ba[1] - ba[3]) / 2)
    rel = shift / math.sqrt(size_a * size_b)
    if rel > JUMP_MAX_SHIFT:
        return f"face moved {rel:.2f} face sizes between consecutive frames (limit {JUMP_MAX_SHIFT})"
    return None


class LivenessDetector(ABC):
    """One liveness model. ``check_still`` judges one frame, ``check_burst`` several
    consecutive frames of one face (at most ``MAX_BURST_FRAMES``)."""

    name: str = ""
    model: LivenessModel

    @abstractmethod
    def check_still(self, image: np.ndarray, face: Face) -> Liveness:
        """Liveness of ``face`` in one RGB image."""

    @abstractmethod
    def check_burst(self, images: Sequence[np.ndarray], faces: Sequence[Face | None]) -> Liveness:
        """Liveness of one face over consecutive RGB frames; ``faces[i]`` is its face in
        ``images[i]``, or None where no face was found (counted, not fatal)."""


def _validate(images: Sequence[np.ndarray], faces: Sequence[Face | None]) -> None:
    if len(images) != len(faces):
        raise BurstMismatchError(f"burst: {len(images)} frames but {len(faces)} faces; give one face (or None) per frame")
    if len(images) > MAX_BURST_FRAMES:
        raise BurstTooLongError(f"burst of {len(images)} frames; at most {MAX_BURST_FRAMES} are checked")
    for i, img in enumerate(images):
        if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise InvalidImageError(f"burst frame {i + 1}: expected an HxWx3 uint8 RGB array")
        if min(img.shape[:2]) < 16:
            raise InvalidImageError(f"burst frame {i + 1}: {img.shape[1]}x{img.shape[0]} pixels is too small")


class CueLiveness(LivenessDetector):
    """Relative image cues (:mod:`facegate.liveness.cues`) and a linear head per mode."""

    def __init__(self, model: LivenessModel) -> None:
        self.model = model
        self.name = model.name

    def _verdict(self, head: LinearHead, mode: Mode, cues: dict[str, float], frames: int, no_face: int) -> Liveness:
        score = head.score(cues)
        live = score >= head.threshold
        op = head.operating_point
        return Liveness(
            live=live,
            score=score,
            threshold=head.threshold,
            mode=mode,
            apcer=op.apcer,
            bpcer=op.bpcer,
            measured_on=op.measured_on,
            model=self.name,
            cues={k: cues.get(k, math.nan) for k in head.cues},
            contributions=head.contributions(cues),
            reason=None if live else PRESENTATION_ATTACK,
            frames=frames,
            frames_without_face=no_face,
        )

    def still_cues(self, image: np.ndarray, face: Face) -> dict[str, float]:
        """The still head's cues of one face (only the cue families the head uses are computed)."""
        return still_cues(Frame(image, face), self.model.head("still").cues)

    def check_still(self, image: np.ndarray, face: Face) -> Liveness:
        _validate([image], [face])
        return self._verdict(self.model.head("still"), "still", self.still_cues(image, face), 1, 0)

    def burst_cues(self, images: Sequence[np.ndarray], faces: Sequence[Face]) -> dict[str, float]:
        """Still cues averaged over the frames, pair cues averaged over consecutive pairs (only the burst
        head's cues are measured; the others are NaN)."""
        names = self.model.head("burst").cues
        frames = [Frame(img, f) for img, f in zip(images, faces)]
        pairs = [pair_cues(a, b, names) for a, b in zip(frames, frames[1:])] if any(n in PAIR_CUES for n in names) else []
        return aggregate([still_cues(f, names) for f in frames], pairs)

    def check_burst(self, images: Sequence[np.ndarray], faces: Sequence[Face | None]) -> Liveness:
        _validate(images, faces)
        kept = [(img, f) for img, f in zip(images, faces) if f is not None]
        no_face = len(images) - len(kept)
        if not kept:
            raise NoFaceError(f"burst of {len(images)} frames: no face in any frame")
        for (ia, fa), (ib, fb) in zip(kept, kept[1:]):
            why = face_jump(fa, fb, ia.shape, ib.shape)
            if why:
                head = self.model.head("burst")
                return Liveness(
                    live=False,
                    score=math.nan,
                    threshold=head.threshold,
                    mode="burst",
                    apcer=head.operating_point.apcer,
                    bpcer=head.operating_point.bpcer,
                    measured_on=head.operating_point.measured_on,
                    model=self.name,
                    reason=FACE_JUMPED,
                    cues={"jump": 1.0},
                    frames=len(kept),
                    frames_without_face=no_face,
                )
        if len(kept) == 1:
            verdict = self.check_still(*kept[0])
            return Liveness(**{**verdict.__dict__, "frames_without_face": no_face})
        cues = self.burst_cues([k[0] for k in kept], [k[1] for k in kept])
        return self._verdict(self.model.head("burst"), "burst", cues, len(kept), no_face)


def aggregate(still: Sequence[dict[str, float]], pairs: Sequence[dict[str, float]]) -> dict[str, float]:
    """A burst's cues: each still cue's mean over frames, each pair cue's mean over pairs,
    ignoring values that could not be measured (NaN when none could)."""
    out: dict[str, float] = {}
    for names, rows in ((STILL_CUES, still), (PAIR_CUES, pairs)):
        for name in names:
            vals = [r[name] for r in rows if name in r and math.isfinite(r[name])]
            out[name] = float(np.mean(vals)) if vals else math.nan
    return out
