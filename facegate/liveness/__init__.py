"""Liveness (presentation-attack detection): is the face in front of the camera a live person?

Public API::

    from facegate.liveness import load_liveness
    det = load_liveness()                      # the shipped model (refused under a permissive policy)
    v = det.check_still(image, face)           # -> Liveness
    v = det.check_burst(images, faces)         # consecutive frames of one face, faces[i] or None
    v.live, v.score, v.threshold, v.apcer, v.bpcer, v.measured_on, v.cues, v.reason

Faces come from the face detector (:class:`facegate.types.Face`); liveness reuses its
boxes and landmarks and never detects by itself. See :mod:`facegate.liveness.cues` for
what is measured and why.
"""

from facegate.liveness.cues import CUES_VERSION, PAIR_CUES, STILL_CUES
from facegate.liveness.detector import MAX_BURST_FRAMES, CueLiveness, LivenessDetector, face_jump
from facegate.liveness.head import LinearHead, LivenessModel, PadOperatingPoint, fit_head, load_model
from facegate.liveness.registry import DEFAULT_LIVENESS, SHIPPED, LivenessSpec, check_liveness_policy, load_liveness, shipped_models
from facegate.liveness.result import (
    DIFFERENT_PEOPLE,
    FACE_JUMPED,
    NO_FACE,
    PRESENTATION_ATTACK,
    REASONS,
    BurstMismatchError,
    BurstTooLongError,
    Liveness,
)

__all__ = [
    "CUES_VERSION",
    "DEFAULT_LIVENESS",
    "DIFFERENT_PEOPLE",
    "FACE_JUMPED",
    "MAX_BURST_FRAMES",
    "NO_FACE",
    "PAIR_CUES",
    "PRESENTATION_ATTACK",
    "REASONS",
    "SHIPPED",
    "STILL_CUES",
    "BurstMismatchError",
    "BurstTooLongError",
    "CueLiveness",
    "LinearHead",
    "Liveness",
    "LivenessDetector",
    "LivenessModel",
    "LivenessSpec",
    "PadOperatingPoint",
    "check_liveness_policy",
    "face_jump",
    "fit_head",
    "load_liveness",
    "load_model",
    "shipped_models",
]
