"""The detector interface: an RGB image in, a list of ``Face`` (box, score, 5 landmarks) out."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from facegate.config import Config
from facegate.types import Face


class Detector(ABC):
    """One face detector. Subclasses load their weights lazily on first use.

    Every detector returns landmarks in dlib's 5-point order (see ``facegate.align``),
    so one alignment template serves all of them.
    """

    name: str = ""

    def __init__(self, config: Config) -> None:
        self.config = config

    @abstractmethod
    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces in one HxWx3 uint8 RGB image, highest score first."""

    def detect_batch(self, images: list[np.ndarray]) -> list[list[Face]]:
        """Faces for several images; detectors that can batch override this."""
        return [self.detect(img) for img in images]
