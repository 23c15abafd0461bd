"""Detectors on sample images that ship with scikit-image and matplotlib (no data set needed).

Covers: one face on the two portraits for every detector, landmark order and placement,
several pasted faces in a 1280x720 scene (BlazeFace tiling), nothing on blank/noise,
determinism, ``detect_batch`` == ``detect``, ``min_face_size``, the BlazeFace->dlib box
adjustment (landmarks agree with those from HOG boxes) and landmarks at the image border.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from facegate.config import Config
from facegate.detect import get_detector
from facegate.detect.blazeface import BOX_ADJUST_BLAZEFACE, BlazeFaceDetector, plan_levels
from facegate.detect.boxes import BoxAdjust, iou_matrix
from facegate.detect.cascade import plan_cost
from facegate.detect.hog import HogDetector, hog_upsample
from facegate.detect.landmarks import DlibLandmarker

DETECTORS = ("blazeface", "hog")

# Where the face is in each sample image: dlib's HOG box (x1, y1, x2, y2), measured once.
ASTRONAUT_FACE = (175, 76, 266, 167)
GRACE_FACE = (180, 139, 367, 326)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    skimage_data = pytest.importorskip("skimage.data")
    return np.ascontiguousarray(skimage_data.astronaut())


@pytest.fixture(scope="module")
def grace() -> np.ndarray:
    from matplotlib import cbook
    from PIL import Image

    with Image.open(cbook.get_sample_data("grace_hopper.jpg")) as im:
        return np.asarray(im.convert("RGB"))


@pytest.fixture(scope="module")
def detectors() -> dict[str, object]:
    return {name: get_detector(Config(detector=name)) for name in DETECTORS}


def _face_crop(image: np.ndarray, face: tuple[int, int, int, int], context: float = 1.4) -> np.ndarray:
    """The face box grown ``context`` times (square, clipped to the image)."""
    x1, y1, x2, y2 = face
    cx, cy, half = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) * context / 2
    return image[round(cy - half) : round(cy + half), round(cx - half) : round(cx + half)]


@pytest.fixture(scope="module")
def scene(astronaut, grace) -> tuple[np.ndarray, np.ndarray]:
    """A 1280x720 noisy grey scene with seven pasted faces (face boxes 60-200 px) and their boxes.

    The 200 px face (x 540-740) is whole in neither 720 px tile (0-720, 560-1280), the 100 px
    face (x 390-490) in no 480 px tile (0-480, 400-880, ...); one crop touches the corner.
    """
    rng = np.random.default_rng(7)
    img = np.clip(rng.normal(128, 12, (720, 1280, 3)), 0, 255).astype(np.uint8)
    crops = [_face_crop(astronaut, ASTRONAUT_FACE), _face_crop(grace, GRACE_FACE)]
    # (face side, x, y of the pasted crop's top-left corner)
    placements = [(60, 40, 60), (80, 180, 200), (100, 370, 40), (130, 880, 60), (200, 500, 300), (160, 100, 380), (120, 1112, 552)]
    boxes = []
    for k, (f, x, y) in enumerate(placements):
        s = round(f * 1.4)
        img[y : y + s, x : x + s] = cv2.resize(crops[k % 2], (s, s), interpolation=cv2.INTER_AREA)
        m = (s - f) / 2
        boxes.append((x + m, y + m, x + m + f, y + m + f))
    return img, np.array(boxes, dtype=np.float32)


def _assert_plausible(face) -> None:
    """Every scheme the face carries is inside its box and in its scheme's order."""
    schemes = {face.scheme: face.landmarks, **face.more_landmarks}
    for scheme, lm in schemes.items():
        lm = np.asarray(lm)
        assert lm.shape == (5, 2) and np.isfinite(lm).all()
        x1, y1, x2, y2 = face.box
        assert (lm[:, 0] >= x1).all() and (lm[:, 0] <= x2).all(), (scheme, face.box, lm)
        assert (lm[:, 1] >= y1).all() and (lm[:, 1] <= y2).all(), (scheme, face.box, lm)
        if scheme == "dlib5":
            # 0 left eye outer (image right), 1 left eye inner, 2 right eye outer (image left),
            # 3 right eye inner, 4 nose base.
            assert lm[0, 0] > lm[1, 0] > lm[3, 0] > lm[2, 0]
            assert lm[:4, 1].max() < lm[4, 1]  # eyes above the nose
            assert lm[3, 0] < lm[4, 0] < lm[1, 0]  # nose between the inner eye corners
        else:
            assert scheme == "mtcnn5"
            # image-left eye, image-right eye, nose tip, image-left and image-right mouth corner
            assert lm[0, 0] < lm[2, 0] < lm[1, 0] and lm[3, 0] < lm[4, 0]
            assert max(lm[0, 1], lm[1, 1]) < lm[2, 1] < min(lm[3, 1], lm[4, 1])


