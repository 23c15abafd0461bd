"""The liveness part of a gate decision, in one place.

Every access decision that must refuse a presentation attack goes through
:func:`check_presentation`: the REST gate check (:meth:`facegate.service.engine.Engine.gate_check`),
and so ``watch --gate`` (which sends the frames of the track it decides on to that REST
gate as a burst), and the Python API's :meth:`facegate.pipeline.Pipeline.liveness_burst`.
Nothing else turns a liveness score into "refused".

A gate's setting (:data:`GATE_MODES`):

* ``off``: no liveness check (an explicit choice of the gate's administrator);
* ``still``: the still check on the frame the person is identified from, however many
  frames were sent;
* ``burst`` (the default, for new and existing gates): the burst check when the request
  carries several frames with a face, else the still check. The burst check refuses, in this
  order and each with its own reason: faces that jump between consecutive frames
  (``face_jumped``, box geometry alone); frames that show different people
  (``different_people``: every frame's face against the identified one, through the decision
  layer's 1:1 rule at the stated FAR, :class:`SamePersonRule`); then the cues
  (``presentation_attack``).

When no liveness model may be used (the permissive licence policy with no site head, a head
file changed after adoption) a gate with liveness on is **closed**: it refuses with
``liveness_unavailable`` and says how to fix it, rather than silently opening.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from facegate.decide.scores import cosine
from facegate.decide.verification import decide
from facegate.errors import ModelError, UsageError
from facegate.liveness.detector import MAX_BURST_FRAMES, LivenessDetector, face_jump
from facegate.liveness.result import DIFFERENT_PEOPLE, FACE_JUMPED, PRESENTATION_ATTACK, Liveness
from facegate.types import Face

GATE_MODES = ("off", "still", "burst")
DEFAULT_GATE_MODE = "burst"  # new and existing gates: a burst when one is sent, else the still check
MAX_GATE_FRAMES = MAX_BURST_FRAMES  # frames one gate check takes (its cost grows with each)
LIVENESS_UNAVAILABLE = "liveness_unavailable"
# The reasons a liveness check refuses a presentation (the gate answers deny with one of them).
REFUSALS = (PRESENTATION_ATTACK, FACE_JUMPED, DIFFERENT_PEOPLE, LIVENESS_UNAVAILABLE)

UNAVAILABLE_HINT = (
    "this gate's liveness check is on, so it stays closed: fit a liveness head from your own captures and adopt it "
    "('facegate liveness fit --live DIR --attack DIR --adopt'), or turn this gate's liveness off explicitly "
    "('facegate gate set GATE --liveness off', or PUT /api/v1/gates/GATE/settings)"
)


def check_mode(mode: str) -> str:
    if mode not in GATE_MODES:
        raise UsageError(f"unknown liveness setting {mode!r}; use one of {', '.join(GATE_MODES)}")
    return mode


@dataclass(frozen=True)
class SamePersonRule:
    """The 1:1 rule a burst's frames are held to against the identified face: the threshold, the
    FAR it stands for, and which embeddings it was calibrated for. ``mirrored`` False: each face's
    own embedding without the mirror average (half the forward passes), at the threshold the
    operating-point table gives the stack without ``flip`` for the same FAR
    (:meth:`facegate.pipeline.Pipeline.frame_rule` chooses it)."""

    threshold: float
    far: float | None
    mirrored: bool


@dataclass(frozen=True)
class IdentityAcrossFrames:
    """Whether every frame of a burst shows the identified person: the lowest 1:1 score of a
    frame's face against the identified one, and the threshold and FAR it was held to, on
    mirror-averaged embeddings or plain ones (``mirrored``)."""

    same: bool
    lowest: float
    threshold: float
    far: float | None
    frames: int
    mirrored: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"same": self.same, "lowest": round(self.lowest, 6), "threshold": round(self.threshold, 6),
                "far": self.far, "frames": self.frames, "mirrored": self.mirrored}


@dataclass(frozen=True)
class PresentationCheck:
    """The liveness part of one gate decision.

    ``setting``: the gate's setting; ``mode``: the check that ran (``still``/``burst``, None when
    off or unavailable); ``passed``: whether the decision may go on to identity and access;
    ``reason``: why not (one of :data:`REFUSALS`); ``liveness``: the verdict with its score,
    threshold and the APCER/BPCER of its operating point (None when no check ran);
    ``identity``: the across-frames identity check of a burst.
    """

    setting: str
    mode: str | None
    passed: bool
    reason: str | None = None
    message: str | None = None
    liveness: Liveness | None = None
    identity: IdentityAcrossFrames | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"setting": self.setting, "mode": self.mode, "passed": self.passed, "reason": self.reason,
                               "message": self.message}
        if self.liveness is not None:
            v = self.liveness.to_dict()
            out.update({k: v[k] for k in ("live", "score", "threshold", "apcer", "bpcer", "measured_on", "model",
                                          "frames", "frames_without_face", "cues")})
        else:
            out.update(dict.fromkeys(("live", "score", "threshold", "apcer", "bpcer", "measured_on", "model")))
        out["identity"] = self.identity.to_dict() if self.identity is not None else None
        return out


def check_presentation(
    setting: str,
    images: Sequence[np.ndarray],
    faces: Sequence[Face | None],
    probe: int,
    load_detector: Callable[[], LivenessDetector],
    embed: Callable[[list[int], SamePersonRule], Mapping[int, np.ndarray]],
    same_person: SamePersonRule | None,
) -> PresentationCheck:
    """The liveness decision of a gate check over ``images`` (one frame or a burst).

    ``faces[i]``: the face the gate judges in frame ``i`` (``pick_face(..., "largest")``) or
    None; ``probe``: the frame the person is identified from (it has a face);
    ``load_detector``: the liveness model in force (raises :class:`ModelError` when none may be
    used); ``embed(indices, rule)``: the embeddings ``rule`` compares, of the faces of those
    frames (called only when a burst's identity must be checked, so a jump or a still costs no
    embedding; :meth:`facegate.pipeline.Pipeline.frame_embeddings`); ``same_person``: the 1:1
    rule each frame's face must pass against the probe's (needed only for a burst: None is
    refused there).
    """
    check_mode(setting)
    if setting == "off":
        return PresentationCheck(setting, None, True)
    if len(images) != len(faces) or not 0 <= probe < len(faces) or faces[probe] is None:
        raise UsageError("check_presentation: one face (or None) per frame, and a probe frame with a face")
    try:
        detector = load_detector()
    except ModelError as exc:
        return PresentationCheck(setting, None, False, LIVENESS_UNAVAILABLE, f"{exc}; {UNAVAILABLE_HINT}")
    with_face = [i for i, f in enumerate(faces) if f is not None]
    if setting == "still" or len(with_face) < 2:
        verdict = detector.check_still(images[probe], faces[probe])  # type: ignore[arg-type]
        if len(images) > 1:
            verdict = Liveness(**{**verdict.__dict__, "frames_without_face": len(images) - len(with_face)})
        return _from_verdict(setting, "still", verdict)
    if same_person is None:
        raise UsageError("check_presentation: a burst needs the 1:1 rule its frames are compared by")
    # burst: geometry first (free), then identity (embeddings), then the cues
    for a, b in zip(with_face, with_face[1:]):
        why = face_jump(faces[a], faces[b], images[a].shape, images[b].shape)  # type: ignore[arg-type]
        if why:
            verdict = detector.check_burst(images, faces)  # the detector's own refusal, with its operating point
            return PresentationCheck(setting, "burst", False, FACE_JUMPED, f"{why}: not one person seen over a moment",
                                     verdict)
    embeddings = embed(with_face, same_person)
    if any(i not in embeddings for i in with_face):
        raise UsageError("check_presentation: embed() must give the embeddings of every frame it is given")
    ref = embeddings[probe]
    lowest = 1.0
    same = True
    for i in with_face:
        if i == probe:
            continue
        v = decide(cosine(ref, embeddings[i]), same_person.threshold, same_person.far)
        lowest = min(lowest, v.score)
        same = same and v.same
    threshold, far = same_person.threshold, same_person.far
    identity = IdentityAcrossFrames(same, lowest, threshold, far, len(with_face), same_person.mirrored)
    if not same:
        return PresentationCheck(
            setting, "burst", False, DIFFERENT_PEOPLE,
            f"the frames of the burst show different people (lowest 1:1 score {lowest:.3f} against the identified "
            f"face, threshold {threshold:.3f} at FAR {far if far is not None else 'not calibrated'})",
            None, identity,
        )
    verdict = detector.check_burst(images, faces)
    return _from_verdict(setting, "burst", verdict, identity)


def _from_verdict(setting: str, mode: str, verdict: Liveness, identity: IdentityAcrossFrames | None = None) -> PresentationCheck:
    if verdict.live:
        return PresentationCheck(setting, mode, True, None, None, verdict, identity)
    reason = verdict.reason or PRESENTATION_ATTACK
    if reason == PRESENTATION_ATTACK:
        rates = (f"APCER {_pct(verdict.apcer)}, BPCER {_pct(verdict.bpcer)} at this threshold"
                 if verdict.apcer is not None else "operating point not measured")
        message = (f"liveness score {verdict.score:.3f} under the threshold {verdict.threshold:.3f} ({mode} check, "
                   f"{rates}): looked like a printed photo or a screen")
    else:
        message = f"the {mode} liveness check refused it ({reason})"
    return PresentationCheck(setting, mode, False, reason, message, verdict, identity)


def _pct(v: float | None) -> str:
    return "?" if v is None else f"{100 * v:.1f}%"
