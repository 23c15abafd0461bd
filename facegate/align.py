"""Landmark schemes, alignment templates and the similarity warp.

A landmark *scheme* names which five points a detector reports, in which order:

* ``dlib5`` — dlib's 5-point shape predictor: subject's left eye outer and inner corner
  (right side of the image), right eye outer and inner corner, bottom of the nose.
* ``mtcnn5`` — MTCNN's O-Net (and insightface's convention): eye centres (image-left
  first), nose tip, mouth corners (image-left first).

A *template* says where the points of one scheme go in a chip, and each embedder names
the template it was trained with (insightface's rule: the landmark scheme and the
template scheme are the same thing). dlib's ResNet uses ``dlib150`` (dlib5 points, from
dlib's mean face); ArcFace-style models, MobileFaceNet among them, use ``arcface112``
(mtcnn5 points, insightface's canonical 112x112 positions). Points of one scheme can be
*derived* from the other through dlib's mean face (:func:`convert`); derived points are
worse than native ones, so the pipeline records when it used them and operating points
calibrated on native points are not applied to them (see :mod:`facegate.decide.tables`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import cv2
import numpy as np

# The schemes' names and point order live in the base layer (a Face names its points with them);
# they are importable from here too, beside the templates that place them.
from facegate.types import DLIB5, LANDMARK_ORDER, MTCNN5, SCHEME_POINTS, Face

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


def _mean_points(scheme: str) -> np.ndarray:
    """The scheme's five points on dlib's normalised mean face (eye centres are corner midpoints)."""
    m = {k: np.array(v, dtype=np.float64) for k, v in MEAN_FACE.items()}
    m["right_eye"] = (m["right_eye_outer"] + m["right_eye_inner"]) / 2
    m["left_eye"] = (m["left_eye_outer"] + m["left_eye_inner"]) / 2
    try:
        return np.array([m[name] for name in SCHEME_POINTS[scheme]])
    except KeyError:
        raise ValueError(f"unknown landmark scheme {scheme!r}; known: {', '.join(SCHEME_POINTS)}") from None


def convert(points: np.ndarray, src: str, dst: str) -> np.ndarray:
    """Points of scheme ``dst`` derived from points of scheme ``src`` through the mean face:
    the similarity that best maps the mean face's ``src`` points onto ``points`` carries its
    ``dst`` points into the image. Exact for eye centres from dlib's corners; the nose tip and
    mouth corners of an individual face are only approximated."""
    if src == dst:
        return np.asarray(points, dtype=np.float32)
    if src == DLIB5 and dst == MTCNN5:
        pts = np.asarray(points, dtype=np.float64)
        fit = similarity_transform(_mean_points(src), pts)
        out = _mean_points(dst) @ fit[:, :2].T + fit[:, 2]
        out[0] = (pts[2] + pts[3]) / 2  # eye centres straight from the corners
        out[1] = (pts[0] + pts[1]) / 2
        return out.astype(np.float32)
    fit = similarity_transform(_mean_points(src), np.asarray(points, dtype=np.float64))
    return (_mean_points(dst) @ fit[:, :2].T + fit[:, 2]).astype(np.float32)


def eye_centres(points: np.ndarray, scheme: str) -> tuple[np.ndarray, np.ndarray]:
    """(image-left eye centre, image-right eye centre) of five points in ``scheme``."""
    pts = np.asarray(points, dtype=np.float64).reshape(5, 2)
    if scheme == DLIB5:
        return (pts[2] + pts[3]) / 2, (pts[0] + pts[1]) / 2
    if scheme == MTCNN5:
        return pts[0], pts[1]
    raise ValueError(f"unknown landmark scheme {scheme!r}")


@dataclass(frozen=True)
class Template:
    """Where the five landmarks of ``scheme`` go in an output chip of ``size`` x ``size`` pixels."""

    size: int
    padding: float
    points: np.ndarray  # (5, 2) in chip pixels, in the scheme's order
    scheme: str = DLIB5
    # How the similarity is fitted: "dlib" (template -> image on dlib's chip grid, as dlib's
    # get_face_chip does: what dlib's ResNet was trained on) or "insightface" (image -> template,
    # insightface's estimate_norm + warpAffine: what ArcFace-style models were trained on).
    fit: str = "dlib"


@cache
def template(size: int, padding: float = 0.25) -> Template:
    """The canonical template for a square chip; dlib's ResNet uses (150, 0.25).

    The mean face's unit square is grown by ``padding`` on every side and scaled to
    ``size`` pixels, exactly as dlib's ``get_face_chip_details`` does.
    """
    unit = np.array([MEAN_FACE[name] for name in LANDMARK_ORDER], dtype=np.float64)
    pts = (unit + padding) / (1 + 2 * padding) * size
    return Template(size=size, padding=padding, points=pts.astype(np.float32), scheme=DLIB5)


# insightface's canonical mtcnn5 positions in a 112x112 ArcFace chip.
ARCFACE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)


@cache
def arcface(size: int = 112) -> Template:
    """ArcFace's template (mtcnn5 points) scaled to a ``size`` chip, fitted image-to-template as
    insightface does (see ``Template.fit``); ``padding`` is nominal."""
    return Template(size=size, padding=0.0, points=(ARCFACE_112 * (size / 112.0)).astype(np.float32), scheme=MTCNN5,
                    fit="insightface")


def named_template(name: str, size: int) -> Template:
    """A template by the name a model spec gives: ``dlib`` (dlib's mean face, padding 0.25) or
    ``arcface`` (insightface's 112 px positions), scaled to ``size``."""
    if name == "dlib":
        return template(size, 0.25)
    if name == "arcface":
        return arcface(size)
    raise ValueError(f"unknown alignment template {name!r}; known: dlib, arcface")


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


def chip_matrix(landmarks: np.ndarray, tmpl: Template) -> np.ndarray:
    """The 2x3 map from chip pixels to image pixels that :func:`norm_crop` samples through
    (before its anti-alias shrink); the device path's batched warp builds the same matrices."""
    size = tmpl.size
    if tmpl.fit == "insightface":  # image -> template, as insightface's estimate_norm; inverted
        m = np.vstack([similarity_transform(np.asarray(landmarks, np.float64), tmpl.points), [0, 0, 1]])
        return np.linalg.inv(m)[:2]
    fit = similarity_transform(tmpl.points, landmarks)  # template -> image (same scheme)
    scale = float(np.sqrt(abs(np.linalg.det(fit[:, :2]))))
    rot = fit[:, :2] / scale
    centre = fit[:, :2] @ np.array([size / 2, size / 2]) + fit[:, 2]
    # dlib's chip rectangle spans size*scale pixels inclusive of both ends.
    step = (scale * size - 1) / (size - 1)
    chip_to_image = np.empty((2, 3))
    chip_to_image[:, :2] = rot * step
    chip_to_image[:, 2] = centre - rot @ np.full(2, (size - 1) / 2) * step
    return chip_to_image


def norm_crop(image: np.ndarray, landmarks: np.ndarray, tmpl: Template) -> np.ndarray:
    """Warp the face so its landmarks land on the template: a ``size`` x ``size`` RGB chip.

    With a ``dlib`` template it follows dlib's ``get_face_chip`` so dlib's ResNet sees the chips
    it was trained on: the similarity is fitted from template to image (least squares is not
    symmetric), and the chip's pixel grid spans ``size * scale`` image pixels inclusive of both
    ends; an ``insightface`` template fits image to template, as ArcFace-style models were
    trained (see :func:`chip_matrix`). When the face is much larger than the
    chip, the image is first shrunk with area averaging so the bilinear warp does not
    alias (dlib uses an image pyramid for the same reason).
    """
    size = tmpl.size
    chip_to_image = chip_matrix(landmarks, tmpl)
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


def points_for(face: Face, scheme: str) -> tuple[np.ndarray, bool]:
    """(five points of ``face`` in ``scheme``, whether they were derived from another scheme)."""
    native = face.points(scheme)
    if native is not None:
        return np.asarray(native, dtype=np.float32), False
    return convert(face.landmarks, face.scheme, scheme), True
