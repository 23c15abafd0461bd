"""Drawing tracks on frames, for a person to check what ``watch`` decided.

Colours say the state of a track's name: green a named person, red "unknown", amber not
decided yet; the label is ``#id name score``. Boxes between detections are the tracker's
predictions, drawn thinner, so a viewer can tell measured from predicted positions.
OpenCV's built-in font has no accents: names are drawn transliterated to ASCII.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
import shutil
import subprocess
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import cv2
import numpy as np

from facegate.errors import UsageError
from facegate.files import create_private
from facegate.native_stderr import filtered_stderr

log = logging.getLogger(__name__)

# BGR, as OpenCV draws
GREEN = (60, 200, 60)
RED = (50, 50, 230)
AMBER = (0, 190, 255)


@dataclass(frozen=True)
class TrackView:
    """What is drawn for one track on one frame."""

    id: int
    box: tuple[float, float, float, float]
    label: str | None  # None = undecided
    score: float | None
    detected: bool  # a detection this frame (else the box is predicted)


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode() or "?"


def draw(image_rgb: np.ndarray, views: list[TrackView], caption: str | None = None) -> np.ndarray:
    """A BGR copy of the frame with the tracks drawn on it."""
    out = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR)
    h, w = out.shape[:2]
    scale = max(0.4, min(1.2, h / 720))
    thick = max(1, int(round(2 * scale)))
    for v in views:
        colour = AMBER if v.label is None else (RED if v.label == "unknown" else GREEN)
        x1, y1, x2, y2 = (int(round(c)) for c in v.box)
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, thick if v.detected else max(1, thick // 2), cv2.LINE_AA)
        text = f"#{v.id} {_ascii(v.label) if v.label else '...'}"
        if v.score is not None and np.isfinite(v.score) and v.label is not None:
            text += f" {v.score:.2f}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale, 1)
        ty = y1 - 4 if y1 - th - base - 4 > 0 else y2 + th + 4
        cv2.rectangle(out, (x1, ty - th - base), (x1 + tw + 4, ty + base), colour, -1)
        cv2.putText(out, text, (x1 + 2, ty), cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale, (0, 0, 0), 1, cv2.LINE_AA)
    if caption:
        cv2.putText(out, caption, (8, h - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale, (255, 255, 255), 1, cv2.LINE_AA)
    return out


H264 = "h264"  # what browsers play (the <video> element on every platform)
MPEG4 = "mp4v"  # MPEG-4 Part 2: every OpenCV wheel writes it, no browser plays it
_MP4_SUFFIXES = {".mp4", ".m4v", ".mov"}
OPENCV_H264 = ("avc1",)  # the fourcc OpenCV builds with an H.264 encoder accept


@functools.lru_cache(maxsize=1)
def ffmpeg_with_h264() -> str | None:
    """The ``ffmpeg`` program when it is installed with the libx264 encoder (Debian's is), else None."""
    exe = shutil.which("ffmpeg")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "-hide_banner", "-encoders"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return exe if re.search(r"^\s*V\S*\s+libx264\s", out, re.M) else None


class VideoWriter:
    """The annotated video, opened on the first frame, in the first of these that works:

    1. H.264 through OpenCV (``avc1``), where its build has an H.264 encoder (the PyPI wheels do not: H.264
       encoders are GPL or patent-encumbered);
    2. H.264 through the ``ffmpeg`` program with libx264 (``apt-get install ffmpeg``), frames piped in raw;
    3. MPEG-4 Part 2 (``mp4v``), which every OpenCV wheel writes but browsers do not play: then ``note``
       says so and how to get H.264, and a warning is logged, so the choice is never silent.

    ``codec`` says which was used. The file is created 0600 (faces and names)."""

    def __init__(self, path: str | Path, fps: float) -> None:
        self.path = Path(path)
        self.fps = fps if fps > 0 else 25.0
        self._writer: cv2.VideoWriter | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._errors: IO[bytes] | None = None
        self.frames = 0
        self.codec: str | None = None
        self.note: str | None = None

    @property
    def browser_playable(self) -> bool:
        return self.codec == H264

    def _open(self, w: int, h: int) -> None:
        create_private(self.path)  # faces and names: 0600; every writer below truncates it and keeps the mode
        for fourcc in OPENCV_H264:
            with filtered_stderr(level=logging.DEBUG):  # OpenCV's FFmpeg says "tag not supported" on fd 2
                writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*fourcc), self.fps, (w, h))
            if writer.isOpened():
                self._writer, self.codec = writer, H264
                return
            writer.release()
        exe = ffmpeg_with_h264()
        if exe is not None:
            cmd = [exe, "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "bgr24",
                   "-s", f"{w}x{h}", "-r", f"{self.fps:g}", "-i", "-",
                   "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2",  # yuv420p needs even sides
                   "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p"]
            if self.path.suffix.lower() in _MP4_SUFFIXES:
                cmd += ["-movflags", "+faststart"]  # playable while it downloads
            self._errors = tempfile.TemporaryFile()
            self._proc = subprocess.Popen([*cmd, str(self.path)], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                          stderr=self._errors)
            self.codec = H264
            return
        self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*MPEG4), self.fps, (w, h))
        if not self._writer.isOpened():
            raise UsageError(f"{self.path}: cannot write a video there")
        self.codec = MPEG4
        self.note = ("written as MPEG-4 Part 2, which browsers do not play: install the ffmpeg program "
                     "(apt-get install ffmpeg) for H.264, or convert it with ffmpeg -i IN -c:v libx264 OUT.mp4")
        log.warning("%s: %s", self.path, self.note)

    def write(self, bgr: np.ndarray) -> None:
        if self.codec is None:
            self._open(bgr.shape[1], bgr.shape[0])
        if self._proc is not None:
            assert self._proc.stdin is not None
            try:
                self._proc.stdin.write(np.ascontiguousarray(bgr).tobytes())
            except (BrokenPipeError, OSError) as exc:
                raise UsageError(f"{self.path}: ffmpeg stopped writing the video: {self._ffmpeg_error()}") from exc
        else:
            assert self._writer is not None
            self._writer.write(bgr)
        self.frames += 1

    def _ffmpeg_error(self) -> str:
        if self._errors is None:
            return "no message"
        self._errors.seek(0)
        lines = self._errors.read().decode("utf-8", "replace").strip().splitlines()
        return lines[-1] if lines else "no message"

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
        if self._proc is not None:
            assert self._proc.stdin is not None
            with contextlib.suppress(OSError):
                self._proc.stdin.close()
            try:
                code = self._proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                code = self._proc.wait()
            if code != 0:
                self.note = f"ffmpeg failed to finish the video (exit {code}): {self._ffmpeg_error()}"
                log.error("%s: %s", self.path, self.note)
            if self._errors is not None:
                self._errors.close()
        if self.codec is not None:
            log.info("annotated video: %s (%d frames, %s)", self.path, self.frames, self.codec)


def save_png(path: str | Path, bgr: np.ndarray) -> Path:
    p = Path(path)
    create_private(p)  # OpenCV truncates it and keeps the mode
    if not cv2.imwrite(str(p), bgr):
        raise UsageError(f"{p}: cannot write a PNG there")
    return p
