"""Liveness: cues on generated scenes, the head file, the detector's contract and limits.

No data set needed: scenes are built from Grace Hopper's photo (matplotlib) and
scikit-image's coffee photo. A "sheet" is her photo with its own background and a white
border, moved by a homography over a room that stays still (a printed photo held up to
the camera); a "head" is her face alone, moved in front of the same still room.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import replace

import cv2
import numpy as np
import pytest

from facegate.config import Config
from facegate.errors import InvalidImageError, ModelError, NoFaceError
from facegate.liveness import (
    FACE_JUMPED,
    MAX_BURST_FRAMES,
    PRESENTATION_ATTACK,
    BurstMismatchError,
    BurstTooLongError,
    CueLiveness,
    LinearHead,
    LivenessModel,
    PadOperatingPoint,
    face_jump,
    fit_head,
    load_liveness,
    load_model,
)
from facegate.liveness.cues import FaceFrame, Frame, colour_cues, edge_cues, pair_cues
from facegate.types import Face

# Grace Hopper's face in matplotlib's grace_hopper.jpg (512x600), as facegate's detector finds it.
HOPPER_BOX = np.array([162.5, 139.6, 361.1, 326.2])
HOPPER_POINTS = np.array([[221.9, 191.9], [308.2, 188.0], [268.4, 240.5], [232.9, 277.7], [304.4, 273.9]])


@pytest.fixture(scope="module")
def room() -> np.ndarray:
    import skimage.data

    return cv2.resize(skimage.data.coffee(), (640, 480), interpolation=cv2.INTER_AREA)


def _face(box: np.ndarray, points: np.ndarray) -> Face:
    return Face(box=np.asarray(box, np.float32), landmarks=np.asarray(points, np.float32), score=0.99, scheme="mtcnn5")


def _apply(h: np.ndarray, pts: np.ndarray) -> np.ndarray:
    q = np.c_[pts, np.ones(len(pts))] @ h.T
    return q[:, :2] / q[:, 2:3]


def _box_of(h: np.ndarray) -> np.ndarray:
    x1, y1, x2, y2 = HOPPER_BOX
    c = _apply(h, np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]]))
    return np.array([c[:, 0].min(), c[:, 1].min(), c[:, 0].max(), c[:, 1].max()])


def _placement(t: int, moving: bool = True) -> np.ndarray:
    """Frame t's map from Hopper's photo into a 640x480 frame: scale 0.55, drifting and
    turning a little, with some perspective (a sheet tilting)."""
    dx, dy, rot, tilt = (9.0 * t, 4.0 * t, 0.03 * t, 0.00004 * t) if moving else (0.0, 0.0, 0.0, 0.0)
    c, s = math.cos(rot), math.sin(rot)
    k = 0.55
    h = np.array([[k * c, -k * s, 180 + dx], [k * s, k * c, 60 + dy], [tilt, 0.0, 1.0]])
    return h


def sheet_frame(room: np.ndarray, hopper: np.ndarray, t: int, moving: bool = True) -> tuple[np.ndarray, Face]:
    """A print: the photo (with its own background) and a white border, warped as one body."""
    h = _placement(t, moving)
    paper = cv2.copyMakeBorder(hopper, 70, 70, 70, 70, cv2.BORDER_CONSTANT, value=(245, 245, 240))
    shift = np.array([[1, 0, -70], [0, 1, -70], [0, 0, 1]], dtype=np.float64)
    hp = h @ shift
    warped = cv2.warpPerspective(paper, hp, (640, 480))
    mask = cv2.warpPerspective(np.full(paper.shape[:2], 255, np.uint8), hp, (640, 480)) > 0
    frame = room.copy()
    frame[mask] = warped[mask]
    return frame, _face(_box_of(h), _apply(h, HOPPER_POINTS))


def head_frame(room: np.ndarray, hopper: np.ndarray, t: int) -> tuple[np.ndarray, Face]:
    """A head: the same face (an ellipse around it, no paper, no photo background) moving
    in front of the room, which stays still."""
    h = _placement(t)
    warped = cv2.warpPerspective(hopper, h, (640, 480))
    ell = np.zeros(hopper.shape[:2], np.uint8)
    cx, cy = (HOPPER_BOX[0] + HOPPER_BOX[2]) / 2, (HOPPER_BOX[1] + HOPPER_BOX[3]) / 2
    cv2.ellipse(ell, (int(cx), int(cy - 15)), (120, 150), 0, 0, 360, 255, -1)
    mask = cv2.warpPerspective(ell, h, (640, 480)) > 0
    frame = room.copy()
    frame[mask] = warped[mask]
    return frame, _face(_box_of(h), _apply(h, HOPPER_POINTS))


# -- cues --------------------------------------------------------------------------------------


def test_face_frame_units(hopper):
    f = FaceFrame.of(_face(HOPPER_BOX, HOPPER_POINTS))
    assert abs(f.roll) < 0.1  # eyes level
    u, v = f.uv(np.array([[f.cx, f.cy], [f.cx + f.size, f.cy]]))
    assert np.allclose(u, [0, 1], atol=0.01) and np.allclose(v, [0, 0], atol=0.1)


def test_sheet_moves_with_the_face_head_does_not(room, hopper):
    sheet = [pair_cues(Frame(*sheet_frame(room, hopper, t)), Frame(*sheet_frame(room, hopper, t + 1))) for t in range(3)]
    head = [pair_cues(Frame(*head_frame(room, hopper, t)), Frame(*head_frame(room, hopper, t + 1))) for t in range(3)]
    for s, h in zip(sheet, head):
        # around a sheet, what changes is explained by the face's own motion; around a head, by a still room
        assert s["follow_near"] > 0.5 > 0.2 > h["follow_near"], (s, h)
        assert s["follow_ring"] > h["follow_ring"] + 1.0, (s, h)
        assert s["follow_vote"] > h["follow_vote"] + 0.2, (s, h)


def test_no_motion_says_nothing(room, hopper):
    a = Frame(*sheet_frame(room, hopper, 0, moving=False))
    b = Frame(*sheet_frame(room, hopper, 1, moving=False))
    cues = pair_cues(a, b)
    assert abs(cues["follow_ring"]) < 0.05
    assert math.isnan(cues["follow_near"])  # no pixel where the hypotheses differ: no vote


def test_straight_border_beside_the_face(room, hopper):
    sheet = edge_cues(Frame(*sheet_frame(room, hopper, 0, moving=False)))
    head = edge_cues(Frame(*head_frame(room, hopper, 0)))
    # the paper's left and right borders run alongside the face; the head's outline is curved
    assert sheet["edge_left"] > head["edge_left"] and sheet["edge_right"] > head["edge_right"]
    assert sheet["edge_left"] > 0.8 and sheet["edge_right"] > 0.8


def test_colour_is_relative_to_the_frame(room, hopper):
    img, face = head_frame(room, hopper, 0)
    base = colour_cues(Frame(img, face))
    # the same scene with the whole frame's colours scaled (another camera's saturation): small change
    grey = img.mean(axis=2, keepdims=True)
    paler = np.clip(grey + 0.6 * (img - grey), 0, 255).astype(np.uint8)
    scaled = colour_cues(Frame(paler, face))
    assert abs(scaled["chroma_rel"] - base["chroma_rel"]) < 0.25
    # only the face washed out (a print's pale skin in a colourful room): clearly less red
    washed = img.copy()
    x1, y1, x2, y2 = face.box.astype(int)
    patch = washed[y1:y2, x1:x2].astype(np.float32)
    g = patch.mean(axis=2, keepdims=True)
    washed[y1:y2, x1:x2] = np.clip(g + 0.3 * (patch - g), 0, 255).astype(np.uint8)
    assert colour_cues(Frame(washed, face))["red_rel"] < base["red_rel"] - 0.02


def test_face_at_the_border_gives_nan_not_error(hopper):
    img = cv2.resize(hopper, (200, 240))
    face = _face([-50, -40, 150, 180], [[0, 30], [80, 30], [40, 80], [10, 120], [70, 120]])
    cues = edge_cues(Frame(img, face))
    assert all(math.isnan(v) or 0 <= v <= 1 for v in cues.values())


# -- head and model file -----------------------------------------------------------------------


def _toy_model(permissive: bool = False) -> LivenessModel:
    rng = np.random.default_rng(0)
    live = np.c_[rng.normal(0.12, 0.02, 60), rng.normal(0.2, 0.1, 60)]
    att = np.c_[rng.normal(0.0, 0.02, 60), rng.normal(0.6, 0.1, 60)]
    still = fit_head("still", ("red_rel",), live[:, :1], att[:, :1])
    burst = fit_head("burst", ("red_rel", "follow_near"), live, att)
    op = PadOperatingPoint(0.01, 0.02, "toy data")
    return LivenessModel(
        name="toy",
        version=1,
        source="tests",
        licence="test",
        permissive=permissive,
        provenance="generated",
        training_data="120 generated rows",
        heads={"still": replace(still, operating_point=op), "burst": replace(burst, operating_point=op)},
    )


def test_fit_head_learns_the_direction_and_threshold():
    m = _toy_model()
    still = m.heads["still"]
    assert still.weights[0] > 0  # redder is more live
    assert still.score({"red_rel": 0.12}) > still.threshold > still.score({"red_rel": 0.0})
    burst = m.heads["burst"]
    assert burst.weights[1] < 0  # surroundings following the face is a sheet
    assert 0.5 < still.threshold < 1.0  # the gap rule leans towards refusing
    assert burst.score({"red_rel": 0.12}) == burst.score({"red_rel": 0.12, "follow_near": math.nan})  # imputed


def test_model_save_load_sha256(tmp_path):
    model = _toy_model().save(tmp_path / "m.json")
    data = (tmp_path / "m.json").read_bytes()
    assert model.sha256 == hashlib.sha256(data).hexdigest()
    loaded = load_model(tmp_path / "m.json", expect_sha256=model.sha256)
    assert loaded.heads["burst"] == model.heads["burst"]
    assert loaded.size == 3 * 1 + 2 + 3 * 2 + 2
    # a changed byte is caught by the pinned sha256
    (tmp_path / "m.json").write_bytes(data.replace(b'"version": 1', b'"version": 2'))
    with pytest.raises(ModelError, match="sha256"):
        load_model(tmp_path / "m.json", expect_sha256=model.sha256)


def test_model_file_refusals(tmp_path):
    d = _toy_model().to_json()
    bad = dict(d, cues_version=0)
    (tmp_path / "old.json").write_text(json.dumps(bad))
    with pytest.raises(ModelError, match="cues version"):
        load_model(tmp_path / "old.json")
    head = dict(d["heads"]["still"], cues=["nonsense"])
    (tmp_path / "unknown.json").write_text(json.dumps(dict(d, heads={"still": head})))
    with pytest.raises(ModelError, match="unknown cues"):
        load_model(tmp_path / "unknown.json")
    big = dict(d["heads"]["still"], cues=["red_rel"] * 4000, mean=[0.0] * 4000, scale=[1.0] * 4000, weights=[0.0] * 4000)
    (tmp_path / "big.json").write_text(json.dumps(dict(d, heads={"still": big})))
    with pytest.raises(ModelError, match="limit"):
        load_model(tmp_path / "big.json")
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ModelError):
        load_model(tmp_path / "broken.json")
    with pytest.raises(ModelError):
        LinearHead("still", ("follow_near",), (0.0,), (1.0,), (1.0,), 0.0, 0.5)  # a still head cannot use pair cues


def test_shipped_model_provenance_and_licence_policy():
    det = load_liveness()
    m = det.model
    assert m.sha256 and not m.permissive and "research" in m.licence
    assert "nuaa_dev" in m.training_data and m.size <= 10_000
    for head in m.heads.values():
        op = head.operating_point
        assert op.apcer is not None and op.bpcer is not None and "across sessions" in op.measured_on
    with pytest.raises(ModelError, match="permissive"):
        load_liveness(config=Config(licence_policy="permissive"))


def test_site_model_loads_under_permissive_policy(tmp_path):
    model = _toy_model(permissive=True).save(tmp_path / "site.json")
    det = load_liveness(tmp_path / "site.json", Config(licence_policy="permissive"))
    assert det.model.sha256 == model.sha256
    with pytest.raises(ModelError, match="unknown liveness model"):
        load_liveness("no-such-model")


# -- the detector's contract -------------------------------------------------------------------


def test_check_still_and_burst_shapes(room, hopper):
    det = CueLiveness(_toy_model())
    img, face = head_frame(room, hopper, 0)
    v = det.check_still(img, face)
    assert v.mode == "still" and v.threshold == det.model.heads["still"].threshold
    assert (v.apcer, v.bpcer, v.measured_on) == (0.01, 0.02, "toy data")
    assert v.live == (v.score >= v.threshold) and (v.reason is None) == v.live
    assert set(v.cues) == {"red_rel"} and json.dumps(v.to_dict())
    frames = [sheet_frame(room, hopper, t) for t in range(3)]
    b = det.check_burst([f[0] for f in frames], [f[1] for f in frames])
    assert b.mode == "burst" and b.frames == 3 and b.frames_without_face == 0
    assert set(b.cues) == {"red_rel", "follow_near"} and b.cues["follow_near"] > 0.5
    assert not b.live and b.reason == PRESENTATION_ATTACK


def test_burst_limits_and_refusals(room, hopper):
    det = CueLiveness(_toy_model())
    frames = [head_frame(room, hopper, t) for t in range(3)]
    imgs, faces = [f[0] for f in frames], [f[1] for f in frames]
    with pytest.raises(BurstTooLongError):
        det.check_burst([imgs[0]] * (MAX_BURST_FRAMES + 1), [faces[0]] * (MAX_BURST_FRAMES + 1))
    with pytest.raises(BurstMismatchError):
        det.check_burst(imgs, faces[:2])
    with pytest.raises(NoFaceError):
        det.check_burst(imgs, [None, None, None])
    with pytest.raises(InvalidImageError):
        det.check_burst([imgs[0], np.zeros((10, 10), np.uint8)], faces[:2])
    # frames without a face are counted, not fatal
    v = det.check_burst(imgs, [faces[0], None, faces[2]])
    assert v.frames == 2 and v.frames_without_face == 1 and v.mode == "burst"
    one = det.check_burst(imgs, [None, faces[1], None])
    assert one.mode == "still" and one.frames_without_face == 2
    # a face that jumps across the frame is refused with its own reason
    far = replace(faces[1], box=faces[1].box + np.array([300, 0, 300, 0], np.float32))
    j = det.check_burst(imgs, [faces[0], far, faces[2]])
    assert not j.live and j.reason == FACE_JUMPED and math.isnan(j.score)
    assert face_jump(faces[0], far) and face_jump(faces[0], faces[1]) is None
    small = replace(faces[1], box=np.array([300, 200, 340, 240], np.float32))
    assert "size" in face_jump(faces[0], small)


def test_mixed_size_frames(room, hopper):
    det = CueLiveness(_toy_model())
    (a, fa), (b, fb) = sheet_frame(room, hopper, 0), sheet_frame(room, hopper, 1)
    big = cv2.resize(b, (1280, 960))
    fb2 = replace(fb, box=fb.box * 2, landmarks=fb.landmarks * 2)
    assert face_jump(fa, fb2, a.shape, big.shape) is None  # compared in relative coordinates
    v = det.check_burst([a, big], [fa, fb2])
    assert v.mode == "burst" and math.isfinite(v.score)
    assert v.cues["follow_near"] > 0.5  # still seen as a sheet after rescaling


def test_site_fit_from_folders(tmp_path, room, hopper, monkeypatch):
    """`facegate liveness fit --live DIR --attack DIR` on generated captures: the detector finds the faces,
    both heads are fitted and kept in <home>/liveness, the file loads under the permissive policy."""
    from PIL import Image

    from facegate.cli import main

    for kind, make in (("live", head_frame), ("attack", sheet_frame)):
        for person in range(2):
            d = tmp_path / kind / f"person{person}"
            d.mkdir(parents=True)
            for t in range(4):
                img, _ = make(room, hopper, t + 4 * person)
                Image.fromarray(img).save(d / f"frame_{t:03d}.jpg", quality=95)
    home = tmp_path / "home"
    monkeypatch.setenv("FACEGATE_HOME", str(home))
    assert main(["liveness", "fit", "--live", str(tmp_path / "live"), "--attack", str(tmp_path / "attack"),
                 "--name", "site", "--json"]) == 0
    det = load_liveness(home / "liveness" / "site.json", Config(licence_policy="permissive", home=home))
    m = det.model
    assert m.permissive and set(m.heads) == {"still", "burst"}
    assert "cross-validated by person" in m.heads["burst"].operating_point.measured_on
    assert m.heads["burst"].weights[1] < 0  # surroundings that follow the face mean a sheet, learnt from the captures
