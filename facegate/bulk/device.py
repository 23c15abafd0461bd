"""The device path: photo to embedding on one torch device, for bulk indexing on a GPU.

The CPU path (:class:`facegate.pipeline.Pipeline`) decodes, detects, fits landmarks and
warps on the host, one library call per face; on a GPU that host work, not the networks,
sets the pace. Here every stage after decoding is a batched torch computation on
``config.device``, so the same code runs on ``cuda`` (the point) and on ``cpu`` (its
tested twin: the tests run exactly these functions on the CPU device):

1. **decode**: a pipelined loader (:class:`Loader`) reads and decodes files in threads
   into a bounded queue of batches, in input order; with torchvision (the optional
   ``gpu`` extra) JPEGs are decoded on the device (nvJPEG), anything else, and every
   photo without torchvision, by the host decoder (:func:`facegate.image.load_image`);
2. **detect**: MTCNN's own three networks (:class:`facegate.detect.mtcnn.MtcnnDetector`,
   reused, not copied) on a device image pyramid, candidates, NMS and the 24/48 px crops
   (``grid_sample``, area-averaged) kept on the device;
3. **five points**: dlib's 5-point shape predictor (the regression-tree cascade the CPU
   path calls through dlib) evaluated as a batched torch gather over all faces at once,
   from the same ``.dat`` file, started from the same dlib-like boxes;
4. **warp**: one similarity per face, the same matrices as :func:`facegate.align.norm_crop`
   (including its area-averaged shrink of large faces), sampled with ``grid_sample``;
5. **embed**: the embedder's :meth:`~facegate.embed.base.Embedder.embed_tensor`.

Only boxes, scores and points (a few numbers per face) and the embeddings cross back to
the host. Faces come out as the CPU path's :class:`~facegate.types.Face` records with
detector ``"mtcnn"``: the device path always detects with MTCNN.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from facegate.config import Config
from facegate.errors import FacegateError, InvalidImageError
from facegate.types import Face

log = logging.getLogger(__name__)

# One decoded input: (file as recorded, image or None, (error code, message) or None). The image
# is an HxWx3 uint8 array (host decode) or a 3xHxW uint8 tensor on the device (nvJPEG).
Decoded = tuple[str, Any, "tuple[str, str] | None"]

_NMS_MATRIX_MAX = 4096  # boxes handled with one IoU matrix when torchvision's NMS is absent
_CROP_CHUNK = 2048  # R-Net/O-Net crops sampled and run per forward pass
_MAX_SUBSAMPLES = 8  # area averaging of a crop cell: at most 8x8 bilinear samples
_PNET_CHUNK = 32  # images whose pyramid is built at once (about 350 MB at 1280x720 on a GPU)


# --------------------------------------------------------------------------- torchvision (optional)


@lru_cache(maxsize=1)
def torchvision_ops() -> Any | None:
    """torchvision (``pip install 'facegate[gpu]'``) when it imports beside this torch, else None.

    It gives nvJPEG decoding and a fused NMS; without it the path still runs, decoding on the
    host and with its own NMS. A torchvision built for another torch fails at import with a
    RuntimeError, not an ImportError, hence the broad catch (logged, never fatal).
    """
    try:
        import torchvision
        import torchvision.io
        import torchvision.ops
    except Exception as exc:  # noqa: BLE001 - any failure means "not usable"
        log.info("torchvision not usable (%s): photos are decoded on the host; "
                 "pip install 'facegate[gpu]' for nvJPEG decoding on the GPU", str(exc).splitlines()[0][:200])
        return None
    return torchvision


# --------------------------------------------------------------------------- NMS


def _pairwise_overlap(b: torch.Tensor, mode: str) -> torch.Tensor:
    """(N, N) IoU (``union``) or intersection over the smaller box (``min``), continuous boxes."""
    area = (b[:, 2] - b[:, 0]).clamp_min(0) * (b[:, 3] - b[:, 1]).clamp_min(0)
    iw = (torch.minimum(b[:, None, 2], b[None, :, 2]) - torch.maximum(b[:, None, 0], b[None, :, 0])).clamp_min(0)
    ih = (torch.minimum(b[:, None, 3], b[None, :, 3]) - torch.maximum(b[:, None, 1], b[None, :, 1])).clamp_min(0)
    inter = iw * ih
    denom = torch.minimum(area[:, None], area[None, :]) if mode == "min" else area[:, None] + area[None, :] - inter
    return inter / denom.clamp_min(1e-12)


def _greedy(suppress: np.ndarray) -> list[int]:
    """Greedy sweep over a score-ordered, upper-triangular suppression matrix (as torchvision's kernel does)."""
    removed = np.zeros(len(suppress), dtype=bool)
    keep: list[int] = []
    for i in range(len(suppress)):
        if not removed[i]:
            keep.append(i)
            removed |= suppress[i]
    return keep


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor, threshold: float,
                mode: str = "union") -> torch.Tensor:
    """Greedy NMS within each group (image); indices kept, by descending score.

    The same rule as :func:`facegate.detect.boxes.nms` (suppress overlap > threshold, ties
    by input order). torchvision's fused kernel when it is there (``union`` only), else the
    overlap matrix on the device and the greedy sweep on the host.
    """
    n = len(boxes)
    if n == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    tv = torchvision_ops()
    if tv is not None and mode == "union":
        return tv.ops.batched_nms(boxes.float(), scores.float(), groups, threshold)
    order = torch.sort(scores, descending=True, stable=True).indices
    b, g = boxes[order], groups[order]
    if n <= _NMS_MATRIX_MAX:
        sup = (_pairwise_overlap(b, mode) > threshold) & (g[:, None] == g[None, :])
        keep = _greedy(torch.triu(sup, diagonal=1).cpu().numpy())
        return order[torch.as_tensor(keep, dtype=torch.long, device=boxes.device)]
    kept: list[torch.Tensor] = []
    for gid in torch.unique(g).tolist():
        idx = (g == gid).nonzero().squeeze(1)  # still in score order
        sup = torch.triu(_pairwise_overlap(b[idx], mode) > threshold, diagonal=1).cpu().numpy()
        kept.append(idx[torch.as_tensor(_greedy(sup), dtype=torch.long, device=boxes.device)])
    return order[torch.sort(torch.cat(kept)).values]  # back to one descending-score order


