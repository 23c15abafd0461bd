"""``watch``: follow every face through a video, name each track once, report who came and went.

Per frame, in order:

1. **scene cut?** (:mod:`.scene`) - if the shot changed, every track ends (``left``, reason
   ``scene_cut``) so nobody in the new shot inherits a name from the old one;
2. **detect** every ``detect_every``-th frame (and on a cut) with the pipeline's detector at a
   lowered confidence cut, so weak detections can extend tracks (ByteTrack); in between,
   the tracker's motion model carries the boxes;
3. **track** (:mod:`.tracker`): associate, confirm (``start``), expire (``left``);
4. **best shots**: each detection matched to a track is aligned and scored for quality
   (:class:`~.identity.QualityModel`); the track keeps its best face since its last embedding;
5. **embed, rarely**: a confirmed track is embedded from its best shot every ``embed_every``
   frames until it has ``warmup_samples`` samples, then every ``recheck_every`` frames; all
   due tracks share one embedder batch and one gallery search;
6. **vote** (:mod:`.identity`): a change of name is an ``identified`` event; the first one
   also triggers the gate request in gate mode (:mod:`.gate`), which carries the track's last
   detected frames (3 by default, within 2 s, one crop rectangle) as a burst, so the service's
   liveness check judges this track's own frames. The track's template (a mean of
   its samples) is held to the template threshold for its effective number of samples at
   the gallery's FPIR, and against a person enrolled with more photos than the track has samples,
   to that person's bar (:mod:`facegate.decide`); the event reports the bar, FPIR, FAR and TPIR.

Embedding is the expensive step (tens of ms per face on a CPU), detection the next; both are
done far less often than once per face per frame, which is what makes real time possible on
two cores. Every stage's time is measured and reported in the closing ``end`` event.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import cv2
import numpy as np
from tqdm import tqdm

from facegate.config import Config
from facegate.decide import check_model
from facegate.detect.scores import cut_score
from facegate.timefmt import iso_time
from facegate.track import events as ev
from facegate.track.annotate import TrackView
from facegate.track.gate import GateDispatcher, GateRequest
from facegate.track.identity import UNKNOWN, QualityModel, TrackIdentity, VotePolicy
from facegate.track.scene import SceneCutDetector
from facegate.track.sources import Frame, VideoSource, open_source
from facegate.track.tracker import Track, Tracker, TrackerConfig
from facegate.types import Face

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WatchOptions:
    """How often to do the expensive steps, and the rules of the vote.

    Frame counts are video frames. ``max_age_s`` (seconds) is turned into frames with the
    source's frame rate: how long a face may go undetected before its track ends.
    """

    detect_every: int = 3
    embed_every: int = 6
    recheck_every: int = 30
    warmup_samples: int = 5
    low_score: float = 0.3
    max_age_s: float = 1.0
    patience_s: float = 1.0  # a track still undecided after this long is embedded from poorer shots too
    appearance_weight: float = 0.3
    scene_cuts: bool = True
    max_frames: int | None = None
    progress: bool = True
    quality: QualityModel = field(default_factory=QualityModel)
    vote: VotePolicy = field(default_factory=VotePolicy)
    # Gate mode: the crop sent around the face is (1 + 2 x margin) face sizes wide, about what a 640x480
    # gate camera sees of a person at the door (the context the liveness cues compare the face with).
    gate_crop_margin: float = 1.0
    gate_crop_min: int = 256  # px; smaller crops are upscaled so the service's detector finds the face
    # A gate request carries the track's last detected frames (at most gate_burst, within gate_burst_s of
    # the newest) as a burst for the service's liveness check; 1 sends the best shot alone (a still). 3: the
    # burst the shipped head was fitted and measured on; each more frame costs the service a detection and
    # an embedding.
    gate_burst: int = 3
    gate_burst_s: float = 2.0


@dataclass
class _Shot:
    quality: float
    chip: np.ndarray
    face: Face
    frame: int
    crop: np.ndarray | None  # RGB face with margin, only kept in gate mode


@dataclass
class _State:
    identity: TrackIdentity
    first_t: float
    last_t: float
    first_wall: float = 0.0  # unix time the track was first seen (for live sources: when it happened)
    last_wall: float = 0.0
    candidate: _Shot | None = None
    best: _Shot | None = None
    last_embed: int | None = None
    gate_requested: bool = False
    labels: list[tuple[int, str]] = field(default_factory=list)  # (frame, label) at each change
    # gate mode: the track's last detections (frame index, media time, the frame, the face box), for a burst
    recent: deque[tuple[int, float, np.ndarray, np.ndarray]] = field(default_factory=lambda: deque(maxlen=8))


@dataclass
class WatchResult:
    """Figures of one run; ``timings`` are seconds spent per stage."""

    source: str
    frames: int = 0
    seconds: float = 0.0
    media_seconds: float = 0.0
    detections: int = 0  # detector calls
    faces: int = 0  # faces those calls returned
    embeddings: int = 0
    tracks: int = 0
    switches: int = 0
    revisions: int = 0
    dropped: int = 0
    reconnects: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    track_labels: dict[int, list[tuple[int, str]]] = field(default_factory=dict)
    events: list[dict[str, Any]] | None = None  # filled by :func:`watch` when no sink was given
    seen: dict[int | None, Sighting] = field(default_factory=dict)  # who was seen, by person id (None: unknown)

    def sightings(self) -> list[Sighting]:
        """Who was seen, named people by first appearance, then the unknown tracks."""
        named = sorted((s for k, s in self.seen.items() if k is not None), key=lambda s: (s.first_t, s.name or ""))
        return named + ([self.seen[None]] if None in self.seen else [])

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "frames": self.frames,
            "seconds": round(self.seconds, 3),
            "fps": round(self.fps, 2),
            "media_seconds": round(self.media_seconds, 3),
            "detector_calls": self.detections,
            "faces_detected": self.faces,
            "embeddings": self.embeddings,
            "tracks": self.tracks,
            "name_switches": self.switches,
            "revisions": self.revisions,
            "dropped_frames": self.dropped,
            "reconnects": self.reconnects,
            "ms_per_frame": {k: round(1000 * v / max(self.frames, 1), 2) for k, v in self.timings.items()},
            "seen": [s.to_dict() for s in self.sightings()],
        }


@dataclass
class Sighting:
    """One person's appearances in a run (or all unknown tracks together, ``person_id`` None): how many
    tracks, when first and last seen (media seconds, and wall-clock time for live sources), and for how
    long in all (the tracks' durations added up)."""

    person_id: int | None
    name: str | None
    tracks: int = 0
    first_t: float = math.inf
    last_t: float = 0.0
    seconds: float = 0.0
    first_wall: float = math.inf
    last_wall: float = 0.0

    def add(self, first_t: float, last_t: float, first_wall: float, last_wall: float) -> None:
        self.tracks += 1
        self.first_t, self.last_t = min(self.first_t, first_t), max(self.last_t, last_t)
        self.first_wall, self.last_wall = min(self.first_wall, first_wall), max(self.last_wall, last_wall)
        self.seconds += max(0.0, last_t - first_t)

    def to_dict(self) -> dict[str, Any]:
        return {
            "person_id": self.person_id, "name": self.name, "tracks": self.tracks,
            "first_t": round(self.first_t, 3), "last_t": round(self.last_t, 3), "seconds": round(self.seconds, 3),
            "first_seen": iso_time(self.first_wall), "last_seen": iso_time(self.last_wall),
        }


def appearance(image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(N, 64) unit vectors: square-rooted hue-saturation histograms of the face boxes.

    Cheap (a 16x16 thumbnail per face) and stable over a few frames; its dot product is the
    Bhattacharyya coefficient, which the tracker blends with IoU to keep crossing faces apart.
    """
    h, w = image.shape[:2]
    out = np.zeros((len(boxes), 64), dtype=np.float32)
    for i, b in enumerate(np.asarray(boxes).reshape(-1, 4)):
        x1, y1 = max(0, int(b[0])), max(0, int(b[1]))
        x2, y2 = min(w, int(np.ceil(b[2]))), min(h, int(np.ceil(b[3])))
        if x2 - x1 < 2 or y2 - y1 < 2:
            continue
        small = cv2.resize(image[y1:y2, x1:x2], (16, 16), interpolation=cv2.INTER_AREA)
        hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)
        hist = cv2.calcHist([hsv], [0, 1], None, [8, 8], [0, 180, 0, 256]).ravel()
        v = np.sqrt(hist / max(float(hist.sum()), 1.0))
        out[i] = v / max(float(np.linalg.norm(v)), 1e-12)
    return out


def face_with_margin(image: np.ndarray, box: np.ndarray, margin: float = 0.5, min_side: int = 256) -> np.ndarray:
    """A square RGB crop around ``box`` with ``margin`` x its size on every side (clipped to the
    frame), upscaled to at least ``min_side`` px so a detector with a minimum face size finds it."""
    h, w = image.shape[:2]
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    side = max(box[2] - box[0], box[3] - box[1]) * (1 + 2 * margin)
    x1, y1 = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
    x2, y2 = int(min(w, cx + side / 2)), int(min(h, cy + side / 2))
    crop = image[y1:y2, x1:x2]
    if crop.size == 0:
        return image.copy()
    s = min_side / max(1, min(crop.shape[:2]))
    if s > 1:
        crop = cv2.resize(crop, None, fx=s, fy=s, interpolation=cv2.INTER_CUBIC)
    return np.ascontiguousarray(crop)


def burst_crops(
    shots: list[tuple[int, float, np.ndarray, np.ndarray]], margin: float = 1.0, min_side: int = 256, n: int = 5,
    window_s: float = 2.0,
) -> list[np.ndarray]:
    """The frames of a gate burst: of a track's detections ``(frame, t, image, box)``, the last ``n``
    within ``window_s`` seconds of the newest, each cut to the *same* square around all their boxes
    (``margin`` x its size on every side, clipped to the frame) and scaled by the same factor, so
    the face's motion against its surroundings stays measurable from frame to frame."""
    if not shots:
        return []
    newest = shots[-1][1]
    chosen = [s for s in shots if newest - s[1] <= window_s][-max(1, n):]
    boxes = np.array([s[3] for s in chosen], dtype=np.float64)
    x1, y1 = boxes[:, 0].min(), boxes[:, 1].min()
    x2, y2 = boxes[:, 2].max(), boxes[:, 3].max()
    h, w = chosen[-1][2].shape[:2]
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    side = max(x2 - x1, y2 - y1) * (1 + 2 * margin)
    a, b = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
    c, d = int(min(w, cx + side / 2)), int(min(h, cy + side / 2))
    out = []
    for _, _, img, _ in chosen:
        crop = img[b:d, a:c] if img.shape[:2] == (h, w) else img
        scale = min_side / max(1, min(crop.shape[:2]))
        if scale > 1:
            crop = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        out.append(np.ascontiguousarray(crop))
    return out


def jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - a uint8 image always encodes
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()


def tracking_detector(config: Config, options: WatchOptions | None = None) -> Any:
    """The detector ``watch`` uses: the configured one, with its confidence cut lowered to
    ``options.low_score``. The weak detections are what lets the tracker hold on to a face
    that turns away (they extend tracks, never start them). Build it once and pass it to
    several :class:`Watcher` s to load its model once."""
    from facegate.detect import get_detector

    low = min((options or WatchOptions()).low_score, config.detection_threshold)
    return get_detector(config.replace(detection_threshold=low))


def single_threaded(config: Config) -> Config:
    """``config`` with one compute thread per library unless the user chose a number.

    Video keeps a decode thread busy beside detection and embedding, and a watch process
    often shares its CPU with others. PyTorch's and TFLite's thread pools spin-wait at their
    barriers: on 2 cores already busy, one embedding took 1.8-2.1 s with 2 threads against
    63 ms with 1 (measured, load average 7). One thread each is the robust default.
    """
    return config.replace(threads=1) if config.threads == 0 else config


class Watcher:
    """Runs the per-frame loop of the module docstring over one source.

    ``pipeline`` supplies the detector settings (its config), aligner and embedder;
    ``gallery`` the people and the decision threshold; events go to ``sink``;
    ``on_frame(frame, views)`` (annotation, snapshots, tests) sees every frame's tracks.
    ``detector`` replaces the one built from the pipeline's config (tests).
    """

    def __init__(
        self,
        pipeline: Any,
        gallery: Any,
        sink: ev.EventSink,
        options: WatchOptions | None = None,
        gate: GateDispatcher | None = None,
        on_frame: Callable[[Frame, list[TrackView]], None] | None = None,
        detector: Any = None,
    ) -> None:
        from facegate.gallery import model_id

        self.pipe = pipeline
        self.gallery = gallery
        self.sink = sink
        self.opt = options or WatchOptions()
        self.gate = gate
        self.on_frame = on_frame
        cfg: Config = pipeline.config
        # fails early without a calibration; refreshed as the gallery changes (facegate.decide)
        snap = gallery.snapshot()  # the policy and the model of one read of the gallery
        self.policy = snap.policy
        self.threshold = self.policy.threshold  # a single sample's vote
        log.info("naming tracks at %s; one-photo bar %.4f; table: %s", self.policy.describe(), self.threshold,
                 self.policy.table_label)
        self.model = model_id(pipeline)
        stored = snap.model
        check_model(stored, self.model)
        self._faces: dict[int, int] = {}
        self._empty = stored is None
        if self._empty:
            log.warning("the gallery is empty: every track will be 'unknown' (enrol people with 'facegate enroll')")
        # Face.score is calibrated (facegate.detect.scores): the detector's own cut on that scale.
        self.high_score = cut_score(cfg.detector, cfg.detection_threshold)
        self.detector = detector if detector is not None else tracking_detector(cfg, self.opt)
        self.tracker: Tracker | None = None
        self.scene = SceneCutDetector() if self.opt.scene_cuts else None
        self._last_detect: int | None = None
        self.result: WatchResult | None = None
        self._states: dict[int, _State] = {}  # keyed by id(track) until confirmed, then the same object
        self._last_frame: Frame | None = None
        self._patience = 30

    # -- helpers ---------------------------------------------------------------------------
    def _emit(self, kind: str, frame: Frame, **fields: Any) -> None:
        self.sink.emit(ev.make_event(kind, frame.index, frame.t, **fields))

    def _state(self, t: Track, frame: Frame) -> _State:
        st = t.data.get("state")
        if st is None:
            st = _State(
                identity=TrackIdentity(self.threshold, self.opt.vote, template_threshold=lambda n: self.policy.bar(n),
                                       person_bar=self._person_bar),
                first_t=frame.t, last_t=frame.t,
            )
            st.first_wall = st.last_wall = frame.wall
            t.data["state"] = st
        return st

    def _person_bar(self, n: float, pid: int) -> float:
        """The bar for a template of ``n`` effective samples against person ``pid`` (see
        :meth:`facegate.decide.OpenSetPolicy.template_bar`), at the current policy."""
        if pid not in self._faces:
            self._faces[pid] = self.gallery.face_count(pid)
        return self.policy.template_bar(n, self._faces[pid])

    def _refresh_policy(self) -> None:
        policy = self.gallery.decision_policy()
        if policy is not self.policy:
            self.policy = policy
            self._faces.clear()

    @property
    def far(self) -> float | None:
        return self.policy.far

    def _time(self, key: str, since: float) -> float:
        now = time.perf_counter()
        assert self.result is not None
        self.result.timings[key] = self.result.timings.get(key, 0.0) + now - since
        return now

    def _search(self, emb: np.ndarray) -> list[list[tuple[int, str, float]]]:
        if self._empty or not len(emb):
            return [[] for _ in range(len(emb))]
        return self.gallery.search(emb, model=self.model)

    # -- track life ------------------------------------------------------------------------
    def _started(self, t: Track, frame: Frame) -> None:
        st = self._state(t, frame)
        assert self.result is not None
        self.result.tracks += 1
        self._emit(
            ev.START, frame, track=t.id, first_frame=t.first_frame, first_t=st.first_t,
            box=[round(float(v), 1) for v in t.box], score=round(t.score, 4),
        )

    def _ended(self, t: Track, frame: Frame, reason: str) -> None:
        st = self._state(t, frame)
        idn = st.identity
        self._emit(
            ev.LEFT, frame, track=t.id, name=idn.label, person_id=idn.person_id,
            score=idn.score if idn.label is not None else None,
            first_frame=t.first_frame, last_frame=t.last_frame, first_t=st.first_t, last_t=st.last_t,
            duration=round(st.last_t - st.first_t, 3), samples=idn.samples, switches=idn.switches, reason=reason,
        )
        assert self.result is not None
        key = idn.person_id if idn.label not in (None, UNKNOWN) else None
        seen = self.result.seen.setdefault(key, Sighting(key, idn.label if key is not None else None))
        seen.add(st.first_t, st.last_t, st.first_wall, st.last_wall)
        self.result.track_labels[t.id] = list(st.labels)
        self.result.switches += idn.switches
        self.result.revisions += idn.revisions
        if self.gate is not None:
            self.gate.track_ended(t.id, st.last_t)

    # -- the loop ----------------------------------------------------------------------------
    def run(self, source: VideoSource) -> WatchResult:
        fps = source.fps or 25.0
        self.tracker = Tracker(
            TrackerConfig(
                high_score=self.high_score,
                max_age=max(1, int(round(self.opt.max_age_s * fps))),
                appearance_weight=self.opt.appearance_weight,
            )
        )
        self._patience = max(1, int(round(self.opt.patience_s * fps)))
        self.result = res = WatchResult(source=source.name)
        bar = tqdm(
            total=source.frame_count, unit="frame", desc=Path(source.name).name[:30] if source.kind == "file" else source.name[:30],
            disable=not (self.opt.progress and source.kind == "file"), dynamic_ncols=True, leave=False,
        )
        start = time.perf_counter()
        t0 = start
        frame: Frame | None = None
        try:
            for frame in source.frames():
                t0 = self._time("decode", t0)
                self._source_status(source, frame)
                self._frame(frame)
                self._gate_results(frame)
                res.frames += 1
                res.media_seconds = frame.t
                bar.update(1)
                t0 = time.perf_counter()
                if self.opt.max_frames and res.frames >= self.opt.max_frames:
                    break
        finally:
            bar.close()
            last = frame or self._last_frame or Frame(0, 0.0, np.zeros((1, 1, 3), np.uint8), time.time())
            self._finish(source, last, start)
        return res

    def _finish(self, source: VideoSource, frame: Frame, start: float) -> None:
        assert self.tracker is not None and self.result is not None
        res = self.result
        self._source_status(source, frame)
        for t in self.tracker.end_all():
            self._ended(t, frame, "end")
        if self.gate is not None:
            for r in self.gate.close():
                self._emit(ev.GATE, frame, **r)
        res.seconds = time.perf_counter() - start
        res.dropped = source.dropped
        res.reconnects = source.reconnects
        self._emit(ev.END, frame, **res.to_dict())

    def _source_status(self, source: VideoSource, frame: Frame) -> None:
        for s in source.status():
            self._emit(ev.SOURCE, frame, source=source.name, **s)

    def _gate_results(self, frame: Frame) -> None:
        if self.gate is not None:
            for r in self.gate.results():
                self._emit(ev.GATE, frame, **r)

    def _frame(self, frame: Frame) -> None:
        assert self.tracker is not None and self.result is not None
        res = self.result
        opt = self.opt
        idx, img = frame.index, frame.image
        self._last_frame = frame
        t0 = time.perf_counter()
        cut = False
        if self.scene is not None:
            cut = self.scene.update(img) and idx > 0
            if cut:
                log.info("frame %d: scene cut; ending %d track(s)", idx, len(self.tracker.active))
                for t in self.tracker.end_all():
                    self._ended(t, frame, "scene_cut")
        detect = cut or self._last_detect is None or idx - self._last_detect >= opt.detect_every
        faces: list[Face] = []
        t0 = self._time("scene", t0)
        if detect:
            faces = self.detector.detect(img)
            self._last_detect = idx
            res.detections += 1
            res.faces += len(faces)
            t0 = self._time("detect", t0)
            boxes = np.array([f.box for f in faces], dtype=np.float32).reshape(-1, 4)
            scores = np.array([f.score for f in faces], dtype=np.float32)
            feats = appearance(img, boxes) if opt.appearance_weight > 0 and len(faces) else None
            step = self.tracker.step(idx, boxes, scores, feats)
        else:
            step = self.tracker.step(idx)
        for t in step.assignment:
            if t is not None:
                st = self._state(t, frame)
                st.last_t, st.last_wall = frame.t, frame.wall
        for t in step.started:
            self._started(t, frame)
        for t in step.ended:
            self._ended(t, frame, "lost")
        t0 = self._time("track", t0)
        # best shots of this frame's detections
        for i, t in enumerate(step.assignment):
            if t is None:
                continue
            face = faces[i]
            chip = self.pipe.chips(img, [face])[0]
            q, metrics = opt.quality(face.landmarks, chip, face.score, face.width, scheme=face.scheme)
            face.quality = q
            log.debug("frame %d track %d: quality %.3f %s score %.2f", idx, t.id, q, metrics, face.score)
            st = self._state(t, frame)
            if self.gate is not None and opt.gate_burst > 1:
                st.recent.append((idx, frame.t, img, face.box.copy()))
            if st.candidate is None or q > st.candidate.quality:
                crop = (
                    face_with_margin(img, face.box, opt.gate_crop_margin, opt.gate_crop_min)
                    if self.gate is not None else None
                )
                st.candidate = _Shot(q, chip, face, idx, crop)
        self._time("quality", t0)
        self._embed_due(frame)
        t0 = time.perf_counter()
        if self.on_frame is not None:
            horizon = 2 * opt.detect_every
            views = []
            for t in self.tracker.active:
                if t.missed(idx) >= horizon:
                    continue
                st = self._state(t, frame)
                box = faces[t.detection].box if t.detection is not None else t.box
                views.append(TrackView(
                    id=t.id, box=tuple(float(v) for v in box), label=st.identity.label,
                    score=st.identity.score if st.identity.label is not None else None,
                    detected=t.detection is not None,
                ))
            self.on_frame(frame, views)
            self._time("output", t0)

    def _embed_due(self, frame: Frame) -> None:
        assert self.tracker is not None and self.result is not None
        opt = self.opt
        idx = frame.index
        due: list[tuple[Track, _State, _Shot]] = []
        for t in self.tracker.active:
            st = self._state(t, frame)
            if st.candidate is None:
                continue
            if st.candidate.quality < opt.quality.min_quality and not (
                st.identity.label is None and idx - t.first_frame >= self._patience
            ):
                continue  # not worth an embedding yet; a better shot may come
            interval = opt.embed_every if st.identity.samples < opt.warmup_samples else opt.recheck_every
            if st.last_embed is None or idx - st.last_embed >= interval:
                due.append((t, st, st.candidate))
        if not due:
            return
        t0 = time.perf_counter()
        self._refresh_policy()
        emb = self.pipe.embedder.embed(np.stack([shot.chip for _, _, shot in due]))
        self.result.embeddings += len(due)
        t0 = self._time("embed", t0)
        sample_hits = self._search(emb)
        for (_t, st, shot), e, hits in zip(due, emb, sample_hits):
            st.identity.add(e, shot.quality, hits)
            st.last_embed = idx
            st.candidate = None
            if st.best is None or shot.quality > st.best.quality:
                st.best = shot
        templates = np.stack([st.identity.template for _, st, _ in due])
        template_hits = self._search(templates)
        for (t, st, _), hits in zip(due, template_hits):
            d = st.identity.decide(hits)
            if d is None:
                continue
            st.labels.append((idx, d.label))
            self._emit(
                ev.IDENTIFIED, frame, track=t.id, name=d.label, person_id=d.person_id, score=d.score,
                share=round(d.share, 3), samples=d.samples, effective_samples=round(d.effective_samples, 2),
                previous=d.previous, switch=d.switch, threshold=round(d.threshold, 4), far=self.policy.far,
                fpir=self.policy.fpir, tpir=None if self.policy.tpir is None else round(self.policy.tpir, 4),
                table=self.policy.table_label, candidates=[{"name": n, "score": round(s, 4)} for _p, n, s in d.candidates[:3]],
            )
            if d.switch:
                log.info("track %d: %s -> %s (score %.3f)", t.id, d.previous, d.label, d.score)
            if self.gate is not None and not st.gate_requested and st.best is not None and st.best.crop is not None:
                st.gate_requested = True
                if opt.gate_burst > 1 and len(st.recent) > 1:  # the track's last frames: the service checks liveness
                    crops = burst_crops(list(st.recent), opt.gate_crop_margin, opt.gate_crop_min, opt.gate_burst,
                                        opt.gate_burst_s)
                    body: bytes | list[bytes] = [jpeg(c) for c in crops]
                else:
                    body = jpeg(st.best.crop)
                dup = self.gate.submit(GateRequest(t.id, d.label, body, idx, frame.t))
                if dup is not None:
                    self._emit(ev.GATE, frame, **dup)
        self._time("identify", t0)


def watch(
    source: str | int | VideoSource,
    *,
    config: Config | None = None,
    pipeline: Any = None,
    gallery: Any = None,
    events: ev.EventSink | str | Path | IO[str] | None = None,
    options: WatchOptions | None = None,
    gate: GateDispatcher | None = None,
    on_frame: Callable[[Frame, list[TrackView]], None] | None = None,
    source_options: dict[str, Any] | None = None,
) -> WatchResult:
    """Open ``source`` (path, webcam index or URL), watch it to the end, return the figures.

    Events go to ``events`` (a sink, a path or a text stream; None keeps them in memory, in
    ``result.events``). The gallery is opened from ``config`` unless one is given.
    """
    from facegate.gallery import open_gallery
    from facegate.pipeline import Pipeline

    config = config or (pipeline.config if pipeline is not None else Config())
    if pipeline is None:
        pipeline = Pipeline(single_threaded(config))
    own_gallery = gallery is None
    gallery = gallery or open_gallery(config, pipeline=pipeline)
    sink: ev.EventSink
    if events is None:
        sink = ev.MemorySink()
    elif isinstance(events, (str, Path)) or hasattr(events, "write"):
        sink = ev.JsonlSink(events)  # type: ignore[arg-type]
    else:
        sink = events  # type: ignore[assignment]
    try:
        watcher = Watcher(pipeline, gallery, sink, options, gate=gate, on_frame=on_frame)
        src = source if isinstance(source, VideoSource) else open_source(source, **(source_options or {}))
        try:
            result = watcher.run(src)
        finally:
            if src is not source:
                src.close()
        if events is None:
            result.events = sink.events  # type: ignore[attr-defined]
        return result
    finally:
        if sink is not events and events is not None:
            sink.close()
        if own_gallery:
            gallery.close()


__all__ = [
    "UNKNOWN", "WatchOptions", "WatchResult", "Watcher", "appearance", "burst_crops", "face_with_margin", "single_threaded",
    "tracking_detector", "watch",
]
