"""Model registry: every weight file facegate uses, where it comes from, its sha256 and licence;
and the detector registry: what the rest of facegate knows of each face detector."""

from facegate.models.detectors import DETECTORS, DetectorSpec, detector_spec
from facegate.models.registry import REGISTRY, ModelSpec, get_spec, list_specs, locate, register_onnx_embedder

__all__ = [
    "DETECTORS", "REGISTRY", "DetectorSpec", "ModelSpec", "detector_spec", "get_spec", "list_specs", "locate",
    "register_onnx_embedder",
]
