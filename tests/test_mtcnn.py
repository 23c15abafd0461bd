"""MTCNN detector: real photos shipped with scikit-image and matplotlib, a composite with
known face positions, a blank image, determinism, batching and the device check.

The weights come from `facegate models install` (facenet-pytorch's archive, weight files only): a missing
or corrupt file is a set-up error (ModelError), not a reason to skip."""

from __future__ import annotations

import numpy as np
import pytest

from facegate.config import Config
from facegate.detect.mtcnn import MtcnnDetector
from facegate.errors import DeviceError


@pytest.fixture(scope="module")
def detector() -> MtcnnDetector:
    return MtcnnDetector(Config(detector="mtcnn", embedder="dlib_resnet", threads=2))


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    skdata = pytest.importorskip("skimage.data")
    return np.ascontiguousarray(skdata.astronaut())


@pytest.fixture(scope="module")
def hopper() -> np.ndarray:
    from matplotlib import cbook
    from PIL import Image

    with cbook.get_sample_data("grace_hopper.jpg") as fh:
        return np.asarray(Image.open(fh).convert("RGB"))


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def _check_face(face, image: np.ndarray) -> None:
    x1, y1, x2, y2 = face.box
    lm = face.landmarks
    assert face.detector == "mtcnn"
    assert 0.5 < face.score <= 1.0
    assert lm.shape == (5, 2) and face.box.shape == (4,)
    assert np.all((lm[:, 0] >= x1) & (lm[:, 0] <= x2) & (lm[:, 1] >= y1) & (lm[:, 1] <= y2))
    # dlib order: eyes above the nose base; subject's left eye (0 outer, 1 inner) on the
    # image right, subject's right eye (3 inner, 2 outer) on the image left.
    assert np.all(lm[:4, 1] < lm[4, 1])
    assert lm[0, 0] > lm[1, 0] > lm[3, 0] > lm[2, 0]
    pts = face.extra["mtcnn_points"]
    assert pts.shape == (5, 2)
    assert pts[0, 0] < pts[1, 0] and pts[0, 1] < pts[2, 1] and pts[1, 1] < pts[2, 1]
    # MTCNN's eye centres lie between dlib's corners of the same eye.
    iod = np.linalg.norm(pts[1] - pts[0])
    assert np.linalg.norm(pts[0] - lm[2:4].mean(0)) < 0.3 * iod
    assert np.linalg.norm(pts[1] - lm[0:2].mean(0)) < 0.3 * iod
    db = face.extra["detector_box"]
    assert np.all((pts[:, 0] >= db[0]) & (pts[:, 0] <= db[2]) & (pts[:, 1] >= db[1]) & (pts[:, 1] <= db[3]))


@pytest.mark.parametrize("name", ["astronaut", "hopper"])
def test_one_face_on_sample_photos(detector, name, request) -> None:
    image = request.getfixturevalue(name)
    faces = detector.detect(image)
    assert len(faces) == 1
    _check_face(faces[0], image)


