"""The CompreFace-compatible routes in-process over the model-free pipeline: shapes, subjects without
faces, renames, paging, roles, and every kind of bad input answered 4xx with {code, message}.
The real SDK against the real models: test_compreface_sdk.py."""

from __future__ import annotations

import base64
import math
import warnings

import numpy as np
import pytest

pytest.importorskip("fastapi")
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from facegate.config import Config
from facegate.decide import FarCurve
from facegate.decide.tables import load_operating_points
from facegate.service import ServiceSettings, create_app
from facegate.service.auth import create_key
from facegate.service.compat.similarity import SimilarityScale, far_of_similarity
from facegate.service.synthetic import SyntheticPipeline, encode, synthetic_face

R = "/api/v1/recognition"


def jpeg(person: int, shot: int = 0) -> bytes:
    return encode(synthetic_face(person, shot))


@pytest.fixture
def cf(tmp_path):
    cfg = Config(home=tmp_path, gallery=tmp_path / "g.sqlite")
    app = create_app(cfg, ServiceSettings(), pipeline=SyntheticPipeline(cfg))
    with TestClient(app) as c:
        db = app.state.svc.db
        keys = {r: {"x-api-key": create_key(db, r)["key"]} for r in ("admin", "gate", "viewer")}
        yield app, c, keys


def add(c, keys, subject: str, person: int, shot: int = 0):
    return c.post(f"{R}/faces", params={"subject": subject}, headers=keys["admin"],
                  files={"file": ("f.jpg", jpeg(person, shot), "image/jpeg")})


def test_examples_subjects_and_recognition_in_compreface_shape(cf):
    app, c, keys = cf
    r = add(c, keys, "Ada", 1)
    assert r.status_code == 201 and r.json()["subject"] == "Ada"
    ada = r.json()
    assert ada["image_id"] == f"{ada['person_id']}-{ada['face_id']}"
    assert add(c, keys, "Ada", 1, 1).status_code == 201
    assert add(c, keys, "Bob", 2).status_code == 201
    # base64 JSON works too ({"file": "<base64>"}, CompreFace's form)
    r = c.post(f"{R}/faces", params={"subject": "Cy"}, headers=keys["admin"],
               json={"file": base64.b64encode(jpeg(3)).decode()})
    assert r.status_code == 201, r.text
    assert c.get(f"{R}/subjects", headers=keys["viewer"]).json() == {"subjects": ["Ada", "Bob", "Cy"]}
    # the native API sees the same people
    assert {p["name"] for p in c.get("/api/v1/people", headers=keys["viewer"]).json()["people"]} == {"Ada", "Bob", "Cy"}

    out = c.post(f"{R}/recognize", params={"prediction_count": 3}, headers=keys["gate"],
                 files={"file": ("p.jpg", jpeg(1, 5), "image/jpeg")}).json()
    (face,) = out["result"]
    assert set(face["box"]) == {"probability", "x_min", "y_min", "x_max", "y_max"}
    assert all(isinstance(face["box"][k], int) for k in ("x_min", "y_min", "x_max", "y_max"))
    assert [s["subject"] for s in face["subjects"]][0] == "Ada" and len(face["subjects"]) == 3
    assert face["decision"] == "allow" and face["identity"] == "Ada" and face["subjects"][0]["same"] is True
    assert "landmarks" not in face and "execution_time" not in face and "plugins_versions" not in out
    assert out["facegate"]["similarity_scale"] == "cosine"  # the synthetic stack has one calibrated point
    assert out["facegate"]["decision"]["fpir"] == 0.01 and out["facegate"]["plugins_not_offered"] == []
    # a stranger: subjects still listed (the client may apply its own cut), facegate's decision is deny
    out = c.post(f"{R}/recognize", headers=keys["gate"], files={"file": ("p.jpg", jpeg(9), "image/jpeg")}).json()
    assert out["result"][0]["decision"] == "deny" and out["result"][0]["identity"] is None
    assert out["result"][0]["subjects"][0]["same"] is False

    # detection, limit and det_prob_threshold, plugins
    two = np.full((200, 500, 3), 128, np.uint8)
    two[:, 25:225], two[:, 275:475] = synthetic_face(1, 3), synthetic_face(2, 3)
    out = c.post("/api/v1/detection/detect", headers=keys["gate"], params={"face_plugins": "landmarks,mask,pose"},
                 files={"file": ("t.jpg", encode(two), "image/jpeg")}).json()
    assert len(out["result"]) == 2 and all(len(f["landmarks"]) == 5 for f in out["result"])
    assert [p["plugin"] for p in out["facegate"]["plugins_not_offered"]] == ["mask", "pose"]
    out = c.post(f"{R}/recognize", headers=keys["gate"], params={"limit": 1},
                 files={"file": ("t.jpg", encode(two), "image/jpeg")}).json()
    assert len(out["result"]) == 1
    r = c.post(f"{R}/recognize", headers=keys["gate"], params={"det_prob_threshold": 1.0},
               files={"file": ("t.jpg", encode(two), "image/jpeg")})
    assert r.status_code == 400 and r.json()["code"] == 28  # nothing qualifies: CompreFace's "no face"

    # verify against one stored face
    out = c.post(f"{R}/faces/{ada['image_id']}/verify", headers=keys["gate"],
                 files={"file": ("p.jpg", jpeg(1, 7), "image/jpeg")}).json()
    assert out["result"][0]["same"] is True and out["result"][0]["threshold"] == 0.9
    assert out["facegate"]["verify"] == {"threshold": 0.9, "far": 0.001, "table": "synthetic table (synthetic faces)"}
    out = c.post(f"{R}/faces/{ada['image_id']}/verify", headers=keys["gate"],
                 files={"file": ("p.jpg", jpeg(2, 7), "image/jpeg")}).json()
    assert out["result"][0]["same"] is False
    # the stored example (a crop)
    r = c.get(f"{R}/faces/{ada['image_id']}/img", headers=keys["viewer"])
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg" and r.content[:2] == b"\xff\xd8"