# -- the two portraits --------------------------------------------------------------------


@pytest.mark.parametrize("name", DETECTORS)
@pytest.mark.parametrize("which", ["astronaut", "grace"])
def test_one_face_on_portraits(name, which, detectors, astronaut, grace):
    image, truth = (astronaut, ASTRONAUT_FACE) if which == "astronaut" else (grace, GRACE_FACE)
    faces = detectors[name].detect(image)
    assert len(faces) == 1, [f.to_dict() for f in faces]
    face = faces[0]
    assert face.detector == name
    assert iou_matrix(face.box, np.array(truth))[0, 0] > 0.6
    _assert_plausible(face)
    if name == "blazeface":
        assert 0.5 <= face.score <= 1.0
        assert face.extra["detector_box"].shape == (4,) and face.extra["keypoints"].shape == (6, 2)


def test_blazeface_landmarks_match_hog(astronaut, grace):
    """Adjusted BlazeFace boxes give the dlib landmarks HOG boxes give, within a few pixels (the
    dlib5 path, taken for an embedder aligned on dlib's points)."""
    detectors = {n: get_detector(Config(detector=n, embedder="dlib_resnet")) for n in ("blazeface", "hog")}
    for image in (astronaut, grace):
        bf = detectors["blazeface"].detect(image)[0]
        hog = detectors["hog"].detect(image)[0]
        dist = np.linalg.norm(bf.landmarks - hog.landmarks, axis=1)
        assert dist.max() <= max(3.0, 0.03 * hog.width), (bf.landmarks, hog.landmarks)
        # and the adjusted box frames the face like HOG's does
        assert iou_matrix(bf.box, hog.box)[0, 0] > 0.7


def test_box_adjust_is_calibrated():
    adj = BOX_ADJUST_BLAZEFACE
    assert 0.8 < adj.sx < 1.1 and 0.8 < adj.sy < 1.1 and abs(adj.dx) < 0.1 and abs(adj.dy) < 0.1
    box = np.array([[100.0, 100.0, 200.0, 200.0]])
    out = adj.apply(box)[0]
    assert out[2] - out[0] == pytest.approx(100 * adj.sx, rel=1e-5)
    assert (out[0] + out[2]) / 2 == pytest.approx(150 + 100 * adj.dx, rel=1e-5)
    np.testing.assert_allclose(BoxAdjust().apply(box), box)  # HOG's boxes are the reference: no adjustment


# -- several faces, tiling -----------------------------------------------------------------


def test_blazeface_finds_every_pasted_face(detectors, scene):
    image, truth = scene
    faces = detectors["blazeface"].detect(image)
    pred = np.array([f.box for f in faces]).reshape(-1, 4)
    iou = iou_matrix(truth, pred)
    assert iou.shape[1] == len(truth), f"{len(faces)} faces for {len(truth)} pasted"
    assert (iou.max(axis=1) > 0.5).all(), iou.max(axis=1)
    assert len(set(iou.argmax(axis=1))) == len(truth)  # one detection per face
    for f in faces:
        _assert_plausible(f)
    scores = [f.score for f in faces]
    assert scores == sorted(scores, reverse=True)


