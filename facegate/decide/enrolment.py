"""Enrolment integrity: when a new face may join the gallery, and when a gallery disagrees with itself.

A gallery is only as trustworthy as its enrolments: a photo of Bob enrolled as Ada lets Bob through Ada's door.
The rules here reuse the two decisions facegate already states an error rate for, nothing new:

* **1:N (the gallery's operating point).** A new face that the gallery *identifies* as another enrolled
  person (:func:`facegate.decide.open_set_policy` at the configured FPIR, the decision a gate would make) is
  that person, not a new one: :func:`conflicting_match`, at :func:`enrolment_policy`. That is the gallery's own
  policy with one cap: the per-comparison FAR is at most :data:`CONFLICT_FAR` (1e-4). The union bound gives each
  of N identities FPIR / N, which in a small gallery is a lax bar (2 people at FPIR 1e-2: FAR 5e-3 each); a
  refusal claims "this is already somebody else", so it is made at a stated rate of at most 1e-4 per
  comparison (a stranger refused with probability at most min(FPIR, N x 1e-4)). From N = FPIR / 1e-4 people on
  (100 at the default FPIR) the cap does not bind and the bar is the gate's. Measured: on nuaa_dev's 8 people
  (webcam frames of one room) the uncapped bar refused 2 as someone else (scores 0.47 and 0.48 against bars
  0.39 and 0.43); the capped bar (about 0.54) refuses none, while LFW same-person photos clear it 98.8% of the
  time (the calibrated TAR at FAR 1e-4), so a real photo of an enrolled person under a new name is caught.
* **1:1 at FAR 1e-3** (:data:`CONSISTENCY_FAR`, :func:`facegate.decide.decision_threshold`). A photo added to
  an existing person must verify against their photos: :func:`agrees_with`. It is compared with each of the
  person's k stored faces and kept when its best score clears the threshold, so a stranger's photo passes
  with probability at most k x 1e-3 while a genuine photo fails only when it matches none of them.

For ``facegate gallery check``: :func:`disagreeing_pairs` (two faces of one person that do not verify against
each other at FAR 1e-3) and :func:`lookalike` (two people whose templates clear the 1:N bar: one person
enrolled twice, or two people the gallery cannot tell apart).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from facegate.config import Config
from facegate.decide.identification import OpenSetPolicy, open_set_policy
from facegate.decide.verification import decide, decision_threshold
from facegate.types import OperatingPoint, Verdict

# The 1:1 rate a photo must verify at to join a person: verification's default, one impostor in a thousand.
CONSISTENCY_FAR = 1e-3
# The most lenient per-comparison FAR at which a new face is called somebody already enrolled (module docstring).
CONFLICT_FAR = 1e-4


def enrolment_policy(
    config: Config, points: Sequence[OperatingPoint], template_points: Sequence[Any], face_counts: Mapping[int, int],
    *, rule: str = "mean",
) -> OpenSetPolicy:
    """The 1:N policy a new face is checked against before enrolment: the gallery's own
    (:func:`facegate.decide.open_set_policy` at ``config.fpir`` for these ``face_counts``) with the per-comparison
    FAR capped at :data:`CONFLICT_FAR`, i.e. at FPIR min(config.fpir, N x CONFLICT_FAR). An explicit
    ``config.threshold`` applies as given, as everywhere."""
    n = int(sum(face_counts.values()))
    fpir = None if config.threshold is not None else min(float(config.fpir), CONFLICT_FAR * max(n, 1))
    return open_set_policy(config, points, template_points, face_counts, rule=rule, fpir=fpir)


def consistency_threshold(config: Config, points: Sequence[OperatingPoint]) -> tuple[float, float | None]:
    """(threshold, FAR) of the 1:1 rule at :data:`CONSISTENCY_FAR` for this stack, from the calibrated table
    whatever the config's own ``far``; raises :class:`facegate.errors.UncalibratedError` without one."""
    return decision_threshold(config.replace(far=CONSISTENCY_FAR, threshold=None), list(points))


def agrees_with(probe: np.ndarray, stored: np.ndarray, threshold: float, far: float | None) -> Verdict:
    """The 1:1 verdict of a new face against a person's stored faces (unit vectors, one per row): the best
    of its scores against the threshold (see the module docstring)."""
    scores = np.atleast_2d(np.asarray(stored, np.float32)) @ np.asarray(probe, np.float32).reshape(-1)
    return decide(float(scores.max()), threshold, far)


def conflicting_match(identity: Any, person_id: int | None) -> Any:
    """The match that makes a new face of ``person_id`` (None: a person not enrolled yet) a conflict: the
    identification's ``identity`` (the best candidate, having cleared its bar: :func:`facegate.decide.named`)
    when it is somebody else; None when the face identifies as nobody or as that same person."""
    if identity is None:
        return None
    return None if person_id is not None and int(identity.person_id) == int(person_id) else identity


def disagreeing_pairs(embeddings: np.ndarray, threshold: float, far: float | None) -> list[tuple[int, int, float]]:
    """(i, j, score) for every pair of one person's faces that does not verify at ``threshold``."""
    emb = np.atleast_2d(np.asarray(embeddings, np.float32))
    sims = emb @ emb.T
    out = []
    for i in range(len(emb)):
        for j in range(i + 1, len(emb)):
            v = decide(float(sims[i, j]), threshold, far)
            if not v.same:
                out.append((i, j, v.score))
    return out


def lookalike(score: float, policy: OpenSetPolicy, faces_a: int, faces_b: int) -> tuple[bool, float]:
    """(whether two people look like one, the bar applied): their templates' cosine against the 1:N bar of
    the larger templating (:meth:`OpenSetPolicy.template_bar`; template-vs-template pairs are not calibrated,
    so this is the policy's stated assumption, not a measured rate)."""
    bar = float(policy.template_bar(faces_a, faces_b))
    return bool(score > bar), bar


__all__ = [
    "CONFLICT_FAR", "CONSISTENCY_FAR", "agrees_with", "conflicting_match", "consistency_threshold", "disagreeing_pairs",
    "enrolment_policy", "lookalike",
]
