"""The passes of the default detector after its tile plan, and the budget they share.

BlazeFace's tile plan (:func:`facegate.detect.blazeface.plan_levels`, with its padded
whole-frame view for faces that fill the frame) finds upright faces up to about 50 degrees
of roll. Where it finds nothing, the image is searched again turned a quarter turn each way
(``QUARTER_TURNS``, one window each: the whole turned image): faces rolled 40-140 degrees
come upright enough, and their boxes and landmarks are turned back into the original image, so the alignment's similarity warp
(which follows the landmarks) still cuts upright chips.

BlazeFace also finds faces rolled well past what landmark models place points on (dlib's
predictor at 60 degrees put the eye line at 26; O-Net's points fail past about 40). Where the
embedder aligns on O-Net's points, the detector refines every face whose roll, read from
BlazeFace's keypoints, exceeds ``ROLL_LIMIT`` on crops turned upright (in the same O-Net
calls as the other faces, see ``OnetRefiner.refine_points``); where it wants dlib's points,
such a face is found again on a crop of the image turned upright around it (``upright_face``)
and its box and landmarks are mapped back.

Each pass costs the windows of its plan; an image's passes together stay within
``config.detect_budget`` windows, so no image (and no service request) costs more than a
bounded multiple of a normal frame: a pass that would exceed the budget is skipped.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import cv2
import numpy as np

from facegate.align import DLIB5
from facegate.config import Config
from facegate.detect.boxes import affine_points, rotate_box, rotate_points, turn_matrix
from facegate.detect.pyramid import resized
from facegate.detect.scores import finish
from facegate.types import Face

log = logging.getLogger(__name__)

# np.rot90 turns (counter-clockwise quarter turns) tried, in order, on images where the
# upright pass found nothing. Measured on Grace Hopper and the astronaut: BlazeFace finds
# them rolled up to 50 degrees (both) and 60 (the astronaut); at 90, neither.
QUARTER_TURNS = (1, 3)
# The quarter-turn passes see the image shrunk to at most this long side: turning a 60 MP
# image took 2.2 s on its own (2 shared cores), a 1280 px copy milliseconds; so the rotated
# faces of a very large photo must be larger than min_face_size * long side / 1280.
TURN_MAX_SIDE = 1280
# ... and each turned pass is one model input: the whole (turned) image. Empty gate-camera frames
# are the common case, and this keeps them at 8 + 2 windows for 1280x720 (the tile plan of
# 2026-11: 9), at the price of turned faces under 107 px there (16 px at the model's input).
# Faces rolled more than this (degrees, from BlazeFace's keypoints) are re-detected upright. The
# keypoints under-read large rolls (Grace Hopper turned 60 degrees reads 35), and O-Net's points
# fail past about 40 (its five points on her at 60 degrees were a third of the face off).
ROLL_LIMIT = 20.0
UPRIGHT_CONTEXT = 2.4  # crop side for the upright pass, in detector-box sides
UPRIGHT_MAX_SIDE = 640  # the crop is shrunk to at most this many pixels (cost; landmarks lose little)
UPRIGHT_MATCH = 0.25  # share of the crop side the re-found face's centre may lie from the crop centre


class TiledDetector(Protocol):
    """What the passes need of the detector they run (:class:`facegate.detect.blazeface.BlazeFaceDetector`)."""

    name: str
    config: Config

    @property
    def refines_rolled(self) -> bool: ...

    def levels(self, image: np.ndarray, min_face_size: int | None = None, whole_only: bool = False) -> list[Any]: ...

    def detect_tiles(self, images: list[np.ndarray], min_face_size: int | None = None, proposals: bool = True,
                     whole_only: bool = False) -> list[list[Face]]: ...


def plan_cost(plan: list) -> int:
    """Model windows a plan costs (the unit of ``config.detect_budget``)."""
    return sum(level.cost for level in plan)


def _map_landmarks(face: Face, fn) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Every landmark scheme of ``face`` through the point map ``fn`` (continuous coordinates).
    dlib's landmarks are pixel indices (centres at integers + 0.5 in continuous terms); O-Net's
    points are continuous already."""
    def one(scheme: str, pts: np.ndarray) -> np.ndarray:
        off = 0.5 if scheme == DLIB5 else 0.0
        return (fn(np.asarray(pts, np.float64) + off) - off).astype(np.float32)

    return one(face.scheme, face.landmarks), {k: one(k, v) for k, v in face.more_landmarks.items()}


