"""Naming a track: quality-weighted aggregation of its embeddings, a vote, and hysteresis.

A single video frame is a poor probe: motion blur, a half-turned head or a 30 px face give
embeddings whose best match can flip between people from one frame to the next. A track,
though, is (by the tracker's promise) one person, so the evidence of all its frames can be
pooled:

* **who** is decided by a vote: every embedded sample votes for its best-matching enrolled
  person, weighted by the face's quality (size, pose, sharpness, detector confidence);
  samples far below the threshold vote "unknown";
* **whether** is decided on the track's *template*, the re-normalised quality-weighted sum
  of its embeddings (noise averages out, so its score is steadier than any single frame's),
  against a threshold for templates at the configured FAR. Averaging raises impostors'
  scores too (the mean of several faces lies closer to everybody), so the single-photo
  threshold would let more impostor tracks through than its FAR says (on LFW, 2.6x at 2
  photos, 5.3x at 8); the template threshold grows with the template's effective number of
  samples, as calibrated on LFW in :mod:`facegate.evaluate.templates`;
* **hysteresis** keeps a decided name: switching to another person needs a clear majority of
  the recent votes *and* a template score that beats the current name by a margin; falling
  back to "unknown" needs the template score to drop a margin below the threshold.

The thresholds come from the gallery (``Gallery.threshold()``, per sample) and the shipped
template calibration (per template); nothing here is tuned to a particular video.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from facegate.gallery.quality import pose, sharpness

UNKNOWN = "unknown"
_UNK = -1  # vote key of "unknown"

Candidate = tuple[int, str, float]  # (person id, name, cosine score), best first


# -- per-face quality ---------------------------------------------------------------------------
@dataclass(frozen=True)
class QualityModel:
    """How much one face is worth as identity evidence, in [0, 1].

    The product of four factors, each 1 for a good face: detector confidence; eye distance
    (``min_eye`` px and below counts 0, ``good_eye`` and above 1: dlib chips have 52 px between
    the eyes, so faces much smaller are upscaled and lose detail); pose (yaw and pitch from
    the 5 landmarks, see :func:`facegate.gallery.quality.pose`, times a profile check: in a
    full profile the 5-point fit collapses and its yaw reads near 0, but the eye distance
    shrinks against the box width, about 0.4 frontal and 0.2-0.3 in profile); and sharpness (Laplacian
    variance of the aligned chip; never below ``sharp_floor`` because a dark stage is
    "unsharp" without being useless). Faces under ``min_quality`` are not embedded at all.
    """

    min_eye: float = 8.0
    good_eye: float = 32.0
    profile_ratio: float = 0.2  # eye distance / box width at or below which a face counts as a profile
    frontal_ratio: float = 0.4  # ... at or above which it counts as frontal
    max_yaw: float = 0.6
    max_pitch: float = 0.8
    good_sharpness: float = 40.0
    sharp_floor: float = 0.3
    min_quality: float = 0.05

    def __call__(
        self, landmarks: np.ndarray, chip: np.ndarray, det_score: float, box_width: float | None = None,
        scheme: str = "dlib5",
    ) -> tuple[float, dict[str, float]]:
        eye, yaw, pitch, _roll = pose(landmarks, scheme)
        sharp = sharpness(chip)
        size_f = float(np.clip((eye - self.min_eye) / max(self.good_eye - self.min_eye, 1e-6), 0.0, 1.0))
        pose_f = float(np.clip(1 - abs(yaw) / self.max_yaw, 0.0, 1.0) * np.clip(1 - abs(pitch) / self.max_pitch, 0.0, 1.0))
        ratio = eye / box_width if box_width and box_width > 0 else self.frontal_ratio
        span = max(self.frontal_ratio - self.profile_ratio, 1e-6)
        pose_f *= float(np.clip((ratio - self.profile_ratio) / span, 0.0, 1.0))
        sharp_f = float(np.clip(sharp / self.good_sharpness, self.sharp_floor, 1.0))
        q = float(np.clip(det_score, 0.0, 1.0)) * size_f * pose_f * sharp_f
        return q, {
            "eye_distance": round(eye, 1), "eye_box_ratio": round(ratio, 3), "yaw": round(yaw, 3),
            "pitch": round(pitch, 3), "sharpness": round(sharp, 1),
        }


# -- the vote -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class VotePolicy:
    """When a track gets a name and what it takes to change it.

    ``min_samples`` embeddings (and a ``min_share`` quality-weighted majority) before the
    first decision; after ``max_undecided`` samples without a majority, the template alone
    decides. A switch between two people needs ``switch_share`` of the last ``window``
    samples' votes and a template score ``switch_margin`` above the current person's.
    A name is dropped for "unknown" when its template score falls ``exit_margin`` below the
    template threshold (a band, so a score hovering at the threshold does not flicker; the
    band is wider than the template threshold's growth as samples accumulate, which on LFW
    is at most 0.018 from 1 sample to 16 at any calibrated FAR, 0.006 from 2 samples at 1e-3).
    """

    min_samples: int = 3
    min_share: float = 0.6
    max_undecided: int = 8
    window: int = 8
    switch_share: float = 0.75
    switch_margin: float = 0.02
    exit_margin: float = 0.02
    vote_floor: float = 0.05  # a sample whose best score is below threshold - vote_floor votes "unknown"


@dataclass(frozen=True)
class Decision:
    """A change of a track's name. ``switch`` is True for person A -> person B (also when the
    track went A -> unknown -> B); other changes are revisions."""

    label: str  # a name or "unknown"
    person_id: int | None
    score: float  # template score against ``label`` (against the closest person for "unknown")
    share: float  # weighted vote share of the winner
    samples: int
    previous: str | None  # None: first decision
    switch: bool
    candidates: list[Candidate]
    threshold: float = float("nan")  # the template threshold the decision was made at
    effective_samples: float = float("nan")


@dataclass
class TrackIdentity:
    """Evidence and current decision for one track (see the module docstring).

    ``threshold`` is the single-photo threshold (a sample's vote); ``template_threshold(n)``
    the threshold for the template of ``n`` effective samples (None: ``threshold`` for every n).
    """

    threshold: float
    policy: VotePolicy = field(default_factory=VotePolicy)
    template_threshold: Callable[[float], float] | None = None
    # (effective samples, person id) -> the bar for this track's template against that person, when
    # it depends on the person (how they were enrolled: facegate.decide.OpenSetPolicy.template_bar)
    person_bar: Callable[[float, int], float] | None = None
    label: str | None = None  # None until decided
    person_id: int | None = None
    score: float = float("nan")
    samples: int = 0
    switches: int = 0
    revisions: int = 0

    def __post_init__(self) -> None:
        self._sum: np.ndarray | None = None
        self._weight = 0.0
        self._weight_sq = 0.0
        self._votes: dict[int, float] = {}
        self._names: dict[int, str] = {_UNK: UNKNOWN}
        self._recent: deque[tuple[int, float]] = deque(maxlen=self.policy.window)
        self._last_name: str | None = None

    # -- evidence ------------------------------------------------------------------------
    def add(self, embedding: np.ndarray, weight: float, candidates: Sequence[Candidate]) -> None:
        """One embedded face of the track and its gallery candidates (best first)."""
        w = max(float(weight), 1e-6)
        e = np.asarray(embedding, dtype=np.float64)
        self._sum = w * e if self._sum is None else self._sum + w * e
        self._weight += w
        self._weight_sq += w * w
        key = _UNK
        if candidates:
            pid, name, score = candidates[0]
            if score >= self.threshold - self.policy.vote_floor:
                key = int(pid)
                self._names[key] = name
        self._votes[key] = self._votes.get(key, 0.0) + w
        self._recent.append((key, w))
        self.samples += 1

    @property
    def template(self) -> np.ndarray | None:
        """The track's aggregated embedding: quality-weighted mean, re-normalised."""
        if self._sum is None:
            return None
        return (self._sum / max(float(np.linalg.norm(self._sum)), 1e-12)).astype(np.float32)

    @property
    def effective_samples(self) -> float:
        """Kish's effective sample size of the weighted template, (sum w)^2 / sum w^2: the number
        of equally weighted samples whose mean would be as noisy. n samples of equal quality
        count n; one good sample among poor ones counts little more than one."""
        return self._weight**2 / self._weight_sq if self._weight_sq > 0 else 0.0

    @property
    def decision_threshold(self) -> float:
        """The threshold the template is held to now (see ``template_threshold``)."""
        if self.template_threshold is None or self.samples == 0:
            return self.threshold
        return float(self.template_threshold(self.effective_samples))

    def bar(self, key: int) -> float:
        """The threshold the template is held to against person ``key`` now."""
        if self.person_bar is not None and key != _UNK and self.samples:
            return float(self.person_bar(self.effective_samples, key))
        return self.decision_threshold

    @staticmethod
    def _leader(votes: dict[int, float]) -> tuple[int, float]:
        total = sum(votes.values())
        if total <= 0:
            return _UNK, 0.0
        key = max(votes, key=lambda k: (votes[k], k != _UNK))
        return key, votes[key] / total

    # -- decision ------------------------------------------------------------------------
    def decide(self, template_candidates: Sequence[Candidate]) -> Decision | None:
        """Apply the vote and hysteresis given the template's gallery candidates; returns the
        change of name, or None when the name stays as it is."""
        p = self.policy
        if self.samples < p.min_samples:
            return None
        tscore = {int(pid): float(s) for pid, _n, s in template_candidates}
        for pid, name, _s in template_candidates:
            self._names.setdefault(int(pid), name)
        def accepted(key: int) -> bool:
            return key != _UNK and tscore.get(key, -np.inf) > self.bar(key)

        leader, share = self._leader(self._votes)
        if self.label is None:
            if share < p.min_share:
                if self.samples < p.max_undecided:
                    return None
                leader = int(template_candidates[0][0]) if template_candidates else _UNK
            return self._set(leader if accepted(leader) else _UNK, share, template_candidates)
        current = self.person_id if self.person_id is not None else _UNK
        if current != _UNK:
            recent: dict[int, float] = {}
            for k, w in self._recent:
                recent[k] = recent.get(k, 0.0) + w
            r_leader, r_share = self._leader(recent)
            if (
                r_leader not in (current, _UNK)
                and r_share >= p.switch_share
                and accepted(r_leader)
                and tscore[r_leader] >= tscore.get(current, -np.inf) + p.switch_margin
            ):
                return self._set(r_leader, r_share, template_candidates)
            if tscore.get(current, -np.inf) < self.bar(current) - p.exit_margin:
                return self._set(_UNK, share, template_candidates)
            self.score = tscore.get(current, self.score)
            return None
        if leader != _UNK and share >= p.min_share and accepted(leader):
            return self._set(leader, share, template_candidates)
        if template_candidates:
            self.score = float(template_candidates[0][2])
        return None

    def _set(self, key: int, share: float, cands: Sequence[Candidate]) -> Decision | None:
        label = self._names.get(key, UNKNOWN) if key != _UNK else UNKNOWN
        previous = self.label
        tscore = {int(pid): float(s) for pid, _n, s in cands}
        score = tscore.get(key, float(cands[0][2]) if cands else float("nan")) if key != _UNK else (
            float(cands[0][2]) if cands else float("nan")
        )
        self.score = score
        if label == previous:
            return None
        # A -> B counts as a switch even by way of "unknown" (A -> unknown -> B).
        switch = label != UNKNOWN and self._last_name is not None and label != self._last_name
        if label != UNKNOWN:
            self._last_name = label
        if switch:
            self.switches += 1
        elif previous is not None:
            self.revisions += 1
        self.label = label
        self.person_id = key if key != _UNK else None
        return Decision(
            label=label,
            person_id=self.person_id,
            score=score,
            share=share,
            samples=self.samples,
            previous=previous,
            switch=switch,
            candidates=list(cands),
            # the bar of the person named, or for "unknown" of the closest person: the one that decided
            threshold=self.bar(key if key != _UNK else (int(cands[0][0]) if cands else _UNK)),
            effective_samples=self.effective_samples,
        )
