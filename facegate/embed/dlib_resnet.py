"""The built-in embedder: dlib's face-recognition ResNet, on ONNX Runtime or PyTorch.

The network itself (a PyTorch module built from dlib's ``.dat``, its weight cache and the
ONNX export) lives in :mod:`facegate.embed.dlib_torch`; this module only imports PyTorch
when it needs it (the torch runtime, or a first run that must build the ONNX cache), so
the CPU default starts without loading PyTorch at all.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np

from facegate.config import Config
from facegate.embed.base import Embedder
from facegate.errors import DeviceError, UsageError
from facegate.models.registry import REGISTRY, ModelSpec, verified_path
from facegate.onnxrt import resolve_engine, session

log = logging.getLogger(__name__)

INPUT_SIZE = 150
EMBEDDING_DIM = 128


class DlibResNetEmbedder(Embedder):
    """dlib's ResNet on 150x150 chips aligned with padding 0.25.

    Two engines run the same weights (``config.runtime``): ONNX Runtime, the CPU default
    (about 1.7x PyTorch's speed on 2 cores at the batch sizes photos give, see
    ``benchmarks/bench_embed.py``), runs an ONNX graph exported once from the PyTorch
    module and cached beside the ``.pt`` weights with its own sha256; PyTorch, the CUDA
    default, also offers float16 (``half=True``, CUDA only). Raw outputs agree with
    dlib's ``compute_face_descriptor`` on the same chip to a cosine of better than 0.9999
    on either engine.
    """

    def __init__(self, config: Config, spec: ModelSpec | None = None, half: bool = False) -> None:
        super().__init__(config, spec or REGISTRY["dlib_resnet"])
        self.device, self.runtime, self.providers = resolve_engine(config)  # fails now, not at the first face
        if half and not self.device.startswith("cuda"):
            raise DeviceError("half precision (fp16) is only supported on a CUDA device")
        if half and self.runtime != "torch":
            raise UsageError("half precision (fp16) runs on the torch runtime; pass runtime='torch'")
        self.half = half
        self.loaded_from: str | None = None  # "cache" or "dat" once loaded: were the .dat weights converted?
        self._model = None  # torch runtime: a DlibResNet module
        self._session = None
        self._lock = threading.Lock()

    def load(self) -> object:
        """Load the weights now (otherwise this happens on the first ``embed``)."""
        with self._lock:
            if self.runtime == "onnxruntime":
                if self._session is None:
                    path, self.loaded_from = onnx_model(self.config)
                    self._session = session(path, self.providers, self.config.threads)
                    log.info("dlib ResNet on onnxruntime %s (%s)", self.providers, path)
                return self._session
            if self._model is None:
                import torch

                from facegate.embed.dlib_torch import build_model, load_state_dict

                if self.config.threads > 0:
                    torch.set_num_threads(self.config.threads)
                sd, self.loaded_from = load_state_dict(self.config)
                # channels_last: NHWC chips need no transposing copy, and oneDNN's
                # convolutions run about 1.5x faster in that layout on the CPU.
                model = build_model(sd).to(self.device, memory_format=torch.channels_last)
                if self.half:
                    model = model.half()
                self._model = model
            return self._model

    def _forward(self, chips: np.ndarray) -> np.ndarray:
        self.check_chips(chips)
        engine = self.load()
        if self.runtime == "onnxruntime":
            x = np.ascontiguousarray(chips.transpose(0, 3, 1, 2), dtype=np.float32)
            return engine.run(None, {"chips": x})[0]
        import torch

        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(chips)).to(self.device)
            x = x.permute(0, 3, 1, 2).to(torch.float16 if self.half else torch.float32)  # NCHW view, NHWC memory
            out = engine(x)
        return out.float().cpu().numpy()

    def _forward_tensor(self, chips):  # torch.Tensor -> torch.Tensor
        """The torch module on chips already on ``self.device`` (see ``Embedder.embed_tensor``)."""
        import torch

        if self.runtime != "torch":
            raise UsageError("on-device embedding runs on the torch runtime; pass runtime='torch'")
        engine = self.load()
        dtype = torch.float16 if self.half else torch.float32
        return engine(chips.to(self.device, dtype).contiguous(memory_format=torch.channels_last))


def onnx_cache_path(config: Config, source_sha256: str) -> Path:
    return config.cache_dir / f"dlib_resnet_v1.{source_sha256[:16]}.onnx"


def onnx_model(config: Config, spec: ModelSpec | None = None) -> tuple[Path, str]:
    """The network as a cached ONNX file (see :mod:`facegate.models.onnx_cache`) and whether
    the ``.dat`` had to be converted (``"dat"``) or not (``"cache"``)."""
    from facegate.models.onnx_cache import cached_onnx

    spec = spec or REGISTRY["dlib_resnet"]
    verified_path(spec)  # the source must be intact whatever the cache says
    source = "cache"

    def export(dest: Path) -> None:
        nonlocal source
        from facegate.embed.dlib_torch import build_model, export_graph, load_state_dict

        sd, source = load_state_dict(config, spec)
        export_graph(build_model(sd), dest)

    path, _ = cached_onnx(onnx_cache_path(config, spec.sha256), spec.sha256, export)
    return path, source
