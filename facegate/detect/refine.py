"""Box refinement with MTCNN's output network (O-Net), run on another detector's boxes; and
MTCNN's refinement network (R-Net) as a cheap screen for BlazeFace's weak small-face candidates.

dlib's 5-point shape predictor places its landmarks relative to the box it is given, so
the box decides the alignment and, through it, the embedding. BlazeFace's boxes are fast
to get but loose; MTCNN's last stage regresses a box tightly onto the face. Running
only that stage (a 48x48 network, about a millisecond a face) on BlazeFace's boxes, twice,
gives MTCNN-quality boxes at BlazeFace's speed. Measured on LFW View 2 with the default
stack (mirror-averaged dlib ResNet): 98.95% with BlazeFace's adjusted boxes, 99.12% with
two O-Net passes (see the README; ``facegate eval lfw`` reproduces it).

BlazeFace sees a 20-40 px face of a 1280x720 frame at 8-16 px (its finest tiles are cut for
40 px faces: finer ones would cost 28 windows instead of 6), where it scores such faces
only 0.1-0.9, among many background spots. :meth:`OnetRefiner.screen` runs R-Net (a 24x24
network, a fraction of a millisecond for dozens of boxes) on those weak candidates, keeps
those it calls faces and regresses their boxes; O-Net, which every face goes through anyway,
then confirms them (see :mod:`facegate.detect.blazeface`).

The networks come from facenet-pytorch's ``rnet.pt`` and ``onet.pt`` (sha256-verified); `facegate models
install` exports each to ONNX once (see :mod:`facegate.models.converted`) and it runs on ONNX
Runtime on the CPU; on CUDA (or with ``runtime="torch"``) the PyTorch module runs instead.
"""

from __future__ import annotations

import logging
import threading

import cv2
import numpy as np

from facegate.config import Config
from facegate.detect.boxes import affine_points, box_patch, iou_matrix, nms, regress, square, turn_matrix
from facegate.detect.mtcnn import BOX_ADJUST_MTCNN
from facegate.onnxrt import resolve_engine, session

log = logging.getLogger(__name__)

PASSES = 2  # O-Net passes: 98.95% -> 99.07% (one) -> 99.12% (two) on LFW (dlib ResNet)
POINT_VIEWS = 2  # O-Net forwards whose five points are averaged (the last two: on the boxes after 1 and 2 passes)
MIN_IOU = 0.3  # a refined box overlapping the detector's box less than this is not trusted
_MEAN, _SCALE = 127.5, 0.0078125  # MTCNN's pixel normalisation


# R-Net's cut for BlazeFace's weak candidates (MTCNN's own is 0.7). Measured on the detection
# benchmark's 1280x720 frames (seed 3, 21 faces of 20-40 px, weak candidates of the 480 px tiles):
# with this cut and O-Net's at 0.5-0.7, 17-19 of 21 kept and no false face in 20 frames; the
# whole pass's figures are in benchmarks/RESULTS.md.
SCREEN_CUT = 0.6
SCREEN_NMS = 0.7  # IoU among screened boxes, as MTCNN after R-Net


def _float_crops(image: np.ndarray, boxes: np.ndarray, size: int = 48) -> np.ndarray:
    """MTCNN's size x size crops of ``boxes`` (zero outside the image), resized from float pixels
    (MTCNN's crops without its halvings: these boxes are few and small).

    Only the pixels each box covers are converted to float32, not the whole frame (weak
    small-face candidates spread over a whole 1280x720 frame: converting it took longer than
    the networks). Resizing uint8 pixels instead (rounding before O-Net) measured 99.05% on
    LFW against 99.12%.
    """
    out = np.zeros((len(boxes), size, size, 3), dtype=np.float32)
    for k, box in enumerate(np.asarray(boxes, dtype=np.float64).reshape(-1, 4)):
        patch = box_patch(image, box)
        if patch is not None:  # else entirely outside the image: an all-zero crop, which the nets reject
            out[k] = cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA)
    return out


