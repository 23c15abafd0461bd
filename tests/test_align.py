"""The canonical template and warp reproduce dlib's own face chips."""

from __future__ import annotations

import numpy as np
import pytest

from facegate.align import norm_crop, similarity_transform, template


def test_similarity_transform_recovers_known_transform():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, (5, 2))
    ang, s, t = 0.3, 1.7, np.array([12.0, -4.0])
    rot = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    dst = src @ (s * rot).T + t
    m = similarity_transform(src, dst)
    assert np.allclose(m[:, :2], s * rot) and np.allclose(m[:, 2], t)


def test_template_is_dlibs_150px_chip_geometry():
    t = template(150, 0.25)
    assert t.points.shape == (5, 2)
    # Eyes level, nose centred and below them.
    assert abs(t.points[0, 1] - t.points[2, 1]) < 1
    assert abs(t.points[4, 0] - 75) < 2 and t.points[4, 1] > t.points[0, 1] + 30


@pytest.mark.parametrize("photo", ["hopper", "astronaut"])
def test_norm_crop_matches_dlib_get_face_chip(photo, request):
    dlib = pytest.importorskip("dlib")
    import face_recognition_models as frm

    img = request.getfixturevalue(photo)
    det = dlib.get_frontal_face_detector()
    sp = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
    rect = max(det(img, 1), key=lambda r: r.area())
    shape = sp(img, rect)
    lm = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)
    ours = norm_crop(img, lm, template(150, 0.25)).astype(np.int16)
    theirs = np.asarray(dlib.get_face_chip(img, shape, size=150, padding=0.25)).astype(np.int16)
    # Same geometry; only bilinear rounding (and dlib's pyramid on large faces) differ.
    assert np.abs(ours - theirs).mean() < 2.5
