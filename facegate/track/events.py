"""``watch`` events: what happened, when, to which track, as one JSON object per line.

Event kinds, in the order a track produces them::

    start       a track was confirmed (first_frame/first_t: when it was first seen)
    identified  its name was decided or changed (name, person_id, score, share, previous, switch)
    gate        gate mode: the service's access decision for it (or why there is none); it
                comes when the service answers, so it may follow the track's ``left``
    left        it ended (last_frame/last_t: when it was last seen; reason: lost, scene_cut, end)

plus ``source`` (a live stream dropped, reconnected, or was given up on) and one closing
``end`` with the run's figures. Every event has ``event``, ``frame`` and ``t`` (media
seconds of the frame at which the event was *emitted*; non-decreasing through the file,
so the file can be read as a log) and ``wall`` (UTC ISO time, for live sources).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import threading
from pathlib import Path
from typing import IO, Any, Protocol

from facegate.files import open_private

START = "start"
IDENTIFIED = "identified"
GATE = "gate"
LEFT = "left"
SOURCE = "source"
END = "end"
KINDS = (START, IDENTIFIED, GATE, LEFT, SOURCE, END)


def _clean(v: Any) -> Any:
    """JSON-safe values: NaN/inf become null, numpy scalars and arrays plain Python."""
    if hasattr(v, "tolist"):
        v = v.tolist()
    if isinstance(v, float):
        return None if not math.isfinite(v) else round(v, 4)
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    return v


def make_event(kind: str, frame: int, t: float, **fields: Any) -> dict[str, Any]:
    """One event record; ``fields`` are added after the common keys."""
    if kind not in KINDS:
        raise ValueError(f"unknown event kind {kind!r}")
    now = _dt.datetime.now(_dt.UTC).isoformat(timespec="milliseconds")
    ev: dict[str, Any] = {"event": kind, "frame": int(frame), "t": round(float(t), 3), "wall": now}
    ev.update({k: _clean(v) for k, v in fields.items()})
    return ev


class EventSink(Protocol):
    def emit(self, event: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


class JsonlSink:
    """Writes events as JSON lines, flushed one by one so a consumer can follow the file live."""

    def __init__(self, target: str | Path | IO[str]) -> None:
        if isinstance(target, (str, Path)):
            self._fh: IO[str] = open_private(target, "w", encoding="utf-8")  # names, times: 0600
            self._own = True
        else:
            self._fh = target
            self._own = False
        self._lock = threading.Lock()

    def emit(self, event: dict[str, Any]) -> None:
        line = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
        with self._lock:
            self._fh.write(line + "\n")
            self._fh.flush()

    def close(self) -> None:
        if self._own:
            self._fh.close()


class MemorySink:
    """Keeps events in a list (tests, benchmarks)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def emit(self, event: dict[str, Any]) -> None:
        self.events.append(event)

    def close(self) -> None:
        pass

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == kind]


class FanOut:
    """Sends every event to several sinks."""

    def __init__(self, *sinks: EventSink) -> None:
        self.sinks = list(sinks)

    def emit(self, event: dict[str, Any]) -> None:
        for s in self.sinks:
            s.emit(event)

    def close(self) -> None:
        for s in self.sinks:
            s.close()


def read_events(path: str | Path) -> list[dict[str, Any]]:
    """Events of a JSONL file written by ``watch``."""
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def check_order(events: list[dict[str, Any]]) -> list[str]:
    """Problems with an event log's order (empty when it is well-formed):
    frames non-decreasing; per track: one start first, left last, nothing after left."""
    problems: list[str] = []
    last_frame = -1
    state: dict[int, str] = {}
    for i, ev in enumerate(events):
        if ev["frame"] < last_frame:
            problems.append(f"event {i}: frame {ev['frame']} after frame {last_frame}")
        last_frame = max(last_frame, ev["frame"])
        tid = ev.get("track")
        if tid is None or ev["event"] in (SOURCE, END):
            continue
        st = state.get(tid)
        if ev["event"] == START:
            if st is not None:
                problems.append(f"event {i}: second start of track {tid}")
            state[tid] = START
        elif st is None:
            problems.append(f"event {i}: {ev['event']} of track {tid} before its start")
        elif st == LEFT and ev["event"] != GATE:  # the service may answer after the person left
            problems.append(f"event {i}: {ev['event']} of track {tid} after it left")
        elif ev["event"] == LEFT:
            state[tid] = LEFT
    return problems
