"""Multi-object tracking of face boxes: a Kalman motion model and ByteTrack-style association.

Why this shape:

* Detection is the expensive step, so ``watch`` runs it every Nth frame; in between, each
  track's box comes from a constant-velocity Kalman filter (SORT), so boxes keep moving
  with the face and the next detection is matched against where the face *should* be.
* Association is in two stages as in ByteTrack: confident detections are matched first;
  weak ones (a face turning away, motion blur) may only *continue* an existing track,
  never start one. A face that dips below the detector's usual threshold for a few frames
  therefore keeps its track id instead of ending and restarting as a new person.
* The match score is IoU between predicted and detected boxes, blended with an optional
  appearance similarity (any unit feature vector per detection; ``watch`` uses a colour
  histogram of the face) so two faces that cross keep their ids.
* A track is reported (and given an id) only after ``min_hits`` detections, so a single
  false positive never becomes an event; a reported track ends after ``max_age`` frames
  without a detection.

The tracker knows boxes, scores and feature vectors only: no images, no models. That keeps
it testable on synthetic moving boxes (``tests/test_track.py``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from facegate.detect.boxes import iou_matrix  # one IoU for detection and tracking

log = logging.getLogger(__name__)




def assign(sim: np.ndarray, min_sim: float) -> list[tuple[int, int]]:
    """Maximum-similarity one-to-one matching of rows to columns, pairs below ``min_sim`` excluded.

    Hungarian (scipy's ``linear_sum_assignment``) when scipy is installed; otherwise greedy
    best-first, which gives the same answer whenever faces do not overlap much (the usual case).
    """
    if sim.size == 0:
        return []
    valid = sim >= min_sim
    try:
        from scipy.optimize import linear_sum_assignment
    except ImportError:  # scipy is optional (tests install it; see test_assignment_without_scipy_is_greedy)
        pairs: list[tuple[int, int]] = []
        used_r: set[int] = set()
        used_c: set[int] = set()
        for flat in np.argsort(-sim, axis=None, kind="stable"):
            r, c = divmod(int(flat), sim.shape[1])
            if not valid[r, c]:
                break
            if r in used_r or c in used_c:
                continue
            pairs.append((r, c))
            used_r.add(r)
            used_c.add(c)
        return pairs
    cost = np.where(valid, 1.0 - sim, 1e6)
    rows, cols = linear_sum_assignment(cost)
    return [(int(r), int(c)) for r, c in zip(rows, cols) if valid[r, c]]


class KalmanBox:
    """Constant-velocity Kalman filter on (cx, cy, w, h), one step per video frame.

    Noise scales with the box size (ByteTrack's weights: 1/20 of the size for position,
    1/160 for velocity), so a 30 px face and a 300 px face are tracked equally well.
    """

    STD_POS = 1.0 / 20
    STD_VEL = 1.0 / 160

    _F = np.eye(8)
    _F[:4, 4:] = np.eye(4)
    _H = np.eye(4, 8)

    def __init__(self, box: np.ndarray) -> None:
        z = self.to_z(box)
        self.mean = np.concatenate([z, np.zeros(4)])
        s = max(z[2], z[3])
        std = np.array([2 * self.STD_POS * s] * 4 + [10 * self.STD_VEL * s] * 4)
        self.cov = np.diag(std**2)

    @staticmethod
    def to_z(box: np.ndarray) -> np.ndarray:
        x1, y1, x2, y2 = (float(v) for v in box)
        return np.array([(x1 + x2) / 2, (y1 + y2) / 2, max(x2 - x1, 1.0), max(y2 - y1, 1.0)])

    @property
    def box(self) -> np.ndarray:
        cx, cy, w, h = self.mean[:4]
        w, h = max(w, 1.0), max(h, 1.0)
        return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dtype=np.float32)

    def predict(self) -> None:
        s = max(self.mean[2], self.mean[3], 1.0)
        q = np.array([self.STD_POS * s] * 4 + [self.STD_VEL * s] * 4) ** 2
        self.mean = self._F @ self.mean
        self.cov = self._F @ self.cov @ self._F.T + np.diag(q)
        # A shrinking box must not invert; damp size velocity when it would.
        if self.mean[2] < 2 or self.mean[3] < 2:
            self.mean[6:8] = 0.0
            self.mean[2:4] = np.maximum(self.mean[2:4], 2.0)

    def update(self, box: np.ndarray) -> None:
        z = self.to_z(box)
        s = max(z[2], z[3])
        r = np.diag(np.array([self.STD_POS * s] * 4) ** 2)
        h = self._H
        y = z - h @ self.mean
        s_mat = h @ self.cov @ h.T + r
        k = np.linalg.solve(s_mat, (self.cov @ h.T).T).T
        self.mean = self.mean + k @ y
        self.cov = (np.eye(8) - k @ h) @ self.cov


@dataclass(frozen=True)
class TrackerConfig:
    """Association and life-cycle settings (frame counts are video frames, not detections).

    ``high_score`` is the detector confidence that may start a track; detections between
    the detector's own cut and ``high_score`` only extend tracks (ByteTrack's second stage).
    ``max_age`` is how long a track survives without a detection: long enough to bridge a
    few missed detections at ``detect_every`` > 1, short enough that a person who left is
    reported as gone within about a second.
    """

    high_score: float = 0.5
    match_iou: float = 0.2  # min IoU between prediction and a confident detection
    low_match_iou: float = 0.4  # stricter for weak detections (they are more often wrong)
    appearance_weight: float = 0.3  # share of appearance in the match score, when features are given
    min_appearance: float = 0.0  # a pair whose appearance similarity is below this never matches
    min_hits: int = 2  # detections before a track is reported
    max_age: int = 30  # frames without a detection before a reported track ends
    feature_momentum: float = 0.8  # exponential averaging of a track's appearance feature


@dataclass
class Track:
    """One followed face. ``id`` is 0 until the track is confirmed (then 1, 2, ... in order)."""

    id: int
    kf: KalmanBox
    first_frame: int
    last_frame: int  # frame of the last matched detection
    score: float
    hits: int = 1
    confirmed: bool = False
    feature: np.ndarray | None = None
    detection: int | None = None  # index of the detection matched in the current step, if any
    data: dict[str, Any] = field(default_factory=dict)  # owner's per-track state (identity, best shot)

    @property
    def box(self) -> np.ndarray:
        return self.kf.box

    def missed(self, frame: int) -> int:
        """Frames since the last matched detection."""
        return frame - self.last_frame


@dataclass
class StepResult:
    """What one tracker step changed: tracks confirmed this step, tracks that ended, and for
    every detection the track it went to (or None)."""

    started: list[Track]
    ended: list[Track]
    assignment: list[Track | None]


class Tracker:
    """Follows boxes from frame to frame; see the module docstring for the method."""

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.config = config or TrackerConfig()
        try:  # import now, not inside the first frame's timing
            import scipy.optimize  # noqa: F401
        except ImportError:  # pragma: no cover
            pass
        self.tracks: list[Track] = []
        self._next_id = 1
        self.frame = -1

    # -- queries -------------------------------------------------------------------------
    @property
    def active(self) -> list[Track]:
        """Confirmed tracks, in id order."""
        return sorted((t for t in self.tracks if t.confirmed), key=lambda t: t.id)

    # -- one frame -------------------------------------------------------------------------
    def step(
        self,
        frame: int,
        boxes: np.ndarray | None = None,
        scores: np.ndarray | None = None,
        features: np.ndarray | None = None,
    ) -> StepResult:
        """Advance to ``frame``; with ``boxes`` (a detection frame) also associate and update.

        Frames may be skipped (``frame`` jumps by more than one): the motion model is stepped
        once per frame so velocities stay in pixels per frame.
        """
        steps = 1 if self.frame < 0 else max(1, frame - self.frame)
        self.frame = frame
        for t in self.tracks:
            t.detection = None
            for _ in range(steps):
                t.kf.predict()
        started: list[Track] = []
        assignment: list[Track | None] = []
        if boxes is not None:
            boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
            scores = np.ones(len(boxes), np.float32) if scores is None else np.asarray(scores, np.float32)
            assignment = self._associate(frame, boxes, scores, features, started)
        ended = self._expire(frame)
        return StepResult(started=started, ended=ended, assignment=assignment)

    def end_all(self) -> list[Track]:
        """End every track now (scene cut, end of stream); returns the confirmed ones."""
        ended = [t for t in self.tracks if t.confirmed]
        self.tracks = []
        return sorted(ended, key=lambda t: t.id)

    # -- internals ---------------------------------------------------------------------------
    def _similarity(self, tracks: list[Track], boxes: np.ndarray, feats: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """(match score, IoU) matrices for tracks x detections."""
        if not tracks or not len(boxes):
            z = np.zeros((len(tracks), len(boxes)))
            return z, z
        iou = iou_matrix(np.stack([t.box for t in tracks]), boxes)
        sim = iou.copy()
        w = self.config.appearance_weight
        if feats is not None and w > 0:
            have = np.array([t.feature is not None for t in tracks])
            if have.any():
                tf = np.stack([t.feature if t.feature is not None else np.zeros(feats.shape[1]) for t in tracks])
                app = np.clip(tf @ feats.T, 0.0, 1.0)
                blended = (1 - w) * iou + w * app
                sim = np.where(have[:, None], blended, iou)
                if self.config.min_appearance > 0:
                    sim = np.where(have[:, None] & (app < self.config.min_appearance), -1.0, sim)
        return sim, iou

    def _match(
        self, tracks: list[Track], det_idx: list[int], boxes: np.ndarray, feats: np.ndarray | None, min_iou: float
    ) -> list[tuple[Track, int]]:
        if not tracks or not det_idx:
            return []
        sub_f = feats[det_idx] if feats is not None else None
        sim, iou = self._similarity(tracks, boxes[det_idx], sub_f)
        sim = np.where(iou >= min_iou, sim, -1.0)  # IoU gates; appearance only ranks
        return [(tracks[r], det_idx[c]) for r, c in assign(sim, 0.0)]

    def _update(self, t: Track, frame: int, box: np.ndarray, score: float, feat: np.ndarray | None) -> None:
        t.kf.update(box)
        t.last_frame = frame
        t.score = float(score)
        t.hits += 1
        if feat is not None:
            if t.feature is None:
                t.feature = feat.astype(np.float64)
            else:
                m = self.config.feature_momentum
                f = m * t.feature + (1 - m) * feat
                t.feature = f / max(float(np.linalg.norm(f)), 1e-12)

    def _confirm(self, t: Track, started: list[Track]) -> None:
        if not t.confirmed and t.hits >= self.config.min_hits:
            t.confirmed = True
            t.id = self._next_id
            self._next_id += 1
            started.append(t)

    def _associate(
        self, frame: int, boxes: np.ndarray, scores: np.ndarray, feats: np.ndarray | None, started: list[Track]
    ) -> list[Track | None]:
        cfg = self.config
        if feats is not None:
            feats = np.asarray(feats, dtype=np.float64).reshape(len(boxes), -1)
        assignment: list[Track | None] = [None] * len(boxes)
        high = [i for i in range(len(boxes)) if scores[i] >= cfg.high_score]
        low = [i for i in range(len(boxes)) if scores[i] < cfg.high_score]
        confirmed = [t for t in self.tracks if t.confirmed]
        tentative = [t for t in self.tracks if not t.confirmed]

        def take(pairs: list[tuple[Track, int]]) -> None:
            for t, i in pairs:
                self._update(t, frame, boxes[i], scores[i], feats[i] if feats is not None else None)
                t.detection = i
                assignment[i] = t

        # 1: confirmed tracks (seen or recently lost) against confident detections.
        take(self._match(confirmed, high, boxes, feats, cfg.match_iou))
        # 2: confirmed tracks still unmatched against weak detections, IoU only (ByteTrack).
        left_tracks = [t for t in confirmed if t.detection is None]
        take(self._match(left_tracks, low, boxes, None, cfg.low_match_iou))
        # 3: tentative tracks against the confident detections left over.
        left_high = [i for i in high if assignment[i] is None]
        take(self._match(tentative, left_high, boxes, feats, cfg.match_iou))
        for t in tentative:
            if t.detection is None:
                t.data["_drop"] = True  # a tentative track that misses once was a false positive
            else:
                self._confirm(t, started)
        # 4: new tracks from confident detections nobody claimed.
        for i in high:
            if assignment[i] is None:
                t = Track(
                    id=0,
                    kf=KalmanBox(boxes[i]),
                    first_frame=frame,
                    last_frame=frame,
                    score=float(scores[i]),
                    feature=None if feats is None else feats[i] / max(float(np.linalg.norm(feats[i])), 1e-12),
                    detection=i,
                )
                self.tracks.append(t)
                assignment[i] = t
                # The very first frame of a stream has no history to wait for: confirm at once,
                # so a video that opens on a face reports it from frame 0.
                if frame == 0 or cfg.min_hits <= 1:
                    t.hits = max(t.hits, cfg.min_hits)
                    self._confirm(t, started)
        return assignment

    def _expire(self, frame: int) -> list[Track]:
        ended: list[Track] = []
        keep: list[Track] = []
        for t in self.tracks:
            if t.data.pop("_drop", False):
                continue
            if t.confirmed and t.missed(frame) > self.config.max_age:
                ended.append(t)
                continue
            if not t.confirmed and t.missed(frame) > self.config.max_age:
                continue
            keep.append(t)
        self.tracks = keep
        return sorted(ended, key=lambda t: t.id)
