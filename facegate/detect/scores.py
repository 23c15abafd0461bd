"""Detector scores on one calibrated 0..1 scale, and the ``min_score`` cut every detector applies.

Each detector's own score means something different: BlazeFace's and MTCNN's are sigmoid or
softmax outputs that sit near 1 for nearly everything they keep, dlib HOG's is an SVM margin
(1.37 for Grace Hopper). ``Face.score`` is therefore the detector's raw score mapped through a
logistic fitted on data, P(true face | raw score) = 1 / (1 + exp(-(a * z + b))), where z is the
raw score's logit (BlazeFace, MTCNN) or the margin itself (HOG); the raw score stays in
``Face.extra["raw_score"]``. So ``min_score`` (``--min-score``) means the same for every detector.

The constants are each detector's ``score`` in its registry entry
(:class:`facegate.models.detectors.ScoreScale`, with how they were fitted); they come from
``benchmarks/bench_detect.py --calibrate``.
"""

from __future__ import annotations

from facegate.models.detectors import DETECTOR_SPECS
from facegate.types import Face


def raw_feature(detector: str, raw: float) -> float:
    """The quantity the logistic is fitted on: the logit of a probability-like score, else the score
    (a detector without a registry entry: the score)."""
    spec = DETECTOR_SPECS.get(detector)
    return float(raw) if spec is None else spec.score.feature(raw)


def calibrated(detector: str, raw: float) -> float:
    """P(true face) for a raw score of ``detector`` (raw unchanged for a detector without a registry entry)."""
    spec = DETECTOR_SPECS.get(detector)
    return float(raw) if spec is None else spec.score.calibrated(raw)


def finish(faces: list[Face], detector: str, min_score: float) -> list[Face]:
    """The faces with calibrated scores (raw kept in ``extra["raw_score"]``), those under
    ``min_score`` dropped, highest score first. Faces already calibrated are not mapped twice."""
    out = []
    for f in faces:
        if "raw_score" not in f.extra:
            f.extra["raw_score"] = float(f.score)
            f.score = calibrated(detector, f.score)
        if f.score >= min_score:
            out.append(f)
    out.sort(key=lambda f: -f.score)
    return out


def cut_score(detector: str, detection_threshold: float) -> float:
    """The calibrated score of a face exactly at ``detector``'s candidate cut ``detection_threshold``
    (HOG reads that cut as the logit of its margin offset, see :class:`facegate.detect.hog.HogDetector`)."""
    spec = DETECTOR_SPECS.get(detector)
    if spec is None:
        return float(detection_threshold)
    return spec.score.calibrated(spec.score.raw_cut(detection_threshold))
