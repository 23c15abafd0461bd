"""dlib's face-recognition ResNet (``dlib_face_recognition_resnet_model_v1``) in PyTorch.

The network is dlib's ``anet_type`` from ``dnn_face_recognition_ex.cpp``:

    input 150x150 RGB, (pixel - mean) / 256
    con 7x7/2 (32, no padding) - affine - relu - max_pool 3x3/2 (no padding)
    3 x res(32) | res_down(64) 3 x res(64) | res_down(128) 2 x res(128)
    | res_down(256) 2 x res(256) | res_down(256)
    avg_pool_everything - fc 128 (no bias)

where ``res(N)`` is ``relu(x + affine(con3x3(relu(affine(con3x3(x))))))`` and
``res_down(N)`` uses a stride-2 first convolution and adds ``avg_pool 2x2/2`` of ``x``
instead of ``x``. Details that matter for agreeing with dlib to 1e-4 and that a
"standard" ResNet gets wrong:

* dlib's default convolution/pooling padding is ``k // 2`` for stride 1 and *zero*
  for any other stride, so every strided 3x3 convolution, the max pool and the first
  7x7 convolution are unpadded (feature maps 150 -> 72 -> 35 -> 17 -> 8 -> 4 -> 2);
* the shortcut of a down-sampling block is just the 2x2 average pool: no 1x1
  projection. ``add_prev`` adds tensors of different shapes by zero-extending each to
  the larger one, aligned at channel 0 and the top-left pixel, so the extra channels
  of the shortcut are zero and, where the pooled shortcut is larger than the strided
  convolution (8 -> 4 versus 8 -> 3, and 4 -> 2 versus 4 -> 1), the convolution's
  output sits in the top-left corner of a zero map;
* each ``affine`` (dlib's frozen batch norm) directly follows a convolution, so it is
  folded into that convolution's weights and bias when the weights are converted:
  one operation fewer per layer and the same result up to float rounding.

The weights are parsed from dlib's ``.dat`` (see :mod:`facegate.models.dlib_dat`) and
saved as a PyTorch file and an ONNX graph by `facegate models install` (see
:mod:`facegate.models.converted`), so runs start in a fraction of a second.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from facegate.errors import ModelError
from facegate.models.dlib_dat import DatLayer, DatNetwork, read_dlib_dnn
from facegate.models.onnx_export import export_torch
from facegate.models.registry import REGISTRY, ModelSpec, verified_path

log = logging.getLogger(__name__)

# (channels, residual blocks, whether the stage's first block down-samples), input -> output.
STAGES: tuple[tuple[int, int, bool], ...] = ((32, 3, False), (64, 4, True), (128, 3, True), (256, 3, True), (256, 1, True))
INPUT_SIZE = 150
EMBEDDING_DIM = 128
STATE_FORMAT = 1  # bump when the module's state-dict layout changes (and the conversion's version)


def _dlib_padding(kernel: int, stride: int) -> int:
    """dlib's default padding for con_ and the pooling layers: same-size only at stride 1."""
    return kernel // 2 if stride == 1 else 0