# --------------------------------------------------------------------------- box helpers (MTCNN's)


def _square(b: torch.Tensor) -> torch.Tensor:
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    side = torch.maximum(w, h)
    x1, y1 = b[:, 0] + (w - side) / 2, b[:, 1] + (h - side) / 2
    return torch.stack([x1, y1, x1 + side, y1 + side], dim=1)


def _regress(b: torch.Tensor, off: torch.Tensor) -> torch.Tensor:
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    return b + off[:, :4] * torch.stack([w, h, w, h], dim=1)


# --------------------------------------------------------------------------- device images


class DeviceImage:
    """One photo on the device: float RGB (3, H, W) in 0..255, its area-averaged halvings on
    demand (crops of large boxes read a smaller level) and dlib's grey intensity."""

    def __init__(self, pixels: torch.Tensor) -> None:
        self.levels = [pixels]

    @property
    def full(self) -> torch.Tensor:
        return self.levels[0]

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.full.shape[1]), int(self.full.shape[2])

    def level(self, k: int) -> torch.Tensor:
        while len(self.levels) <= k:
            prev = self.levels[-1]
            if prev.shape[1] < 2 or prev.shape[2] < 2:
                break
            self.levels.append(F.avg_pool2d(prev[None], 2)[0])
        return self.levels[min(k, len(self.levels) - 1)]

    def grey(self) -> torch.Tensor:
        """dlib's ``get_pixel_intensity`` of an RGB pixel: (r + g + b) / 3 in integers."""
        return torch.div(self.full.sum(0), 3, rounding_mode="floor")


def to_device_image(image: Any, device: str) -> DeviceImage:
    """An HxWx3 uint8 array or a 3xHxW uint8 tensor as a :class:`DeviceImage` on ``device``."""
    if isinstance(image, torch.Tensor):
        t = image.to(device)
    else:
        arr = np.asarray(image)
        if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3 or 0 in arr.shape:
            raise InvalidImageError(f"expected an HxWx3 uint8 RGB image, got shape {arr.shape} dtype {arr.dtype}")
        with warnings.catch_warnings():  # read-only arrays (decoded JPEGs) are fine: never written to
            warnings.simplefilter("ignore", UserWarning)
            t = torch.from_numpy(np.ascontiguousarray(arr))
        t = t.to(device).permute(2, 0, 1)
    return DeviceImage(t.float().contiguous())


