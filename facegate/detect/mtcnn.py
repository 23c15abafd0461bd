"""MTCNN (Zhang et al. 2016), the thorough detector, re-implemented in PyTorch.

Three cascaded networks: P-Net scans an image pyramid for candidate windows,
R-Net rejects most of them on 24x24 crops, O-Net scores the rest on 48x48 crops
and regresses the final box and five points (eye centres, nose tip, mouth
corners). The weights are facenet-pytorch's conversion of the original Caffe
models (state dicts shipped in its package); only those files are used, never
its code, which needs torchvision and an old torch. The networks are defined in
:mod:`facegate.models.mtcnn_nets` (the box refiner runs two of them too).

MTCNN's own five points are not dlib's five (eye corners and nose base), so the
MTCNN box is mapped to the box dlib's HOG detector would have drawn on the same
face (``BOX_ADJUST_MTCNN``; the predictor was trained on such boxes) and dlib's
5-point shape predictor places ``Face.landmarks`` from it. ``Face.box`` is that
dlib-like box, the framing the other detectors report; MTCNN's own box and points
are kept in ``face.extra["detector_box"]`` and ``face.extra["mtcnn_points"]``.

Pipeline details follow the reference implementation: pyramid step 0.709 from
``12 / min_face_size``, P-Net/R-Net cuts 0.6/0.7, NMS 0.5 per level then 0.7, R-Net
NMS 0.7, O-Net NMS 0.7 on intersection-over-minimum, crops zero-padded at the border
and resized with area averaging, pixels normalised as (x - 127.5) / 128.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import cv2
import numpy as np

from facegate.align import DLIB5, MTCNN5
from facegate.config import Config
from facegate.detect.base import Detector
from facegate.detect.boxes import BoxAdjust, box_patch, nms, regress, square
from facegate.detect.landmarks import DlibLandmarker
from facegate.detect.scores import finish
from facegate.errors import InvalidImageError, UsageError
from facegate.models.mtcnn_nets import build_networks, load_weights
from facegate.types import Face

log = logging.getLogger(__name__)

SCALE_FACTOR = 0.709  # pyramid step, as in the paper
PNET_THRESHOLD = 0.6  # candidate-window probability cut after P-Net
RNET_THRESHOLD = 0.7  # after R-Net; the O-Net cut is ``config.detection_threshold``
PNET_NMS_PER_SCALE = 0.5  # IoU, within one pyramid level
PNET_NMS = 0.7  # IoU, across levels
RNET_NMS = 0.7  # IoU
ONET_NMS = 0.7  # intersection over the smaller box ("Min"), as in the reference code
PIXEL_MEAN = 127.5
PIXEL_SCALE = 0.0078125
_GPU_PYRAMID_CHUNK = 32  # images whose pyramid is built on the GPU at once (about 350 MB at 1280x720)
_CROP_BATCH = 128  # R-Net/O-Net crops per forward pass (larger batches were slower on CPU)

# MTCNN box -> the box dlib's HOG detector draws on the same face, for dlib's 5-point
# shape predictor (trained on HOG boxes). Calibrated with a throwaway script on 400 LFW
# images (a seeded random sample, numpy default_rng(0) permutation of the sorted file
# list): dlib's HOG detector (upsample 1) and MTCNN were run on each; on the 396 images
# where each found exactly one face containing the image centre, the ratios HOG width /
# MTCNN width, HOG height / MTCNN height and the centre offsets (HOG - MTCNN) / MTCNN size
# were taken, and the constants are their medians (interquartile ranges: sx 1.087-1.196,
# sy 0.805-0.892, dx -0.073-+0.038, dy 0.035-0.077). Landmarks fitted from the adjusted
# MTCNN boxes lie a mean 0.9% (median 0.6%, 95th percentile 2.5%) of the inter-ocular
# distance from those fitted from the HOG boxes; from the unadjusted boxes, 2.6%.
BOX_ADJUST_MTCNN = BoxAdjust(sx=1.147, sy=0.855, dx=-0.018, dy=0.056)


# --------------------------------------------------------------------------- crops


class _Halvings:
    """A float32 image and its successive area-averaged halvings, made on demand.

    Crops of large boxes are cut from a halving so the final resize reads fewer pixels.
    """

    def __init__(self, image: np.ndarray) -> None:
        self.levels = [image]

    @property
    def full(self) -> np.ndarray:
        return self.levels[0]

    def level(self, k: int) -> np.ndarray:
        while len(self.levels) <= k:
            prev = self.levels[-1]
            h, w = prev.shape[:2]
            if h < 2 or w < 2:
                break
            self.levels.append(cv2.resize(prev, (w // 2, h // 2), interpolation=cv2.INTER_AREA))
        return self.levels[min(k, len(self.levels) - 1)]


def _crops(image: _Halvings, boxes: np.ndarray, size: int, shrink: bool = False) -> np.ndarray:
    """(N, size, size, 3) float32 crops of the boxes, zero outside the image (as in the paper).

    With ``shrink``, a box wider than ``4 * size`` is cut from the halving where it is
    between ``2 * size`` and ``4 * size`` pixels wide (for R-Net's many candidates; the
    rounding to that level's pixels moves the crop by at most 1/48 of its side).
    """
    full_h, full_w = image.full.shape[:2]
    out = np.zeros((len(boxes), size, size, 3), dtype=np.float32)
    for k, box in enumerate(boxes[:, :4]):
        side = float(max(box[2] - box[0], box[3] - box[1]))
        level = int(np.floor(np.log2(side / (2 * size)))) if shrink and side >= 4 * size else 0
        img = image.level(level)
        h, w = img.shape[:2]
        bx1, by1, bx2, by2 = box * np.array([w / full_w, h / full_h, w / full_w, h / full_h])
        patch = box_patch(img, (bx1, by1, bx2, by2))
        if patch is not None:  # else entirely outside the image: an all-zero crop, which the nets reject
            out[k] = cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA)
    return out


def pyramid_scales(height: int, width: int, min_face: float) -> list[float]:
    """Scales at which P-Net's 12-px window sees faces from ``min_face`` px up to the whole image."""
    scale = 12.0 / min_face
    side = min(height, width) * scale
    scales: list[float] = []
    while side >= 12:
        scales.append(scale)
        scale *= SCALE_FACTOR
        side *= SCALE_FACTOR
    return scales


# --------------------------------------------------------------------------- detector


def _as_rgb(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise InvalidImageError(f"expected a numpy image, got {type(image).__name__}")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, :3]
    elif image.ndim == 3 and image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3:
        raise InvalidImageError(f"expected an HxWx3 RGB image, got shape {image.shape}")
    if image.dtype != np.uint8:
        raise InvalidImageError(f"expected a uint8 image, got {image.dtype}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise InvalidImageError("the image is empty")
    return np.ascontiguousarray(image)


class MtcnnDetector(Detector):
    """MTCNN in PyTorch: slower than BlazeFace, but finds small, rotated and partly hidden faces.

    ``config.min_face_size`` sets the pyramid's smallest face (MTCNN box side),
    ``config.detection_threshold`` the O-Net probability a face must exceed (P-Net and
    R-Net use the reference 0.6 and 0.7), ``config.device`` where the networks run.

    ``Face.box`` is the dlib-like box (``BOX_ADJUST_MTCNN`` applied to MTCNN's box, the
    framing the HOG and BlazeFace detectors report too), ``Face.landmarks`` dlib's five
    points fitted from it, ``Face.score`` the O-Net probability. MTCNN's own box and five
    points are in ``Face.extra["detector_box"]`` and ``Face.extra["mtcnn_points"]``.
    """

    name = "mtcnn"

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        if self.min_face <= 0:
            raise UsageError(f"min_face_size must be positive, got {config.min_face_size}")
        self._nets: tuple[Any, Any, Any] | None = None
        self._device: str | None = None
        self.landmarker = DlibLandmarker(config)
        self._lock = threading.Lock()
        # Build the P-Net pyramid on the torch device (None: on a GPU only). Tests set True
        # to run that path on the CPU.
        self.pyramid_on_device: bool | None = None

    # ---------------------------------------------------------------- loading

    def _load(self) -> tuple[Any, Any, Any]:
        with self._lock:
            if self._nets is not None:
                return self._nets
            import torch

            from facegate.onnxrt import resolve_torch_device

            device = resolve_torch_device(self.config.device)
            if self.config.threads > 0:
                torch.set_num_threads(self.config.threads)
            nets = build_networks()
            for net, key in zip(nets, ("mtcnn_pnet", "mtcnn_rnet", "mtcnn_onet")):
                load_weights(net, key)
                # channels-last: 2-3x faster on CPU, mostly in max-pooling (torch 2.13)
                net.to(device, memory_format=torch.channels_last).eval()
            self._device = device
            self._nets = nets
            log.debug("loaded MTCNN on %s", device)
            return nets

    # ---------------------------------------------------------------- public

    def networks(self) -> tuple[Any, Any, Any]:
        """(P-Net, R-Net, O-Net), loaded on ``torch_device``: the device path runs them on its own tensors."""
        return self._load()

    @property
    def torch_device(self) -> str:
        """The torch device the networks run on (loading them if needed)."""
        self._load()
        assert self._device is not None
        return self._device

    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces in one HxWx3 uint8 RGB image, highest score first."""
        return self.detect_batch([image])[0]

    def detect_batch(self, images: list[np.ndarray]) -> list[list[Face]]:
        """Faces for several images: P-Net runs once per pyramid level on all images of one size,
        R-Net and O-Net once per stage on the crops of all images together."""
        images = [_as_rgb(img) for img in images]
        results = self.detect_raw(images)
        faces_per_image: list[list[Face]] = []
        for image, (boxes, scores, points) in zip(images, results):
            if len(boxes) == 0:
                faces_per_image.append([])
                continue
            dlib_boxes = BOX_ADJUST_MTCNN.apply(boxes)
            # O-Net's own points are native; dlib's predictor runs only for a dlib5 embedder.
            dlib_pts = self.landmarker.fit(image, dlib_boxes) if self.wanted_scheme == DLIB5 else None
            faces = []
            for k in range(len(boxes)):
                schemes = {MTCNN5: points[k]}
                if dlib_pts is not None:
                    schemes[DLIB5] = dlib_pts[k]
                primary = self.wanted_scheme if self.wanted_scheme in schemes else MTCNN5
                faces.append(Face(
                    box=dlib_boxes[k],
                    landmarks=schemes.pop(primary),
                    scheme=primary,
                    more_landmarks=schemes,
                    score=float(scores[k]),
                    detector=self.name,
                    extra={"detector_box": boxes[k], "mtcnn_points": points[k]},
                ))
            faces_per_image.append(finish(faces, self.name, self.config.min_score))
        return faces_per_image

    def detect_raw(self, images: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """MTCNN alone, without dlib's landmarks: per image (boxes (N,4), scores (N,), points (N,5,2)).

        ``points`` are MTCNN's own: subject's right eye centre (image left), left eye centre,
        nose tip, right mouth corner (image left), left mouth corner; sorted by score.
        """
        import torch

        images = [_as_rgb(img) for img in images]
        pnet, rnet, onet = self._load()
        with torch.inference_mode():
            floats = [_Halvings(img.astype(np.float32)) for img in images]
            cands = self._stage_pnet(pnet, [f.full for f in floats])
            cands = self._stage_refine(rnet, floats, cands)
            return self._stage_output(onet, floats, cands)

    # ---------------------------------------------------------------- stages

    def _to_tensor(self, batch: np.ndarray) -> Any:
        """(N, H, W, 3) float32 pixels -> normalised (N, 3, H, W) tensor on the device."""
        import torch

        t = torch.from_numpy(np.ascontiguousarray(batch)).to(self._device)
        # NHWC in memory is exactly channels-last NCHW: the permute is a view, no copy.
        return ((t - PIXEL_MEAN) * PIXEL_SCALE).permute(0, 3, 1, 2)

    def _stage_pnet(self, pnet: Any, images: list[np.ndarray]) -> list[np.ndarray]:
        """Candidate squares per image, (M, 4) each, from the image pyramid."""
        per_image: list[list[np.ndarray]] = [[] for _ in images]
        groups: dict[tuple[int, int], list[int]] = {}
        for i, img in enumerate(images):
            groups.setdefault(img.shape[:2], []).append(i)
        on_gpu = self.pyramid_on_device if self.pyramid_on_device is not None else self._device != "cpu"
        for (h, w), all_idx in groups.items():
            # On a GPU the pyramid is resized there too: on the host its resizes took three
            # quarters of a 720p batch's time (H100, 16 cores, batch 64). In chunks, so a
            # large batch of large photos does not hold all their float copies at once.
            step = _GPU_PYRAMID_CHUNK if on_gpu else len(all_idx)
            for c0 in range(0, len(all_idx), step):
                idx = all_idx[c0 : c0 + step]
                full = self._to_tensor(np.stack([images[i] for i in idx])) if on_gpu else None
                for scale in pyramid_scales(h, w, float(self.min_face)):
                    hs, ws = int(np.ceil(h * scale)), int(np.ceil(w * scale))
                    self._pnet_level(pnet, images, idx, full, scale, hs, ws, per_image)
                del full
        out: list[np.ndarray] = []
        for chunks in per_image:
            if not chunks:
                out.append(np.zeros((0, 4)))
                continue
            c = np.concatenate(chunks)
            c = c[nms(c[:, :4], c[:, 4], PNET_NMS)]
            out.append(square(regress(c[:, :4], c[:, 5:9])))
        return out

    def _pnet_level(self, pnet: Any, images: list[np.ndarray], idx: list[int], full: Any, scale: float,
                    hs: int, ws: int, per_image: list[list[np.ndarray]]) -> None:
        """P-Net on one pyramid level of the images ``idx``; candidates appended per image.
        ``full``: the images already normalised on the GPU (resized there by area averaging,
        torch's counterpart of INTER_AREA), or None to resize on the host."""
        import torch.nn.functional as F

        if full is None:
            batch = np.stack([cv2.resize(images[i], (ws, hs), interpolation=cv2.INTER_AREA) for i in idx])
            x = self._to_tensor(batch)
        else:
            x = F.interpolate(full, size=(hs, ws), mode="area")
        prob, reg = pnet(x)
        prob = prob.cpu().numpy()
        reg = reg.cpu().numpy()
        for j, i in enumerate(idx):
            ys, xs = np.nonzero(prob[j] >= PNET_THRESHOLD)
            if len(ys) == 0:
                continue
            # Cell (y, x) sees pyramid pixels [2x, 2x+12) x [2y, 2y+12).
            boxes = np.stack([2 * xs, 2 * ys, 2 * xs + 12, 2 * ys + 12], axis=1) / scale
            scores = prob[j, ys, xs]
            offsets = reg[j][:, ys, xs].T
            keep = nms(boxes, scores, PNET_NMS_PER_SCALE)
            per_image[i].append(np.concatenate([boxes[keep], scores[keep, None], offsets[keep]], axis=1))

    def _run_crops(
        self, net: Any, images: list[_Halvings], boxes: list[np.ndarray], size: int, shrink: bool
    ) -> list[Any]:
        """Run ``net`` on the size x size crops of all boxes of all images; outputs as numpy."""
        import torch

        crops = np.concatenate([_crops(img, b, size, shrink) for img, b in zip(images, boxes)])
        outs: list[list[Any]] = []
        for start in range(0, len(crops), _CROP_BATCH):
            res = net(self._to_tensor(crops[start : start + _CROP_BATCH]))
            outs.append([r.cpu() for r in res])
        return [torch.cat(parts).numpy() for parts in zip(*outs)]

    def _stage_refine(self, rnet: Any, images: list[_Halvings], cands: list[np.ndarray]) -> list[np.ndarray]:
        counts = [len(c) for c in cands]
        if sum(counts) == 0:
            return cands
        prob, reg = self._run_crops(rnet, images, cands, 24, shrink=True)
        out: list[np.ndarray] = []
        start = 0
        for c, n in zip(cands, counts):
            p, r = prob[start : start + n], reg[start : start + n]
            start += n
            ok = p > RNET_THRESHOLD
            b, p, r = c[ok], p[ok], r[ok]
            keep = nms(b, p, RNET_NMS)
            out.append(square(regress(b[keep], r[keep])))
        return out

    def _stage_output(
        self, onet: Any, images: list[_Halvings], cands: list[np.ndarray]
    ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        counts = [len(c) for c in cands]
        empty = (np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32))
        if sum(counts) == 0:
            return [empty for _ in cands]
        prob, reg, pts = self._run_crops(onet, images, cands, 48, shrink=False)
        threshold = float(self.config.detection_threshold)
        out: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        start = 0
        for c, n in zip(cands, counts):
            p, r, q = prob[start : start + n], reg[start : start + n], pts[start : start + n]
            start += n
            ok = p > threshold
            b, p, r, q = c[ok], p[ok], r[ok], q[ok]
            if len(b) == 0:
                out.append(empty)
                continue
            w = (b[:, 2] - b[:, 0])[:, None]
            h = (b[:, 3] - b[:, 1])[:, None]
            points = np.stack([b[:, 0:1] + w * q[:, :5], b[:, 1:2] + h * q[:, 5:]], axis=2)
            b = regress(b, r)
            keep = nms(b, p, ONET_NMS, mode="min")
            out.append((b[keep].astype(np.float32), p[keep].astype(np.float32), points[keep].astype(np.float32)))
        return out


__all__ = ["BOX_ADJUST_MTCNN", "MtcnnDetector", "pyramid_scales"]
