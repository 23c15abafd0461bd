"""Read dlib's serialised DNN files (``*.dat``) without dlib: pure Python and NumPy.

facegate runs dlib's face-recognition ResNet in PyTorch, so it needs the weights
out of ``dlib_face_recognition_resnet_model_v1.dat``. Going through dlib would tie
the embedder to a compiled extension and its CPU-only build; the format is simple
enough to read directly. Everything here follows ``dlib/serialize.h`` and the
``serialize`` friends of the layer classes in ``dlib/dnn/*.h``:

* an *integer* is one control byte (low nibble: how many bytes follow, bit 0x80:
  negative) and then that many little-endian bytes of the absolute value;
* a *float* is two integers, a mantissa and an exponent (value = m * 2**e), with
  three reserved exponents for +inf, -inf and NaN;
* a *bool* is the ASCII character ``'1'`` or ``'0'``;
* a *string* is its length (an integer) and then its bytes;
* a *tensor* is version 2, four dimensions (num_samples, k, nr, nc) and then the
  data as little-endian float32 in that (NCHW) order;
* an *alias tensor* (a view into a layer's single ``params`` tensor, such as a
  convolution's filters) is version 1 and four dimensions; its data is in ``params``.

A network is a chain of nested templates (``loss<fc<...<con<input>>>>``), and each
wrapper writes its own version before serialising what it wraps. So the file holds
the loss layer, then one version integer per wrapper from the output inwards (2 for
a computational layer, 1 for a tag or skip layer, 3 for the innermost layer, which
owns the input layer), then the input layer, then each computational layer from
input to output. Tags and skips have no payload: the topology is not in the file,
only the order of layers, so the caller must know the architecture it expects.

Only the layer types dlib's face models use are understood; any other name stops
the parser with :class:`~facegate.errors.ModelError` instead of guessing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facegate.errors import ModelError

# dlib's float_details marks non-finite values with these exponents (serialize.h).
_EXP_INF, _EXP_NINF, _EXP_NAN = 32000, 32001, 32002


@dataclass
class DatLayer:
    """One computational layer as stored: ``kind`` without dlib's version suffix.

    ``name`` is the serialised name (``"con_4"``), ``kind`` the layer type (``"con"``),
    ``attrs`` the scalar settings (filter counts, strides, paddings, ...) and ``arrays``
    the learned parameters, already cut out of dlib's flat ``params`` tensor and shaped.
    """

    name: str
    kind: str
    attrs: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class DatNetwork:
    """A whole serialised network: loss settings, input settings, layers input -> output."""

    loss: DatLayer
    input: DatLayer
    layers: list[DatLayer]
    wrapper_versions: list[int]  # output -> input; 1 = tag/skip, 2 = layer, 3 = innermost layer

    def kinds(self) -> list[str]:
        return [layer.kind for layer in self.layers]


class _Reader:
    """A cursor over the file's bytes with one method per dlib primitive."""

    def __init__(self, data: bytes, source: str) -> None:
        self.data = memoryview(data)
        self.pos = 0
        self.source = source

    def fail(self, what: str) -> ModelError:
        return ModelError(f"{self.source}: not a dlib network file this reader understands ({what} at byte {self.pos})")

    def int(self) -> int:
        if self.pos >= len(self.data):
            raise self.fail("unexpected end of file")
        control = self.data[self.pos]
        size = control & 0x0F
        if size > 8:
            raise self.fail(f"integer of {size} bytes")
        raw = self.data[self.pos + 1 : self.pos + 1 + size]
        if len(raw) != size:
            raise self.fail("unexpected end of file")
        self.pos += 1 + size
        value = int.from_bytes(raw, "little")
        return -value if control & 0x80 else value

    def float(self) -> float:
        mantissa, exponent = self.int(), self.int()
        if exponent == _EXP_INF:
            return math.inf
        if exponent == _EXP_NINF:
            return -math.inf
        if exponent == _EXP_NAN:
            return math.nan
        return math.ldexp(mantissa, exponent)

    def bool(self) -> bool:
        byte = bytes(self.data[self.pos : self.pos + 1])
        if byte not in (b"0", b"1"):
            raise self.fail(f"bool byte {byte!r}")
        self.pos += 1
        return byte == b"1"

    def string(self) -> str:
        n = self.int()
        if n < 0 or self.pos + n > len(self.data):
            raise self.fail(f"string of length {n}")
        raw = bytes(self.data[self.pos : self.pos + n])
        self.pos += n
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            raise self.fail("non-ASCII string") from None

    def dims(self) -> tuple[int, int, int, int]:
        d = (self.int(), self.int(), self.int(), self.int())
        if min(d) < 0:
            raise self.fail(f"negative tensor dimension {d}")
        return d

    def tensor(self) -> np.ndarray:
        version = self.int()
        if version != 2:
            raise self.fail(f"tensor version {version}")
        shape = self.dims()
        count = shape[0] * shape[1] * shape[2] * shape[3]
        end = self.pos + 4 * count
        if end > len(self.data):
            raise self.fail("tensor data past end of file")
        arr = np.frombuffer(self.data[self.pos : end], dtype="<f4").astype(np.float32).reshape(shape)
        self.pos = end
        return arr

    def alias(self) -> tuple[int, int, int, int]:
        version = self.int()
        if version != 1:
            raise self.fail(f"alias tensor version {version}")
        return self.dims()

    def peek_string(self) -> str | None:
        """The string at the cursor if there plausibly is one (used to find the input layer)."""
        saved = self.pos
        try:
            n = self.int()
            if not 0 < n < 64 or self.pos + n > len(self.data):
                return None
            raw = bytes(self.data[self.pos : self.pos + n])
            return raw.decode("ascii") if raw.isascii() and raw.replace(b"_", b"").isalnum() else None
        except ModelError:
            return None
        finally:
            self.pos = saved