def _sample_boxes(img: torch.Tensor, boxes: torch.Tensor, size: int, sub: int) -> torch.Tensor:
    """(M, 3, size, size) crops of the continuous pixel rectangles ``boxes`` (x1, y1, x2, y2 in the
    pixel-edge convention) of one (3, H, W) image: each output cell the mean of ``sub`` x ``sub``
    bilinear samples (area averaging), zero outside the image."""
    m = len(boxes)
    h, w = img.shape[1:]
    n = size * sub
    t = (torch.arange(n, device=img.device, dtype=torch.float32) + 0.5) / n
    xs = boxes[:, 0:1] + t[None] * (boxes[:, 2:3] - boxes[:, 0:1])  # (M, n)
    ys = boxes[:, 1:2] + t[None] * (boxes[:, 3:4] - boxes[:, 1:2])
    gx = (2 * xs / w - 1)[:, None, :].expand(m, n, n)
    gy = (2 * ys / h - 1)[:, :, None].expand(m, n, n)
    grid = torch.stack([gx, gy], dim=3).reshape(1, m * n, n, 2)
    out = F.grid_sample(img[None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    out = out.reshape(3, m, n, n).permute(1, 0, 2, 3)
    return F.avg_pool2d(out, sub) if sub > 1 else out


# --------------------------------------------------------------------------- detection


class DeviceMtcnn:
    """MTCNN's cascade on device tensors, stage for stage as :class:`MtcnnDetector` runs it on the host
    (same networks, thresholds, NMS rules and box regressions); crops are ``grid_sample`` area
    averages instead of OpenCV's, and R-Net's crops of large boxes come from the same halvings."""

    def __init__(self, detector: Any) -> None:
        from facegate.detect import mtcnn

        self.m = mtcnn
        self.detector = detector
        self.config = detector.config
        self.pnet, self.rnet, self.onet = detector.networks()
        self.device = detector.torch_device

    def _norm(self, x: torch.Tensor) -> torch.Tensor:
        return ((x - self.m.PIXEL_MEAN) * self.m.PIXEL_SCALE).contiguous(memory_format=torch.channels_last)

    def detect(self, images: list[DeviceImage]) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Per image (boxes (N, 4), scores (N,), MTCNN points (N, 5, 2)), best first, on the device."""
        with torch.inference_mode():
            img_idx, boxes = self._stage_pnet(images)
            img_idx, boxes, _ = self._stage_crops(self.rnet, images, img_idx, boxes, 24, True)
            return self._stage_output(images, img_idx, boxes)

    def _stage_pnet(self, images: list[DeviceImage]) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.m
        groups: dict[tuple[int, int], list[int]] = {}
        for i, img in enumerate(images):
            groups.setdefault(img.shape, []).append(i)
        found: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = []
        for (h, w), all_idx in groups.items():
            for c0 in range(0, len(all_idx), _PNET_CHUNK):
                idx = all_idx[c0 : c0 + _PNET_CHUNK]
                full = self._norm(torch.stack([images[i].full for i in idx]))
                ids = torch.as_tensor(idx, device=self.device)
                for scale in m.pyramid_scales(h, w, float(self.detector.min_face)):
                    hs, ws = int(np.ceil(h * scale)), int(np.ceil(w * scale))
                    prob, reg = self.pnet(F.interpolate(full, size=(hs, ws), mode="area"))
                    b, ys, xs = (prob >= m.PNET_THRESHOLD).nonzero(as_tuple=True)
                    if len(b) == 0:
                        continue
                    bx = torch.stack([2 * xs, 2 * ys, 2 * xs + 12, 2 * ys + 12], dim=1).double() / scale
                    sc = prob[b, ys, xs]
                    off = reg.permute(0, 2, 3, 1)[b, ys, xs]
                    keep = batched_nms(bx, sc, b, m.PNET_NMS_PER_SCALE)
                    found.append((ids[b[keep]], bx[keep], sc[keep], off[keep]))
        if not found:
            return torch.zeros(0, dtype=torch.long, device=self.device), torch.zeros((0, 4), device=self.device)
        img_idx, bx, sc, off = (torch.cat(parts) for parts in zip(*found))
        keep = batched_nms(bx, sc, img_idx, m.PNET_NMS)
        return img_idx[keep], _square(_regress(bx[keep], off[keep].double())).float()

    def _crops(self, images: list[DeviceImage], img_idx: torch.Tensor, boxes: torch.Tensor, size: int,
               shrink: bool) -> torch.Tensor:
        """(M, 3, size, size) normalised crops; the host path's integer box bounds and zero padding,
        large boxes read from a halving when ``shrink`` (as ``mtcnn._crops``)."""
        out = torch.zeros((len(boxes), 3, size, size), device=self.device)
        side = torch.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
        if shrink:
            lev = torch.where(side >= 4 * size, torch.floor(torch.log2(side / (2 * size))), torch.zeros_like(side))
        else:
            lev = torch.zeros_like(side)
        lev_cpu = lev.long().cpu().numpy()
        idx_cpu = img_idx.cpu().numpy()
        for key in sorted(set(zip(idx_cpu.tolist(), lev_cpu.tolist()))):
            i, k = key
            sel = torch.as_tensor(np.nonzero((idx_cpu == i) & (lev_cpu == k))[0], device=self.device)
            img = images[i].level(k)
            fh, fw = images[i].shape
            sx, sy = img.shape[2] / fw, img.shape[1] / fh
            b = boxes[sel] * torch.tensor([sx, sy, sx, sy], device=self.device)
            x1, y1 = torch.floor(b[:, 0]), torch.floor(b[:, 1])
            x2 = torch.maximum(torch.ceil(b[:, 2]), x1 + 1)
            y2 = torch.maximum(torch.ceil(b[:, 3]), y1 + 1)
            rect = torch.stack([x1, y1, x2, y2], dim=1)
            cell = float(torch.max(torch.maximum(x2 - x1, y2 - y1)).item()) / size
            sub = int(min(_MAX_SUBSAMPLES, max(1, math.ceil(cell))))
            for c0 in range(0, len(sel), _CROP_CHUNK):
                out[sel[c0 : c0 + _CROP_CHUNK]] = _sample_boxes(img, rect[c0 : c0 + _CROP_CHUNK], size, sub)
        return self._norm(out)

    def _run(self, net: Any, x: torch.Tensor) -> list[torch.Tensor]:
        outs = [net(x[c0 : c0 + _CROP_CHUNK]) for c0 in range(0, len(x), _CROP_CHUNK)]
        return [torch.cat(parts) for parts in zip(*outs)]

    def _stage_crops(self, net: Any, images: list[DeviceImage], img_idx: torch.Tensor, boxes: torch.Tensor,
                     size: int, shrink: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """R-Net: score, cut at RNET_THRESHOLD, NMS per image, regress and square."""
        if len(boxes) == 0:
            return img_idx, boxes, torch.zeros(0, device=self.device)
        prob, reg = self._run(net, self._crops(images, img_idx, boxes, size, shrink))
        ok = prob > self.m.RNET_THRESHOLD
        img_idx, boxes, prob, reg = img_idx[ok], boxes[ok], prob[ok], reg[ok]
        keep = batched_nms(boxes, prob, img_idx, self.m.RNET_NMS)
        return img_idx[keep], _square(_regress(boxes[keep], reg[keep])), prob[keep]

    def _stage_output(self, images: list[DeviceImage], img_idx: torch.Tensor, boxes: torch.Tensor
                      ) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        empty = (torch.zeros((0, 4), device=self.device), torch.zeros(0, device=self.device),
                 torch.zeros((0, 5, 2), device=self.device))
        if len(boxes) == 0:
            return [empty for _ in images]
        prob, reg, pts = self._run(self.onet, self._crops(images, img_idx, boxes, 48, False))
        ok = prob > float(self.config.detection_threshold)
        img_idx, b, prob, reg, q = img_idx[ok], boxes[ok], prob[ok], reg[ok], pts[ok]
        w, h = (b[:, 2] - b[:, 0])[:, None], (b[:, 3] - b[:, 1])[:, None]
        points = torch.stack([b[:, 0:1] + w * q[:, :5], b[:, 1:2] + h * q[:, 5:]], dim=2)
        b = _regress(b, reg)
        keep = batched_nms(b, prob, img_idx, self.m.ONET_NMS, mode="min")
        img_idx, b, prob, points = img_idx[keep], b[keep], prob[keep], points[keep]
        return [(b[img_idx == i], prob[img_idx == i], points[img_idx == i]) for i in range(len(images))]


# --------------------------------------------------------------------------- five points


def load_shape_predictor(config: Config) -> dict[str, np.ndarray]:
    """The registry's sha256-checked 5-point predictor as arrays: converted by `facegate models install`
    (else once into the cache, see :mod:`facegate.models.converted`), since parsing the 9 MB file in Python
    takes seconds and loading the arrays milliseconds."""
    from facegate.models.converted import converted_path

    path, _ = converted_path("dlib_5_landmarks.npz", config)
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def _round_half_up(x: torch.Tensor) -> torch.Tensor:
    """dlib's double -> integer point conversion: floor(x + 0.5)."""
    return torch.floor(x + 0.5)


class DeviceLandmarks:
    """dlib's 5-point shape predictor (an ensemble of regression trees, Kazemi & Sullivan 2014) as
    batched tensor gathers: all faces of all photos of a batch go through each cascade level at once.

    Follows ``shape_predictor::operator()``: per level, the similarity from the mean shape to the
    current shape places 800 feature pixels relative to their anchor landmarks; each is read as
    dlib's integer grey value at the rounded pixel (0 outside the image); each of the level's 500
    depth-4 trees compares two of them against its threshold at every node and adds its leaf's
    shape delta. Final points are rounded to whole pixels, as dlib's are.
    """

    def __init__(self, config: Config, device: str, exact: bool = True) -> None:
        arrays = load_shape_predictor(config)
        self.device = device
        # exact: add the trees' deltas one by one in float32, as dlib does; the points then equal
        # dlib's. A summed reduction (one kernel instead of 500 per level) rounds differently,
        # and 15 cascade levels amplify that: about 1 in 5 faces then moves a landmark by 1-3 px.
        self.exact = exact
        t = {k: torch.from_numpy(v).to(device) for k, v in arrays.items()}
        self.initial = t["initial"]  # (5, 2)
        self.idx1, self.idx2, self.thresh, self.leaves = t["idx1"], t["idx2"], t["thresh"], t["leaves"]
        self.anchors, self.deltas = t["anchors"], t["deltas"]
        self.levels, self.trees, self.splits = self.idx1.shape
        self.depth = int(round(math.log2(self.splits + 1)))

    @staticmethod
    def _similarity(src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
        """(N, 2, 2) linear part of the least-squares similarity src -> dst per face (dlib's
        ``find_tform_between_shapes``; for 2-D points Umeyama's solution is this closed form)."""
        s = src - src.mean(1, keepdim=True)
        d = dst - dst.mean(1, keepdim=True)
        var = (s**2).sum((1, 2)).clamp_min(1e-12)
        a = (s * d).sum((1, 2)) / var
        b = (s[..., 0] * d[..., 1] - s[..., 1] * d[..., 0]).sum(1) / var
        return torch.stack([torch.stack([a, -b], 1), torch.stack([b, a], 1)], 1)

    def fit(self, images: list[DeviceImage], img_idx: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """(N, 5, 2) float landmarks (whole pixels, dlib's order) for dlib-like ``boxes`` (N, 4) of
        ``images[img_idx]``, the same rectangles ``DlibLandmarker.fit`` hands dlib."""
        n = len(boxes)
        if n == 0:
            return torch.zeros((0, 5, 2), device=self.device)
        with torch.inference_mode():
            greys = [img.grey().reshape(-1) for img in images]
            offsets = torch.tensor([0] + [len(g) for g in greys], device=self.device).cumsum(0)[:-1]
            flat = torch.cat(greys)
            hw = torch.tensor([img.shape for img in images], device=self.device, dtype=torch.float64)
            h, w = hw[img_idx, 0], hw[img_idx, 1]
            base = offsets[img_idx]
            # dlib.rectangle(round(x1), round(y1), round(x2) - 1, round(y2) - 1): Python's round
            # (half to even, as torch.round) of the float box, inclusive right/bottom.
            r = torch.round(boxes.double())
            left, top, right, bottom = r[:, 0], r[:, 1], r[:, 2] - 1, r[:, 3] - 1
            scale = torch.stack([right - left, bottom - top], 1)[:, None]  # unnormalising_tform
            origin = torch.stack([left, top], 1)[:, None]
            shape = self.initial[None].expand(n, -1, -1).clone()  # (N, 5, 2) float32, unit box
            tree_ids = torch.arange(self.trees, device=self.device)
            for lv in range(self.levels):
                tform = self._similarity(self.initial[None].double(), shape.double()).float()  # (N, 2, 2)
                anchor = shape[:, self.anchors[lv]]  # (N, F, 2)
                pts = torch.einsum("nij,fj->nfi", tform, self.deltas[lv]) + anchor
                px = _round_half_up(origin + pts.double() * scale)  # (N, F, 2) image pixels
                x, y = px[..., 0], px[..., 1]
                inside = (x >= 0) & (y >= 0) & (x < w[:, None]) & (y < h[:, None])
                lin = (base[:, None] + (y.clamp(min=0) * w[:, None] + x.clamp(min=0)).long()).clamp(max=len(flat) - 1)
                feats = torch.where(inside, flat[lin], torch.zeros((), device=self.device))  # (N, F)
                node = torch.zeros((n, self.trees), dtype=torch.long, device=self.device)
                for _ in range(self.depth):
                    i1, i2 = self.idx1[lv][tree_ids, node], self.idx2[lv][tree_ids, node]
                    go_left = feats.gather(1, i1) - feats.gather(1, i2) > self.thresh[lv][tree_ids, node]
                    node = torch.where(go_left, 2 * node + 1, 2 * node + 2)
                delta = self.leaves[lv][tree_ids, node - self.splits].reshape(n, self.trees, -1, 2)
                if self.exact:  # dlib's order of float32 additions: the cascade amplifies any other
                    for t in range(self.trees):
                        shape = shape + delta[:, t]
                else:
                    shape = shape + delta.sum(1)
            return _round_half_up(origin + shape.double() * scale).float()


# --------------------------------------------------------------------------- warp


def _area_matrix(n_in: int, n_out: int, start: int, stop: int, device: str) -> torch.Tensor:
    """(stop - start, n_in) weights of OpenCV's INTER_AREA shrink from ``n_in`` to ``n_out`` pixels,
    rows ``start:stop`` only: output pixel k averages input [k s, (k + 1) s), s = n_in / n_out,
    each input pixel weighted by its overlap."""
    s = n_in / n_out
    k = torch.arange(start, stop, device=device, dtype=torch.float64)[:, None]
    j = torch.arange(n_in, device=device, dtype=torch.float64)[None]
    overlap = (torch.minimum(j + 1, (k + 1) * s) - torch.maximum(j, k * s)).clamp_min(0)
    return (overlap / s).float()


def chip_matrices(landmarks: torch.Tensor, tmpl: Any) -> torch.Tensor:
    """(N, 2, 3) chip -> image maps, :func:`facegate.align.chip_matrix` for a batch of faces in float64."""
    size = tmpl.size
    if getattr(tmpl, "fit", "dlib") != "dlib":  # a handful of 3x3 solves: on the host, as align does them
        from facegate.align import chip_matrix

        pts = landmarks.detach().double().cpu().numpy()
        return torch.as_tensor(np.stack([chip_matrix(p, tmpl) for p in pts]) if len(pts) else
                               np.zeros((0, 2, 3)), dtype=torch.float64, device=landmarks.device)
    src = torch.as_tensor(tmpl.points, dtype=torch.float64, device=landmarks.device)[None]
    dst = landmarks.double()
    lin = DeviceLandmarks._similarity(src.expand(len(dst), -1, -1), dst)  # template -> image
    trans = dst.mean(1) - torch.einsum("nij,j->ni", lin, src[0].mean(0))
    scale = torch.sqrt(torch.det(lin).abs())
    rot = lin / scale[:, None, None]
    centre = torch.einsum("nij,j->ni", lin, src.new_tensor([size / 2, size / 2])) + trans
    step = (scale * size - 1) / (size - 1)
    m = torch.empty((len(dst), 2, 3), dtype=torch.float64, device=landmarks.device)
    m[:, :, :2] = rot * step[:, None, None]
    m[:, :, 2] = centre - torch.einsum("nij,j->ni", rot, src.new_tensor([(size - 1) / 2] * 2)) * step[:, None]
    return m


def _warp(img: torch.Tensor, m: torch.Tensor, size: int) -> torch.Tensor:
    """(K, 3, size, size): chip pixel (u, v) samples ``img`` bilinearly at m @ (u, v, 1) (OpenCV's
    integer-centred pixels, as ``warpAffine(WARP_INVERSE_MAP)``), zero outside."""
    h, w = img.shape[1:]
    k = len(m)
    u = torch.arange(size, device=img.device, dtype=torch.float64)
    uu, vv = torch.meshgrid(u, u, indexing="xy")
    ones = torch.ones_like(uu)
    p = torch.einsum("kij,jab->kabi", m, torch.stack([uu, vv, ones]))  # (K, size, size, 2)
    g = torch.stack([(2 * p[..., 0] + 1) / w - 1, (2 * p[..., 1] + 1) / h - 1], dim=3).float()
    out = F.grid_sample(img[None], g.reshape(1, k * size, size, 2), mode="bilinear", padding_mode="zeros",
                        align_corners=False)
    return out.reshape(3, k, size, size).permute(1, 0, 2, 3)


def warp_chips(images: list[DeviceImage], img_idx: torch.Tensor, landmarks: torch.Tensor, tmpl: Any) -> torch.Tensor:
    """(N, 3, S, S) float chips in 0..255 (rounded, as uint8 chips are): :func:`facegate.align.norm_crop`
    on the device. Faces spanning more than 2 image pixels per chip pixel are sampled from the
    photo shrunk by area averaging (OpenCV's INTER_AREA weights, computed only over the rows and
    columns the chip reads), exactly where and by how much norm_crop shrinks."""
    size = tmpl.size
    n = len(landmarks)
    out = torch.zeros((n, 3, size, size), device=landmarks.device)
    if n == 0:
        return out
    mats = chip_matrices(landmarks, tmpl)
    px_per_chip = torch.sqrt(torch.det(mats[:, :, :2]).abs()).cpu().numpy()
    idx = img_idx.cpu().numpy()
    for i in np.unique(idx):
        sel = np.nonzero((idx == i) & (px_per_chip <= 2.0))[0]
        if len(sel):
            t = torch.as_tensor(sel, device=landmarks.device)
            out[t] = _warp(images[i].full, mats[t], size)
    for k in np.nonzero(px_per_chip > 2.0)[0]:
        img = images[int(idx[k])].full
        h, w = img.shape[1:]
        f = float(px_per_chip[k]) / 1.5
        sw, sh = max(1, round(w / f)), max(1, round(h / f))  # norm_crop's shrunk size
        m = torch.diag(mats.new_tensor([sw / w, sh / h])) @ mats[k]
        # The shrunk pixels the chip reads: its corners' bounding box plus a bilinear margin.
        corners = m @ mats.new_tensor([[0, 0, 1], [size - 1, 0, 1], [0, size - 1, 1], [size - 1, size - 1, 1]]).T
        x0 = int(max(0, math.floor(corners[0].min().item()) - 1))
        x1 = int(min(sw, math.ceil(corners[0].max().item()) + 2))
        y0 = int(max(0, math.floor(corners[1].min().item()) - 1))
        y1 = int(min(sh, math.ceil(corners[1].max().item()) + 2))
        if x1 <= x0 or y1 <= y0:
            continue  # the chip lies outside the photo: all zero, as norm_crop's
        ay = _area_matrix(h, sh, y0, y1, img.device)
        ax = _area_matrix(w, sw, x0, x1, img.device)
        small = torch.round(torch.einsum("yh,chw,xw->cyx", ay, img, ax))  # uint8 rounding, as cv2
        m = m.clone()
        m[:, 2] -= m.new_tensor([x0, y0])
        out[k] = _warp(small, m[None], size)[0]
    return out.round().clamp(0, 255)


# --------------------------------------------------------------------------- loader


def _header_check(name: str, data: bytes, config: Config) -> None:
    """Refuse empty, unrecognised or over-limit files before any decoder allocates pixels."""
    import io

    from PIL import Image, UnidentifiedImageError

    from facegate.errors import ImageTooLargeError

    if not data:
        raise InvalidImageError(f"{name}: file is empty")
    try:
        w, h = Image.open(io.BytesIO(data)).size
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise InvalidImageError(f"{name}: not a recognised image format") from exc
    if w * h > config.max_pixels:
        raise ImageTooLargeError(f"{name}: {w}x{h} pixels is over the limit of {config.max_pixels:,}")


class Loader:
    """Decoded batches of files, in input order, made ahead by threads into a bounded queue.

    One producer thread walks the files ``batch`` at a time; a pool of ``threads`` reads and
    decodes each batch (Pillow and file reads release the GIL); at most ``prefetch`` decoded
    batches wait in the queue, so memory stays bounded whatever the number of files and the
    producer waits while the device is busy. With ``gpu_decode`` (torchvision present, a CUDA
    device) baseline JPEGs are handed to nvJPEG as one batched call on the device; a file
    nvJPEG refuses is decoded on the host instead. A file that cannot be read or decoded
    becomes an error entry (``(name, None, (code, message))``), never an exception.
    """

    def __init__(self, files: Sequence[Path | str], config: Config, batch: int = 64, prefetch: int = 2,
                 threads: int | None = None, gpu_decode: bool | None = None) -> None:
        self.files = [Path(f) for f in files]
        self.config = config
        self.batch = max(1, batch)
        self.queue: queue.Queue = queue.Queue(maxsize=max(1, prefetch))
        self.threads = threads or min(8, config.cpu_threads)
        tv = torchvision_ops()
        self.gpu_decode = (tv is not None and config.device.startswith("cuda")) if gpu_decode is None else gpu_decode
        self.decode_seconds = 0.0  # producer time spent reading and decoding (for the benchmark)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- one file ------------------------------------------------------------------------
    def _host(self, name: str, path: Path) -> Decoded:
        from facegate.image import load_image

        try:
            return name, load_image(path, self.config), None
        except FacegateError as exc:
            return name, None, (exc.code, str(exc))

    def _read(self, name: str, path: Path) -> tuple[str, Path, bytes | None, tuple[str, str] | None]:
        from facegate.image import read_bytes  # the host decoder's reader: the same error messages

        try:
            data = read_bytes(path)
            _header_check(name, data, self.config)
            return name, path, data, None
        except FacegateError as exc:
            return name, path, None, (exc.code, str(exc))

    def _decode_batch(self, pool: ThreadPoolExecutor, files: list[Path]) -> list[Decoded]:
        if not self.gpu_decode:
            return list(pool.map(lambda f: self._host(str(f), f), files))
        reads = list(pool.map(lambda f: self._read(str(f), f), files))
        out: list[Decoded | None] = [None] * len(reads)
        jpeg = [i for i, (_, _, data, err) in enumerate(reads) if err is None and data[:3] == b"\xff\xd8\xff"]
        for i, (name, _, _, err) in enumerate(reads):
            if err is not None:
                out[i] = (name, None, err)
        if jpeg:
            tv = torchvision_ops()
            datas = [torch.frombuffer(bytearray(reads[i][2]), dtype=torch.uint8) for i in jpeg]
            try:
                imgs = tv.io.decode_jpeg(datas, mode=tv.io.ImageReadMode.RGB, device=self.config.device,
                                         apply_exif_orientation=True)
                for i, img in zip(jpeg, imgs):
                    out[i] = (reads[i][0], img, None)
            except (RuntimeError, ValueError) as exc:  # one bad file fails nvJPEG's batch: per file, on the host
                log.debug("nvJPEG refused a batch (%s); decoding it on the host", exc)
        rest = [i for i, o in enumerate(out) if o is None]
        for i, dec in zip(rest, pool.map(lambda i: self._host(reads[i][0], reads[i][1]), rest)):
            out[i] = dec
        return out  # type: ignore[return-value]

    # -- the producer ----------------------------------------------------------------------
    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self) -> None:
        try:
            with ThreadPoolExecutor(self.threads, thread_name_prefix="facegate-decode") as pool:
                for start in range(0, len(self.files), self.batch):
                    if self._stop.is_set():
                        return
                    t0 = time.perf_counter()
                    decoded = self._decode_batch(pool, self.files[start : start + self.batch])
                    self.decode_seconds += time.perf_counter() - t0
                    if not self._put(decoded):
                        return
            self._put(None)  # end of input
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            self._put(exc)

    def __enter__(self) -> Loader:
        self._thread = threading.Thread(target=self._produce, name="facegate-loader", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        while True:  # unblock a producer waiting on a full queue
            try:
                self.queue.get_nowait()
            except queue.Empty:
                break
        if self._thread is not None:
            self._thread.join()

    def __iter__(self) -> Iterator[list[Decoded]]:
        while True:
            item = self.queue.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item


# --------------------------------------------------------------------------- the path


class DevicePath:
    """Decode -> MTCNN -> dlib's five points -> warp -> embed, batched on ``config.device``.

    ``faces_batch`` has :meth:`Pipeline.faces_batch`'s contract (a list of faces per image, each
    with box, landmarks, score and embedding), so bulk embedding writes the same records from
    either path. ``timings`` accumulates seconds per stage (synchronised with the device only
    when ``timed``, for the benchmark: synchronising costs throughput).
    """

    STAGES = ("upload", "detect", "landmarks", "warp", "embed")

    def __init__(self, config: Config, timed: bool = False) -> None:
        from facegate.detect.mtcnn import MtcnnDetector
        from facegate.embed import get_embedder
        from facegate.onnxrt import resolve_torch_device

        self.device = resolve_torch_device(config.device)
        if config.detector != "mtcnn":
            log.info("the device path detects with MTCNN (its networks run on %s); "
                     "detector %r applies to the CPU path", self.device, config.detector)
        self.config = config.replace(detector="mtcnn", runtime="torch")
        self.detector = MtcnnDetector(self.config)
        self.mtcnn = DeviceMtcnn(self.detector)
        self.embedder = get_embedder(self.config)
        self.landmarker = DeviceLandmarks(self.config, self.device)
        self.timed = timed
        self.timings: dict[str, float] = {s: 0.0 for s in self.STAGES}

    def loader(self, files: Sequence[Path | str], batch: int = 64, prefetch: int = 2) -> Loader:
        return Loader(files, self.config, batch=batch, prefetch=prefetch)

    def _tick(self, stage: str, t0: float) -> float:
        if self.timed:
            if self.device.startswith("cuda"):
                torch.cuda.synchronize(self.device)
            now = time.perf_counter()
            self.timings[stage] += now - t0
            return now
        return t0

    def faces_batch(self, images: list[Any]) -> list[list[Face]]:
        """Faces of several decoded images (HxWx3 uint8 arrays or 3xHxW uint8 device tensors)."""
        from facegate.detect.mtcnn import BOX_ADJUST_MTCNN

        if not images:
            return []
        t0 = time.perf_counter()
        dev = [to_device_image(img, self.device) for img in images]
        t0 = self._tick("upload", t0)
        detections = self.mtcnn.detect(dev)
        counts = [len(b) for b, _, _ in detections]
        if sum(counts) == 0:
            self._tick("detect", t0)
            return [[] for _ in images]
        img_idx = torch.cat([torch.full((c,), i, dtype=torch.long) for i, c in enumerate(counts)]).to(self.device)
        mt_boxes = torch.cat([b for b, _, _ in detections]).cpu().numpy().astype(np.float32)
        scores = torch.cat([s for _, s, _ in detections]).cpu().numpy()
        points = torch.cat([p for _, _, p in detections]).cpu().numpy().astype(np.float32)
        dlib_boxes = BOX_ADJUST_MTCNN.apply(mt_boxes)  # the one box rule, shared with the host detector
        t0 = self._tick("detect", t0)
        from facegate.align import MTCNN5

        scheme = self.embedder.template.scheme
        if scheme == MTCNN5:  # O-Net's own points are the template's scheme: no predictor needed
            landmarks = torch.from_numpy(points).to(self.device)
        else:
            landmarks = self.landmarker.fit(dev, img_idx, torch.from_numpy(dlib_boxes).to(self.device))
        t0 = self._tick("landmarks", t0)
        chips = warp_chips(dev, img_idx, landmarks, self.embedder.template)
        t0 = self._tick("warp", t0)
        emb = self.embedder.embed_tensor(chips).cpu().numpy()
        self._tick("embed", t0)
        lm = landmarks.cpu().numpy()
        out: list[list[Face]] = [[] for _ in images]
        for k, i in enumerate(img_idx.cpu().numpy().tolist()):
            out[i].append(Face(box=dlib_boxes[k], landmarks=lm[k], score=float(scores[k]), embedding=emb[k],
                               scheme=scheme, more_landmarks={} if scheme == MTCNN5 else {MTCNN5: points[k]},
                               detector="mtcnn", extra={"detector_box": mt_boxes[k], "mtcnn_points": points[k]}))
        return out


__all__ = ["DevicePath", "DeviceLandmarks", "DeviceMtcnn", "Loader", "batched_nms", "chip_matrices",
           "torchvision_ops", "warp_chips"]
