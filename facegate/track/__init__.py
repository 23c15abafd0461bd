"""Video: follow faces through a file, webcam or stream, name each track, report who came and went.

::

    from facegate.track import watch, WatchOptions
    result = watch("clip.mp4", config=Config(), events="events.jsonl")   # JSONL events
    print(result.fps, result.tracks, result.switches)

Stages, one module each: :mod:`.sources` (file / webcam / RTSP with reconnect),
:mod:`.scene` (shot cuts), :mod:`.tracker` (Kalman + ByteTrack-style association),
:mod:`.identity` (quality-weighted aggregation, vote, hysteresis), :mod:`.events` (JSONL),
:mod:`.gate` (one access decision per person from the service), :mod:`.annotate`
(boxes on frames, MP4), :mod:`.watch` (the loop over the shared :class:`~facegate.pipeline.Pipeline`
and the gallery), :mod:`.metrics` (id and name switches). Importing this package loads no model.
"""

from __future__ import annotations

from facegate.track.events import JsonlSink, MemorySink, check_order, make_event, read_events
from facegate.track.identity import UNKNOWN, Decision, QualityModel, TrackIdentity, VotePolicy
from facegate.track.sources import Frame, SourceError, VideoSource, open_source, parse_source
from facegate.track.tracker import KalmanBox, Track, Tracker, TrackerConfig
from facegate.track.watch import Watcher, WatchOptions, WatchResult, watch

__all__ = [
    "UNKNOWN",
    "Decision",
    "Frame",
    "JsonlSink",
    "KalmanBox",
    "MemorySink",
    "QualityModel",
    "SourceError",
    "Track",
    "TrackIdentity",
    "Tracker",
    "TrackerConfig",
    "VideoSource",
    "VotePolicy",
    "WatchOptions",
    "WatchResult",
    "Watcher",
    "check_order",
    "make_event",
    "open_source",
    "parse_source",
    "read_events",
    "watch",
]
