"""What facegate reads from a user's ONNX embedder file: its input layout, its output, its dimension.

:func:`probe_onnx_embedder` runs at registration (``facegate models register``) so a file that is
not a square-RGB-in, vector-out model is refused then, not at the first face;
:class:`facegate.embed.onnx.OnnxEmbedder` reads the same layout when it loads the file and runs
each batch through :func:`run_embedding`'s checks.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from facegate.errors import ModelError
from facegate.onnxrt import providers, session


def input_layout(sess: Any, path: Path, input_size: int) -> tuple[str, int | None]:
    """("nchw" | "nhwc", fixed batch size or None) for a model with one square RGB input."""
    inputs = sess.get_inputs()
    if len(inputs) != 1:
        raise ModelError(f"{path}: an embedder must have exactly one input, this model has {len(inputs)}")
    inp = inputs[0]
    if inp.type != "tensor(float)":
        raise ModelError(f"{path}: input {inp.name!r} is {inp.type}; facegate feeds float32 images")
    shape = list(inp.shape)
    if len(shape) != 4:
        raise ModelError(f"{path}: input {inp.name!r} has shape {shape}; expected [N, 3, S, S] or [N, S, S, 3]")

    def fixed(d: object) -> int | None:
        return d if isinstance(d, int) and d > 0 else None  # names/None/-1 mean "any size"

    def fits(dims: list) -> bool:
        return all(fixed(d) in (None, input_size) for d in dims)

    n, a, b, c = (fixed(d) for d in shape)
    if a == 3 and fits(shape[2:]):
        layout = "nchw"
    elif c == 3 and fits(shape[1:3]) and a != 3:
        layout = "nhwc"
    else:
        raise ModelError(
            f"{path}: input {inp.name!r} has shape {shape}; expected [N, 3, {input_size}, {input_size}] "
            f"or [N, {input_size}, {input_size}, 3] (a square RGB image of the registered size {input_size})"
        )
    return layout, n


def run_embedding(sess: Any, batch: np.ndarray, path: Path) -> np.ndarray:
    """The model's first output for ``batch`` as (N, D) float32; anything else is a :class:`ModelError`."""
    try:
        out = sess.run(None, {sess.get_inputs()[0].name: batch})[0]
    except Exception as exc:
        raise ModelError(f"{path}: running the model failed: {' '.join(str(exc).split())[:300]}") from exc
    out = np.asarray(out)
    if out.ndim > 2:  # tolerate [N, D, 1, 1]-style outputs
        out = out.reshape(out.shape[0], -1) if all(d == 1 for d in out.shape[2:]) else out
    if out.ndim != 2 or out.shape[0] != batch.shape[0]:
        raise ModelError(f"{path}: first output has shape {list(out.shape)}; an embedder must output [N, D]")
    return out.astype(np.float32, copy=False)


def probe_onnx_embedder(path: str | os.PathLike[str], input_size: int) -> int:
    """Check that ``path`` is an ONNX embedder for ``input_size`` square RGB chips and
    return its output dimension (from running one all-zero image through it, on the CPU)."""
    path = Path(path)
    sess = session(path, providers("cpu"))
    layout, batch = input_layout(sess, path, input_size)
    s = input_size
    shape = (batch or 1, 3, s, s) if layout == "nchw" else (batch or 1, s, s, 3)
    out = run_embedding(sess, np.zeros(shape, dtype=np.float32), path)
    dim = int(out.shape[1])
    if dim < 1:
        raise ModelError(f"{path}: the model's output is empty")
    return dim


__all__ = ["input_layout", "probe_onnx_embedder", "run_embedding"]
