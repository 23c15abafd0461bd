"""The embedder interface: aligned chips in, unit-length embeddings out, in batches.

An embedder is described by its :class:`~facegate.models.registry.ModelSpec`: the template
(and so the landmark scheme) its chips are aligned to, the chip size, the preprocessing
and the output dimension all come from the spec, so a new model is a table entry and a
subclass only runs the network (``_run``) on an already preprocessed batch.
"""

from __future__ import annotations

from abc import ABC

import numpy as np

from facegate.align import Template, named_template
from facegate.config import Config
from facegate.errors import UsageError
from facegate.models.registry import ModelSpec


class Embedder(ABC):  # noqa: B024 - abstract by contract: _run or _forward must be given
    """One embedding model. ``embed`` handles batching, mirroring and normalisation;
    ``prepare`` applies the spec's preprocessing; subclasses implement ``_run`` on one
    preprocessed float32 batch (or override ``_forward`` for uint8 chips)."""

    def __init__(self, config: Config, spec: ModelSpec) -> None:
        self.config = config
        self.spec = spec
        self.name = spec.name
        self.input_size = int(spec.input_size or 112)
        self.dim = int(spec.output_size or 0)

    @property
    def template(self) -> Template:
        return named_template(self.spec.template or "arcface", self.input_size)

    @property
    def scheme(self) -> str:
        """The landmark scheme chips must be aligned from (the template's)."""
        return self.template.scheme

    @property
    def padding(self) -> float:
        return self.template.padding

    def check_chips(self, chips: np.ndarray) -> None:
        s = self.input_size
        if chips.ndim != 4 or chips.shape[1:] != (s, s, 3) or chips.dtype != np.uint8:
            raise UsageError(f"{self.name} needs (N, {s}, {s}, 3) uint8 RGB chips, got {chips.shape} {chips.dtype}")

    def prepare(self, chips: np.ndarray) -> np.ndarray:
        """(N, S, S, 3) uint8 RGB chips -> the float32 tensor the spec describes."""
        pp = self.spec.preprocess
        x = chips[..., ::-1] if pp.channels == "bgr" else chips
        x = x.astype(np.float32)
        if pp.mean or pp.scale != 1.0:
            x = (x - np.float32(pp.mean)) * np.float32(pp.scale)
        if pp.layout == "nchw":
            x = x.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(x)

    def _run(self, x: np.ndarray) -> np.ndarray:
        """One preprocessed batch -> (N, dim) raw embeddings."""
        raise NotImplementedError

    def _forward(self, chips: np.ndarray) -> np.ndarray:
        """(N, S, S, 3) uint8 RGB -> (N, dim) float32 raw embeddings."""
        self.check_chips(chips)
        return self._run(self.prepare(chips))

    def embed(self, chips: np.ndarray) -> np.ndarray:
        """Unit-length embeddings for (N, S, S, 3) uint8 chips, processed in config.batch_size batches.

        With ``config.flip`` the embedding of each chip is averaged with that of its
        mirror image before normalising (a cheap, well-known accuracy gain).
        """
        return self._embed(chips, plain=False, mirror=self.config.flip)[0]

    def embed_plain(self, chips: np.ndarray) -> np.ndarray:
        """Unit embeddings of the chips themselves, without the mirror average whatever
        ``config.flip`` says (one forward pass per chip instead of two): what the stack without
        ``flip`` gives, to be compared at that stack's own calibrated threshold."""
        return self._embed(chips, plain=False, mirror=False)[0]

    def embed_and_plain(self, chips: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`embed`, and from the same forward passes each chip's own unit embedding without
        the mirror average (:meth:`embed_plain`; the same array when ``config.flip`` is off).

        Why: the gate needs the mirrored embedding of the face it identifies (the gallery's
        stack) and compares a burst's other frames by their plain embeddings, half the forward
        passes, at the threshold calibrated for the plain stack; the identified face's plain
        embedding then costs nothing more."""
        emb, plain = self._embed(chips, plain=True, mirror=self.config.flip)
        return emb, emb if plain is None else plain

    def _embed(self, chips: np.ndarray, plain: bool, mirror: bool) -> tuple[np.ndarray, np.ndarray | None]:
        n = len(chips)
        out = np.zeros((n, self.dim), dtype=np.float32)
        own = np.zeros((n, self.dim), dtype=np.float32) if plain and mirror else None
        if n == 0:
            return out, own
        bs = max(1, self.config.batch_size)
        for start in range(0, n, bs):
            batch = np.ascontiguousarray(chips[start : start + bs])
            if mirror:  # chips and mirrors in one call: fewer, fuller batches
                both = self._forward(np.concatenate([batch, batch[:, :, ::-1]]))
                emb = both[: len(batch)] + both[len(batch) :]
                if own is not None:
                    own[start : start + len(batch)] = both[: len(batch)]
            else:
                emb = self._forward(batch)
            out[start : start + len(batch)] = emb
        return _unit(out), None if own is None else _unit(own)

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


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