def unrotate_face(face: Face, k: int, shape: tuple[int, int]) -> Face:
    """A face found in ``np.rot90(image, k)`` with its box, landmarks and keypoints in the original image."""
    extra = dict(face.extra)
    for key in ("keypoints", "mtcnn_points"):
        if key in extra:
            extra[key] = rotate_points(extra[key], k, shape)
    if "detector_box" in extra:
        extra["detector_box"] = rotate_box(extra["detector_box"], k, shape)
    extra["quarter_turns"] = k
    landmarks, more = _map_landmarks(face, lambda p: rotate_points(p, k, shape))
    return Face(box=rotate_box(face.box, k, shape), landmarks=landmarks, score=face.score, scheme=face.scheme,
                more_landmarks=more, embedding=face.embedding, quality=face.quality, detector=face.detector,
                extra=extra)


def keypoint_roll(kp: np.ndarray) -> np.ndarray:
    """Roll in degrees (0 upright, positive clockwise on screen) from BlazeFace keypoints (..., K, 2);
    NaN where it cannot be read.

    The eye line (keypoints 0 and 1: the subject's right and left eye) and the eyes-to-mouth
    line turned a quarter back (keypoint 3) are added, so a profile, whose eyes nearly meet,
    is read from its eyes-to-mouth line.
    """
    kp = np.asarray(kp, dtype=np.float64)
    eyes = kp[..., 1, :] - kp[..., 0, :]
    down = kp[..., 3, :] - (kp[..., 0, :] + kp[..., 1, :]) / 2
    v = eyes + np.stack([down[..., 1], -down[..., 0]], axis=-1)
    ok = np.isfinite(v).all(axis=-1) & (np.hypot(v[..., 0], v[..., 1]) >= 1e-6)
    return np.where(ok, np.degrees(np.arctan2(v[..., 1], v[..., 0])), np.nan)


def turn_angles(kp: np.ndarray) -> np.ndarray:
    """For BlazeFace keypoints (N, K, 2): the roll of each face rolled past ``ROLL_LIMIT``, the
    angle its crops are turned by; NaN for the upright ones."""
    roll = keypoint_roll(kp) if len(kp) else np.zeros(0)
    return np.where(np.abs(roll) > ROLL_LIMIT, roll, np.nan)  # NaN compares False


def face_roll(face: Face) -> float | None:
    """The face's roll in degrees from BlazeFace's keypoints (see ``keypoint_roll``), or None."""
    kp = face.extra.get("keypoints")
    if kp is None or len(kp) < 4:
        return None
    roll = float(keypoint_roll(kp))
    return None if np.isnan(roll) else roll


def upright_face(det: TiledDetector, image: np.ndarray, face: Face, roll: float) -> Face | None:
    """The face found again on a crop turned upright around it, mapped back into ``image``; None if not re-found.

    The box is the upright face's box moved to its centre in the image (an axis-aligned box
    of the face's own size); the landmarks follow the rotation, so chips cut from them are upright.
    """
    src_box = np.asarray(face.extra.get("detector_box", face.box), dtype=np.float64)
    centre = ((src_box[0] + src_box[2]) / 2, (src_box[1] + src_box[3]) / 2)
    side = UPRIGHT_CONTEXT * max(src_box[2] - src_box[0], src_box[3] - src_box[1])
    out = int(min(max(round(side), 32), UPRIGHT_MAX_SIDE))
    m = turn_matrix(centre, roll, out / side, out)
    crop = cv2.warpAffine(image, m, (out, out), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    # The face fills about 1 / UPRIGHT_CONTEXT of the crop (80 px at the model's input): the whole
    # crop is one window, not the plan for the smallest face (the 480 px tiles of a 640 px crop: 6).
    expected = out / UPRIGHT_CONTEXT
    found = det.detect_tiles([crop], max(1, int(expected / 2)), proposals=False, whole_only=True)[0]
    if not found:
        return None
    dist = [np.hypot(*(np.array(f.center) - out / 2)) for f in found]
    best = int(np.argmin(dist))
    if dist[best] > UPRIGHT_MATCH * out:
        return None
    f = found[best]
    inv = cv2.invertAffineTransform(m)

    def back(points: np.ndarray) -> np.ndarray:
        return affine_points(inv, points).astype(np.float32)

    def back_box(box: np.ndarray) -> np.ndarray:
        c = back(np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2]))
        half = np.array([box[2] - box[0], box[3] - box[1]]) * (side / out) / 2
        return np.concatenate([c - half, c + half]).astype(np.float32)

    extra = dict(f.extra)
    if "keypoints" in extra:
        extra["keypoints"] = back(extra["keypoints"])
    if "detector_box" in extra:
        extra["detector_box"] = back_box(extra["detector_box"])
    extra["roll"] = roll
    if "quarter_turns" in face.extra:
        extra["quarter_turns"] = face.extra["quarter_turns"]
    landmarks, more = _map_landmarks(f, back)
    return Face(box=back_box(f.box), landmarks=landmarks, score=max(face.score, f.score), scheme=f.scheme,
                more_landmarks=more, detector=face.detector, extra=extra)


