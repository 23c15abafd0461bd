"""The default detector's passes beyond the tile plan, and its bounded cost.

Covers: images too thin to hold a face and huge images (answered with no face, within a
bounded number of model windows and bounded memory; no wall-clock asserts), the detection
budget, close-ups tighter than the head (the padded whole-frame pass), faces rolled 60 and
90 degrees (quarter-turn passes and the upright re-detection, landmarks mapped back), and
the quarter-turn geometry.
"""

from __future__ import annotations

import io
import tracemalloc

import cv2
import numpy as np
import pytest
from helpers import huge_png

from facegate.config import Config
from facegate.detect import get_detector
from facegate.detect.blazeface import plan_levels
from facegate.detect.boxes import iou_matrix, rotate_box, rotate_points
from facegate.detect.cascade import face_roll, plan_cost
from facegate.image import load_image

GRACE_FACE = (180, 139, 367, 326)  # dlib HOG box in matplotlib's grace_hopper.jpg (as in test_detect)
ASTRONAUT_FACE = (175, 76, 266, 167)


@pytest.fixture(scope="module")
def det():
    return get_detector(Config())


# -- bounded cost --------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1, 5000), (5000, 1), (1, 60000), (19, 5000)])
def test_strips_too_thin_for_a_face_cost_nothing(shape):
    assert plan_levels(*shape, 40) == []


@pytest.mark.parametrize("shape", [(40, 5000), (192, 60000), (3000, 20000), (7745, 7745), (720, 1280), (1, 1)])
def test_plans_stay_within_the_budget(shape):
    budget = Config().detect_budget
    plan = plan_levels(*shape, 40, budget)
    assert plan_cost(plan) <= budget
    for lv in plan:
        assert lv.sx <= 1.0 + 1e-6 and lv.sy <= 1.0 + 1e-6  # no level enlarges the image
    # without a budget a 3000x20000 photo would need hundreds of windows
    if shape == (3000, 20000):
        assert plan_cost(plan_levels(*shape, 40)) > 5 * budget


@pytest.mark.parametrize("size", [(5000, 1), (60000, 1), (1, 5000)])
def test_extreme_png_is_answered_with_no_face(det, size):
    image = load_image(io.BytesIO(huge_png(*size)).getvalue())
    tracemalloc.start()
    faces = det.detect(image)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert faces == []
    assert peak < 20 * 2**20  # the 1x60000 PNG once asked for 29 GiB


def test_huge_image_is_bounded(det):
    """A 60 MP frame (the default pixel limit) costs a few windows per pass and little memory beyond itself."""
    image = np.zeros((3000, 20000, 3), np.uint8)
    image[::7] = 90  # not a constant image
    tracemalloc.start()
    faces = det.detect(image)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert faces == []
    assert peak < 300 * 2**20  # working copies: halvings and one shrunk turned copy, not the 400 MB a float copy would take