def dlib_add(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's ``add_prev``: the sum of two NCHW tensors, each zero-extended to the larger
    size in every dimension, aligned at channel 0 and the top-left pixel."""
    if a.shape == b.shape:
        return a + b
    c, h, w = (max(a.shape[i], b.shape[i]) for i in (1, 2, 3))

    def grow(t: torch.Tensor) -> torch.Tensor:
        return F.pad(t, (0, w - t.shape[3], 0, h - t.shape[2], 0, c - t.shape[1]))

    return grow(a) + grow(b)


class ResidualBlock(nn.Module):
    """dlib's ``ares``/``ares_down``; each conv carries its folded ``affine``."""

    def __init__(self, in_channels: int, channels: int, down: bool) -> None:
        super().__init__()
        stride = 2 if down else 1
        self.down = down
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, _dlib_padding(3, stride))
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, _dlib_padding(3, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(F.relu(self.conv1(x)))
        skip = F.avg_pool2d(x, 2, 2) if self.down else x
        return F.relu(dlib_add(y, skip))


class DlibResNet(nn.Module):
    """The network on float NCHW RGB input in 0..255 (any batch size, 150x150), raw 128-d output."""

    def __init__(self) -> None:
        super().__init__()
        # Per-channel mean subtracted by dlib's input layer; overwritten from the .dat.
        self.register_buffer("mean_rgb", torch.zeros(1, 3, 1, 1))
        self.stem = nn.Conv2d(3, 32, 7, 2, _dlib_padding(7, 2))
        blocks = []
        channels = 32
        for out, count, down in STAGES:
            for i in range(count):
                blocks.append(ResidualBlock(channels, out, down and i == 0))
                channels = out
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(channels, EMBEDDING_DIM, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean_rgb) * (1.0 / 256.0)
        x = F.relu(self.stem(x))
        x = F.max_pool2d(x, 3, 2, _dlib_padding(3, 2))
        x = self.blocks(x)
        x = x.mean(dim=(2, 3))  # dlib's avg_pool_everything
        return self.fc(x)


# --------------------------------------------------------------------------- conversion


def _expect(layer: DatLayer, kind: str, **attrs: object) -> DatLayer:
    got = {k: layer.attrs.get(k) for k in attrs}
    if layer.kind != kind or got != attrs:
        raise ModelError(
            f"dlib ResNet file does not have the expected architecture: found {layer.name} {layer.attrs}, "
            f"expected {kind} {attrs}"
        )
    return layer


def _fold(con: DatLayer, affine: DatLayer) -> tuple[torch.Tensor, torch.Tensor]:
    """conv followed by per-channel ``gamma * x + beta`` == one conv with scaled weights.
    Done in float64 so folding adds no error beyond the final float32 rounding."""
    if affine.attrs.get("mode") != "conv":
        raise ModelError(f"dlib ResNet: affine layer in {affine.attrs.get('mode')} mode, expected conv mode")
    gamma = affine.arrays["gamma"].reshape(-1).astype(np.float64)
    beta = affine.arrays["beta"].reshape(-1).astype(np.float64)
    w = con.arrays["weight"].astype(np.float64) * gamma[:, None, None, None]
    b = con.arrays["bias"].astype(np.float64) * gamma + beta
    return torch.from_numpy(w.astype(np.float32)), torch.from_numpy(b.astype(np.float32))


def state_dict_from_dat(net: DatNetwork) -> dict[str, torch.Tensor]:
    """Map the parsed dlib layers onto :class:`DlibResNet`, checking every layer's type and
    settings against the architecture above (the file itself records no topology)."""
    inp = net.input.attrs
    if (inp["rows"], inp["cols"]) != (INPUT_SIZE, INPUT_SIZE):
        raise ModelError(f"dlib ResNet input is {inp['rows']}x{inp['cols']}, expected {INPUT_SIZE}x{INPUT_SIZE}")
    layers = iter(net.layers)

    def take(kind: str, **attrs: object) -> DatLayer:
        try:
            return _expect(next(layers), kind, **attrs)
        except StopIteration:
            raise ModelError(f"dlib ResNet file ends early: expected a {kind} layer") from None

    def conv(n: int, k: int, stride: int) -> DatLayer:
        pad = _dlib_padding(k, stride)
        return take("con", num_filters=n, nr=k, nc=k, stride_y=stride, stride_x=stride, padding_y=pad, padding_x=pad)

    sd: dict[str, torch.Tensor] = {"mean_rgb": torch.tensor(inp["mean_rgb"], dtype=torch.float32).reshape(1, 3, 1, 1)}
    sd["stem.weight"], sd["stem.bias"] = _fold(conv(32, 7, 2), take("affine"))
    take("relu")
    take("max_pool", nr=3, nc=3, stride_y=2, stride_x=2, padding_y=0, padding_x=0)
    index = 0
    for out, count, down in STAGES:
        for i in range(count):
            stride = 2 if down and i == 0 else 1
            prefix = f"blocks.{index}"
            sd[f"{prefix}.conv1.weight"], sd[f"{prefix}.conv1.bias"] = _fold(conv(out, 3, stride), take("affine"))
            take("relu")
            sd[f"{prefix}.conv2.weight"], sd[f"{prefix}.conv2.bias"] = _fold(conv(out, 3, 1), take("affine"))
            if stride == 2:
                take("avg_pool", nr=2, nc=2, stride_y=2, stride_x=2, padding_y=0, padding_x=0)
            take("add_prev")
            take("relu")
            index += 1
    take("avg_pool", nr=0, nc=0)  # avg_pool_everything
    fc = take("fc", num_outputs=EMBEDDING_DIM, bias_mode="no_bias")
    sd["fc.weight"] = torch.from_numpy(np.ascontiguousarray(fc.arrays["weight"].T))  # dlib: x @ W
    leftover = list(layers)
    if leftover:
        raise ModelError(f"dlib ResNet file has {len(leftover)} unexpected extra layers")
    return sd


# --------------------------------------------------------------------------- files


def state_dict_from_source(spec: ModelSpec | None = None) -> dict[str, torch.Tensor]:
    """The registry's sha256-verified ``.dat`` as a state dict (about 0.3 s of parsing)."""
    return state_dict_from_dat(read_dlib_dnn(verified_path(spec or REGISTRY["dlib_resnet"])))


def write_state_dict(dest: Path, spec: ModelSpec | None = None) -> None:
    """The converted weights as a PyTorch file (what the torch runtime loads; see
    :mod:`facegate.models.converted`), tagged with the ``.dat``'s sha256."""
    spec = spec or REGISTRY["dlib_resnet"]
    blob = {"format": STATE_FORMAT, "source_sha256": spec.sha256, "state_dict": state_dict_from_source(spec)}
    with open(dest, "wb") as fh:  # a file object: given a path, torch names the archive after it (not reproducible)
        torch.save(blob, fh)


def read_state_dict(path: Path, spec: ModelSpec | None = None) -> dict[str, torch.Tensor]:
    """Load a file :func:`write_state_dict` made, checking that it is of the registry's ``.dat``
    and holds every layer of :class:`DlibResNet` in its shape (its bytes were sha256-checked
    against the record made with it before this is called)."""
    spec = spec or REGISTRY["dlib_resnet"]
    with torch.device("meta"):  # shapes only: skips the random initialisation
        expected = DlibResNet().state_dict()
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a foreign file
        raise ModelError(f"{path} is not a readable dlib ResNet state dict ({exc})") from exc
    sd = blob.get("state_dict") if isinstance(blob, dict) else None
    if not isinstance(blob, dict) or blob.get("format") != STATE_FORMAT or blob.get("source_sha256") != spec.sha256:
        raise ModelError(f"{path} is not a state dict of this dlib ResNet ({spec.sha256[:16]}...)")
    if (not isinstance(sd, dict) or sd.keys() != expected.keys()
            or any(sd[k].shape != expected[k].shape or sd[k].dtype != torch.float32 for k in sd)):
        raise ModelError(f"{path}: its layers do not match the dlib ResNet network")
    return sd


def build_model(sd: dict[str, torch.Tensor]) -> DlibResNet:
    """A :class:`DlibResNet` (eval mode, CPU) holding ``sd``, without a wasted random init."""
    with torch.device("meta"):
        model = DlibResNet()
    model.load_state_dict(sd, assign=True)
    return model.eval()


def write_onnx(dest: Path, spec: ModelSpec | None = None, opset: int = 17) -> None:
    """The network as ONNX, straight from the ``.dat``: input ``chips`` float32 [N, 3, 150, 150]
    RGB in 0..255 (mean subtraction included), output ``embedding`` [N, 128] raw (not normalised)."""
    export_graph(build_model(state_dict_from_source(spec)), dest, opset)


def export_graph(model: DlibResNet, out: Path, opset: int = 17) -> None:
    """Trace ``model`` to an ONNX file: input ``chips`` [N, 3, 150, 150], output ``embedding`` [N, 128]."""
    export_torch(model, (1, 3, INPUT_SIZE, INPUT_SIZE), out, "chips", ["embedding"], opset)
