"""Liveness (presentation-attack detection): is the face in front of the camera a live person?

Public API::

    from facegate.liveness import load_liveness
    det = load_liveness()                      # the model in force: the shipped head, or the site's adopted one
    v = det.check_still(image, face)           # -> Liveness
    v = det.check_burst(images, faces)         # consecutive frames of one face, faces[i] or None
    v.live, v.score, v.threshold, v.apcer, v.bpcer, v.measured_on, v.cues, v.reason

Faces come from the face detector (:class:`facegate.types.Face`); liveness reuses its
boxes and landmarks and never detects by itself. See :mod:`facegate.liveness.cues` for
what is measured and why; :mod:`facegate.liveness.registry` for which model is in force
(shipped, or a site's own head adopted from ``facegate liveness fit``);
:mod:`facegate.liveness.gate` for the one place a gate turns a verdict into a refusal. The
pipeline's ``Pipeline.liveness`` / ``Pipeline.liveness_burst`` do the detection for you.
"""

from facegate.liveness.cues import CUES_VERSION, PAIR_CUES, STILL_CUES
from facegate.liveness.detector import MAX_BURST_FRAMES, CueLiveness, LivenessDetector, face_jump
from facegate.liveness.gate import (
    DEFAULT_GATE_MODE,
    GATE_MODES,
    LIVENESS_UNAVAILABLE,
    MAX_GATE_FRAMES,
    REFUSALS,
    IdentityAcrossFrames,
    PresentationCheck,
    SamePersonRule,
    check_presentation,
)
from facegate.liveness.head import LinearHead, LivenessModel, PadOperatingPoint, fit_head, load_model
from facegate.liveness.registry import (
    DEFAULT_LIVENESS,
    SHIPPED,
    InForce,
    adopt,
    check_liveness_policy,
    history,
    in_force,
    in_force_detector,
    load_liveness,
    revert,
    save_site_model,
    shipped_models,
    site_models,
)
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
    "DEFAULT_GATE_MODE",
    "DEFAULT_LIVENESS",
    "DIFFERENT_PEOPLE",
    "FACE_JUMPED",
    "GATE_MODES",
    "LIVENESS_UNAVAILABLE",
    "MAX_BURST_FRAMES",
    "MAX_GATE_FRAMES",
    "NO_FACE",
    "PAIR_CUES",
    "PRESENTATION_ATTACK",
    "REASONS",
    "REFUSALS",
    "SHIPPED",
    "STILL_CUES",
    "BurstMismatchError",
    "BurstTooLongError",
    "CueLiveness",
    "IdentityAcrossFrames",
    "InForce",
    "LinearHead",
    "Liveness",
    "LivenessDetector",
    "LivenessModel",
    "PadOperatingPoint",
    "PresentationCheck",
    "SamePersonRule",
    "adopt",
    "check_liveness_policy",
    "check_presentation",
    "face_jump",
    "fit_head",
    "history",
    "in_force",
    "in_force_detector",
    "load_liveness",
    "load_model",
    "revert",
    "save_site_model",
    "shipped_models",
    "site_models",
]