def test_subjects_without_faces_renames_deletes_and_paging(cf):
    app, c, keys = cf
    h = keys["admin"]
    assert c.post(f"{R}/subjects", headers=h, json={"subject": "Dee"}).json() == {"subject": "Dee"}
    assert c.post(f"{R}/subjects", headers=h, json={"subject": "Dee"}).status_code == 409
    assert c.get(f"{R}/subjects", headers=h).json()["subjects"] == ["Dee"]
    assert c.put(f"{R}/subjects/Dee", headers=h, json={"subject": "Dora"}).json() == {"updated": True}
    assert add(c, keys, "Dora", 4).status_code == 201  # the first face makes the pending subject a person
    assert app.state.svc.db.query("SELECT COUNT(*) FROM compat_subjects")[0][0] == 0
    for i, (name, n) in enumerate([("Eve", 2), ("Fay", 1)]):
        for shot in range(n):
            assert add(c, keys, name, 10 + i, shot).status_code == 201
    page = c.get(f"{R}/faces", headers=h, params={"size": 2, "page": 1}).json()
    assert page["total_elements"] == 4 and page["total_pages"] == 2 and page["page_size"] == 2
    everything = [f for p in range(2) for f in c.get(f"{R}/faces", headers=h, params={"size": 2, "page": p}).json()["faces"]]
    assert [f["subject"] for f in everything] == ["Dora", "Eve", "Eve", "Fay"] and len({f["image_id"] for f in everything}) == 4
    assert c.get(f"{R}/faces", headers=h, params={"subject": "Eve"}).json()["total_elements"] == 2
    assert c.get(f"{R}/faces", headers=h, params={"page": 9}).json()["faces"] == []
    # renaming onto another subject is refused (facegate does not merge people)
    r = c.put(f"{R}/subjects/Eve", headers=h, json={"subject": "Fay"})
    assert r.status_code == 409 and "merge" in r.json()["message"]
    assert c.put(f"{R}/subjects/Eve", headers=h, json={"subject": "Evelyn"}).json() == {"updated": True}
    assert c.put(f"{R}/subjects/Nobody", headers=h, json={"subject": "X"}).status_code == 404
    # a digit string is a name, never an id
    assert c.delete(f"{R}/subjects/1", headers=h).status_code == 404
    # delete one example; the last one takes the person
    fay = [f for f in everything if f["subject"] == "Fay"][0]["image_id"]
    assert c.delete(f"{R}/faces/{fay}", headers=h).json() == {"image_id": fay, "subject": "Fay"}
    assert "Fay" not in c.get(f"{R}/subjects", headers=h).json()["subjects"]
    assert c.delete(f"{R}/faces/{fay}", headers=h).status_code == 404
    assert c.delete(f"{R}/faces", headers=h, params={"subject": "Evelyn"}).json() == {"deleted": 2}
    assert c.delete(f"{R}/faces", headers=h, params={"subject": "Evelyn"}).json() == {"deleted": 0}
    c.post(f"{R}/subjects", headers=h, json={"subject": "Pending"})
    assert c.delete(f"{R}/subjects", headers=h).json() == {"deleted": 2}  # Dora and the pending one
    assert c.get(f"{R}/subjects", headers=h).json() == {"subjects": []}
    audit = {e["action"] for e in app.state.svc.db.events(kind="audit")}
    assert {"enrol", "rename_person", "delete_face", "delete_person", "subject_add", "subject_rename"} <= audit


