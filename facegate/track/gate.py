"""Gate mode: one access decision per person passing, asked of the facegate service.

Contract (the service's gate check)::

    POST {server}/api/v1/gates/{gate}/check
    X-API-Key: <key>
    multipart/form-data, field "image" once per frame: JPEGs of the face with margin, one frame or a
    burst of the track's last frames (the same crop rectangle in each, so motion is measurable)
    -> 200 {"gate", "decision": "allow"|"deny", "person_id", "name", "score", "threshold",
            "far", "fpir", "tpir", "rule", "warnings", "event_id", "faces",
            "reason", "message", "liveness", "frames", "frames_without_face", "table"}

The decision is the service's (its gallery's FPIR policy, :mod:`facegate.decide`, the gate's
liveness setting, :func:`facegate.liveness.check_presentation`, and its access list); this client
relays it, with the rate and the bar it was taken at (and, for a refused presentation, the
liveness score, threshold and APCER/BPCER instead of a name), into the event.

Why a background thread: a gate camera must keep tracking while the service answers (or
times out and is retried), so requests go through a queue and answers come back through
another one that ``watch`` drains once per frame; the video loop never waits on the network.

Why deduplication: the tracker may follow one person for minutes; the door should open (and
the audit log record) once. A track is posted at most once, when its name is first decided,
with its best shot so far. If the tracker loses someone briefly (occlusion) and picks them up
as a new track, the locally decided name ties the two: a named person who already got a
decision from a live track, or from one that ended less than ``cooldown`` seconds (media
time) ago, is not posted again; the event says which earlier decision stands.

Errors never stop the video: connection errors, timeouts, 5xx, 408 and 429 are retried with
backoff, then reported as a ``gate`` event with ``error`` and a logged warning; other 4xx
(wrong key, unknown gate) are not retried, since repeating them cannot help.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

RETRY_STATUS = {408, 429, 500, 502, 503, 504}
ANSWER_KEYS = ("decision", "person_id", "name", "score", "threshold", "far", "fpir", "tpir", "rule", "event_id", "faces",
               "reason", "message", "liveness", "frames", "frames_without_face", "table")


class GateError(Exception):
    """A gate check that failed for good (after retries, or not retryable)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def multipart(field_name: str, filename: str, content: bytes | list[bytes], content_type: str) -> tuple[bytes, str]:
    """(body, content-type header) of a multipart/form-data request with the file field ``field_name``
    once per item of ``content`` (one file, or several: a burst is the field repeated, in order)."""
    boundary = f"facegate-{uuid.uuid4().hex}"
    parts = [content] if isinstance(content, (bytes, bytearray)) else list(content)
    body = b""
    for i, data in enumerate(parts):
        name = filename if len(parts) == 1 else filename.replace(".", f"_{i + 1}.", 1)
        body += (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="{field_name}"; filename="{name}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n"
        ).encode() + bytes(data) + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


@dataclass
class GateClient:
    """Synchronous client of one gate: ``check(jpeg)`` or ``check([jpeg, ...])`` (a burst) returns the
    service's JSON answer."""

    server: str
    gate: str
    key: str
    timeout: float = 5.0
    retries: int = 3  # attempts in all
    backoff: float = 0.5  # seconds before the 2nd attempt, doubled each time

    @property
    def url(self) -> str:
        return f"{self.server.rstrip('/')}/api/v1/gates/{urllib.parse.quote(self.gate, safe='')}/check"

    def check(self, jpeg: bytes | list[bytes]) -> dict[str, Any]:
        body, ctype = multipart("image", "face.jpg", jpeg, "image/jpeg")
        last: GateError | None = None
        for attempt in range(max(1, self.retries)):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            req = urllib.request.Request(
                self.url,
                data=body,
                method="POST",
                headers={"X-API-Key": self.key, "Content-Type": ctype, "Accept": "application/json"},
            )
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    payload = resp.read()
                try:
                    answer = json.loads(payload)
                except ValueError as exc:
                    raise GateError(f"gate check answered with something that is not JSON: {payload[:80]!r}") from exc
                if not isinstance(answer, dict) or "decision" not in answer:
                    raise GateError(f"gate check answer has no decision: {str(answer)[:120]}")
                return answer
            except urllib.error.HTTPError as exc:
                detail = _detail(exc)
                last = GateError(f"gate check failed: HTTP {exc.code} {detail}".strip(), exc.code)
                if exc.code not in RETRY_STATUS:
                    raise last from None
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                last = GateError(f"gate check failed: {type(exc).__name__}: {reason}")
            log.warning("gate %s: attempt %d/%d: %s", self.gate, attempt + 1, self.retries, last)
        assert last is not None
        raise last


