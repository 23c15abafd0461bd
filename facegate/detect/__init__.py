"""Face detectors behind one interface; ``get_detector`` picks one by name from the config."""

from __future__ import annotations

from facegate.config import DETECTORS, Config
from facegate.detect.base import Detector
from facegate.errors import UsageError


def get_detector(config: Config) -> Detector:
    """Instantiate the configured detector (weights load on its first call, not here)."""
    name = config.detector
    if name == "hog":
        from facegate.detect.hog import HogDetector

        return HogDetector(config)
    if name == "blazeface":
        from facegate.detect.blazeface import BlazeFaceDetector

        return BlazeFaceDetector(config)
    if name == "mtcnn":
        from facegate.detect.mtcnn import MtcnnDetector

        return MtcnnDetector(config)
    raise UsageError(f"unknown detector {name!r}; choose one of: {', '.join(DETECTORS)}")


__all__ = ["Detector", "get_detector"]
