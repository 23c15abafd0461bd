"""dlib's HOG + linear SVM frontal face detector, with dlib's 5-point landmarks.

Slower than BlazeFace and blind to faces turned far from the camera, but it is the
detector dlib's 5-point predictor and ResNet were built around, so it is the reference
the other detectors' boxes are calibrated against.
"""

from __future__ import annotations

import threading

import numpy as np

from facegate.config import Config
from facegate.detect.base import Detector, rgb_image
from facegate.detect.landmarks import DlibLandmarker
from facegate.detect.scores import finish
from facegate.types import Face

# At upsample 0 dlib's HOG window finds faces whose box is about 80 px or larger; each
# upsampling halves that.
HOG_MIN_FACE = 80


def hog_upsample(min_face_size: int) -> int:
    """Fewest 2x upsamplings that bring ``min_face_size`` up to the HOG window (0, 1, 2...)."""
    up = 0
    size = HOG_MIN_FACE
    while min_face_size < size and up < 2:  # more than 2 costs 16x the pixels: not worth it
        up += 1
        size //= 2
    return up


class HogDetector(Detector):
    """``get_frontal_face_detector()`` (lazy). ``Face.score`` is the SVM margin from ``run()``, calibrated
    (:mod:`facegate.detect.scores`; the margin is kept in ``Face.extra["raw_score"]``).

    ``config.detection_threshold`` is read as a probability and ``margin - margin_at_half`` as its
    logit (``spec.score``, :class:`facegate.models.detectors.ScoreScale`): the default 0.5 keeps
    margins above 0.2 (dlib's own default cut is 0).
    """

    name = "hog"

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self._detector = None
        self._lock = threading.Lock()
        self.landmarker = DlibLandmarker(config)
        self.upsample = hog_upsample(self.min_face)
        self.margin = self.spec.score.raw_cut(config.detection_threshold)

    def _load(self):
        if self._detector is None:
            with self._lock:
                if self._detector is None:
                    import dlib  # local: only needed when this detector is used

                    self._detector = dlib.get_frontal_face_detector()
        return self._detector

    def detect_boxes(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw HOG boxes (N, 4) float32 x1, y1, x2, y2 and margins (N,), highest first."""
        img = rgb_image(image)
        rects, scores, _ = self._load().run(img, self.upsample, self.margin)
        boxes = np.array(
            [(r.left(), r.top(), r.right() + 1, r.bottom() + 1) for r in rects], dtype=np.float32
        ).reshape(-1, 4)
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        order = np.argsort(-scores, kind="stable")
        return boxes[order], scores[order]

    def detect(self, image: np.ndarray) -> list[Face]:
        boxes, scores = self.detect_boxes(image)
        sizes = np.sqrt(np.maximum(boxes[:, 2] - boxes[:, 0], 0) * np.maximum(boxes[:, 3] - boxes[:, 1], 0))
        keep = sizes >= self.min_face
        boxes, scores = boxes[keep], scores[keep]
        landmarks = self.landmarker.fit(image, boxes)
        faces = [
            Face(box=boxes[i].copy(), landmarks=landmarks[i], score=float(scores[i]), detector=self.name)
            for i in range(len(boxes))
        ]
        return finish(faces, self.name, self.config.min_score)
