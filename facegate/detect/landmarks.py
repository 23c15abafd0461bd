"""dlib's 5-point shape predictor, shared by every detector that has no 5-point landmarks of its own.

The predictor was trained on boxes from dlib's HOG detector, so its accuracy depends on
being started from a box of the same size and position relative to the face. A detector
whose boxes are framed differently (BlazeFace's are larger and sit lower) maps them to
dlib-like boxes with a :class:`BoxAdjust` first; the constants for each detector are in
``BOX_ADJUST`` together with how they were measured.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from facegate.config import Config
from facegate.errors import InvalidImageError


@dataclass(frozen=True)
class BoxAdjust:
    """Maps a detector's box to the box dlib's HOG detector would draw around the same face.

    With the detector box's centre (cx, cy), width w and height h, the dlib-like box has
    centre (cx + dx * w, cy + dy * h), width ``sx * w`` and height ``sy * h``.
    """

    sx: float = 1.0
    sy: float = 1.0
    dx: float = 0.0
    dy: float = 0.0

    def apply(self, boxes: np.ndarray) -> np.ndarray:
        """(N, 4) x1, y1, x2, y2 boxes in, (N, 4) float32 dlib-like boxes out."""
        b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        w = b[:, 2] - b[:, 0]
        h = b[:, 3] - b[:, 1]
        cx = (b[:, 0] + b[:, 2]) / 2 + self.dx * w
        cy = (b[:, 1] + b[:, 3]) / 2 + self.dy * h
        hw = self.sx * w / 2
        hh = self.sy * h / 2
        return np.stack([cx - hw, cy - hh, cx + hw, cy + hh], axis=1).astype(np.float32)


# Per-detector box adjustments, relative to the detector's own box. BlazeFace's were
# measured with ``benchmarks/detector_quality.py --calibrate --lfw-limit 600``: 600 LFW
# images spread evenly over the sorted file list; both detectors run on each; the one
# HOG box and the one raw BlazeFace box containing the image centre paired (IoU >= 0.3;
# 597 pairs, 593 with the HOG cut of 0.2 now in use, same medians within 0.001); per
# pair HOG width / BlazeFace width (sx), height ratio (sy) and the centre offset
# (HOG - BlazeFace) over the BlazeFace width (dx) and height (dy); the constants
# are the medians (interquartile ranges: sx 0.899-1.003, sy 0.895-0.994, dx -0.041 to
# -0.012, dy -0.033 to +0.019). Landmarks fitted from the adjusted boxes then lie a median
# 0.18% of the box side from those fitted from the HOG boxes (90th percentile 0.63%;
# 0.73% without the adjustment): dlib's predictor is forgiving, the boxes nearly agree.
# LFW faces are about 80 px at BlazeFace's input; on small faces (16-30 px at the input,
# as in tiles of large photos) the adjusted box came out about 6% smaller than HOG's in
# the pasted-face benchmark, so such faces measure slightly small against min_face_size.
BOX_ADJUST: dict[str, BoxAdjust] = {
    "hog": BoxAdjust(),
    "blazeface": BoxAdjust(sx=0.951, sy=0.944, dx=-0.026, dy=-0.001),
}


def adjust_boxes(boxes: np.ndarray, detector: str) -> np.ndarray:
    """Dlib-like boxes for ``detector``'s boxes (identity for detectors without an entry)."""
    return BOX_ADJUST.get(detector, BoxAdjust()).apply(boxes)


class DlibLandmarker:
    """dlib's 5-point predictor (``shape_predictor_5_face_landmarks.dat``), loaded once, lazily."""

    def __init__(self, config: Config | None = None) -> None:
        self.config = config or Config()
        self._predictor = None
        self._lock = threading.Lock()

    def _load(self):
        if self._predictor is None:
            with self._lock:
                if self._predictor is None:
                    import dlib  # local: dlib is only needed once landmarks are asked for

                    from facegate.models.registry import REGISTRY, verified_path

                    path = verified_path(REGISTRY["dlib_5_landmarks"])
                    self._predictor = dlib.shape_predictor(str(path))
        return self._predictor

    def fit(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """Five landmarks per box: (N, 5, 2) float32 in image pixels, dlib's order.

        ``boxes`` are (N, 4) float x1, y1, x2, y2, already dlib-like (see ``adjust_boxes``).
        Boxes may reach past the image border; the predictor reads pixels outside as black.
        """
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        if len(boxes) == 0:
            return np.zeros((0, 5, 2), dtype=np.float32)
        image = _as_dlib_image(image)
        import dlib

        predictor = self._load()
        out = np.empty((len(boxes), 5, 2), dtype=np.float32)
        for i, (x1, y1, x2, y2) in enumerate(boxes):
            # dlib rectangles are integer and inclusive of both ends (HOG boxes are e.g. 80 px
            # wide with right = left + 79), so a float box [x1, x2) becomes [x1, x2 - 1].
            rect = dlib.rectangle(int(round(x1)), int(round(y1)), int(round(x2)) - 1, int(round(y2)) - 1)
            shape = predictor(image, rect)
            for j in range(5):
                p = shape.part(j)
                out[i, j] = (p.x, p.y)
        return out


def _as_dlib_image(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3 or img.shape[0] == 0 or img.shape[1] == 0:
        raise InvalidImageError(f"expected an HxWx3 uint8 RGB image, got shape {img.shape} dtype {img.dtype}")
    return np.ascontiguousarray(img)
