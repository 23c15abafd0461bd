"""Box refinement with MTCNN's output network (O-Net), run on another detector's boxes.

dlib's 5-point shape predictor places its landmarks relative to the box it is given, so
the box decides the alignment and, through it, the embedding. BlazeFace's boxes are fast
to get but loose; MTCNN's last stage regresses a box tightly onto the face. Running
only that stage (a 48x48 network, about a millisecond a face) on BlazeFace's boxes, twice,
gives MTCNN-quality boxes at BlazeFace's speed. Measured on LFW View 2 with the default
stack (mirror-averaged dlib ResNet): 98.95% with BlazeFace's adjusted boxes, 99.12% with
two O-Net passes (see the README; ``facegate eval lfw`` reproduces it).

The network comes from facenet-pytorch's ``onet.pt`` (sha256-verified); it is exported once
to ONNX (cached with its sha256, see :mod:`facegate.models.onnx_cache`) and runs on ONNX
Runtime on the CPU; on CUDA (or with ``runtime="torch"``) the PyTorch module runs instead.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np

from facegate.config import Config
from facegate.detect.blazeface import iou_matrix
from facegate.detect.mtcnn import BOX_ADJUST_MTCNN, _crops, _Halvings, _regress, _square
from facegate.models.registry import REGISTRY, verified_path

log = logging.getLogger(__name__)

PASSES = 2  # O-Net passes: 98.95% -> 99.07% (one) -> 99.12% (two) on LFW (dlib ResNet)
POINT_VIEWS = 2  # O-Net forwards whose five points are averaged (the last two: on the boxes after 1 and 2 passes)
MIN_IOU = 0.3  # a refined box overlapping the detector's box less than this is not trusted
_MEAN, _SCALE = 127.5, 0.0078125  # MTCNN's pixel normalisation


def _onet_module():  # -> torch ONet with its verified weights, eval mode, on the CPU
    from facegate.detect.mtcnn import _build_networks, load_weights

    return load_weights(_build_networks()[2], "mtcnn_onet").eval()


def _export_onet(dest: Path) -> None:
    from facegate.models.onnx_cache import export_torch

    export_torch(_onet_module(), (1, 3, 48, 48), dest, "crops", ["prob", "offsets", "points"])


def _float_crops(image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """MTCNN's 48x48 crops of ``boxes`` (zero outside the image), resized from float pixels.

    Only the region the boxes cover is converted to float32, not the whole frame. Resizing
    uint8 pixels instead (rounding before O-Net) measured 99.05% on LFW against 99.12%.
    """
    h, w = image.shape[:2]
    x1 = min(max(int(np.floor(boxes[:, 0].min())), 0), w - 1)
    y1 = min(max(int(np.floor(boxes[:, 1].min())), 0), h - 1)
    x2 = max(min(int(np.ceil(boxes[:, 2].max())) + 1, w), x1 + 1)
    y2 = max(min(int(np.ceil(boxes[:, 3].max())) + 1, h), y1 + 1)
    # Every box's part inside the image lies inside this region, so cutting from it pads
    # exactly where cutting from the whole image would.
    region = image[y1:y2, x1:x2].astype(np.float32)
    return _crops(_Halvings(region), boxes - np.array([x1, y1, x1, y1], dtype=np.float64), 48)


class OnetRefiner:
    """Tightens detector boxes with O-Net; returns dlib-like boxes for the landmark predictor."""

    def __init__(self, config: Config) -> None:
        from facegate.embed.base import resolve_engine

        self.config = config
        # The embedder's rule: ONNX Runtime on the CPU, PyTorch on CUDA, unless config.runtime
        # says otherwise; a missing GPU fails now.
        self.device, self.runtime, self.providers = resolve_engine(config)
        self._session = None
        self._lock = threading.Lock()

    def _load(self):
        with self._lock:
            if self._session is None:
                if self.runtime == "torch":
                    self._session = self._torch_onet()
                else:
                    from facegate.embed.onnx import _session
                    from facegate.models.onnx_cache import cached_onnx

                    spec = REGISTRY["mtcnn_onet"]
                    verified_path(spec)
                    path, _ = cached_onnx(
                        self.config.cache_dir / f"mtcnn_onet.{spec.sha256[:16]}.onnx", spec.sha256, _export_onet
                    )
                    # One thread: for a 48x48 net a thread pool's hand-offs cost more than they save (0.5 vs 1.5 ms).
                    self._session = _session(path, self.providers, 1)
            return self._session

    def _torch_onet(self):
        import torch

        onet = _onet_module().to(self.device)

        def run(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            with torch.inference_mode():
                out = onet(torch.from_numpy(x).to(self.device))
            return tuple(t.float().cpu().numpy() for t in out)  # type: ignore[return-value]

        return run

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        engine = self._load()
        if self.runtime == "torch":
            return engine(x)
        return tuple(engine.run(None, {"crops": x}))  # type: ignore[return-value]

    def refine(self, image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For detector boxes (N, 4) in an HxWx3 uint8 RGB image: dlib-like boxes (N, 4) from
        O-Net, its face probabilities (N,) and which refinements to trust (N,) bool."""
        out, prob, ok, _points = self.refine_points(image, boxes)
        return out, prob, ok

    def refine_points(
        self, image: np.ndarray, boxes: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`refine` plus O-Net's five points (N, 5, 2) in image pixels, scheme ``mtcnn5``
        (eye centres, nose tip, mouth corners; image-left first), averaged over its last two views.

        Each box is squared, cropped to 48x48 and regressed by O-Net ``PASSES`` times; a
        result that wandered off the original box (IoU < ``MIN_IOU``) is not trusted: keep
        the detector's own box for that face, and do not use its points.
        """
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        if len(boxes) == 0:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, bool), np.zeros((0, 5, 2), np.float32)
        current = _square(boxes)
        prob = np.zeros(len(boxes), np.float32)
        refined = boxes
        points = []
        for k in range(PASSES + 1):  # the extra forward only reads points on the final box
            crops = _float_crops(image, current)
            x = np.ascontiguousarray(((crops - _MEAN) * _SCALE).transpose(0, 3, 1, 2), dtype=np.float32)
            p, offsets, q = self._forward(x)
            w = (current[:, 2] - current[:, 0])[:, None]
            h = (current[:, 3] - current[:, 1])[:, None]
            points.append(np.stack([current[:, 0:1] + w * q[:, :5], current[:, 1:2] + h * q[:, 5:]], axis=2))
            if k == PASSES:
                break
            prob = p
            refined = _regress(current, offsets.astype(np.float64))
            current = _square(refined)
        # O-Net's points from its last two views of the face, averaged (LFW 99.38% -> 99.43% with
        # the ArcFace-fitted MobileFaceNet chips; one more 48 px forward, about 0.5 ms a face)
        points = np.mean(points[-POINT_VIEWS:], axis=0)
        ok = iou_matrix(refined, boxes).diagonal() >= MIN_IOU
        return BOX_ADJUST_MTCNN.apply(refined), prob.astype(np.float32), ok, points.astype(np.float32)
