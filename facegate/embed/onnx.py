"""User-registered ONNX embedders (ArcFace-style models), run with onnxruntime.

A user registers a model file by path and sha256 (``register_onnx_embedder``); facegate
ships no such weights. At registration :func:`probe_onnx_embedder` checks that the
model takes one square RGB image batch of the declared size and finds its output
dimension; at load time the file is hashed again, so a swapped file is refused.

Preprocessing is the ArcFace convention: RGB, ``(x - 127.5) / 127.5``, NCHW (or NHWC
if that is what the model's input is shaped as).

Alignment. ArcFace models are trained on chips whose eye centres, nose tip and mouth
corners sit at fixed points of a 112x112 image (``ARCFACE_112``). facegate aligns with
dlib's five landmarks (eye corners, nose base) placed by a template derived from
dlib's mean face. A template of the usual kind (the mean face's unit square plus a
symmetric ``padding``) cannot reproduce ArcFace's framing: fitting the one free
``padding`` to the five ArcFace points leaves them 16 px off on average, because
ArcFace puts the face lower in the chip (the eyes at 46 % of the height, where a
symmetric box puts them at 33 %). So this embedder's :attr:`OnnxEmbedder.template`
is computed instead: the least-squares similarity from the mean face's eye centres,
nose tip and mouth corners to ``ARCFACE_112`` (1.5 px RMS residual at 112 px) is
applied to dlib's five landmarks. ``OnnxEmbedder.padding`` is the symmetric padding of
the same scale, about 0.31, for code that only records a padding; align with
``embedder.template``, not ``template(size, padding)``.
"""

from __future__ import annotations

import logging
import os
import threading
from functools import cache
from pathlib import Path

import numpy as np

from facegate.align import LANDMARK_ORDER, MEAN_FACE, Template, similarity_transform
from facegate.config import Config
from facegate.embed.base import Embedder
from facegate.errors import DeviceError, ModelError, UsageError
from facegate.models.registry import ModelSpec, verified_path

log = logging.getLogger(__name__)

# insightface's canonical landmarks for 112x112 ArcFace chips (image-left eye first):
# eye centres, nose tip, mouth corners.
ARCFACE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)


def _mean_face_arcface_points() -> np.ndarray:
    """The same five points on dlib's normalised mean face, in ``ARCFACE_112`` order."""
    m = {k: np.array(v, dtype=np.float64) for k, v in MEAN_FACE.items()}
    return np.array(
        [
            (m["right_eye_outer"] + m["right_eye_inner"]) / 2,  # subject's right eye = image left
            (m["left_eye_outer"] + m["left_eye_inner"]) / 2,
            m["nose_tip"],
            m["mouth_right"],
            m["mouth_left"],
        ]
    )


@cache
def arcface_template(size: int = 112) -> Template:
    """dlib's five landmarks placed where ArcFace's framing puts them, for a ``size`` chip."""
    fit = similarity_transform(_mean_face_arcface_points(), ARCFACE_112)  # unit mean face -> 112 px
    unit = np.array([MEAN_FACE[name] for name in LANDMARK_ORDER], dtype=np.float64)
    points = (unit @ fit[:, :2].T + fit[:, 2]) * (size / 112.0)
    scale = float(np.sqrt(abs(np.linalg.det(fit[:, :2]))))  # pixels per mean-face unit at 112
    padding = (112.0 / scale - 1.0) / 2.0  # the symmetric padding with the same scale
    return Template(size=size, padding=padding, points=points.astype(np.float32))


ARCFACE_PADDING = round(arcface_template(112).padding, 3)


def _session(path: Path, providers: list, threads: int = 0):  # -> onnxruntime.InferenceSession
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads > 0:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    # ONNX Runtime's idle worker threads spin for a while after each run; beside the
    # detector's own threads on a small machine that spinning took the cores the detector
    # needed (BlazeFace 43 -> 67 ms per 720p frame on 2 cores). Parked threads cost little here.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=providers)
    except Exception as exc:  # onnxruntime raises its own exception types for bad files
        raise ModelError(f"{path} is not a loadable ONNX model: {' '.join(str(exc).split())[:300]}") from exc


