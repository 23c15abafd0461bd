"""The detector registry: what the rest of facegate knows of each face detector.

A detector is one file in :mod:`facegate.detect` (its class) and one :class:`DetectorSpec`
here. Everything code outside that file asks of a detector is an attribute of its spec, so no
other module keeps a table keyed by detector name:

* ``schemes``: the landmark schemes its faces carry natively (see :mod:`facegate.align`), and
  ``refinable``: whether ``Config.refine_boxes`` applies, i.e. MTCNN's O-Net tightens its boxes
  and adds its ``mtcnn5`` points (:func:`box_refinement`). Together they give the detector's part
  of an operating-point table's stack key (:func:`stack_detector`, used by the decision layer).
* ``min_face``: its smallest face when ``Config.min_face_size`` is 0 (:func:`min_face`), which
  sets its cost band; ``cost`` says what a frame costs, as measured.
* ``weights``: the model-registry entries it loads (their input sizes: ``input_sizes``).
* ``score``: how its raw score maps to the calibrated 0..1 ``Face.score`` (:class:`ScoreScale`).
* ``implementation``: ``"module:Class"`` of its detector class, which
  :func:`facegate.detect.get_detector` imports on first use.

This module sits below the stages (it imports no detector code), so the decision layer and the
configuration's users can read a detector's facts without loading a model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from facegate.config import Config
from facegate.errors import UsageError

# Landmark scheme names (facegate.align.DLIB5 / MTCNN5; spelled out here so that reading a
# detector's facts does not import OpenCV with facegate.align).
DLIB5 = "dlib5"
MTCNN5 = "mtcnn5"


@dataclass(frozen=True)
class ScoreScale:
    """A detector's raw score on the calibrated scale every detector shares:
    P(true face | raw) = 1 / (1 + exp(-(a * z + b))), where z is the raw score's logit when the raw
    score is a probability (``logit``), else the raw score (an SVM margin) itself.

    ``margin_at_half`` (margin scores only): the margin ``Config.detection_threshold`` 0.5 stands
    for; a threshold p is read as the margin ``margin_at_half + logit(p)`` (:meth:`raw_cut`).
    """

    a: float
    b: float
    logit: bool = True
    margin_at_half: float = 0.0

    def feature(self, raw: float) -> float:
        """The quantity the logistic is fitted on: the logit of a probability-like score, else the score."""
        if self.logit:
            p = min(max(float(raw), 1e-7), 1 - 1e-7)
            return math.log(p / (1 - p))
        return float(raw)

    def calibrated(self, raw: float) -> float:
        """P(true face) for a raw score."""
        z = self.a * self.feature(raw) + self.b
        return 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))

    def raw_cut(self, detection_threshold: float) -> float:
        """The raw score the detector cuts its candidates at for ``detection_threshold``."""
        if self.logit:
            return detection_threshold
        p = min(max(detection_threshold, 1e-6), 1 - 1e-6)
        return self.margin_at_half + math.log(p / (1 - p))


@dataclass(frozen=True)
class DetectorSpec:
    """One face detector, as the rest of facegate sees it (see the module docstring)."""

    name: str
    implementation: str  # "facegate.detect.<module>:<Class>"
    weights: tuple[str, ...]  # facegate.models.registry entries the detector loads
    schemes: tuple[str, ...]  # landmark schemes its faces carry natively, without O-Net refinement
    min_face: int  # smallest face (side of the dlib-like box, px) when Config.min_face_size is 0
    cost: str  # what a frame costs, measured (benchmarks/RESULTS.md), and how the cost grows
    score: ScoreScale
    refinable: bool = False  # Config.refine_boxes applies: O-Net tightens the boxes and adds its mtcnn5 points

    @property
    def input_sizes(self) -> tuple[int, ...]:
        """Input sides (pixels) of its networks that have a fixed input, from the model registry."""
        from facegate.models.registry import REGISTRY

        return tuple(int(REGISTRY[w].input_size) for w in self.weights if REGISTRY[w].input_size)

    def native_schemes(self, refined: bool) -> tuple[str, ...]:
        """The landmark schemes its faces carry without deriving one from another: its own, plus
        O-Net's ``mtcnn5`` where its boxes are refined (dlib's predictor can add ``dlib5`` to any box)."""
        if refined and MTCNN5 not in self.schemes:
            return (MTCNN5, *self.schemes)
        return self.schemes

    def stack_name(self, refined: bool) -> str:
        """The detector's part of a stack key (``facegate.decide.tables.stack_key``): "blazeface+onet"."""
        return f"{self.name}+onet" if refined else self.name