def _detail(exc: urllib.error.HTTPError) -> str:
    try:
        raw = exc.read()[:300]
        data = json.loads(raw)
        if isinstance(data, dict):
            return str(data.get("detail") or data.get("error") or data)[:200]
        return str(data)[:200]
    except Exception:  # noqa: BLE001 - an error body is best-effort context
        return ""


@dataclass
class GateRequest:
    track: int
    name: str | None  # local decision, for deduplication only; the service decides
    jpeg: bytes | list[bytes]  # one JPEG, or a burst of the track's last frames (oldest first)
    frame: int
    t: float

    @property
    def frames(self) -> int:
        return 1 if isinstance(self.jpeg, (bytes, bytearray)) else len(self.jpeg)


@dataclass
class _Posted:
    track: int
    t_end: float | None = None  # media time the track ended; None while it lives
    result: dict[str, Any] = field(default_factory=dict)


class GateDispatcher:
    """Posts decisions in a worker thread, at most one per track and per person (see module doc).

    ``submit`` returns None when a request was queued, or a ready ``gate`` event payload when
    it was deduplicated; ``results()`` yields the answers that arrived since the last call.
    """

    def __init__(self, client: GateClient, cooldown: float = 10.0) -> None:
        self.client = client
        self.cooldown = cooldown
        self._posted_tracks: set[int] = set()
        self._by_name: dict[str, _Posted] = {}
        self._todo: queue.Queue[GateRequest | None] = queue.Queue()
        self._done: queue.Queue[dict[str, Any]] = queue.Queue()
        self._pending = 0
        self._lock = threading.Lock()
        self._worker = threading.Thread(target=self._run, name="facegate-gate", daemon=True)
        self._worker.start()
        self.posted = 0
        self.deduplicated = 0
        self.failed = 0

    def submit(self, req: GateRequest) -> dict[str, Any] | None:
        if req.track in self._posted_tracks:
            self.deduplicated += 1
            return {"track": req.track, "deduplicated": True, "reason": "track already has a decision"}
        self._posted_tracks.add(req.track)
        if req.name and req.name != "unknown":
            prev = self._by_name.get(req.name)
            if prev is not None and (prev.t_end is None or req.t - prev.t_end < self.cooldown):
                self.deduplicated += 1
                return {
                    "track": req.track,
                    "deduplicated": True,
                    "same_as_track": prev.track,
                    "name": req.name,
                    "decision": prev.result.get("decision"),
                    "event_id": prev.result.get("event_id"),
                    "reason": f"{req.name} already has a decision from track {prev.track}",
                }
            self._by_name[req.name] = _Posted(req.track)
        with self._lock:
            self._pending += 1
        self._todo.put(req)
        return None

    def track_ended(self, track: int, t: float) -> None:
        """Start the person's cooldown when their track ends."""
        for p in self._by_name.values():
            if p.track == track and p.t_end is None:
                p.t_end = t

    def results(self) -> list[dict[str, Any]]:
        out = []
        while True:
            try:
                out.append(self._done.get_nowait())
            except queue.Empty:
                return out

    @property
    def pending(self) -> int:
        with self._lock:
            return self._pending

    def close(self, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Wait (up to ``timeout`` s) for queued requests, stop the worker; the last answers."""
        deadline = time.monotonic() + timeout
        while self.pending and time.monotonic() < deadline:
            time.sleep(0.02)
        if self.pending:
            log.warning("gate: %d decision request(s) still unanswered at exit", self.pending)
        self._todo.put(None)
        self._worker.join(timeout=max(0.0, deadline - time.monotonic()) + 0.1)
        return self.results()

    def _run(self) -> None:
        while True:
            req = self._todo.get()
            if req is None:
                return
            out: dict[str, Any] = {"track": req.track, "requested_frame": req.frame, "requested_t": req.t,
                                   "sent_frames": req.frames}
            try:
                answer = self.client.check(req.jpeg)
                out.update({k: answer.get(k) for k in ANSWER_KEYS})
                self.posted += 1
                if req.name and req.name in self._by_name and self._by_name[req.name].track == req.track:
                    self._by_name[req.name].result = answer
            except GateError as exc:
                self.failed += 1
                log.warning("gate %s: no decision for track %d: %s", self.client.gate, req.track, exc)
                out.update({"decision": None, "error": str(exc), "status": exc.status})
            except Exception as exc:  # noqa: BLE001 - the worker must survive anything
                self.failed += 1
                log.warning("gate %s: no decision for track %d: %s: %s", self.client.gate, req.track, type(exc).__name__, exc)
                out.update({"decision": None, "error": f"{type(exc).__name__}: {exc}"})
            self._done.put(out)
            with self._lock:
                self._pending -= 1