def straighten(det: TiledDetector, image: np.ndarray, faces: list[Face]) -> list[Face]:
    """Faces rolled beyond ``ROLL_LIMIT`` replaced by their upright re-detection (``upright_face``),
    where the embedder wants dlib's points. Where it wants O-Net's, the detector has already
    refined rolled faces on crops turned upright (``OnetRefiner.refine_points``)."""
    if det.refines_rolled:
        return faces
    out = []
    for face in faces:
        roll = face_roll(face)
        if roll is not None and abs(roll) > ROLL_LIMIT:
            again = upright_face(det, image, face, roll)
            if again is not None:
                face = again
        out.append(face)
    return out


def scale_face(face: Face, s: float) -> Face:
    """The face of an image shrunk by ``s`` (< 1) in the original's pixels."""
    if s == 1.0:
        return face
    extra = dict(face.extra)
    for key in ("keypoints", "detector_box"):
        if key in extra:
            extra[key] = (np.asarray(extra[key], np.float32) / s).astype(np.float32)
    landmarks, more = _map_landmarks(face, lambda p: p / s)
    return Face(box=(face.box / s).astype(np.float32), landmarks=landmarks, scheme=face.scheme, more_landmarks=more,
                score=face.score, embedding=face.embedding, quality=face.quality, detector=face.detector, extra=extra)


def _turned(image: np.ndarray, k: int) -> tuple[np.ndarray, float]:
    """``np.rot90(image, k)`` of the image shrunk to ``TURN_MAX_SIDE`` at most, and the shrink factor."""
    h, w = image.shape[:2]
    s = min(1.0, TURN_MAX_SIDE / max(h, w))
    if s < 1.0:
        image = resized([image], max(1, round(w * s)), max(1, round(h * s)))
        s = image.shape[1] / w
    codes = {1: cv2.ROTATE_90_COUNTERCLOCKWISE, 2: cv2.ROTATE_180, 3: cv2.ROTATE_90_CLOCKWISE}
    return cv2.rotate(image, codes[k % 4]), s


def run_cascade(det: TiledDetector, images: list[np.ndarray]) -> list[list[Face]]:
    """The tile plan on all images, then the rotated passes on those where nothing was found."""
    budget = det.config.detect_budget
    results = det.detect_tiles(images)
    spent = [plan_cost(det.levels(im)) for im in images]
    for k in QUARTER_TURNS:
        todo, turned, shrink = [], [], []
        for i, im in enumerate(images):
            if results[i] or spent[i] == 0:
                continue
            rot, s = _turned(im, k)
            cost = plan_cost(det.levels(rot, whole_only=True))
            if budget > 0 and spent[i] + cost > budget:
                log.debug("detection budget: %dx%d image not searched turned %d quarter(s)", im.shape[1], im.shape[0], k)
                continue
            spent[i] += cost
            todo.append(i)
            turned.append(rot)
            shrink.append(s)
        if not todo:
            continue
        for i, s, rot, faces in zip(todo, shrink, turned, det.detect_tiles(turned, proposals=False, whole_only=True)):
            small = (rot.shape[1], rot.shape[0]) if k % 2 else rot.shape[:2]  # (h, w) before turning
            results[i] = [scale_face(unrotate_face(f, k, small), s) for f in faces]
    return [finish(straighten(det, im, faces), det.name, det.config.min_score) for im, faces in zip(images, results)]