def test_plan_for_hd_frame():
    levels = plan_levels(720, 1280, 40)
    # 480 px tiles, whole frame, padded whole frame (the 720 px tiles' faces, 60-300 px, are covered
    # by the 480 px tiles and the whole view); unpruned, the plan of 2026-11 kept them
    assert [len(lv.windows) for lv in levels] == [6, 1, 1]
    assert [len(lv.windows) for lv in plan_levels(720, 1280, 40, prune=False)] == [6, 2, 1, 1]
    # the padded view is drawn into the whole view's empty band: 7 model windows, not 8
    assert levels[-1].shares and levels[-1].region == (0, 120, 192, 192) and levels[-2].region == (0, 0, 192, 120)
    assert plan_cost(levels) == 7
    assert plan_cost(plan_levels(720, 1280, 40, pack=False)) == 8
    assert not any(lv.shares for lv in plan_levels(480, 640, 40))  # 4:3 leaves no room
    for lv in levels[:-1]:
        for x0, y0, _ in lv.windows:
            assert 0 <= x0 and 0 <= y0
            assert x0 + 192 <= max(lv.width, 192) and y0 + 192 <= max(lv.height, 192)
    # the padded view: the frame a third of the window, centred
    (x0, y0, inner), = levels[-1].windows
    assert levels[-1].width == 64 and x0 == -64 and y0 == -132 and not any(inner)
    assert [len(lv.windows) for lv in plan_levels(720, 1280, 60)] == [2, 1, 1]
    assert [len(lv.windows) for lv in plan_levels(480, 640, 40)] == [2, 1]  # the padded view covers from 160 px
    assert [len(lv.windows) for lv in plan_levels(250, 250, 40)] == [1, 1]
    assert [len(lv.windows) for lv in plan_levels(720, 1280, 40, whole_only=True)] == [1]


# -- no faces --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", DETECTORS)
def test_no_face_on_blank_or_noise(name, detectors):
    rng = np.random.default_rng(3)
    images = [
        np.zeros((480, 640, 3), np.uint8),
        np.full((480, 640, 3), 200, np.uint8),
        rng.integers(0, 256, (480, 640, 3), dtype=np.uint8),
        cv2.GaussianBlur(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8), (0, 0), 3),
    ]
    if name == "blazeface":
        images.append(rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8))
    for img in images:
        assert detectors[name].detect(img) == []


# -- determinism and batching ------------------------------------------------------------------


def _same(a, b) -> None:
    assert len(a) == len(b)
    for fa, fb in zip(a, b):
        np.testing.assert_array_equal(fa.box, fb.box)
        np.testing.assert_array_equal(fa.landmarks, fb.landmarks)
        assert fa.score == fb.score


@pytest.mark.parametrize("name", DETECTORS)
def test_stable_outputs(name, detectors, astronaut):
    _same(detectors[name].detect(astronaut), detectors[name].detect(astronaut))


def test_blazeface_stable_on_scene(detectors, scene):
    _same(detectors["blazeface"].detect(scene[0]), detectors["blazeface"].detect(scene[0]))


def test_detect_batch_equals_detect(detectors, astronaut, grace, scene):
    det = detectors["blazeface"]
    images = [astronaut, scene[0], np.zeros((100, 300, 3), np.uint8), grace]
    batched = det.detect_batch(images)
    single = [det.detect(img) for img in images]
    assert [len(b) for b in batched] == [1, len(scene[1]), 0, 1]
    for b, s in zip(batched, single):
        assert len(b) == len(s)
        for fb, fs in zip(b, s):
            np.testing.assert_allclose(fb.box, fs.box, atol=1e-2)
            np.testing.assert_allclose(fb.landmarks, fs.landmarks, atol=1.0)
            assert fb.score == pytest.approx(fs.score, abs=1e-4)
    assert det.detect_batch([]) == []
    hog = detectors["hog"]
    _same(hog.detect_batch([astronaut])[0], hog.detect(astronaut))


