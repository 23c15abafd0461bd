"""Embedders behind one interface; ``get_embedder`` picks one by registry name."""

from __future__ import annotations

from facegate.config import Config
from facegate.embed.base import Embedder
from facegate.models.registry import get_spec


def get_embedder(config: Config) -> Embedder:
    """Instantiate the configured embedder (weights load on first use, not here)."""
    spec = get_spec(config.embedder, config)
    if spec.name == "dlib_resnet":
        from facegate.embed.dlib_resnet import DlibResNetEmbedder

        return DlibResNetEmbedder(config, half=config.fp16)
    if config.fp16:
        from facegate.errors import UsageError

        raise UsageError(f"fp16 is offered for the built-in dlib_resnet embedder only, not {spec.name!r}")
    if spec.package == "user":
        from facegate.embed.onnx import OnnxEmbedder

        return OnnxEmbedder(config, spec)
    from facegate.errors import ModelError

    raise ModelError(f"model {spec.name!r} is a {spec.task} model, not an embedder")


__all__ = ["Embedder", "get_embedder"]
