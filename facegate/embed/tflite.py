"""Embedders shipped as TFLite graphs (MobileFaceNet): LiteRT on the CPU, PyTorch on CUDA.

LiteRT runs such a graph only at the batch it was saved with (MobileFaceNet: two chips;
XNNPack refuses to resize it), so facegate also translates the graph once into a PyTorch
module (:mod:`facegate.models.tflite_torch`) that takes any batch: PyTorch runs it on CUDA,
where float16 is offered, and its ONNX export (made by `facegate models install`, see
:mod:`facegate.models.converted`) runs on ONNX Runtime. On the CPU, LiteRT's XNNPack
kernels fed the fixed batch in turn measured about 3x ONNX Runtime's speed on the
translated graph (whose per-channel PReLUs break ONNX Runtime's blocked-layout
convolutions), so ``auto`` picks LiteRT there (``benchmarks/bench_embed.py``). All three
engines agree to a cosine of better than 0.9999 (``tests/test_mobilefacenet.py``).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np

from facegate.config import Config
from facegate.embed.base import Embedder
from facegate.errors import DeviceError, UsageError
from facegate.models.registry import ModelSpec, verified_path
from facegate.onnxrt import resolve_engine, session

log = logging.getLogger(__name__)


def onnx_model(config: Config, spec: ModelSpec) -> Path:
    """The translated graph as ONNX with a dynamic batch: installed by `facegate models install`
    (else converted into the cache once, see :mod:`facegate.models.converted`)."""
    from facegate.models.converted import conversion_for, converted_path

    return converted_path(conversion_for(spec.name, ".onnx").name, config)[0]


class TfliteEmbedder(Embedder):
    """A TFLite embedder translated to ONNX Runtime (CPU) or PyTorch (CUDA, optional fp16)."""

    def __init__(self, config: Config, spec: ModelSpec, half: bool = False) -> None:
        super().__init__(config, spec)
        self.device, self.runtime, self.providers = resolve_engine(  # fails now, not at the first face
            config, cpu_default="litert", offered=("litert", "onnxruntime", "torch"))
        if half and not self.device.startswith("cuda"):
            raise DeviceError("half precision (fp16) is only supported on a CUDA device")
        if half and self.runtime != "torch":
            raise UsageError("half precision (fp16) runs on the torch runtime; pass runtime='torch'")
        if spec.preprocess.layout != "nchw":
            raise UsageError(f"{spec.name}: the translated graph takes NCHW input; set layout='nchw' in its spec")
        self.half = half
        self._engine = None
        self._lock = threading.Lock()

    def load(self) -> object:
        with self._lock:
            if self._engine is None:
                if self.runtime == "litert":
                    self._engine = LiteRtBatches(verified_path(self.spec), self.config.cpu_threads)
                elif self.runtime == "onnxruntime":
                    path = onnx_model(self.config, self.spec)
                    self._engine = session(path, self.providers, self.config.threads)
                    log.info("%s on onnxruntime %s (%s)", self.name, self.providers, path)
                else:
                    import torch

                    if self.config.threads > 0:
                        torch.set_num_threads(self.config.threads)
                    from facegate.models.tflite_torch import torch_module

                    model = torch_module(self.spec).to(self.device)
                    self._engine = model.half() if self.half else model
            return self._engine

    def _forward_tensor(self, chips):  # torch.Tensor -> torch.Tensor
        """On-device chips (N, 3, S, S) in 0..255 -> raw embeddings, the spec's preprocessing in torch."""
        if self.runtime != "torch":
            raise UsageError(f"{self.name}: on-device embedding needs the torch runtime (got {self.runtime})")
        engine = self.load()
        pp = self.spec.preprocess
        x = chips.flip(1) if pp.channels == "bgr" else chips
        x = (x.float() - pp.mean) * pp.scale
        return engine(x.half() if self.half else x)  # type: ignore[operator]

    def _run(self, x: np.ndarray) -> np.ndarray:
        engine = self.load()
        if self.runtime == "litert":
            return engine.run(np.ascontiguousarray(x.transpose(0, 2, 3, 1)))  # type: ignore[attr-defined]
        if self.runtime == "onnxruntime":
            return engine.run(None, {"chips": x})[0]  # type: ignore[attr-defined]
        import torch

        with torch.inference_mode():
            t = torch.from_numpy(x).to(self.device)
            out = engine(t.half() if self.half else t)  # type: ignore[operator]
        return out.float().cpu().numpy()


class LiteRtBatches:
    """A LiteRT interpreter of fixed batch B fed any number of inputs, B at a time (the last
    batch zero-padded). One interpreter is not re-entrant, so calls are serialised."""

    def __init__(self, path: Path, threads: int) -> None:
        from facegate.models.litert import open_interpreter

        self._it = open_interpreter(path, threads)
        self._it.allocate_tensors()
        inp, out = self._it.get_input_details()[0], self._it.get_output_details()[0]
        self._in, self._out = inp["index"], out["index"]
        self.batch = int(inp["shape"][0])
        self._lock = threading.Lock()

    def run(self, x: np.ndarray) -> np.ndarray:
        """(N, H, W, C) float32 -> (N, D) float32."""
        b = self.batch
        parts = []
        with self._lock:
            for start in range(0, len(x), b):
                part = x[start : start + b]
                pad = b - len(part)
                if pad:
                    part = np.concatenate([part, np.zeros((pad, *part.shape[1:]), np.float32)])
                self._it.set_tensor(self._in, np.ascontiguousarray(part, dtype=np.float32))
                self._it.invoke()
                parts.append(np.array(self._it.get_tensor(self._out))[: b - pad])
        return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)
