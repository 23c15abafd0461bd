"""Box and point geometry shared by every detector: overlap, suppression, squaring and regression,
the map to dlib-like boxes, quarter turns and the turned crops of rolled faces.

Boxes are float ``(x1, y1, x2, y2)`` in continuous pixel coordinates (pixel corners at integers),
arrays of shape (N, 4); points are ``(x, y)``, shape (..., 2).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# -- overlap and suppression --------------------------------------------------------------------


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


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, mode: str = "union") -> np.ndarray:
    """Greedy non-maximum suppression: indices of the kept boxes, best first (ties in input order).

    A box is dropped when its overlap with a kept, better box exceeds ``threshold``: intersection
    over union (``mode="union"``), or over the smaller box (``"min"``, MTCNN's last stage).
    Only the overlaps of each kept box with the boxes still in play are computed, so MTCNN's
    thousands of P-Net windows need no N x N matrix.
    """
    boxes = np.asarray(boxes)
    if boxes.ndim == 1:
        boxes = boxes.reshape(-1, 4)
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    x1, y1, x2, y2 = (boxes[:, i].astype(np.float64) for i in range(4))
    areas = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    order = np.argsort(-np.asarray(scores), kind="stable")
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        iw = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        ih = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = iw * ih
        if mode == "min":
            denom = np.minimum(areas[i], areas[rest])
        else:
            denom = areas[i] + areas[rest] - inter
        overlap = inter / np.maximum(denom, 1e-12)
        order = rest[overlap <= threshold]
    return np.asarray(keep, dtype=np.int64)


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


# -- box transforms -----------------------------------------------------------------------------


def square(boxes: np.ndarray) -> np.ndarray:
    """Grow each box to a square around its centre (side = its longer side)."""
    out = boxes.copy()
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    out[:, 0] = boxes[:, 0] + (w - side) / 2
    out[:, 1] = boxes[:, 1] + (h - side) / 2
    out[:, 2] = out[:, 0] + side
    out[:, 3] = out[:, 1] + side
    return out


def regress(boxes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """MTCNN's box regression: each edge moves by its offset (N, 4) times the box's width or height."""
    out = boxes.copy()
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    out[:, 0] += offsets[:, 0] * w
    out[:, 1] += offsets[:, 1] * h
    out[:, 2] += offsets[:, 2] * w
    out[:, 3] += offsets[:, 3] * h
    return out


@dataclass(frozen=True)
class BoxAdjust:
    """Maps a detector's box to the box dlib's HOG detector would draw around the same face
    (dlib's 5-point predictor was trained on those; see :mod:`facegate.detect.landmarks`).

    With the detector box's centre (cx, cy), width w and height h, the dlib-like box has
    centre (cx + dx * w, cy + dy * h), width ``sx * w`` and height ``sy * h``.
    """

    sx: float = 1.0
    sy: float = 1.0
    dx: float = 0.0
    dy: float = 0.0

    def apply(self, boxes: np.ndarray) -> np.ndarray:
        """(N, 4) x1, y1, x2, y2 boxes in, (N, 4) float32 dlib-like boxes out."""
        b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        w = b[:, 2] - b[:, 0]
        h = b[:, 3] - b[:, 1]
        cx = (b[:, 0] + b[:, 2]) / 2 + self.dx * w
        cy = (b[:, 1] + b[:, 3]) / 2 + self.dy * h
        hw = self.sx * w / 2
        hh = self.sy * h / 2
        return np.stack([cx - hw, cy - hh, cx + hw, cy + hh], axis=1).astype(np.float32)


def box_patch(image: np.ndarray, box) -> np.ndarray | None:
    """The float32 pixels of ``box`` (x1, y1, x2, y2; outward to whole pixels), zero where it
    reaches past the image; None when it lies wholly outside. Only that part is converted."""
    h, w = image.shape[:2]
    x1, y1 = int(np.floor(box[0])), int(np.floor(box[1]))
    x2, y2 = max(int(np.ceil(box[2])), x1 + 1), max(int(np.ceil(box[3])), y1 + 1)
    cx1, cy1, cx2, cy2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
    if cx2 <= cx1 or cy2 <= cy1:
        return None
    patch = np.asarray(image[cy1:cy2, cx1:cx2], dtype=np.float32)
    if (cx1, cy1, cx2, cy2) != (x1, y1, x2, y2):
        padded = np.zeros((y2 - y1, x2 - x1, 3), dtype=np.float32)
        padded[cy1 - y1 : cy2 - y1, cx1 - x1 : cx2 - x1] = patch
        patch = padded
    return patch


# -- point transforms ---------------------------------------------------------------------------


def rotate_points(points: np.ndarray, k: int, shape: tuple[int, int]) -> np.ndarray:
    """(..., 2) x, y points of ``np.rot90(image, k)`` back in the original image of ``shape`` (h, w).

    Continuous coordinates (pixel corners at integers): a point at (x, y) of the original lies
    at (y, w - x) after one counter-clockwise quarter turn.
    """
    h, w = shape
    p = np.asarray(points, dtype=np.float32)
    x, y = p[..., 0], p[..., 1]
    k %= 4
    if k == 0:
        ox, oy = x, y
    elif k == 1:
        ox, oy = w - y, x
    elif k == 2:
        ox, oy = w - x, h - y
    else:
        ox, oy = y, h - x
    return np.stack([ox, oy], axis=-1).astype(np.float32)


def rotate_box(box: np.ndarray, k: int, shape: tuple[int, int]) -> np.ndarray:
    """An x1, y1, x2, y2 box of ``np.rot90(image, k)`` as a box of the original image (exact for quarter turns)."""
    corners = rotate_points(np.asarray(box, dtype=np.float32).reshape(2, 2), k, shape)
    return np.concatenate([corners.min(0), corners.max(0)]).astype(np.float32)


def turn_matrix(centre: tuple[float, float], angle: float, scale: float, size: float) -> np.ndarray:
    """The 2x3 affine map of a ``size`` x ``size`` crop centred on ``centre``, turned by ``angle``
    degrees (OpenCV's sense: counter-clockwise on screen, so a face rolled by ``angle`` comes
    upright) and scaled by ``scale``; for ``cv2.warpAffine``. Invert it with
    ``cv2.invertAffineTransform`` to map crop points back (:func:`affine_points`)."""
    cx, cy = float(centre[0]), float(centre[1])
    m = cv2.getRotationMatrix2D((cx, cy), float(angle), float(scale))
    m[:, 2] += (size / 2 - cx, size / 2 - cy)
    return m


def affine_points(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(..., 2) points through the 2x3 affine map ``m``, in float64."""
    p = np.asarray(points, dtype=np.float64)
    return p @ m[:, :2].T + m[:, 2]


__all__ = [
    "BoxAdjust", "affine_points", "box_patch", "iou_matrix", "nms", "regress", "rotate_box", "rotate_points",
    "square", "turn_matrix", "weighted_nms",
]
