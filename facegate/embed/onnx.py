"""User-registered ONNX embedders (ArcFace-style models), run with onnxruntime.

A user registers a model file by path and sha256 (``register_onnx_embedder``); facegate
ships no such weights. At registration :func:`facegate.models.onnx_probe.probe_onnx_embedder` checks that the
model takes one square RGB image batch of the declared size and finds its output
dimension; at load time the file is hashed again, so a swapped file is refused.

Alignment and preprocessing come from the model's spec like any built-in model's: by
default insightface's ArcFace convention (the ``arcface`` template on the native
eye-centre / nose-tip / mouth-corner points of MTCNN's O-Net, RGB, ``(x - 127.5) / 127.5``),
each overridable at registration. The layout (NCHW or NHWC) is read from the model.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np

from facegate.align import ARCFACE_112
from facegate.config import Config
from facegate.embed.base import Embedder
from facegate.errors import ModelError
from facegate.models.onnx_probe import input_layout, run_embedding
from facegate.models.registry import ModelSpec, verified_path
from facegate.onnxrt import providers, session

log = logging.getLogger(__name__)

__all__ = ["ARCFACE_112", "OnnxEmbedder"]


class OnnxEmbedder(Embedder):
    """A registered ONNX embedder, aligned and preprocessed as its spec says."""

    def __init__(self, config: Config, spec: ModelSpec) -> None:
        if spec.task != "embed" or not spec.input_size or not spec.output_size:
            raise ModelError(f"model {spec.name!r} is not a registered embedder")
        super().__init__(config, spec)
        self.providers = providers(config.device)  # fails now, not at the first face
        self._session = None
        self._layout = "nchw"
        self._batch: int | None = None
        self._path: Path | None = None
        self._lock = threading.Lock()

    def load(self) -> None:
        """Verify the file's sha256 and open the session (otherwise done on first use)."""
        with self._lock:
            if self._session is None:
                path = verified_path(self.spec)
                sess = session(path, self.providers, self.config.threads)
                self._layout, self._batch = input_layout(sess, path, self.input_size)
                self._path = path
                self._session = sess
                log.info("loaded ONNX embedder %s from %s (%s input, %s)", self.name, path, self._layout, self.providers)

    def prepare(self, chips: np.ndarray) -> np.ndarray:
        self.load()
        x = super().prepare(chips)  # the spec's layout, then the model's own if it differs
        want_nchw = self._layout == "nchw"
        is_nchw = self.spec.preprocess.layout == "nchw"
        if want_nchw != is_nchw:
            x = np.ascontiguousarray(x.transpose(0, 3, 1, 2) if want_nchw else x.transpose(0, 2, 3, 1))
        return x

    def _run(self, x: np.ndarray) -> np.ndarray:
        assert self._session is not None and self._path is not None
        if self._batch is None:
            out = run_embedding(self._session, x, self._path)
        else:  # a model exported with a fixed batch size: feed it whole, zero-padded batches
            parts = []
            for start in range(0, len(x), self._batch):
                part = x[start : start + self._batch]
                pad = self._batch - len(part)
                if pad:
                    part = np.concatenate([part, np.zeros((pad, *part.shape[1:]), dtype=np.float32)])
                parts.append(run_embedding(self._session, part, self._path)[: self._batch - pad])
            out = np.concatenate(parts)
        if out.shape[1] != self.dim:
            raise ModelError(f"{self.name}: the model now outputs {out.shape[1]} values, registered as {self.dim}")
        return out
