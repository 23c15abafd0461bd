"""Canonical 5-point similarity alignment: one mean face, one template per chip size, one warp.

All detectors report dlib's five landmarks, in dlib's order:
  0: subject's left eye, outer corner (right side of the image)
  1: subject's left eye, inner corner
  2: subject's right eye, outer corner (left side of the image)
  3: subject's right eye, inner corner
  4: bottom of the nose
Templates are derived from one normalised mean face (dlib's 68-point mean shape, the
frame its 5-point chips are defined in), so a 150x150 dlib chip and a 112x112
ArcFace-style chip come from the same geometry, differing only in size and padding.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import cv2
import numpy as np

# dlib's mean face, normalised to [0, 1] (tools/imglab & get_face_chip_details), named points.
MEAN_FACE: dict[str, tuple[float, float]] = {
    "left_eye_outer": (0.8595674595992, 0.2134981538014),
    "left_eye_inner": (0.6460604764104, 0.2289674387677),
    "right_eye_outer": (0.1205750620789, 0.2137274526848),
    "right_eye_inner": (0.3340850613712, 0.2290642403242),
    "nose_base": (0.4901123135679, 0.6277975316475),
    # Extra points of the same mean shape, for templates of other conventions.
    "nose_tip": (0.490127, 0.515625),
    "mouth_left": (0.726104, 0.780233),
    "mouth_right": (0.254149, 0.780233),
}
LANDMARK_ORDER = ("left_eye_outer", "left_eye_inner", "right_eye_outer", "right_eye_inner", "nose_base")


@dataclass(frozen=True)
class Template:
    """Where the five landmarks go in an output chip of ``size`` x ``size`` pixels."""

    size: int
    padding: float
    points: np.ndarray  # (5, 2) in chip pixels, LANDMARK_ORDER


@cache
def template(size: int, padding: float = 0.25) -> Template:
    """The canonical template for a square chip; dlib's ResNet uses (150, 0.25).

    The mean face's unit square is grown by ``padding`` on every side and scaled to
    ``size`` pixels, exactly as dlib's ``get_face_chip_details`` does.
    """
    unit = np.array([MEAN_FACE[name] for name in LANDMARK_ORDER], dtype=np.float64)
    pts = (unit + padding) / (1 + 2 * padding) * size
    return Template(size=size, padding=padding, points=pts.astype(np.float32))


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping src -> dst.

    Umeyama's closed form; returns a 2x3 matrix for ``cv2.warpAffine``.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s_c, d_c = src - mu_s, dst - mu_d
    cov = d_c.T @ s_c / len(src)
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1
    rot = u @ np.diag(d) @ vt
    var_s = (s_c**2).sum() / len(src)
    scale = (sig * d).sum() / var_s
    m = np.zeros((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - scale * rot @ mu_s
    return m


def norm_crop(image: np.ndarray, landmarks: np.ndarray, tmpl: Template) -> np.ndarray:
    """Warp the face so its landmarks land on the template: a ``size`` x ``size`` RGB chip.

    Follows dlib's ``get_face_chip`` so dlib's ResNet sees the chips it was trained on:
    the similarity is fitted from template to image (least squares is not symmetric),
    and the chip's pixel grid spans ``size * scale`` image pixels inclusive of both ends. When the face is much larger than the
    chip, the image is first shrunk with area averaging so the bilinear warp does not
    alias (dlib uses an image pyramid for the same reason).
    """
    size = tmpl.size
    fit = similarity_transform(tmpl.points, landmarks)  # template -> image
    scale = float(np.sqrt(abs(np.linalg.det(fit[:, :2]))))
    rot = fit[:, :2] / scale
    centre = fit[:, :2] @ np.array([size / 2, size / 2]) + fit[:, 2]
    # dlib's chip rectangle spans size*scale pixels inclusive of both ends.
    step = (scale * size - 1) / (size - 1)
    chip_to_image = np.empty((2, 3))
    chip_to_image[:, :2] = rot * step
    chip_to_image[:, 2] = centre - rot @ np.full(2, (size - 1) / 2) * step
    px_per_chip = float(np.sqrt(abs(np.linalg.det(chip_to_image[:, :2]))))
    if px_per_chip > 2.0:
        f = px_per_chip / 1.5
        h, w = image.shape[:2]
        small = cv2.resize(image, (max(1, round(w / f)), max(1, round(h / f))), interpolation=cv2.INTER_AREA)
        sx, sy = small.shape[1] / w, small.shape[0] / h
        chip_to_image = np.diag([sx, sy]) @ chip_to_image
        image = small
    return cv2.warpAffine(
        image,
        chip_to_image,
        (size, size),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT,
    )


def norm_crops(image: np.ndarray, landmark_sets: list[np.ndarray], tmpl: Template) -> np.ndarray:
    """Chips for several faces of one image, stacked as (N, size, size, 3) uint8."""
    if not landmark_sets:
        return np.zeros((0, tmpl.size, tmpl.size, 3), dtype=np.uint8)
    return np.stack([norm_crop(image, lm, tmpl) for lm in landmark_sets])
