"""The embedder interface: aligned chips in, unit-length embeddings out, in batches."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from facegate.align import Template, template
from facegate.config import Config
from facegate.errors import DeviceError, UsageError


def resolve_torch_device(device: str) -> str:
    """Check that the requested torch device exists. A missing GPU is an error, never a CPU run."""
    if device == "cpu":
        return "cpu"
    import torch  # only for a GPU: the CPU default may run without PyTorch loaded
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(
                f"device {device!r} was requested but no CUDA GPU is available to PyTorch; "
                "use --device cpu to run on the CPU"
            )
        index = int(device.split(":", 1)[1]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise DeviceError(f"device {device!r} does not exist ({torch.cuda.device_count()} GPU(s) present)")
        return device
    raise DeviceError(f"unknown device {device!r}; use 'cpu' or 'cuda[:N]'")


def resolve_runtime(runtime: str, device: str) -> str:
    """``auto`` is ONNX Runtime on the CPU (faster there) and PyTorch on CUDA (fp16 available)."""
    if runtime == "auto":
        return "onnxruntime" if device == "cpu" else "torch"
    if runtime not in ("torch", "onnxruntime"):
        raise UsageError(f"unknown runtime {runtime!r}; use auto, torch or onnxruntime")
    return runtime


def resolve_engine(config: Config) -> tuple[str, str, list | None]:
    """(torch device, runtime, ONNX Runtime providers or None) for facegate's own networks.

    Checked when a model object is made, not at its first input: a missing GPU, or an
    onnxruntime without the CUDA provider, fails at once with :class:`DeviceError`.
    """
    device = resolve_torch_device(config.device)
    runtime = resolve_runtime(config.runtime, device)
    if runtime != "onnxruntime":
        return device, runtime, None
    from facegate.embed.onnx import _providers

    return device, runtime, _providers(device)


class Embedder(ABC):
    """One embedding model. ``embed`` handles batching, mirroring and normalisation;
    subclasses implement ``_forward`` on one batch of uint8 RGB chips."""

    name: str = ""
    input_size: int = 150
    padding: float = 0.25
    dim: int = 128

    def __init__(self, config: Config) -> None:
        self.config = config

    @property
    def template(self) -> Template:
        return template(self.input_size, self.padding)

    @abstractmethod
    def _forward(self, chips: np.ndarray) -> np.ndarray:
        """(N, S, S, 3) uint8 RGB -> (N, dim) float32 raw embeddings."""

    def embed(self, chips: np.ndarray) -> np.ndarray:
        """Unit-length embeddings for (N, S, S, 3) uint8 chips, processed in config.batch_size batches.

        With ``config.flip`` the embedding of each chip is averaged with that of its
        mirror image before normalising (a cheap, well-known accuracy gain).
        """
        n = len(chips)
        out = np.zeros((n, self.dim), dtype=np.float32)
        if n == 0:
            return out
        bs = max(1, self.config.batch_size)
        for start in range(0, n, bs):
            batch = np.ascontiguousarray(chips[start : start + bs])
            if self.config.flip:  # chips and mirrors in one call: fewer, fuller batches
                both = self._forward(np.concatenate([batch, batch[:, :, ::-1]]))
                emb = both[: len(batch)] + both[len(batch) :]
            else:
                emb = self._forward(batch)
            out[start : start + len(batch)] = emb
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)

    def _forward_tensor(self, chips):  # torch.Tensor -> torch.Tensor
        """(N, 3, S, S) float RGB chips, values 0..255, on the embedder's torch device -> (N, dim)
        raw embeddings there. Embedders that can run on a device without a host round trip
        override this; the rest refuse rather than copy to the host behind the caller's back."""
        raise UsageError(f"embedder {self.name!r} has no on-device entry point; run it on the CPU path")

    def embed_tensor(self, chips):  # torch.Tensor -> torch.Tensor
        """:meth:`embed` for chips already on the device (the device path's seam): (N, 3, S, S)
        float RGB in 0..255 in, (N, dim) unit embeddings on the same device out. Batching by
        ``config.batch_size``, mirroring (``config.flip``) and normalising as in ``embed``."""
        import torch

        s = self.input_size
        if chips.ndim != 4 or tuple(chips.shape[1:]) != (3, s, s):
            raise UsageError(f"{self.name} needs (N, 3, {s}, {s}) chips, got {tuple(chips.shape)}")
        if len(chips) == 0:
            return chips.new_zeros((0, self.dim), dtype=torch.float32)
        bs = max(1, self.config.batch_size)
        parts = []
        with torch.inference_mode():
            for start in range(0, len(chips), bs):
                batch = chips[start : start + bs]
                if self.config.flip:
                    both = self._forward_tensor(torch.cat([batch, batch.flip(3)])).float()
                    parts.append(both[: len(batch)] + both[len(batch) :])
                else:
                    parts.append(self._forward_tensor(batch).float())
            out = torch.cat(parts)
            return out / out.norm(dim=1, keepdim=True).clamp_min(1e-12)