# Scores: the logistic constants were fitted 2026-12-01 with ``benchmarks/bench_detect.py --frames 30
# --frame-filling 25 --tight 25 --lfw 150 --seed 1 --calibrate``: every detection of each detector
# (candidate cut lowered to 0.2) on the composited benchmark frames, labelled true when it matches a
# pasted face (facegate.evaluate.detection); 110 frames, 189 faces. True/false detections per
# detector are noted at each entry.
DETECTOR_SPECS: dict[str, DetectorSpec] = {
    spec.name: spec
    for spec in (
        DetectorSpec(
            name="blazeface",
            implementation="facegate.detect.blazeface:BlazeFaceDetector",
            weights=("blazeface_full_range", "mtcnn_rnet", "mtcnn_onet", "dlib_5_landmarks"),
            schemes=(DLIB5,),
            refinable=True,
            # BlazeFace reaches about 20 px at little cost: weak candidates are checked by MTCNN's
            # R-Net and O-Net (facegate.detect.blazeface); the cut is 16 so that a 20 px face
            # measured a little small is kept.
            min_face=16,
            cost=("the default: 41 ms per 1280x720 frame, 22 ms per 640x480 on 2 CPU cores (detection table of "
                  "benchmarks/RESULTS.md); a frame's model windows are bounded by Config.detect_budget"),
            score=ScoreScale(2.2502, -1.3725),  # 149 true / 397 false detections
        ),
        DetectorSpec(
            name="hog",
            implementation="facegate.detect.hog:HogDetector",
            weights=("dlib_hog", "dlib_5_landmarks"),
            schemes=(DLIB5,),
            # HOG's cost grows as 1 / min_face^2 (at 20 px: two 2x upsamplings, 16x the pixels),
            # so it keeps 40 unless asked for less.
            min_face=40,
            cost="385 ms per 1280x720 frame, 130 ms per 640x480 (benchmarks/RESULTS.md); grows as 1 / min_face^2",
            # SVM margins, calibrated as they are (142 true / 1433 false detections). margin_at_half:
            # measured at upsample 1, the centred faces of 300 LFW images had a median margin of 1.71
            # and 1% of them fell between 0 and 0.3; skimage's astronaut gets a false face (the mission
            # patch on her sleeve) at 0.12 next to her real face at 1.16. 0.2 drops such weak hits at
            # the cost of under 1% of LFW faces (dlib's own cut is 0).
            score=ScoreScale(4.0957, -0.8138, logit=False, margin_at_half=0.2),
        ),
        DetectorSpec(
            name="mtcnn",
            implementation="facegate.detect.mtcnn:MtcnnDetector",
            weights=("mtcnn_pnet", "mtcnn_rnet", "mtcnn_onet", "dlib_5_landmarks"),
            schemes=(MTCNN5, DLIB5),
            # P-Net's pyramid costs grow as 1 / min_face^2, so MTCNN keeps 40 unless asked for less.
            min_face=40,
            cost="74 ms per 1280x720 frame, 35 ms per 640x480 (benchmarks/RESULTS.md); grows as 1 / min_face^2",
            # 174 true / 6 false detections: its low end is the least certain of the three.
            score=ScoreScale(0.8251, 0.9662),
        ),
    )
}
DETECTORS = tuple(DETECTOR_SPECS)  # the names, for choices and help texts


def detector_spec(name: str) -> DetectorSpec:
    """The spec of detector ``name``; an unknown name is a :class:`UsageError` naming the choices."""
    spec = DETECTOR_SPECS.get(name)
    if spec is None:
        raise UsageError(f"unknown detector {name!r}; choose one of: {', '.join(DETECTORS)}")
    return spec


def min_face(config: Config, detector: str | None = None) -> int:
    """The smallest face ``detector`` (default: ``config.detector``) reports: ``config.min_face_size``,
    or when that is 0 the detector's own default."""
    return config.min_face_size or detector_spec(detector or config.detector).min_face


def box_refinement(config: Config) -> bool:
    """Whether detection tightens boxes with O-Net (``refine_boxes`` applies to refinable detectors
    only); recorded with evaluations and calibrations, and part of the embedding cache key."""
    spec = DETECTOR_SPECS.get(config.detector)
    return bool(config.refine_boxes and spec is not None and spec.refinable)


def stack_detector(config: Config) -> tuple[str, tuple[str, ...]]:
    """The detector's part of the stack key ("blazeface+onet") and the landmark schemes it gives
    natively in this configuration. An unknown detector keeps its name and has no native schemes
    (its stack has no calibrated table; making the detector fails with a :class:`UsageError`)."""
    spec = DETECTOR_SPECS.get(config.detector)
    if spec is None:
        return config.detector, ()
    refined = box_refinement(config)
    return spec.stack_name(refined), spec.native_schemes(refined)


__all__ = [
    "DETECTORS", "DETECTOR_SPECS", "DetectorSpec", "ScoreScale", "box_refinement", "detector_spec", "min_face",
    "stack_detector",
]
