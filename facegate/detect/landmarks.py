"""dlib's 5-point shape predictor, shared by every detector that has no 5-point landmarks of its own.

The predictor was trained on boxes from dlib's HOG detector, so its accuracy depends on
being started from a box of the same size and position relative to the face. A detector
whose boxes are framed differently (BlazeFace's are larger and sit lower, MTCNN's tighter)
maps them to dlib-like boxes with a :class:`facegate.detect.boxes.BoxAdjust` first; each
detector's constants live in its own module with how they were measured
(``blazeface.BOX_ADJUST_BLAZEFACE``, ``mtcnn.BOX_ADJUST_MTCNN``).
"""

from __future__ import annotations

import threading

import numpy as np

from facegate.config import Config
from facegate.detect.base import rgb_image


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

        ``boxes`` are (N, 4) float x1, y1, x2, y2, already dlib-like (see ``boxes.BoxAdjust``).
        Boxes may reach past the image border; the predictor reads pixels outside as black.
        """
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        if len(boxes) == 0:
            return np.zeros((0, 5, 2), dtype=np.float32)
        image = rgb_image(image)
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
