"""facegate: find faces, align them on a canonical 5-point template, embed them, and decide
"same person?" at a stated false-accept rate. Offline: weights come only from installed packages.

Quick start::

    import facegate
    verdict = facegate.verify("a.jpg", "b.jpg")          # Verdict(same, score, threshold, far, faces)
    faces = facegate.Pipeline().faces("group.jpg")       # [Face(box, landmarks, score, embedding)]

Nothing heavy is imported here; models load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from facegate.config import Config
from facegate.errors import (
    DeviceError,
    FacegateError,
    ImageTooLargeError,
    InvalidImageError,
    ModelError,
    MultipleFacesError,
    NoFaceError,
    UsageError,
)
from facegate.types import Face, FaceChoice, OperatingPoint, Verdict

if TYPE_CHECKING:
    from facegate.pipeline import Pipeline

__version__ = "0.1.0"


def __getattr__(name: str):  # lazy: importing facegate must stay cheap
    if name == "Pipeline":
        from facegate.pipeline import Pipeline

        return Pipeline
    if name == "load_image":
        from facegate.image import load_image

        return load_image
    raise AttributeError(f"module 'facegate' has no attribute {name!r}")


def verify(a, b, config: Config | None = None, pick: str = "largest") -> Verdict:
    """One-call verification of two photos with the default (or given) config. A photo with several
    faces: the largest is used (``pick="single"`` refuses it: MultipleFacesError); ``verdict.faces``
    says how many faces each photo held and which one was used."""
    from facegate.pipeline import Pipeline

    return Pipeline(config).verify(a, b, pick=pick)  # type: ignore[arg-type]


__all__ = [
    "Config",
    "DeviceError",
    "Face",
    "FaceChoice",
    "FacegateError",
    "ImageTooLargeError",
    "InvalidImageError",
    "ModelError",
    "MultipleFacesError",
    "NoFaceError",
    "OperatingPoint",
    "Pipeline",
    "UsageError",
    "Verdict",
    "load_image",
    "verify",
]