def _input_layout(session, path: Path, input_size: int) -> tuple[str, int | None]:
    """("nchw" | "nhwc", fixed batch size or None) for a model with one square RGB input."""
    inputs = session.get_inputs()
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


def _run(session, batch: np.ndarray, path: Path) -> np.ndarray:
    try:
        out = session.run(None, {session.get_inputs()[0].name: batch})[0]
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
    return its output dimension (from running one all-zero image through it)."""
    path = Path(path)
    session = _session(path, ["CPUExecutionProvider"])
    layout, batch = _input_layout(session, path, input_size)
    s = input_size
    shape = (batch or 1, 3, s, s) if layout == "nchw" else (batch or 1, s, s, 3)
    out = _run(session, np.zeros(shape, dtype=np.float32), path)
    dim = int(out.shape[1])
    if dim < 1:
        raise ModelError(f"{path}: the model's output is empty")
    return dim


def _providers(device: str) -> list:
    """onnxruntime providers for the requested device, named explicitly (no silent fallback)."""
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device.startswith("cuda"):
        import onnxruntime as ort

        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise DeviceError(
                f"device {device!r} was requested but this onnxruntime has no CUDA support "
                "(install onnxruntime-gpu, or use --device cpu)"
            )
        index = int(device.split(":", 1)[1]) if ":" in device else 0
        return [("CUDAExecutionProvider", {"device_id": index})]
    raise DeviceError(f"unknown device {device!r}; use 'cpu' or 'cuda[:N]'")


class OnnxEmbedder(Embedder):
    """A registered ONNX embedder. Chips are aligned with :func:`arcface_template`."""

    padding = ARCFACE_PADDING

    def __init__(self, config: Config, spec: ModelSpec) -> None:
        super().__init__(config)
        if spec.task != "embed" or not spec.input_size or not spec.output_size:
            raise ModelError(f"model {spec.name!r} is not a registered embedder")
        self.spec = spec
        self.name = spec.name
        self.input_size = spec.input_size
        self.dim = spec.output_size
        self.providers = _providers(config.device)  # fails now, not at the first face
        self._session = None
        self._layout = "nchw"
        self._batch: int | None = None
        self._path: Path | None = None
        self._lock = threading.Lock()

    @property
    def template(self) -> Template:
        return arcface_template(self.input_size)

    def load(self) -> None:
        """Verify the file's sha256 and open the session (otherwise done on first use)."""
        with self._lock:
            if self._session is None:
                path = verified_path(self.spec)
                session = _session(path, self.providers, self.config.threads)
                self._layout, self._batch = _input_layout(session, path, self.input_size)
                self._path = path
                self._session = session
                log.info("loaded ONNX embedder %s from %s (%s input, %s)", self.name, path, self._layout, self.providers)

    def _forward(self, chips: np.ndarray) -> np.ndarray:
        s = self.input_size
        if chips.ndim != 4 or chips.shape[1:] != (s, s, 3) or chips.dtype != np.uint8:
            raise UsageError(f"{self.name} needs (N, {s}, {s}, 3) uint8 RGB chips, got {chips.shape} {chips.dtype}")
        self.load()
        x = (chips.astype(np.float32) - 127.5) / 127.5
        if self._layout == "nchw":
            x = x.transpose(0, 3, 1, 2)
        x = np.ascontiguousarray(x)
        if self._batch is None:
            out = _run(self._session, x, self._path)
        else:  # a model exported with a fixed batch size: feed it whole, zero-padded batches
            parts = []
            for start in range(0, len(x), self._batch):
                part = x[start : start + self._batch]
                pad = self._batch - len(part)
                if pad:
                    part = np.concatenate([part, np.zeros((pad, *part.shape[1:]), dtype=np.float32)])
                parts.append(_run(self._session, part, self._path)[: self._batch - pad])
            out = np.concatenate(parts)
        if out.shape[1] != self.dim:
            raise ModelError(f"{self.name}: the model now outputs {out.shape[1]} values, registered as {self.dim}")
        return out
