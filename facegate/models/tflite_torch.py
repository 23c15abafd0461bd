"""A PyTorch module that runs a TFLite graph read by :mod:`facegate.models.tflite_graph`.

The module replays the graph's operators in order on NCHW tensors, with the TFLite
weights converted once (OHWI -> OIHW, depthwise 1HWC -> C1HW); per-channel constants
broadcast over channels. Its fixed batch (MobileFaceNet ships [2, 112, 112, 3]) is
dropped: the final RESHAPE becomes a flatten, so any batch runs, and the ONNX export has
a dynamic batch dimension like facegate's other graphs; `facegate models install` makes it
(see :mod:`facegate.models.converted`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from facegate.models.registry import ModelSpec, verified_path
from facegate.models.tflite_graph import Graph, Op, read_graph


class TfliteModule(nn.Module):
    """NCHW float input -> the graph's output (N, D)."""

    def __init__(self, graph: Graph) -> None:
        super().__init__()
        self.ops = graph.ops
        self.input = graph.input
        self.output = graph.output
        self._const: dict[int, str] = {}
        first_user: dict[int, Op] = {}  # each constant is laid out for the operator that reads it
        for op in graph.ops:
            for i in op.inputs:
                first_user.setdefault(i, op)
        for idx, value in graph.constants.items():
            if value.dtype == np.int32:
                continue  # RESHAPE's shape operand: replaced by a flatten
            arr = np.asarray(value, dtype=np.float32)
            op = first_user[idx]
            if op.kind == "CONV_2D" and op.inputs[1] == idx:
                t = torch.from_numpy(arr.transpose(0, 3, 1, 2).copy())  # OHWI -> OIHW
            elif op.kind == "DEPTHWISE_CONV_2D" and op.inputs[1] == idx:
                t = torch.from_numpy(arr.transpose(3, 0, 1, 2).copy())  # 1HWC -> C1HW
            elif op.kind == "PRELU":
                t = torch.from_numpy(arr.reshape(-1).copy())  # one slope per channel
            elif arr.ndim == 1 and op.kind in ("ADD", "SUB", "MUL"):
                t = torch.from_numpy(arr.reshape(1, -1, 1, 1).copy())  # per-channel, NCHW broadcast
            else:
                t = torch.from_numpy(arr.copy())
            name = f"c{idx}"
            self.register_buffer(name, t)
            self._const[idx] = name

    def _get(self, env: dict[int, torch.Tensor], idx: int) -> torch.Tensor:
        if idx in env:
            return env[idx]
        return getattr(self, self._const[idx])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        env: dict[int, torch.Tensor] = {self.input: x}
        for op in self.ops:
            a = self._get(env, op.inputs[0])
            if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
                w = self._get(env, op.inputs[1])
                b = self._get(env, op.inputs[2]) if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
                top, bottom, left, right = op.pad
                if any(op.pad):
                    a = F.pad(a, (left, right, top, bottom))
                groups = a.shape[1] if op.kind == "DEPTHWISE_CONV_2D" else 1
                y = F.conv2d(a, w, b, stride=op.stride, groups=groups)
            elif op.kind == "PRELU":
                y = F.prelu(a, self._get(env, op.inputs[1]))
            elif op.kind == "RELU":
                y = F.relu(a)
            elif op.kind == "ABS":
                y = torch.abs(a)
            elif op.kind == "ADD":
                y = a + self._get(env, op.inputs[1])
            elif op.kind == "SUB":
                y = a - self._get(env, op.inputs[1])
            elif op.kind == "MUL":
                y = a * self._get(env, op.inputs[1])
            elif op.kind == "RESHAPE":
                y = torch.flatten(a, 1)
            else:  # read_graph refuses anything else
                raise ValueError(op.kind)
            env[op.outputs[0]] = y
        return env[self.output]


def torch_module(spec: ModelSpec) -> TfliteModule:
    """The spec's verified TFLite file as a PyTorch module, eval mode, on the CPU."""
    return TfliteModule(read_graph(verified_path(spec))).eval()


def export_onnx(spec: ModelSpec, dest: Path) -> None:
    """The translated graph as ONNX: input ``chips`` [N, 3, S, S] (preprocessed), output ``embedding``."""
    from facegate.models.onnx_export import export_torch

    s = int(spec.input_size or 112)
    export_torch(torch_module(spec), (1, 3, s, s), dest, "chips", ["embedding"])
