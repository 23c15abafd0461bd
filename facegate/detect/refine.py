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

PASSES = 2  # O-Net passes: 98.95% -> 99.07% (one) -> 99.12% (two) on LFW
MIN_IOU = 0.3  # a refined box overlapping the detector's box less than this is not trusted
_MEAN, _SCALE = 127.5, 0.0078125  # MTCNN's pixel normalisation


def _export_onet(dest: Path) -> None:
    import warnings

    import torch

    from facegate.detect.mtcnn import _build_networks

    onet = _build_networks()[2]
    onet.load_state_dict(torch.load(verified_path(REGISTRY["mtcnn_onet"]), map_location="cpu", weights_only=True))
    onet.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            onet,
            (torch.zeros(1, 3, 48, 48),),
            str(dest),
            input_names=["crops"],
            output_names=["prob", "offsets", "points"],
            dynamic_axes={"crops": {0: "batch"}, "prob": {0: "batch"}, "offsets": {0: "batch"}, "points": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )


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
        from facegate.embed.base import resolve_torch_device
        from facegate.embed.dlib_resnet import resolve_runtime

        self.config = config
        self.device = resolve_torch_device(config.device)  # a missing GPU fails now
        # The embedder's rule: ONNX Runtime on the CPU, PyTorch on CUDA, unless config.runtime says otherwise.
        self.runtime = resolve_runtime(config.runtime, self.device)
        if self.runtime == "onnxruntime":
            from facegate.embed.onnx import _providers

            self.providers = _providers(self.device)
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

        from facegate.detect.mtcnn import _build_networks

        onet = _build_networks()[2]
        onet.load_state_dict(torch.load(verified_path(REGISTRY["mtcnn_onet"]), map_location="cpu", weights_only=True))
        onet = onet.to(self.device).eval()

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
        O-Net, its face probabilities (N,) and which refinements to trust (N,) bool.

        Each box is squared, cropped to 48x48 and regressed by O-Net ``PASSES`` times; a
        result that wandered off the original box (IoU < ``MIN_IOU``) is not trusted: keep
        the detector's own box for that face.
        """
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        if len(boxes) == 0:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, bool)
        current = _square(boxes)
        prob = np.zeros(len(boxes), np.float32)
        refined = boxes
        for _ in range(PASSES):
            crops = _float_crops(image, current)
            x = np.ascontiguousarray(((crops - _MEAN) * _SCALE).transpose(0, 3, 1, 2), dtype=np.float32)
            prob, offsets, _points = self._forward(x)
            refined = _regress(current, offsets.astype(np.float64))
            current = _square(refined)
        ok = iou_matrix(refined, boxes).diagonal() >= MIN_IOU
        return BOX_ADJUST_MTCNN.apply(refined), prob.astype(np.float32), ok
