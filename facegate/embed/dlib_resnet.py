"""The built-in embedder: dlib's face-recognition ResNet, on ONNX Runtime or PyTorch.

The network itself (a PyTorch module built from dlib's ``.dat``, and its ONNX export) lives
in :mod:`facegate.models.dlib_torch`; `facegate models install` converts the ``.dat`` into
both files once (:mod:`facegate.models.converted`). This module only imports PyTorch when it
needs it (the torch runtime, or a store without the converted files), so the CPU default
starts without loading PyTorch at all.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np

from facegate.config import Config
from facegate.embed.base import Embedder
from facegate.errors import DeviceError, UsageError
from facegate.models.registry import REGISTRY, ModelSpec
from facegate.onnxrt import resolve_engine, session

log = logging.getLogger(__name__)

INPUT_SIZE = 150
EMBEDDING_DIM = 128


class DlibResNetEmbedder(Embedder):
    """dlib's ResNet on 150x150 chips aligned with padding 0.25.

    Two engines run the same weights (``config.runtime``): ONNX Runtime, the CPU default
    (about 1.7x PyTorch's speed on 2 cores at the batch sizes photos give, see
    ``benchmarks/bench_embed.py``), runs an ONNX graph exported from the PyTorch module
    at install; PyTorch, the CUDA
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
        self.loaded_from: str | None = None  # once loaded: "installed", "cache" or "converted" (just now)
        self._model = None  # torch runtime: a DlibResNet module
        self._session = None
        self._lock = threading.Lock()

    def load(self) -> object:
        """Load the weights now (otherwise this happens on the first ``embed``)."""
        with self._lock:
            if self.runtime == "onnxruntime":
                if self._session is None:
                    path, self.loaded_from = onnx_model(self.config, self.spec)
                    self._session = session(path, self.providers, self.config.threads)
                    log.info("dlib ResNet on onnxruntime %s (%s)", self.providers, path)
                return self._session
            if self._model is None:
                import torch

                from facegate.models.dlib_torch import build_model

                if self.config.threads > 0:
                    torch.set_num_threads(self.config.threads)
                sd, self.loaded_from = load_state_dict(self.config, self.spec)
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


def onnx_model(config: Config, spec: ModelSpec | None = None) -> tuple[Path, str]:
    """The network as an ONNX file and where it came from: ``"installed"`` by `facegate models
    install`, or converted into the cache (``"cache"``: by an earlier run, ``"converted"``: now);
    see :mod:`facegate.models.converted`."""
    from facegate.models.converted import conversion_for, converted_path

    return converted_path(conversion_for((spec or REGISTRY["dlib_resnet"]).name, ".onnx").name, config)


def load_state_dict(config: Config, spec: ModelSpec | None = None) -> tuple[dict, str]:
    """The network's weights (a state dict for :func:`facegate.models.dlib_torch.build_model`) and
    where their file came from, as :func:`onnx_model` says it."""
    from facegate.models.converted import conversion_for, converted_path
    from facegate.models.dlib_torch import read_state_dict

    spec = spec or REGISTRY["dlib_resnet"]
    path, origin = converted_path(conversion_for(spec.name, ".pt").name, config)
    return read_state_dict(path, spec), origin
