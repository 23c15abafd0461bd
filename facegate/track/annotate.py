"""Drawing tracks on frames, for a person to check what ``watch`` decided.

Colours say the state of a track's name: green a named person, red "unknown", amber not
decided yet; the label is ``#id name score``. Boxes between detections are the tracker's
predictions, drawn thinner, so a viewer can tell measured from predicted positions.
OpenCV's built-in font has no accents: names are drawn transliterated to ASCII.
"""

from __future__ import annotations

import logging
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from facegate.errors import UsageError
from facegate.files import create_private

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


class VideoWriter:
    """An MP4 (MPEG-4 part 2, 'mp4v': the codec every OpenCV wheel can write) opened on the first frame."""

    def __init__(self, path: str | Path, fps: float) -> None:
        self.path = Path(path)
        self.fps = fps if fps > 0 else 25.0
        self._writer: cv2.VideoWriter | None = None
        self.frames = 0

    def write(self, bgr: np.ndarray) -> None:
        if self._writer is None:
            create_private(self.path)  # faces and names: 0600; the writer truncates it and keeps the mode
            h, w = bgr.shape[:2]
            self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (w, h))
            if not self._writer.isOpened():
                raise UsageError(f"{self.path}: cannot write an MP4 video there")
        self._writer.write(bgr)
        self.frames += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            log.info("annotated video: %s (%d frames)", self.path, self.frames)


def save_png(path: str | Path, bgr: np.ndarray) -> Path:
    p = Path(path)
    create_private(p)  # OpenCV truncates it and keeps the mode
    if not cv2.imwrite(str(p), bgr):
        raise UsageError(f"{p}: cannot write a PNG there")
    return p
