"""Video sources: a file, a webcam, or a network stream (RTSP, HTTP, ...), as RGB frames.

``open_source("clip.mp4" | "0" | "rtsp://cam/stream")`` picks the kind from the text:
digits are a webcam index, a URL with a streaming scheme is a stream, anything else a file.

Why two kinds of reading:

* **files** are read in order, every frame, by a prefetch thread (decoding overlaps the
  detector's work on the previous frame; OpenCV releases the GIL while decoding). Time
  ``t`` is the frame's media time, ``index / fps``.
* **live sources** (webcams, streams) are read by a thread that keeps only the newest
  ``buffer`` frames: if the analysis is slower than the camera, old frames are dropped
  (counted) rather than piling up, so events stay close to real time. When a live source
  stops delivering (network drop, camera unplugged, server restart) the thread reconnects
  with backoff for up to ``reconnect_timeout`` seconds, reporting ``lost`` and
  ``reconnected``; if the source does not come back, iteration ends with a
  :class:`SourceError` whose message says what was tried.

RTSP is read over TCP by default (``rtsp_transport;tcp`` via OpenCV's
``OPENCV_FFMPEG_CAPTURE_OPTIONS``, unless the caller set that variable): UDP loses packets
on busy networks, which shows up as smeared frames and, worse for tracking, as gaps.
Passwords in URLs are masked in every message and event.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from facegate.errors import ExitCode, FacegateError

log = logging.getLogger(__name__)

STREAM_SCHEMES = {"rtsp", "rtsps", "rtmp", "rtmps", "rtp", "srt", "udp", "tcp", "http", "https"}
_ENV_LOCK = threading.Lock()


class SourceError(FacegateError):
    """A video source that cannot be opened, or a live source that was lost for good."""

    exit_code = ExitCode.SOURCE
    code = "source"


@dataclass
class Frame:
    """One decoded frame: RGB pixels, its number, media time in seconds, and wall-clock time."""

    index: int
    t: float
    image: np.ndarray
    wall: float


def mask_url(url: str) -> str:
    """The URL with any password replaced by ***, safe to log."""
    try:
        p = urllib.parse.urlsplit(url)
    except ValueError:
        return url
    if p.password is None:
        return url
    host = p.hostname or ""
    if p.port:
        host = f"{host}:{p.port}"
    user = urllib.parse.quote(p.username or "", safe="")
    return urllib.parse.urlunsplit((p.scheme, f"{user}:***@{host}", p.path, p.query, p.fragment))


def parse_source(spec: str | int | os.PathLike) -> tuple[str, Any]:
    """("camera", index) | ("stream", url) | ("file", path) for a SOURCE argument."""
    if isinstance(spec, int):
        return "camera", spec
    s = str(spec).strip()
    if s.isdigit():
        return "camera", int(s)
    scheme = urllib.parse.urlsplit(s).scheme.lower()
    if scheme in STREAM_SCHEMES:
        return "stream", s
    return "file", s


def _open_capture(target: Any, kind: str, open_timeout: float, read_timeout: float) -> cv2.VideoCapture:
    if kind == "file":
        return cv2.VideoCapture(str(target))
    params = [
        cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(open_timeout * 1000),
        cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(read_timeout * 1000),
    ]
    if kind == "camera":
        return cv2.VideoCapture(int(target), cv2.CAP_ANY, params)
    scheme = urllib.parse.urlsplit(str(target)).scheme.lower()
    with _ENV_LOCK:  # OpenCV reads its FFmpeg options from the environment at open time
        key = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
        saved = os.environ.get(key)
        if saved is None and scheme in ("rtsp", "rtsps"):
            os.environ[key] = "rtsp_transport;tcp"
        try:
            return cv2.VideoCapture(str(target), cv2.CAP_FFMPEG, params)
        finally:
            if saved is None:
                os.environ.pop(key, None)


class VideoSource:
    """Common interface: iterate ``frames()``, then ``close()``; ``status()`` drains live-source
    status changes (dicts with ``status``: lost, reconnected, gave_up) for the event log."""

    kind = ""
    live = False

    def __init__(self, name: str) -> None:
        self.name = name
        self.fps = 0.0
        self.frame_count: int | None = None
        self.size: tuple[int, int] | None = None  # (width, height)
        self.dropped = 0
        self.reconnects = 0
        self._status: queue.Queue[dict[str, Any]] = queue.Queue()

    def frames(self) -> Iterator[Frame]:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:
        pass

    def status(self) -> list[dict[str, Any]]:
        out = []
        while True:
            try:
                out.append(self._status.get_nowait())
            except queue.Empty:
                return out

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FileSource(VideoSource):
    """A video file, every frame in order, decoded ahead by one thread."""

    kind = "file"

    def __init__(self, path: str | os.PathLike, prefetch: int = 8) -> None:
        super().__init__(str(path))
        p = Path(path)
        if not p.exists():
            raise SourceError(f"{p}: no such file (a webcam is a number like 0, a stream a URL like rtsp://host/path)")
        if p.is_dir():
            raise SourceError(f"{p}: is a directory, not a video file")
        self._cap = _open_capture(p, "file", 0, 0)
        if not self._cap.isOpened():
            raise SourceError(f"{p}: cannot open as a video (unsupported format or codec, or not a video file)")
        fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        if not (0 < fps < 1000):
            log.warning("%s: no frame rate in the file; assuming 25 fps for timestamps", p)
            fps = 25.0
        self.fps = fps
        n = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.frame_count = n if n > 0 else None
        w, h = int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.size = (w, h) if w and h else None
        self._prefetch = max(1, prefetch)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def frames(self) -> Iterator[Frame]:
        q: queue.Queue[Frame | BaseException | None] = queue.Queue(maxsize=self._prefetch)

        def put(item: Frame | BaseException | None) -> bool:
            while not self._stop.is_set():
                try:
                    q.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def reader() -> None:
            i = 0
            try:
                while not self._stop.is_set():
                    ok, bgr = self._cap.read()
                    if not ok:
                        break
                    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                    if not put(Frame(i, i / self.fps, rgb, time.time())):
                        return
                    i += 1
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer
                put(exc)
                return
            put(None)

        self._thread = threading.Thread(target=reader, name="facegate-decode", daemon=True)
        self._thread.start()
        while True:
            item = q.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise SourceError(f"{self.name}: decoding failed: {item}") from item
            yield item

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        self._cap.release()


class LiveSource(VideoSource):
    """A webcam or network stream: newest frames only, reconnect on loss (see module doc)."""

    live = True

    def __init__(
        self,
        target: Any,
        kind: str,
        *,
        reconnect_timeout: float = 30.0,
        open_timeout: float = 10.0,
        read_timeout: float = 5.0,
        connect_attempts: int = 3,
        buffer: int = 4,
    ) -> None:
        name = f"camera {target}" if kind == "camera" else mask_url(str(target))
        super().__init__(name)
        self.kind = kind
        self.target = target
        self.reconnect_timeout = reconnect_timeout
        self.open_timeout = open_timeout
        self.read_timeout = read_timeout
        self._buffer = max(1, buffer)
        self._cap = self._connect(connect_attempts)
        if self._cap is None:
            raise SourceError(
                f"cannot open {self.name} ({connect_attempts} attempts): check the address, that the "
                f"{'camera is connected and not in use' if kind == 'camera' else 'server is running and reachable'}"
            )
        self._describe(self._cap)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._finite = False
        if kind == "stream" and urllib.parse.urlsplit(str(target)).scheme.lower() in ("http", "https"):
            self._finite = bool(self.frame_count)  # a video file served over HTTP ends; a live one does not

    def _describe(self, cap: cv2.VideoCapture) -> None:
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if 0 < fps < 1000 else 25.0
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.frame_count = n if n > 0 else None
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.size = (w, h) if w and h else None

    def _try_open(self) -> cv2.VideoCapture | None:
        cap = _open_capture(self.target, self.kind, self.open_timeout, self.read_timeout)
        if cap.isOpened():
            return cap
        cap.release()
        return None

    def _connect(self, attempts: int) -> cv2.VideoCapture | None:
        for i in range(max(1, attempts)):
            if i:
                time.sleep(min(0.5 * 2 ** (i - 1), 2.0))
            cap = self._try_open()
            if cap is not None:
                return cap
            log.info("%s: open attempt %d/%d failed", self.name, i + 1, attempts)
        return None

    def _reconnect(self) -> cv2.VideoCapture | None:
        """Reopen with backoff until ``reconnect_timeout`` has passed; None if it never came back."""
        start = time.monotonic()
        attempt = 0
        delay = 0.25
        while not self._stop.is_set():
            attempt += 1
            cap = self._try_open()
            if cap is not None:
                self.reconnects += 1
                self._status.put(
                    {"status": "reconnected", "attempts": attempt, "downtime": round(time.monotonic() - start, 2)}
                )
                log.warning("%s: reconnected after %.1f s (%d attempts)", self.name, time.monotonic() - start, attempt)
                return cap
            if time.monotonic() - start + delay > self.reconnect_timeout:
                self._status.put({"status": "gave_up", "attempts": attempt, "downtime": round(time.monotonic() - start, 2)})
                self._gave_up = (attempt, time.monotonic() - start)
                return None
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
        return None

    def frames(self) -> Iterator[Frame]:
        q: queue.Queue[Frame | BaseException | None] = queue.Queue(maxsize=self._buffer)
        t0 = time.monotonic()
        self._gave_up: tuple[int, float] | None = None

        def push(item: Frame | BaseException | None) -> None:
            while True:
                try:
                    q.put_nowait(item)
                    return
                except queue.Full:
                    try:
                        old = q.get_nowait()
                        if isinstance(old, Frame):
                            self.dropped += 1
                    except queue.Empty:
                        pass

        def reader() -> None:
            i = 0
            cap = self._cap
            try:
                while not self._stop.is_set():
                    ok, bgr = cap.read() if cap is not None else (False, None)
                    if ok and bgr is not None:
                        push(Frame(i, time.monotonic() - t0, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), time.time()))
                        i += 1
                        continue
                    if self._stop.is_set():
                        break
                    if self._finite:
                        break
                    log.warning("%s: no frame (stream dropped?); reconnecting for up to %.0f s", self.name, self.reconnect_timeout)
                    self._status.put({"status": "lost", "after_frames": i})
                    if cap is not None:
                        cap.release()
                    cap = self._cap = self._reconnect()
                    if cap is None:
                        if not self._stop.is_set():
                            attempts, waited = self._gave_up or (0, 0.0)
                            push(
                                SourceError(
                                    f"{self.name}: stream lost after {i} frames and not back within "
                                    f"{self.reconnect_timeout:.0f} s ({attempts} reconnect attempts); giving up"
                                )
                            )
                        return
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer
                push(exc)
                return
            push(None)

        self._thread = threading.Thread(target=reader, name="facegate-capture", daemon=True)
        self._thread.start()
        while True:
            try:
                item = q.get(timeout=0.5)
            except queue.Empty:
                if self._thread is not None and not self._thread.is_alive() and q.empty():
                    return
                continue
            if item is None:
                return
            if isinstance(item, SourceError):
                raise item
            if isinstance(item, BaseException):
                raise SourceError(f"{self.name}: reading failed: {item}") from item
            yield item

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.read_timeout + 2.0)
        if self._cap is not None:
            self._cap.release()


def open_source(spec: str | int | os.PathLike, **options: Any) -> VideoSource:
    """The source named by ``spec`` (see the module docstring); ``options`` go to live sources
    (``reconnect_timeout``, ``open_timeout``, ``read_timeout``, ``connect_attempts``, ``buffer``)."""
    kind, target = parse_source(spec)
    if kind == "file":
        return FileSource(target)
    return LiveSource(target, kind, **options)