def _split_params(params: np.ndarray, shapes: dict[str, tuple[int, ...]], r: _Reader, layer: str) -> dict[str, np.ndarray]:
    """Cut dlib's flat ``params`` tensor into its alias views, in order, as dlib lays them out."""
    flat = params.reshape(-1)
    out: dict[str, np.ndarray] = {}
    offset = 0
    for key, shape in shapes.items():
        n = int(np.prod(shape))
        out[key] = flat[offset : offset + n].reshape(shape).copy()
        offset += n
    if offset != flat.size:
        raise r.fail(f"{layer}: params hold {flat.size} values, the layer's views {offset}")
    return out


def _read_con(r: _Reader, name: str) -> DatLayer:
    params = r.tensor()
    attrs = {
        "num_filters": r.int(),
        "nr": r.int(),
        "nc": r.int(),
        "stride_y": r.int(),
        "stride_x": r.int(),
        "padding_y": r.int(),
        "padding_x": r.int(),
    }
    filters, biases = r.alias(), r.alias()
    attrs["learning_rate_multiplier"] = r.float()
    attrs["weight_decay_multiplier"] = r.float()
    attrs["bias_learning_rate_multiplier"] = r.float()
    attrs["bias_weight_decay_multiplier"] = r.float()
    shapes = {"weight": filters, "bias": (biases[1],)}
    return DatLayer(name, "con", attrs, _split_params(params, shapes, r, name))


def _read_affine(r: _Reader, name: str) -> DatLayer:
    params = r.tensor()
    gamma, beta = r.alias(), r.alias()
    mode = r.int()  # 0: CONV_MODE (one gamma/beta per channel), 1: FC_MODE (per element)
    arrays = _split_params(params, {"gamma": gamma, "beta": beta}, r, name)
    return DatLayer(name, "affine", {"mode": "conv" if mode == 0 else "fc"}, arrays)


def _read_pool(r: _Reader, name: str) -> DatLayer:
    attrs = {key: r.int() for key in ("nr", "nc", "stride_y", "stride_x", "padding_y", "padding_x")}
    return DatLayer(name, name.rsplit("_", 1)[0], attrs)


def _read_fc(r: _Reader, name: str) -> DatLayer:
    attrs: dict[str, Any] = {"num_outputs": r.int(), "num_inputs": r.int()}
    params = r.tensor()
    weights, biases = r.alias(), r.alias()
    attrs["bias_mode"] = "no_bias" if r.int() == 1 else "has_bias"
    attrs["learning_rate_multiplier"] = r.float()
    attrs["weight_decay_multiplier"] = r.float()
    attrs["bias_learning_rate_multiplier"] = r.float()
    attrs["bias_weight_decay_multiplier"] = r.float()
    # dlib computes output = input @ weight with weight shaped (num_inputs, num_outputs).
    shapes = {"weight": (weights[0], weights[1])}
    if attrs["bias_mode"] == "has_bias":
        shapes["bias"] = (biases[1],)
    return DatLayer(name, "fc", attrs, _split_params(params, shapes, r, name))


def _read_plain(r: _Reader, name: str) -> DatLayer:
    return DatLayer(name, name.rstrip("_"))


_LAYER_READERS = {
    # Only the versions found in dlib's published face models; newer ones (con_5 with
    # its use_bias flag, ...) would need their own readers, so they are refused.
    "con_4": _read_con,
    "affine_": _read_affine,
    "max_pool_2": _read_pool,
    "avg_pool_2": _read_pool,
    "fc_2": _read_fc,
    "relu_": _read_plain,
    "add_prev_": _read_plain,
}


