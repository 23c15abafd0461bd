"""One face-choice rule for every front end (issue 23, item 3): on photos with two faces, the Python API, the CLI
(verify, identify, enroll), the REST API (verify, identify, the gate) and the CompreFace-compatible API use the
same face, by default the largest, and every answer says how many faces were found and which one was used.

The photos are made here from the photos installed packages ship (matplotlib's Grace Hopper, scikit-image's
astronaut Eileen Collins), pasted side by side at different sizes: Hopper's face the larger in one, Collins's in
the other, so "the largest" is a different person in each. Decisions are the calibrated defaults (FAR 1e-3,
FPIR 1e-2).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

import facegate
from facegate.config import Config

pytest.importorskip("fastapi")
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

API = "/api/v1"


def _save(img: np.ndarray, path: Path) -> Path:
    Image.fromarray(img).save(path, quality=92)
    return path


def _side_by_side(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    h = max(left.shape[0], right.shape[0])
    canvas = np.full((h, left.shape[1] + right.shape[1] + 40, 3), 90, np.uint8)
    canvas[: left.shape[0], : left.shape[1]] = left
    canvas[: right.shape[0], left.shape[1] + 40 :] = right
    return canvas


def _scaled(img: np.ndarray, f: float) -> np.ndarray:
    return cv2.resize(img, (round(img.shape[1] * f), round(img.shape[0] * f)), interpolation=cv2.INTER_AREA
                      if f < 1 else cv2.INTER_CUBIC)


@pytest.fixture(scope="module")
def scene(tmp_path_factory, hopper, astronaut):
    """Reference photos of each person and two group photos; which person's face is the largest in each."""
    d = tmp_path_factory.mktemp("face-choice")
    # Hopper's face is ~198 px wide in her photo, Collins's ~97 px in the astronaut photo
    photos = {
        "hopper": _save(hopper, d / "hopper.jpg"),
        "collins": _save(astronaut, d / "collins.jpg"),
        # Collins (97 px face) left, Hopper (198 px) right: Hopper's is the largest
        "hopper_largest": _save(_side_by_side(astronaut, hopper), d / "hopper_largest.jpg"),
        # Hopper at 0.6 (~119 px) left, Collins at 1.8 (~175 px) right: Collins's is the largest
        "collins_largest": _save(_side_by_side(_scaled(hopper, 0.6), _scaled(astronaut, 1.8)), d / "collins_largest.jpg"),
    }
    return d, photos


def _cli(capsys, home: Path, *argv: str) -> tuple[int, dict]:
    from facegate.cli import main

    code = main(["--home", str(home), *argv, "--json"])
    out = capsys.readouterr().out
    return code, json.loads(out)


def _box(d: dict) -> list[float]:
    return [round(float(v), 1) for v in d["box"]]


@pytest.mark.slow
@pytest.mark.parametrize("group,who,name", [("hopper_largest", "hopper", "Grace Hopper"),
                                            ("collins_largest", "collins", "Eileen Collins")])
def test_every_front_end_uses_the_same_face(scene, group, who, name, pipeline, tmp_path, capsys):
    d, photos = scene
    home = tmp_path / "home"
    config = Config(home=home)
    photo, ref = photos[group], photos[who]
    assert _cli(capsys, home, "enroll", "--name", "Grace Hopper", str(photos["hopper"]))[0] == 0
    assert _cli(capsys, home, "enroll", "--name", "Eileen Collins", str(photos["collins"]))[0] == 0

    # Python API: the largest face, and the verdict says which and of how many
    v = facegate.verify(photo, ref, config=config)
    assert v.same and v.faces[0].found == 2 and v.faces[0].pick == "largest" and v.faces[1].found == 1
    used = v.faces[0].to_dict()["face_used"]
    faces = pipeline.detect(photo)
    assert used["box"] == [round(float(x), 2) for x in max(faces, key=lambda f: f.width * f.height).box]
    box = _box(used)
    assert _box(pipeline.choose(photo).to_dict()["face_used"]) == box
    with pytest.raises(facegate.MultipleFacesError):
        facegate.verify(photo, ref, config=config, pick="single")

    # CLI verify and identify: the same face, said in the answer
    code, out = _cli(capsys, home, "verify", str(photo), str(ref))
    assert code == 0 and out["same"] and out["faces"][0]["faces_found"] == 2 and _box(out["faces"][0]["face_used"]) == box
    code, _ = _cli(capsys, home, "verify", str(photo), str(ref), "--pick", "single")
    assert code == 5
    code, out = _cli(capsys, home, "identify", str(photo))
    assert code == 0 and out["faces_found"] == 2 and _box(out["face_used"]) == box
    assert out["faces"][out["face_used"]["index"]]["identity"] == name

    # REST: verify, identify and the gate decide on the same face
    from facegate.service import ServiceSettings, create_app
    from facegate.service.auth import create_key

    data = photo.read_bytes()
    app = create_app(config, ServiceSettings(warmup=False), pipeline=pipeline)
    with TestClient(app) as c:
        db = app.state.svc.db
        h = {"X-API-Key": create_key(db, "admin")["key"]}
        # a collage of two printed photos is what liveness is there to refuse: this test is about which face
        assert c.put(f"{API}/gates/door/settings", headers=h, json={"liveness": "off"}).status_code == 200
        r = c.post(f"{API}/gates/door/check", headers=h, files={"image": ("cam.jpg", data, "image/jpeg")}).json()
        assert r["decision"] == "allow" and r["name"] == name and r["faces_found"] == 2 and _box(r["face_used"]) == box
        r = c.post(f"{API}/identify", headers=h, files={"image": ("cam.jpg", data, "image/jpeg")}).json()
        assert _box(r["face_used"]) == box and r["faces"][r["face_used"]["index"]]["identity"] == name
        r = c.post(f"{API}/verify", headers=h, files={"image1": ("a.jpg", data, "image/jpeg"),
                                                      "image2": ("b.jpg", ref.read_bytes(), "image/jpeg")}).json()
        assert r["same"] and r["faces"][0]["faces_found"] == 2 and _box(r["faces"][0]["face_used"]) == box
        r = c.post(f"{API}/gates/door/check", headers=h, params={"pick": "single"},
                   files={"image": ("cam.jpg", data, "image/jpeg")})
        assert r.status_code == 422 and r.json()["code"] == "multiple_faces"
        r = c.post(f"{API}/recognition/recognize", headers=h, files={"file": ("cam.jpg", data, "image/jpeg")}).json()
        assert r["facegate"]["faces_found"] == 2 and _box(r["facegate"]["face_used"]) == box
        assert r["result"][r["facegate"]["face_used"]["index"]]["identity"] == name

    # CLI enroll: the same face again; under another name it is refused as the person it already is
    code, out = _cli(capsys, home, "enroll", "--name", "Someone else", str(photo))
    assert code == 15 and out["rejected"][0]["code"] == "matches_other_person"
    assert out["rejected"][0]["metrics"]["name"] == name
    code, out = _cli(capsys, home, "enroll", "--name", name, str(photo))
    assert code == 0 and out["faces"][0]["faces_found"] == 2 and _box(out["faces"][0]["face_used"]) == box
    code, _ = _cli(capsys, home, "enroll", "--name", name, str(photo), "--pick", "single")
    assert code == 0  # the same bytes are already enrolled for them: skipped, not refused