def _turned_crops(image: np.ndarray, boxes: np.ndarray, angles: np.ndarray, size: int) -> np.ndarray:
    """size x size float32 crops of square ``boxes`` turned by ``angles`` (degrees, cv2's sense:
    a face rolled by ``a`` comes upright) around their centres; zero outside the image."""
    out = np.zeros((len(boxes), size, size, 3), dtype=np.float32)
    for k, (box, angle) in enumerate(zip(boxes, angles)):
        centre = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
        m = turn_matrix(centre, angle, size / max(float(box[2] - box[0]), 1.0), size)
        out[k] = cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    return out


def _crops_for(image: np.ndarray, boxes: np.ndarray, size: int, angles: np.ndarray | None) -> np.ndarray:
    """Axis-aligned crops, or turned ones where ``angles`` is not NaN."""
    if angles is None:
        return _float_crops(image, boxes, size)
    turned = ~np.isnan(angles)
    crops = np.empty((len(boxes), size, size, 3), dtype=np.float32)
    crops[~turned] = _float_crops(image, boxes[~turned], size)
    crops[turned] = _turned_crops(image, boxes[turned], angles[turned], size)
    return crops


class OnetRefiner:
    """Tightens detector boxes with O-Net; returns dlib-like boxes for the landmark predictor."""

    def __init__(self, config: Config) -> None:
        self.config = config
        # The embedder's rule: ONNX Runtime on the CPU, PyTorch on CUDA, unless config.runtime
        # says otherwise; a missing GPU fails now.
        self.device, self.runtime, self.providers = resolve_engine(config)
        self._sessions: dict[str, object] = {}
        self._lock = threading.Lock()

    def _load(self, which: str = "onet"):
        with self._lock:
            if which not in self._sessions:
                if self.runtime == "torch":
                    self._sessions[which] = self._torch_net(which)
                else:
                    from facegate.models.converted import converted_path

                    path, _ = converted_path(f"mtcnn_{which}.onnx", self.config)
                    # O-Net on one thread: for a 48x48 net a thread pool's hand-offs cost more than they
                    # save (0.5 vs 1.5 ms a face); R-Net sees dozens of boxes at once and uses the cores.
                    threads = self.config.cpu_threads if which == "rnet" else 1
                    self._sessions[which] = session(path, self.providers, threads)
            return self._sessions[which]

    def _torch_net(self, which: str):
        import torch

        from facegate.models.mtcnn_nets import module

        net = module(which).to(self.device)

        def run(x: np.ndarray) -> tuple[np.ndarray, ...]:
            with torch.inference_mode():
                out = net(torch.from_numpy(x).to(self.device))
            return tuple(t.float().cpu().numpy() for t in out)

        return run

    def _forward(self, x: np.ndarray, which: str = "onet") -> tuple[np.ndarray, ...]:
        engine = self._load(which)
        if self.runtime == "torch":
            return engine(x)
        return tuple(engine.run(None, {"crops": x}))

    def screen(
        self, image: np.ndarray, boxes: np.ndarray, angles: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """R-Net on candidate boxes (N, 4): the indices of those it calls faces (probability above
        ``SCREEN_CUT``, overlapping ones merged) and their regressed square boxes (K, 4).

        Where ``angles`` (N,) is not NaN the crop is turned by it first (a rolled face seen
        upright) and the box is kept unregressed (R-Net's offsets are in the turned crop)."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        if len(boxes) == 0:
            return np.zeros(0, np.int64), np.zeros((0, 4), np.float64)
        sq = square(boxes)
        crops = _crops_for(image, sq, 24, angles)
        x = np.ascontiguousarray(((crops - _MEAN) * _SCALE).transpose(0, 3, 1, 2), dtype=np.float32)
        prob, offsets = self._forward(x, "rnet")[:2]
        offsets = offsets.astype(np.float64)
        if angles is not None:
            offsets[~np.isnan(angles)] = 0.0
        idx = np.flatnonzero(prob > SCREEN_CUT)
        if len(idx) == 0:
            return idx, np.zeros((0, 4), np.float64)
        out = square(regress(sq[idx], offsets[idx]))
        keep = nms(out, prob[idx], SCREEN_NMS)
        return idx[keep], out[keep]

    def refine(self, image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For detector boxes (N, 4) in an HxWx3 uint8 RGB image: dlib-like boxes (N, 4) from
        O-Net, its face probabilities (N,) and which refinements to trust (N,) bool."""
        out, prob, ok, _points = self.refine_points(image, boxes)
        return out, prob, ok

    def refine_points(
        self, image: np.ndarray, boxes: np.ndarray, angles: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`refine` plus O-Net's five points (N, 5, 2) in image pixels, scheme ``mtcnn5``
        (eye centres, nose tip, mouth corners; image-left first), averaged over its last two views.

        Each box is squared, cropped to 48x48 and regressed by O-Net ``PASSES`` times; a
        result that wandered off the original box (IoU < ``MIN_IOU``) is not trusted: keep
        the detector's own box for that face, and do not use its points.

        Where ``angles`` (N,) is not NaN the face is rolled by about that much (degrees, cv2's
        sense): its crops are turned upright first, each pass on the roll the previous one read
        from O-Net's eye line (BlazeFace's keypoints under-read large rolls: Grace Hopper turned
        90 degrees reads 51, and O-Net's points hold only within about 30 degrees of upright);
        its box comes back axis-aligned, the upright face's size at its centre, and its points
        mapped into the image. Rolled and upright faces share each forward.
        """
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        if len(boxes) == 0:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, bool), np.zeros((0, 5, 2), np.float32)
        roll = np.full(len(boxes), np.nan) if angles is None else np.array(angles, dtype=np.float64).reshape(-1)
        tt = np.flatnonzero(~np.isnan(roll))
        current = square(boxes)
        prob = np.zeros(len(boxes), np.float32)
        refined = boxes
        points = []
        for k in range(PASSES + 1):  # the extra forward only reads points on the final box
            crops = _crops_for(image, current, 48, roll)
            x = np.ascontiguousarray(((crops - _MEAN) * _SCALE).transpose(0, 3, 1, 2), dtype=np.float32)
            p, offsets, q = self._forward(x)
            w = (current[:, 2] - current[:, 0])[:, None]
            h = (current[:, 3] - current[:, 1])[:, None]
            pts = np.stack([current[:, 0:1] + w * q[:, :5], current[:, 1:2] + h * q[:, 5:]], axis=2)
            step = regress(current, offsets.astype(np.float64))
            for i in tt:  # the turned crops' box and points, back into the image
                box, pts[i] = _unturn(current[i], roll[i], offsets[i], q[i])
                step[i] = box
                eyes = pts[i, 1] - pts[i, 0]  # image-left to image-right eye; upright: along +x
                roll[i] = np.degrees(np.arctan2(eyes[1], eyes[0]))
            points.append(pts)
            if k == PASSES:
                break
            prob = p
            refined = step
            current = square(refined)
        # O-Net's points from its last two views of the face, averaged (LFW 99.38% -> 99.43% with
        # the ArcFace-fitted MobileFaceNet chips; one more 48 px forward, about 0.5 ms a face)
        points = np.mean(points[-POINT_VIEWS:], axis=0)
        ok = iou_matrix(refined, boxes).diagonal() >= MIN_IOU
        return BOX_ADJUST_MTCNN.apply(refined), prob.astype(np.float32), ok, points.astype(np.float32)


def _unturn(box: np.ndarray, angle: float, offsets: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """O-Net's regression and points on a crop of square ``box`` turned by ``angle`` (see
    ``_turned_crops``), back in the image: an axis-aligned box of the regressed size at the
    regressed centre, and the five points (5, 2)."""
    side = max(float(box[2] - box[0]), 1.0)
    inv = cv2.invertAffineTransform(turn_matrix(((box[0] + box[2]) / 2, (box[1] + box[3]) / 2), angle, 48 / side, 48))
    o = np.asarray(offsets, np.float64) * 48
    crop_box = np.array([o[0], o[1], 48 + o[2], 48 + o[3]])
    centre = affine_points(inv, (crop_box[:2] + crop_box[2:]) / 2)
    half = max(crop_box[2] - crop_box[0], crop_box[3] - crop_box[1]) * side / 48 / 2
    pts = np.stack([q[:5], q[5:]], axis=1).astype(np.float64) * 48
    return np.array([centre[0] - half, centre[1] - half, centre[0] + half, centre[1] + half]), affine_points(inv, pts)
