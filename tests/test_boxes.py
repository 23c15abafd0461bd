"""facegate.detect.boxes: the box geometry every detector shares, on hand-made boxes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from facegate.detect.boxes import (
    BoxAdjust,
    affine_points,
    box_patch,
    iou_matrix,
    nms,
    regress,
    rotate_box,
    rotate_points,
    square,
    turn_matrix,
    weighted_nms,
)


def test_iou_of_known_overlaps():
    a = np.array([[0, 0, 10, 10]], np.float32)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [10, 10, 20, 20], [2, 2, 4, 4], [3, 3, 3, 8]], np.float32)
    np.testing.assert_allclose(iou_matrix(a, b)[0], [1.0, 50 / 150, 0.0, 4 / 100, 0.0])
    assert iou_matrix(np.zeros((0, 4)), b).shape == (0, 5)
    assert iou_matrix([1, 1, 3, 3], [1, 1, 3, 3])[0, 0] == 1.0  # a single box is one row
    degenerate = np.array([[5, 5, 5, 5]], np.float32)  # no area: overlaps nothing, no division by zero
    assert iou_matrix(degenerate, degenerate)[0, 0] == 0.0


def test_nms_union_and_min():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [2, 2, 6, 6]], float)
    scores = np.array([0.9, 0.8, 0.7, 0.95])
    # box 3 lies inside box 0: IoU 0.16 keeps both, intersection over the smaller box (1.0) does not
    assert list(nms(boxes, scores, 0.5)) == [3, 0, 2]
    assert list(nms(boxes, scores, 0.7, mode="min")) == [3, 2]
    assert len(nms(np.zeros((0, 4)), np.zeros(0), 0.5)) == 0
    assert nms(boxes, scores, 0.5).dtype == np.int64


def test_nms_is_greedy_and_breaks_ties_by_input_order():
    # a chain: 0 overlaps 1 (IoU 0.82), 1 overlaps 2, 0 does not overlap 2. Greedy from the best
    # keeps 0, drops 1, and then 2 survives because only kept boxes suppress.
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [9.5, 0, 19.5, 10]], float)
    assert list(nms(boxes, np.array([0.9, 0.8, 0.7]), 0.5)) == [0, 2]
    same = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]], float)
    assert list(nms(same, np.array([0.5, 0.5, 0.5]), 0.5)) == [0]  # equal scores: the first one
    assert list(nms(same, np.array([0.5, 0.5, 0.5]), 1.0)) == [0, 1, 2]  # suppression needs overlap > threshold


def test_nms_agrees_with_a_full_iou_matrix_sweep():
    """The one NMS gives what the IoU-matrix sweep BlazeFace used before gave, on random boxes."""
    rng = np.random.default_rng(0)
    for _ in range(20):
        xy = rng.uniform(0, 100, (40, 2))
        wh = rng.uniform(1, 40, (40, 2))
        boxes = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
        scores = rng.choice([0.2, 0.5, 0.7, 0.9], 40).astype(np.float32)  # many ties
        order = np.argsort(-scores, kind="stable")
        ious = iou_matrix(boxes, boxes)
        suppressed = np.zeros(len(order), bool)
        want = []
        for pos, i in enumerate(order):
            if not suppressed[pos]:
                want.append(int(i))
                suppressed |= ious[i, order] > 0.3
        assert nms(boxes, scores, 0.3).tolist() == want


def test_weighted_nms_averages_clusters():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], dtype=np.float32)
    scores = np.array([0.6, 0.9, 0.7], dtype=np.float32)
    assert nms(boxes, scores, 0.3).tolist() == [1, 2]
    extra = np.arange(6, dtype=np.float32).reshape(3, 2)
    wb, ws, we = weighted_nms(boxes, scores, 0.3, extra)
    assert ws.tolist() == pytest.approx([0.9, 0.7])
    np.testing.assert_allclose(wb[0], (boxes[0] * 0.6 + boxes[1] * 0.9) / 1.5, rtol=1e-6)
    np.testing.assert_allclose(wb[1], boxes[2])
    assert we is not None
    np.testing.assert_allclose(we[0], (extra[0] * 0.6 + extra[1] * 0.9) / 1.5, rtol=1e-6)
    eb, es, ee = weighted_nms(boxes[:0], scores[:0], 0.3)
    assert eb.shape == (0, 4) and es.shape == (0,) and ee is None


def test_square_regress_and_adjust():
    b = np.array([[10.0, 20.0, 30.0, 60.0]])
    np.testing.assert_allclose(square(b), [[0.0, 20.0, 40.0, 60.0]])  # 20x40 -> 40x40, same centre
    np.testing.assert_allclose(regress(b, np.array([[0.1, -0.1, 0.0, 0.5]])), [[12.0, 16.0, 30.0, 80.0]])
    assert b.tolist() == [[10.0, 20.0, 30.0, 60.0]]  # inputs untouched
    out = BoxAdjust(sx=2.0, sy=0.5, dx=0.1, dy=-0.25).apply(b)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[2.0, 20.0, 42.0, 40.0]])  # centre (22, 30), 40 x 20
    np.testing.assert_allclose(BoxAdjust().apply(b), b)


def test_box_patch_pads_outside_the_image():
    img = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    inside = box_patch(img, (1, 1, 3, 2))
    assert inside is not None and inside.dtype == np.float32
    np.testing.assert_array_equal(inside, img[1:2, 1:3])
    edge = box_patch(img, (-1.5, 2.2, 1, 5))  # outward to whole pixels: x -2..1, y 2..5
    assert edge is not None and edge.shape == (3, 3, 3)
    np.testing.assert_array_equal(edge[:2, 2], img[2:4, 0])
    assert not edge[:, :2].any() and not edge[2].any()
    assert box_patch(img, (10, 10, 20, 20)) is None


def test_quarter_turns_map_back_exactly():
    img = np.zeros((30, 50, 3), np.uint8)
    img[5, 7] = 255
    for k in range(4):
        turned = np.rot90(img, k)
        y, x = np.argwhere(turned[..., 0] == 255)[0]
        np.testing.assert_allclose(rotate_points(np.array([x + 0.5, y + 0.5]), k, img.shape[:2]), [7.5, 5.5])
        np.testing.assert_allclose(rotate_box(np.array([x, y, x + 1, y + 1]), k, img.shape[:2]), [7, 5, 8, 6])


def test_turn_matrix_centres_turns_and_inverts():
    m = turn_matrix((100.0, 50.0), 90.0, 0.5, 64)
    np.testing.assert_allclose(affine_points(m, np.array([100.0, 50.0])), [32.0, 32.0])  # centre -> crop centre
    # OpenCV's positive angle turns counter-clockwise on screen: a point right of the centre goes up
    np.testing.assert_allclose(affine_points(m, np.array([120.0, 50.0])), [32.0, 22.0], atol=1e-9)
    inv = cv2.invertAffineTransform(m)
    pts = np.array([[90.0, 40.0], [130.0, 70.0]])
    np.testing.assert_allclose(affine_points(inv, affine_points(m, pts)), pts, atol=1e-9)
