"""The detector interface: an RGB image in, a list of ``Face`` (box, score, 5 landmarks) out."""
# Landmarks: each detector reports its native scheme (see facegate.align). dlib's 5-point
# predictor is run only where the configured embedder's template needs dlib5 points, or where
# the detector has no points of its own.

from __future__ import annotations

from abc import ABC, abstractmethod
from functools import cached_property

import numpy as np

from facegate.config import Config
from facegate.types import Face


class Detector(ABC):
    """One face detector. Subclasses load their weights lazily on first use.

    Every detector returns landmarks of a named scheme (``Face.scheme``): its native points,
    and dlib's five as well when the configured embedder is aligned on them.
    """

    name: str = ""

    def __init__(self, config: Config) -> None:
        self.config = config

    @cached_property
    def wanted_scheme(self) -> str:
        """The landmark scheme the configured embedder's template is defined in."""
        from facegate.models.registry import get_spec

        return get_spec(self.config.embedder, self.config).scheme

    @abstractmethod
    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces in one HxWx3 uint8 RGB image, highest score first."""

    def detect_batch(self, images: list[np.ndarray]) -> list[list[Face]]:
        """Faces for several images; detectors that can batch override this."""
        return [self.detect(img) for img in images]