def test_composite_with_known_faces(detector, astronaut, hopper) -> None:
    # Square crops around each sample face, pasted at several sizes on a grey canvas.
    sources = []
    for img in (astronaut, hopper):
        (face,) = detector.detect(img)
        x1, y1, x2, y2 = face.box
        side = 1.6 * max(x2 - x1, y2 - y1)
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        ox, oy = int(round(cx - side / 2)), int(round(cy - side / 2))
        s = int(round(side))
        assert ox >= 0 and oy >= 0 and ox + s <= img.shape[1] and oy + s <= img.shape[0]
        crop = img[oy : oy + s, ox : ox + s]
        rel = (face.box - [ox, oy, ox, oy]) / s  # face box in crop units
        sources.append((crop, rel))

    import cv2

    canvas = np.full((720, 1280, 3), 120, np.uint8)
    used = np.zeros(canvas.shape[:2], bool)
    # (source, face side in px, paste x, paste y)
    layout = [
        (0, 60, 20, 20), (1, 90, 160, 40), (0, 125, 340, 20), (1, 160, 600, 30),
        (1, 200, 20, 360), (0, 200, 400, 360), (1, 110, 860, 380), (0, 75, 1100, 100),
    ]
    expected = []
    for src, face_px, px, py in layout:
        crop, rel = sources[src]
        patch_side = int(round(face_px / (rel[2] - rel[0])))
        patch = cv2.resize(crop, (patch_side, patch_side), interpolation=cv2.INTER_AREA)
        assert py + patch_side <= canvas.shape[0] and px + patch_side <= canvas.shape[1]
        assert not used[py : py + patch_side, px : px + patch_side].any(), "patches overlap"
        used[py : py + patch_side, px : px + patch_side] = True
        canvas[py : py + patch_side, px : px + patch_side] = patch
        expected.append(rel * patch_side + [px, py, px, py])

    faces = detector.detect(canvas)
    assert len(faces) == len(layout)
    for box in expected:
        best = max(_iou(box, f.box) for f in faces)
        assert best > 0.6, (box, [f.box for f in faces])
    for f in faces:
        _check_face(f, canvas)
    scores = [f.score for f in faces]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize("value", [0, 255])
def test_blank_image_has_no_face(detector, value) -> None:
    assert detector.detect(np.full((480, 640, 3), value, np.uint8)) == []


def test_deterministic(detector, astronaut) -> None:
    a = detector.detect(astronaut)
    b = MtcnnDetector(Config(detector="mtcnn", embedder="dlib_resnet", threads=2)).detect(astronaut)
    assert len(a) == len(b) == 1
    np.testing.assert_array_equal(a[0].box, b[0].box)
    np.testing.assert_array_equal(a[0].landmarks, b[0].landmarks)
    assert a[0].score == b[0].score


def test_batch_matches_single(detector, astronaut, hopper) -> None:
    flipped = np.ascontiguousarray(astronaut[:, ::-1])
    images = [astronaut, hopper, flipped, np.zeros((100, 120, 3), np.uint8)]
    batched = detector.detect_batch(images)
    assert [len(r) for r in batched] == [1, 1, 1, 0]
    for img, faces in zip(images, batched):
        single = detector.detect(img)
        assert len(single) == len(faces)
        for f, g in zip(faces, single):
            np.testing.assert_allclose(f.box, g.box, atol=0.5)
            assert abs(f.score - g.score) < 1e-3


def test_pyramid_on_device_matches_host(detector, astronaut, hopper) -> None:
    """On a GPU the P-Net pyramid is resized by torch (area averaging) instead of OpenCV's
    INTER_AREA; forced here on the CPU, that path must find the same faces."""
    import cv2

    canvas = np.full((720, 1280, 3), 120, np.uint8)
    for img, side, x, y in ((astronaut, 150, 40, 60), (hopper, 260, 400, 300), (astronaut, 420, 820, 200)):
        canvas[y : y + side, x : x + side] = cv2.resize(img[:400, 100:500], (side, side), interpolation=cv2.INTER_AREA)
    images = [astronaut, hopper, canvas]
    on_device = MtcnnDetector(Config(detector="mtcnn", embedder="dlib_resnet", threads=2))
    on_device.pyramid_on_device = True
    host, dev = detector.detect_batch(images), on_device.detect_batch(images)
    assert [len(r) for r in host] == [1, 1, 3]
    assert [len(r) for r in dev] == [len(r) for r in host]
    for hs, ds in zip(host, dev):
        for h in hs:
            d = max(ds, key=lambda f: _iou(f.box, h.box))
            assert _iou(d.box, h.box) > 0.8  # candidates differ a little; the final boxes barely
            side = h.box[2] - h.box[0]
            assert np.abs(d.landmarks - h.landmarks).max() < 0.05 * side


def test_cuda_without_gpu_raises(astronaut) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present")
    det = MtcnnDetector(Config(detector="mtcnn", device="cuda"))  # lazy: no error yet
    with pytest.raises(DeviceError):
        det.detect(astronaut)
