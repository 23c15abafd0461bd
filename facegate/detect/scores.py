"""Detector scores on one calibrated 0..1 scale, and the ``min_score`` cut every detector applies.

Each detector's own score means something different: BlazeFace's and MTCNN's are sigmoid or
softmax outputs that sit near 1 for nearly everything they keep, dlib HOG's is an SVM margin
(1.37 for Grace Hopper). ``Face.score`` is therefore the detector's raw score mapped through a
logistic fitted on data, P(true face | raw score) = 1 / (1 + exp(-(a * z + b))), where z is the
raw score's logit (BlazeFace, MTCNN) or the margin itself (HOG); the raw score stays in
``Face.extra["raw_score"]``. So ``min_score`` (``--min-score``) means the same for every detector.

The constants were fitted with ``benchmarks/bench_detect.py --calibrate``: every detection of each
detector (candidate cut lowered to 0.2) on the composited benchmark frames, labelled true when it
matches a pasted face (see ``facegate.evaluate.detection``).
"""

from __future__ import annotations

import math

from facegate.types import Face

# detector -> (a, b); see the module docstring for how they were measured.
# Fitted 2026-12-01: ``bench_detect.py --frames 30 --frame-filling 25 --tight 25 --lfw 150 --seed 1
# --calibrate`` (110 frames, 189 faces; true/false detections: BlazeFace 149/397, MTCNN 174/6,
# HOG 142/1433). MTCNN made only 6 false detections there, so its low end is the least certain.
CALIBRATION: dict[str, tuple[float, float]] = {
    "blazeface": (2.2502, -1.3725),
    "mtcnn": (0.8251, 0.9662),
    "hog": (4.0957, -0.8138),
}
_LOGIT_RAW = {"blazeface", "mtcnn"}  # raw scores that are probabilities (calibrated on their logit)


def raw_feature(detector: str, raw: float) -> float:
    """The quantity the logistic is fitted on: the logit of a probability-like score, else the score."""
    if detector in _LOGIT_RAW:
        p = min(max(float(raw), 1e-7), 1 - 1e-7)
        return math.log(p / (1 - p))
    return float(raw)


def calibrated(detector: str, raw: float) -> float:
    """P(true face) for a raw score of ``detector`` (raw unchanged for a detector without constants)."""
    if detector not in CALIBRATION:
        return float(raw)
    a, b = CALIBRATION[detector]
    z = a * raw_feature(detector, raw) + b
    return 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))


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
    if detector == "hog":
        from facegate.detect.hog import HOG_MARGIN_AT_HALF  # local: hog imports this module

        p = min(max(detection_threshold, 1e-6), 1 - 1e-6)
        return calibrated(detector, HOG_MARGIN_AT_HALF + math.log(p / (1 - p)))
    return calibrated(detector, detection_threshold)