def test_roles_apply_through_x_api_key(cf):
    app, c, keys = cf
    assert add(c, keys, "Ada", 1).status_code == 201
    img = {"file": ("p.jpg", jpeg(1, 2), "image/jpeg")}
    assert c.post(f"{R}/recognize", headers=keys["viewer"], files=img).status_code == 403
    assert c.post(f"{R}/faces", params={"subject": "X"}, headers=keys["gate"], files=img).json()["code"] == "forbidden"
    assert c.get(f"{R}/subjects", headers=keys["gate"]).status_code == 403
    assert c.get(f"{R}/subjects").status_code == 401
    assert c.get(f"{R}/subjects", headers={"x-api-key": "fg_0123456789_" + "x" * 43}).status_code == 401


@pytest.mark.parametrize("method, path, kwargs, status, code", [
    ("POST", "/recognize", {}, 415, "unsupported_media_type"),
    ("POST", "/recognize", {"files": {"other": ("f.jpg", b"x", "image/jpeg")}}, 422, "validation"),
    ("POST", "/recognize", {"data": {"file": "text"}, "files": {"x": ("x.txt", b"x", "text/plain")}}, 400, "invalid_field"),
    ("POST", "/recognize", {"json": {"file": "@@@"}}, 400, "invalid_base64"),
    ("POST", "/recognize", {"json": {}}, 422, "validation"),
    ("POST", "/recognize", {"files": {"file": ("f.jpg", b"not an image", "image/jpeg")}}, 400, "invalid_image"),
    ("POST", "/recognize?det_prob_threshold=2", {"files": {"file": ("f.jpg", b"x", "image/jpeg")}}, 422, "validation"),
    ("POST", "/recognize?prediction_count=0", {"files": {"file": ("f.jpg", b"x", "image/jpeg")}}, 422, "validation"),
    ("POST", "/recognize?limit=-1", {"files": {"file": ("f.jpg", b"x", "image/jpeg")}}, 422, "validation"),
    ("POST", "/recognize?face_plugins=" + ",".join(["age"] * 11), {"files": {"file": ("f.jpg", b"x", "image/jpeg")}},
     422, "validation"),
    ("POST", "/faces", {"files": {"file": ("f.jpg", b"x", "image/jpeg")}}, 422, "validation"),
    ("POST", "/faces?subject=%20", {"files": {"file": ("f.jpg", b"x", "image/jpeg")}}, 422, "validation"),
    ("POST", "/faces?subject=a%07b", {"files": {"file": ("f.jpg", b"x", "image/jpeg")}}, 422, "validation"),
    ("POST", "/faces?subject=" + "a" * 201, {"files": {"file": ("f.jpg", b"x", "image/jpeg")}}, 422, "validation"),
    ("DELETE", "/faces", {}, 422, "validation"),
    ("DELETE", "/faces/not-an-id", {}, 404, "not_found"),
    ("DELETE", "/faces/99999999999999999999-1", {}, 404, "not_found"),
    ("POST", "/faces/1-1/verify", {"files": {"file": ("f.jpg", b"x", "image/jpeg")}}, 404, "not_found"),
    ("GET", "/faces/1-1/img", {}, 404, "not_found"),
    ("GET", "/faces?size=0", {}, 422, "validation"),
    ("POST", "/subjects", {"json": {"subject": 5}}, 422, "validation"),
    ("POST", "/subjects", {"json": []}, 400, "invalid_json"),
    ("POST", "/subjects", {"content": b"{", "headers": {"content-type": "application/json"}}, 400, "invalid_json"),
    ("PUT", "/subjects/x", {"json": {}}, 422, "validation"),
])
def test_bad_input_is_a_4xx_with_code_and_message(cf, method, path, kwargs, status, code):
    app, c, keys = cf
    headers = {**keys["admin"], **kwargs.pop("headers", {})}
    r = c.request(method, R + path, headers=headers, **kwargs)
    assert r.status_code == status, (path, r.status_code, r.text)
    body = r.json()
    assert body["code"] == code and isinstance(body["message"], str) and body["message"]


