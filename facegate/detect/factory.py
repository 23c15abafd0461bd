"""``get_detector``: the configured detector, looked up in the detector registry."""

from __future__ import annotations

import importlib

from facegate.config import Config
from facegate.detect.base import Detector
from facegate.errors import ModelError
from facegate.models.detectors import DetectorSpec, detector_spec


def detector_class(spec: DetectorSpec) -> type[Detector]:
    """The class ``spec.implementation`` names ("facegate.detect.<module>:<Class>"), imported now."""
    module, _, name = spec.implementation.partition(":")
    cls = getattr(importlib.import_module(module), name, None)
    if not (isinstance(cls, type) and issubclass(cls, Detector) and cls.name == spec.name):
        raise ModelError(f"detector {spec.name!r}: {spec.implementation} is not its Detector class")
    return cls


def get_detector(config: Config) -> Detector:
    """Instantiate the configured detector (weights load on its first call, not here). An unknown
    name is a :class:`facegate.errors.UsageError` naming the choices."""
    return detector_class(detector_spec(config.detector))(config)