def test_budget_limits_the_fallback_passes(det, monkeypatch):
    """With a budget of one plan, the quarter-turn passes are skipped: a face rolled 90 degrees is not found."""
    from matplotlib import cbook

    grace = load_image(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    turned = np.ascontiguousarray(np.rot90(grace, 1))
    assert det.detect(turned)  # found by a quarter-turn pass
    tight = get_detector(Config(detect_budget=plan_cost(plan_levels(*turned.shape[:2], 40))))
    faces = tight.detect(turned)
    assert all(f.extra.get("quarter_turns") is None for f in faces)


# -- close-ups -----------------------------------------------------------------------------


def _grace() -> np.ndarray:
    from matplotlib import cbook

    return load_image(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


def _astronaut() -> np.ndarray:
    skimage_data = pytest.importorskip("skimage.data")
    return np.ascontiguousarray(skimage_data.astronaut())


@pytest.mark.parametrize("which", ["grace", "astronaut"])
@pytest.mark.parametrize("share", [0.8, 1.0, 1.3])
def test_crops_tighter_than_the_head(det, which, share):
    """A square crop ``share`` times the face box (0.8: the box reaches past every edge), upscaled to 400 px."""
    image, face = (_grace(), GRACE_FACE) if which == "grace" else (_astronaut(), ASTRONAUT_FACE)
    x1, y1, x2, y2 = face
    cx, cy, half = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) * share / 2
    crop = image[round(cy - half) : round(cy + half), round(cx - half) : round(cx + half)]
    s = 400 / crop.shape[1]
    crop = cv2.resize(crop, (400, round(crop.shape[0] * s)), interpolation=cv2.INTER_CUBIC)
    truth = (np.array(face, np.float64) - [cx - half, cy - half] * 2) * s
    faces = det.detect(crop)
    assert len(faces) == 1, [f.to_dict() for f in faces]
    assert iou_matrix(faces[0].box, truth)[0, 0] > 0.5, (faces[0].box, truth)


# -- rotated faces -------------------------------------------------------------------------


def _rotate(image: np.ndarray, degrees: float) -> tuple[np.ndarray, np.ndarray]:
    """The image turned counter-clockwise on screen by ``degrees`` on a canvas that holds it all, and the 2x3 map."""
    h, w = image.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    c, s = abs(m[0, 0]), abs(m[0, 1])
    nw, nh = int(h * s + w * c), int(h * c + w * s)
    m[:, 2] += (nw / 2 - w / 2, nh / 2 - h / 2)
    return cv2.warpAffine(image, m, (nw, nh)), m


@pytest.mark.parametrize("which", ["grace", "astronaut"])
@pytest.mark.parametrize("degrees", [60, 90, -60, -90])
def test_rolled_faces_are_found_with_landmarks_mapped_back(det, which, degrees):
    image = _grace() if which == "grace" else _astronaut()
    upright = det.detect(image)[0]
    turned, m = _rotate(image, degrees)
    faces = det.detect(turned)
    assert faces, "no face found"
    face = max(faces, key=lambda f: f.score)
    expected = (upright.landmarks + 0.5) @ m[:, :2].T + m[:, 2] - 0.5
    err = np.linalg.norm(face.landmarks - expected, axis=1).max()
    assert err < 0.08 * upright.width, (face.landmarks, expected)
    # and the chip cut from those landmarks is upright: eyes level, above the nose
    from facegate.align import arcface, norm_crop, template

    tmpl = arcface(112) if face.scheme == "mtcnn5" else template(150)  # the template of the face's own scheme
    chip_up = norm_crop(image, upright.landmarks, tmpl).astype(np.float32)
    chip = norm_crop(turned, face.landmarks, tmpl).astype(np.float32)
    corr = np.corrcoef(chip_up.ravel(), chip.ravel())[0, 1]
    # the 112 px ArcFace chip is cut close to the face (no padding): the same landmark error moves
    # more of its pixels than in dlib's padded 150 px chip (measured: 0.68-0.96 vs 0.80-0.97)
    assert corr > (0.65 if face.scheme == "mtcnn5" else 0.8), corr


def test_roll_is_read_from_keypoints():
    from facegate.types import Face

    kp = np.array([[40, 50], [60, 50], [50, 60], [50, 70], [30, 55], [70, 55]], np.float32)
    face = Face(box=np.zeros(4, np.float32), landmarks=np.zeros((5, 2), np.float32), score=1.0,
                extra={"keypoints": kp})
    assert face_roll(face) == pytest.approx(0.0, abs=1e-6)
    c = np.array([50, 55], np.float32)
    r = np.radians(30)
    rot = np.array([[np.cos(r), -np.sin(r)], [np.sin(r), np.cos(r)]], np.float32)
    face.extra["keypoints"] = (kp - c) @ rot.T + c  # turned clockwise on screen (y down)
    assert face_roll(face) == pytest.approx(30.0, abs=1e-3)
    assert face_roll(Face(box=np.zeros(4), landmarks=np.zeros((5, 2)), score=1.0)) is None


@pytest.mark.parametrize("k", [1, 2, 3])
def test_quarter_turn_geometry(k):
    img = np.zeros((30, 50), np.uint8)
    img[4, 7] = 255  # pixel (x=7, y=4), centre (7.5, 4.5)
    turned = np.rot90(img, k)
    y, x = np.argwhere(turned == 255)[0]
    back = rotate_points(np.array([x + 0.5, y + 0.5]), k, img.shape)
    np.testing.assert_allclose(back, [7.5, 4.5], atol=1e-5)
    box = rotate_box(np.array([x, y, x + 1, y + 1], np.float32), k, img.shape)
    np.testing.assert_allclose(box, [7, 4, 8, 5], atol=1e-5)