# -- min_face_size and threads ---------------------------------------------------------------


@pytest.mark.parametrize("name", DETECTORS)
def test_min_face_size_drops_small_faces(name, astronaut, grace):
    det = get_detector(Config(detector=name, min_face_size=150))
    assert det.detect(astronaut) == []  # her face is about 90 px
    faces = det.detect(grace)  # hers about 190 px
    assert len(faces) == 1 and faces[0].width >= 150


def test_min_face_size_on_scene(scene):
    image, truth = scene
    faces = BlazeFaceDetector(Config(min_face_size=110)).detect(image)
    assert all(np.sqrt(f.width * f.height) >= 110 for f in faces)
    big = truth[(truth[:, 2] - truth[:, 0]) >= 125]
    iou = iou_matrix(big, np.array([f.box for f in faces]).reshape(-1, 4))
    assert (iou.max(axis=1) > 0.5).all()


def test_hog_upsample_follows_min_face_size():
    assert hog_upsample(80) == 0 and hog_upsample(200) == 0
    assert hog_upsample(40) == 1 and hog_upsample(79) == 1
    assert HogDetector(Config(detector="hog", min_face_size=100)).upsample == 0


def test_threads_setting(astronaut):
    faces = BlazeFaceDetector(Config(threads=1)).detect(astronaut)
    assert len(faces) == 1


# -- landmarks at the border -----------------------------------------------------------------


def test_landmarks_with_box_past_the_border(astronaut):
    """A face cut by the image edge: landmarks from a box reaching outside stay where they were."""
    lmk = DlibLandmarker(Config())
    box = np.array([ASTRONAUT_FACE], dtype=np.float32)
    ref = lmk.fit(astronaut, box)[0]
    # Cut the image 20 px into the face box on the left and 15 px on the top.
    dx, dy = ASTRONAUT_FACE[0] + 20, ASTRONAUT_FACE[1] + 15
    cut = np.ascontiguousarray(astronaut[dy:, dx:])
    shifted = box - np.array([dx, dy, dx, dy], dtype=np.float32)
    assert shifted[0, 0] < 0 and shifted[0, 1] < 0
    got = lmk.fit(cut, shifted)[0] + np.array([dx, dy], dtype=np.float32)
    assert np.isfinite(got).all()
    assert np.linalg.norm(got - ref, axis=1).max() < 6.0, (got, ref)


@pytest.mark.parametrize("name", DETECTORS)
def test_detector_near_the_border(name, detectors, astronaut):
    """The face close to the top-left corner is still found, with the same landmarks."""
    ref = detectors[name].detect(astronaut)[0]
    dx, dy = ASTRONAUT_FACE[0] - 4, ASTRONAUT_FACE[1] - 4
    cut = np.ascontiguousarray(astronaut[dy:, dx:])
    faces = detectors[name].detect(cut)
    assert len(faces) == 1
    got = faces[0].landmarks + np.array([dx, dy], dtype=np.float32)
    assert np.linalg.norm(got - ref.landmarks, axis=1).max() < 4.0


def test_rejects_non_rgb_images(detectors):
    from facegate.errors import InvalidImageError

    for bad in (np.zeros((50, 50), np.uint8), np.zeros((50, 50, 4), np.uint8), np.zeros((50, 50, 3), np.float32)):
        for name in DETECTORS:
            with pytest.raises(InvalidImageError):
                detectors[name].detect(bad)


def test_landmarker_empty_and_lazy():
    lmk = DlibLandmarker(Config())
    assert lmk._predictor is None
    out = lmk.fit(np.zeros((10, 10, 3), np.uint8), np.zeros((0, 4)))
    assert out.shape == (0, 5, 2) and lmk._predictor is None