def test_no_face_is_compreface_code_28(cf):
    app, c, keys = cf
    blank = encode(np.full((200, 200, 3), 128, np.uint8))
    for path in ("/api/v1/recognition/recognize", "/api/v1/detection/detect"):
        r = c.post(path, headers=keys["gate"], files={"file": ("b.jpg", blank, "image/jpeg")})
        assert r.status_code == 400 and r.json()["code"] == 28 and r.json()["message"] == "No face is found in the given image"
    r = c.post(f"{R}/faces", params={"subject": "X"}, headers=keys["admin"], files={"file": ("b.jpg", blank, "image/jpeg")})
    assert r.status_code == 400 and r.json()["code"] == 28


# -- what similarity means -------------------------------------------------------------------------------
def test_similarity_is_a_calibrated_far_scale():
    cfg = Config()
    points = load_operating_points(cfg)
    scale = SimilarityScale.of(points)
    assert scale.name == "log10_far"
    by_far = {round(-math.log10(p.far), 2): p.threshold for p in points}
    for decades in (1, 3, 4, 5, 6):  # at the calibrated thresholds: exactly -log10(FAR)/10
        assert scale.similarity(by_far[decades]) == pytest.approx(decades / 10, abs=1e-4)
    assert far_of_similarity(0.4) == pytest.approx(1e-4) and far_of_similarity(0.6) == pytest.approx(1e-6)
    scores = np.linspace(-1, 1, 81)
    sims = [scale.similarity(s) for s in scores]
    assert all(b >= a for a, b in zip(sims, sims[1:])) and sims[0] == 0.0 and 0.6 < sims[-1] <= 1.0
    assert 0.6 < scale.similarity(0.8) < 1.0  # beyond the table: extrapolated, still ranked
    # a template's margin is removed before reading the curve: at its own bar it reads as the bar's FAR
    assert scale.similarity(by_far[3] + 0.05, margin=0.05) == pytest.approx(0.3, abs=1e-4)
    # one calibrated point: no curve to read, the cosine is reported and said to be
    one = SimilarityScale.of(FarCurve.from_points(points[:1]))
    assert one.name == "cosine" and one.similarity(0.42) == 0.42 and one.similarity(float("nan")) == 0.0


def test_examples_follow_facegate_enrolment_integrity(cf):
    """POST /recognition/faces?subject= goes through the same gallery rules as facegate's own enrolment: an
    example that is another subject is refused (409, CompreFace's error shape with facegate's reason and who it
    matched) unless force=true, which records it as forced; the same photo again for a subject is that example."""
    app, c, keys = cf
    ada = add(c, keys, "Ada", 1).json()
    r = add(c, keys, "Bob", 1, 2)  # another shot of Ada as Bob
    assert r.status_code == 409 and r.json()["code"] == "enrolment_conflict", r.text
    assert "facegate refused this example" in r.json()["message"] and "Ada" in r.json()["message"]
    assert r.json()["details"]["rejected"][0]["metrics"]["name"] == "Ada"
    assert c.get(f"{R}/subjects", headers=keys["admin"]).json()["subjects"] == ["Ada"]
    r = c.post(f"{R}/faces", params={"subject": "Bob", "force": "true"}, headers=keys["admin"],
               files={"file": ("f.jpg", jpeg(1, 2), "image/jpeg")})
    assert r.status_code == 201, r.text
    faces = c.get(f"/api/v1/people/{r.json()['person_id']}", headers=keys["admin"]).json()["faces"]
    assert faces[0]["forced"][0]["code"] == "matches_other_person"
    again = add(c, keys, "Ada", 1)  # the same bytes: the example Ada already has
    assert again.status_code == 201 and again.json()["image_id"] == ada["image_id"]
