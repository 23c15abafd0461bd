"""``get_embedder``: the implementation a model's spec names, made for the configured embedder."""

from __future__ import annotations

from facegate.config import Config
from facegate.embed.base import Embedder
from facegate.errors import ModelError, UsageError
from facegate.models.registry import ModelSpec, check_policy, get_spec


def _dlib(config: Config, spec: ModelSpec) -> Embedder:
    from facegate.embed.dlib_resnet import DlibResNetEmbedder

    return DlibResNetEmbedder(config, spec, half=config.fp16)


def _tflite(config: Config, spec: ModelSpec) -> Embedder:
    from facegate.embed.tflite import TfliteEmbedder

    return TfliteEmbedder(config, spec, half=config.fp16)


def _onnx(config: Config, spec: ModelSpec) -> Embedder:
    if config.fp16:
        raise UsageError(f"fp16 is offered for the built-in embedders only, not the user model {spec.name!r}")
    from facegate.embed.onnx import OnnxEmbedder

    return OnnxEmbedder(config, spec)


# ModelSpec.implementation -> constructor. One per network format: many registered models
# (every user ONNX file) share an implementation, so this table is keyed by format, not by model.
IMPLEMENTATIONS = {"dlib_resnet": _dlib, "tflite": _tflite, "onnx": _onnx}


def get_embedder(config: Config) -> Embedder:
    """Instantiate the configured embedder (weights load on first use, not here)."""
    spec = get_spec(config.embedder, config)
    if spec.task != "embed":
        raise ModelError(f"model {spec.name!r} is a {spec.task} model, not an embedder")
    check_policy(spec, config)
    make = IMPLEMENTATIONS.get(spec.implementation)
    if make is None:
        raise ModelError(f"model {spec.name!r} names an unknown implementation {spec.implementation!r}")
    return make(config, spec)
