"""O-Net box refinement of BlazeFace's boxes (facegate.detect.refine)."""

from __future__ import annotations

import numpy as np
import pytest

from facegate.config import Config
from facegate.detect import get_detector
from facegate.detect.boxes import iou_matrix
from facegate.detect.refine import OnetRefiner
from facegate.models.converted import converted_path


@pytest.fixture(scope="module")
def cfg(home) -> Config:
    return Config(home=home, threads=1, embedder="dlib_resnet")  # dlib5 landmarks from the refined box


@pytest.mark.parametrize("which", ["hopper", "astronaut"])
def test_refined_boxes_agree_with_full_mtcnn(cfg, which, request):
    """Two O-Net passes on BlazeFace's box land where MTCNN's own cascade puts the face,
    and dlib's landmarks from the refined box agree with those from MTCNN's box."""
    image = request.getfixturevalue(which)
    refined = get_detector(cfg).detect(image)
    mtcnn = get_detector(cfg.replace(detector="mtcnn")).detect(image)
    assert len(refined) == 1 and len(mtcnn) == 1
    assert refined[0].extra["refined"] is True
    assert iou_matrix(refined[0].box, mtcnn[0].box)[0, 0] > 0.85
    eye = np.linalg.norm(mtcnn[0].landmarks[0] - mtcnn[0].landmarks[2])
    assert np.linalg.norm(refined[0].landmarks - mtcnn[0].landmarks, axis=1).max() < 0.05 * eye


def test_refinement_can_be_switched_off(cfg, hopper):
    plain = get_detector(cfg.replace(refine_boxes=False)).detect(hopper)[0]
    refined = get_detector(cfg).detect(hopper)[0]
    assert plain.extra["refined"] is False
    assert not np.allclose(plain.box, refined.box)  # the option really changes the box
    assert iou_matrix(plain.box, refined.box)[0, 0] > 0.6  # ...but not the face


def test_refiner_edge_cases_and_cache(cfg, hopper):
    r = OnetRefiner(cfg)
    boxes, prob, ok = r.refine(hopper, np.zeros((0, 4)))
    assert boxes.shape == (0, 4) and prob.shape == (0,) and ok.shape == (0,)
    # A box on a blank corner: O-Net cannot pull it onto a face far away, so it is not trusted
    # or stays put; a box on the face is trusted with a high probability.
    face = get_detector(cfg).detect(hopper)[0].extra["detector_box"]
    boxes, prob, ok = r.refine(hopper, np.array([face, [0, 0, 40, 40]]))
    assert ok[0] and prob[0] > 0.9
    assert prob[1] < 0.5
    path, origin = converted_path("mtcnn_onet.onnx", cfg)  # the graph the refiner ran: installed, or cached by it
    assert origin in ("installed", "cache") and path.is_file()


def test_torch_runtime_gives_the_same_boxes(cfg, hopper):
    face = get_detector(cfg).detect(hopper)[0].extra["detector_box"][None]
    a = OnetRefiner(cfg).refine(hopper, face)
    b = OnetRefiner(cfg.replace(runtime="torch")).refine(hopper, face)
    assert np.allclose(a[0], b[0], atol=0.05) and np.allclose(a[1], b[1], atol=1e-4)
