"""The liveness verdict for one face, and the reasons a check can refuse without scoring."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from facegate.errors import UsageError

Mode = Literal["still", "burst"]

# Why a check answered "not live" without (or besides) its score being under the threshold.
PRESENTATION_ATTACK = "presentation_attack"  # the score is under the threshold
FACE_JUMPED = "face_jumped"  # consecutive frames' faces too far apart or too different in size to be one take
DIFFERENT_PEOPLE = "different_people"  # for the caller: frames of a burst show different identities
NO_FACE = "no_face"  # no frame of the burst had a face
REASONS = (PRESENTATION_ATTACK, FACE_JUMPED, DIFFERENT_PEOPLE, NO_FACE)


class BurstTooLongError(UsageError):
    """A burst has more frames than a liveness check takes (its cost must stay bounded)."""

    code = "burst_too_long"


class BurstMismatchError(UsageError):
    """Frames and faces given to a burst check do not pair up."""

    code = "burst_mismatch"


@dataclass(frozen=True)
class Liveness:
    """Is this face live? The score, the threshold that was applied and what it stands for.

    ``apcer``/``bpcer`` are the error rates measured at ``threshold`` on ``measured_on``
    (None when the model was never measured); ``cues`` are the measured cue values and
    ``contributions`` each cue's push on the decision (positive: towards live).
    """

    live: bool
    score: float
    threshold: float
    mode: Mode
    apcer: float | None
    bpcer: float | None
    measured_on: str
    model: str
    cues: dict[str, float] = field(default_factory=dict)
    contributions: dict[str, float] = field(default_factory=dict)
    reason: str | None = None
    frames: int = 1  # frames whose face was scored
    frames_without_face: int = 0
    box: tuple[float, float, float, float] | None = None  # the face judged (set by Pipeline.liveness)

    def to_dict(self) -> dict[str, Any]:
        def num(v: float) -> float | None:
            return round(float(v), 6) if v is not None and math.isfinite(v) else None

        return {
            "live": self.live,
            "score": num(self.score),
            "threshold": num(self.threshold),
            "mode": self.mode,
            "apcer": self.apcer,
            "bpcer": self.bpcer,
            "measured_on": self.measured_on,
            "model": self.model,
            "reason": self.reason,
            "frames": self.frames,
            "frames_without_face": self.frames_without_face,
            "box": None if self.box is None else [round(float(v), 1) for v in self.box],
            "cues": {k: num(v) for k, v in self.cues.items()},
            "contributions": {k: num(v) for k, v in self.contributions.items()},
        }
