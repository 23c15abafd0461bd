"""The detector interface: an RGB image in, a list of ``Face`` (box, score, 5 landmarks) out."""
# Landmarks: each detector reports its native scheme (see facegate.align). dlib's 5-point
# predictor is run only where the configured embedder's template needs dlib5 points, or where
# the detector has no points of its own.

from __future__ import annotations

from abc import ABC, abstractmethod
from functools import cached_property

import numpy as np

from facegate.config import Config
from facegate.errors import InvalidImageError
from facegate.models import detectors
from facegate.models.detectors import DetectorSpec
from facegate.types import Face


class Detector(ABC):
    """One face detector. Subclasses load their weights lazily on first use.

    Every detector returns landmarks of a named scheme (``Face.scheme``): its native points,
    and dlib's five as well when the configured embedder is aligned on them. What other code
    needs to know of a detector is in its registry entry (``spec``,
    :mod:`facegate.models.detectors`), found by the class's ``name``.
    """

    name: str = ""

    def __init__(self, config: Config) -> None:
        self.config = config

    @cached_property
    def spec(self) -> DetectorSpec:
        """This detector's registry entry."""
        return detectors.detector_spec(self.name)

    @property
    def min_face(self) -> int:
        """The smallest face (side of the dlib-like box, pixels) reported: ``config.min_face_size``,
        or when that is 0 this detector's default (``spec.min_face``)."""
        return detectors.min_face(self.config, self.name)

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


def rgb_image(image: np.ndarray) -> np.ndarray:
    """``image`` as a C-contiguous HxWx3 uint8 RGB array, the input every detector and dlib take;
    anything else is an :class:`InvalidImageError`."""
    img = np.asarray(image)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3 or img.shape[0] == 0 or img.shape[1] == 0:
        raise InvalidImageError(f"expected an HxWx3 uint8 RGB image, got shape {img.shape} dtype {img.dtype}")
    return np.ascontiguousarray(img)