def _read_loss(r: _Reader) -> DatLayer:
    version = r.int()
    if version != 1:
        raise r.fail(f"loss wrapper version {version}")
    name = r.string()
    if name != "loss_metric_2":
        raise r.fail(f"loss layer {name!r} (only loss_metric_2 is supported)")
    return DatLayer(name, "loss_metric", {"margin": r.float(), "distance_threshold": r.float()})


def _read_input(r: _Reader) -> DatLayer:
    name = r.string()
    if name != "input_rgb_image_sized":
        raise r.fail(f"input layer {name!r} (only input_rgb_image_sized is supported)")
    mean = (r.float(), r.float(), r.float())
    rows, cols = r.int(), r.int()
    return DatLayer(name, "input_rgb_image_sized", {"mean_rgb": mean, "rows": rows, "cols": cols})


def parse_dlib_dnn(data: bytes, source: str = "<bytes>") -> DatNetwork:
    """Parse a serialised dlib network (the bytes of a ``.dat`` file)."""
    r = _Reader(data, source)
    loss = _read_loss(r)

    # One version integer per wrapper, output -> input, until the input layer's name.
    versions: list[int] = []
    while r.peek_string() is None:
        v = r.int()
        if v not in (1, 2, 3):
            raise r.fail(f"layer wrapper version {v}")
        versions.append(v)
    if not versions or versions[-1] != 3:
        raise r.fail("no innermost layer (version 3) before the input layer")
    input_layer = _read_input(r)

    n_layers = sum(1 for v in versions if v in (2, 3))
    layers: list[DatLayer] = []
    for i in range(n_layers):
        name = r.string()
        reader = _LAYER_READERS.get(name)
        if reader is None:
            raise r.fail(f"unsupported layer {name!r}")
        layers.append(reader(r, name))
        # Training state every wrapper keeps: three flags and three (normally empty) tensors.
        for _ in range(3):
            r.bool()
        for _ in range(3):
            r.tensor()
        if i == 0:
            r.int()  # the innermost wrapper also stores its sample expansion factor
    if r.pos != len(r.data):
        raise r.fail(f"{len(r.data) - r.pos} bytes left after the last layer")
    return DatNetwork(loss=loss, input=input_layer, layers=layers, wrapper_versions=versions)


def read_dlib_dnn(path: str | Path) -> DatNetwork:
    """Parse a dlib ``.dat`` network file (see :func:`parse_dlib_dnn`)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read {path}: {exc}") from exc
    return parse_dlib_dnn(data, str(path))


def read_shape_predictor(path: Path) -> dict[str, np.ndarray]:
    """dlib's ``shape_predictor`` serialisation (``dlib/image_processing/shape_predictor.h``):
    version 1, the initial shape, the forests (per cascade level, trees of split features
    (idx1, idx2, threshold) and leaf shape deltas), the anchor landmark and the offset of
    every feature pixel per level. Integers and floats as in the DNN files above."""
    r = _Reader(Path(path).read_bytes(), str(path))

    def matrix() -> list[float]:
        nr, nc = r.int(), r.int()
        return [r.float() for _ in range(abs(nr) * abs(nc))]

    if r.int() != 1:
        raise ModelError(f"{path}: not a dlib shape predictor of version 1")
    initial = np.asarray(matrix(), dtype=np.float32)
    idx1, idx2, thresh, leaves = [], [], [], []
    for _ in range(r.int()):
        i1, i2, th, lv = [], [], [], []
        for _ in range(r.int()):
            splits = [(r.int(), r.int(), r.float()) for _ in range(r.int())]
            i1.append([s[0] for s in splits])
            i2.append([s[1] for s in splits])
            th.append([s[2] for s in splits])
            lv.append([matrix() for _ in range(r.int())])
        idx1.append(i1), idx2.append(i2), thresh.append(th), leaves.append(lv)
    anchors = [[r.int() for _ in range(r.int())] for _ in range(r.int())]
    deltas = [[(r.float(), r.float()) for _ in range(r.int())] for _ in range(r.int())]
    if r.pos != len(r.data):
        raise ModelError(f"{path}: {len(r.data) - r.pos} unexpected bytes after the shape predictor")
    return {
        "initial": initial.reshape(-1, 2),
        "idx1": np.asarray(idx1, dtype=np.int64),  # (levels, trees, splits)
        "idx2": np.asarray(idx2, dtype=np.int64),
        "thresh": np.asarray(thresh, dtype=np.float32),
        "leaves": np.asarray(leaves, dtype=np.float32),  # (levels, trees, leaves, 2 * points)
        "anchors": np.asarray(anchors, dtype=np.int64),  # (levels, features)
        "deltas": np.asarray(deltas, dtype=np.float32),  # (levels, features, 2)
    }
