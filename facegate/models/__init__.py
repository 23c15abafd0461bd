"""Model registry: every weight file facegate uses, where it comes from, its sha256 and licence."""

from facegate.models.registry import REGISTRY, ModelSpec, get_spec, list_specs, locate, register_onnx_embedder

__all__ = ["REGISTRY", "ModelSpec", "get_spec", "list_specs", "locate", "register_onnx_embedder"]
