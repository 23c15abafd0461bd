"""The interfaces other layers rely on, as structural types (``typing.Protocol``).

The gallery, clustering and the service take "a pipeline": the real :class:`facegate.pipeline.Pipeline`,
the service's lock-guarded one, or a test's synthetic one. They need only the members below, so
that is what their signatures say (instead of ``Any``), and mypy checks every caller against it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import numpy as np

from facegate.config import Config
from facegate.types import Face, OperatingPoint

if TYPE_CHECKING:
    from facegate.image import ImageInput
    from facegate.liveness import LivenessDetector


class FaceDetector(Protocol):
    """Finds faces in one HxWx3 uint8 RGB image (see :class:`facegate.detect.base.Detector`)."""

    def detect(self, image: np.ndarray) -> list[Face]: ...


class FaceEmbedder(Protocol):
    """Embeds aligned chips into unit vectors (see :class:`facegate.embed.base.Embedder`)."""

    name: str

    def embed(self, chips: np.ndarray) -> np.ndarray: ...

    def embed_plain(self, chips: np.ndarray) -> np.ndarray: ...

    def embed_and_plain(self, chips: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


class FacePipeline(Protocol):
    """What the gallery, clustering and the service use of a pipeline: decode, detect, align,
    embed, and the decision threshold of its model."""

    config: Config

    @property
    def detector(self) -> FaceDetector: ...

    @property
    def embedder(self) -> FaceEmbedder: ...

    @property
    def operating_points(self) -> list[OperatingPoint]: ...

    @property
    def plain_operating_points(self) -> list[OperatingPoint]: ...

    @property
    def liveness_detector(self) -> LivenessDetector: ...

    def load(self, src: ImageInput) -> np.ndarray: ...

    def chips(self, image: np.ndarray, faces: list[Face]) -> np.ndarray: ...

    def embed_faces(self, image: np.ndarray, faces: list[Face]) -> list[Face]: ...

    def faces(self, src: ImageInput) -> list[Face]: ...

    def threshold(self) -> tuple[float, float | None]: ...
