"""ONNX graphs exported once from a verified source file and cached with their sha256.

facegate's built-in networks (dlib's ResNet, MTCNN's O-Net) are defined in PyTorch and
built from weight files that installed packages ship; on the CPU they run faster in ONNX
Runtime and, from the cache, without importing PyTorch at all. A cached graph is trusted
only if its sidecar JSON names the source file's sha256 it was made from and the graph's
own sha256, and the file still hashes to that; anything else is rebuilt. Writes are
atomic (temp file + rename), so concurrent first runs at worst both export.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from facegate.files import private_dir
from facegate.models.registry import sha256_file

log = logging.getLogger(__name__)

FORMAT = 1  # bump when the sidecar's layout changes


def _trusted(path: Path, source_sha256: str) -> bool:
    meta_path = path.with_suffix(".json")
    if not (path.exists() and meta_path.exists()):
        return False
    try:
        meta = json.loads(meta_path.read_text())
        ok = meta.get("format") == FORMAT and meta.get("source_sha256") == source_sha256
        if ok and meta.get("onnx_sha256") == sha256_file(path):
            return True
        log.warning("ignoring ONNX cache %s: it does not match its recorded sha256; rebuilding it", path)
    except (OSError, ValueError) as exc:
        log.warning("ignoring ONNX cache %s (%s); rebuilding it", path, exc)
    return False


def cached_onnx(path: Path, source_sha256: str, export: Callable[[Path], None]) -> tuple[Path, bool]:
    """(usable ONNX file, whether it was exported now). ``export(dest)`` writes the graph.

    A home that cannot be written (read-only, full) costs an export into a temporary
    folder on every start, not a failure.
    """
    if _trusted(path, source_sha256):
        return path, False
    try:
        private_dir(path.parent)  # the files are mkstemp's: 0600
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        os.close(fd)
        export(Path(tmp))
        digest = sha256_file(Path(tmp))
        os.replace(tmp, path)
        fd, tmp_meta = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".json", suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump({"format": FORMAT, "source_sha256": source_sha256, "onnx_sha256": digest}, f)
        os.replace(tmp_meta, path.with_suffix(".json"))
        return path, True
    except OSError as exc:
        log.warning("could not write ONNX cache %s: %s; using a temporary copy", path, exc)
        out = Path(tempfile.mkdtemp(prefix="facegate-onnx-")) / path.name
        export(out)
        return out, True


def export_torch(
    model: Any, input_shape: tuple[int, ...], dest: Path, input_name: str, output_names: list[str], opset: int = 17
) -> None:
    """Trace a PyTorch ``model`` to an ONNX file at ``dest`` with a dynamic batch dimension.

    The tracer's warnings are silenced: the shape checks it turns into constants are on
    channels and spatial sizes, fixed for these networks' inputs; only the batch varies.
    """
    import warnings

    import torch

    names = [input_name, *output_names]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model.eval(),
            (torch.zeros(*input_shape),),
            str(dest),
            input_names=[input_name],
            output_names=output_names,
            dynamic_axes={n: {0: "batch"} for n in names},
            opset_version=opset,
            dynamo=False,  # the TorchScript exporter needs no onnxscript; the graphs are static
        )
