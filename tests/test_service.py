"""The REST service in-process (FastAPI TestClient) over a model-free pipeline.

:class:`~facegate.service.synthetic.SyntheticPipeline` replaces only the two networks
(detection, embedding) with deterministic rules on :func:`synthetic_face` images, so these
tests exercise the real decoding, quality gate, gallery, index, auth, audit and erasure in
seconds. Real photos through the real models: test_service_real.py; real sockets and
concurrency: test_service_live.py; the browser: test_browser.py.
"""

from __future__ import annotations

import base64
import json
import logging
import sqlite3
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("multipart")  # python-multipart
pytest.importorskip("prometheus_client")

with warnings.catch_warnings():  # starlette >= 1.x nudges towards httpx2; httpx still works
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from facegate.config import Config
from facegate.service import ServiceSettings, create_app
from facegate.service.auth import PERMISSIONS, ROLE_PERMISSIONS, create_key
from facegate.service.synthetic import SyntheticPipeline, encode, synthetic_face

API = "/api/v1"
CONTRACT_KEYS = {"gate", "decision", "person_id", "name", "score", "threshold", "far", "fpir", "tpir", "rule", "warnings",
                 "event_id", "faces", "reason", "message", "liveness", "frames", "frames_without_face", "table",
                 "faces_found", "face_used", "pick"}


def jpeg(person: int, shot: int = 0, size: int = 200) -> bytes:
    return encode(synthetic_face(person, shot, size=size))


def blank(size: int = 200) -> bytes:
    return encode(np.full((size, size, 3), 128, np.uint8))


def two_faces() -> bytes:
    """Persons 7 and 8 side by side (the synthetic detector finds two faces in a 2.5:1 image)."""
    canvas = np.full((200, 500, 3), 128, np.uint8)
    canvas[:, 25:225] = synthetic_face(7, 0)
    canvas[:, 275:475] = synthetic_face(8, 0)
    return encode(canvas)


class Svc:
    """One app over a temp gallery, a TestClient and a key per role."""

    def __init__(self, root: Path, **settings: Any) -> None:
        self.root = root
        self.config = Config(home=root, gallery=root / "g.sqlite")
        self.app = create_app(self.config, ServiceSettings(**settings), pipeline=SyntheticPipeline(self.config))
        self.client = TestClient(self.app)
        self.client.__enter__()
        db = self.app.state.svc.db
        self.keys = {role: create_key(db, role, f"test {role}")["key"] for role in ("admin", "gate", "viewer")}

    def h(self, role: str) -> dict[str, str]:
        return {"X-API-Key": self.keys[role]}

    def enrol(self, name: str, *photos: bytes, role: str = "admin") -> Any:
        files = [("images", (f"p{i}.jpg", p, "image/jpeg")) for i, p in enumerate(photos)]
        return self.client.post(f"{API}/people", headers=self.h(role), data={"name": name}, files=files)

    def check(self, photo: bytes, gate: str = "g1", role: str = "gate") -> Any:
        return self.client.post(f"{API}/gates/{gate}/check", headers=self.h(role),
                                files={"image": ("f.jpg", photo, "image/jpeg")})

    def close(self) -> None:
        self.client.__exit__(None, None, None)

    @property
    def engine(self) -> Any:
        return self.app.state.svc.engine


@pytest.fixture
def svc(tmp_path):
    s = Svc(tmp_path)
    yield s
    s.close()


# -- health, schema, page ---------------------------------------------------------------------
def test_health_ready_schema_and_page(svc):
    c = svc.client
    assert c.get("/healthz").json() == {"status": "ok"}
    r = c.get("/readyz")
    assert r.status_code == 200 and r.json() == {"ready": True, "reasons": []}
    schema = c.get("/openapi.json").json()
    paths = schema["paths"]
    assert f"{API}/gates/{{gate}}/check" in paths and f"{API}/events" in paths and "/metrics" in paths
    body = paths[f"{API}/gates/{{gate}}/check"]["post"]["requestBody"]["content"]
    assert set(body) == {"multipart/form-data", "application/json"}
    assert schema["components"]["securitySchemes"]["APIKeyHeader"]["name"] == "X-API-Key"
    page = c.get("/ui/")
    assert page.status_code == 200 and "facegate" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert c.get("/", follow_redirects=False).headers["location"] == "/ui/"
    assert c.get(f"{API}/roles").json()["roles"]["gate"] == ["faces:analyse", "gate:check"]


def test_readiness_reports_a_missing_calibration(tmp_path):
    cfg = Config(home=tmp_path, gallery=tmp_path / "g.sqlite")
    pipe = SyntheticPipeline(cfg)
    pipe.__dict__["operating_points"] = []  # a stack without calibration: neither 1:1 nor 1:N can decide
    app = create_app(cfg, ServiceSettings(), pipeline=pipe)
    with TestClient(app) as c:
        key = create_key(app.state.svc.db, "gate")["key"]
        r = c.get("/readyz")
        assert r.status_code == 503 and not r.json()["ready"]
        assert any("calibrated" in x for x in r.json()["reasons"]), r.json()["reasons"]
        r = c.post(f"{API}/gates/g/check", headers={"X-API-Key": key}, files={"image": ("a.jpg", jpeg(1), "image/jpeg")})
        assert r.status_code == 503 and r.json()["code"] == "not_configured"


# -- the gate contract ----------------------------------------------------------------------------
def test_gate_check_contract_multipart_and_base64(svc):
    pid = svc.enrol("Ada", jpeg(1, 0), jpeg(1, 1)).json()["person"]["id"]
    r = svc.check(jpeg(1, 5), gate="north-1")
    assert r.status_code == 200
    out = r.json()
    assert set(out) == CONTRACT_KEYS
    assert out["gate"] == "north-1" and out["decision"] == "allow" and out["person_id"] == pid and out["name"] == "Ada"
    # one identity at FPIR 1e-2: a per-comparison FAR of 1e-2, above the synthetic curve's one point (1e-3,
    # 0.9), whose threshold is kept (stricter than needed, never looser)
    assert out["score"] > out["threshold"] == 0.9 and out["fpir"] == 1e-2 and out["far"] == 1e-2 and out["faces"] == 1
    assert out["rule"] == {"allowed": True, "reason": "no_list", "rule": None}
    assert out["faces_found"] == 1 and out["face_used"]["index"] == 0 and out["pick"] == "largest"
    assert isinstance(out["event_id"], int)

    b64 = base64.b64encode(jpeg(1, 6)).decode()
    for body in ({"image_base64": b64}, {"image_base64": "data:image/jpeg;base64," + b64}):
        r = svc.client.post(f"{API}/gates/north-1/check", headers=svc.h("gate"), json=body)
        assert r.status_code == 200 and r.json()["decision"] == "allow"

    stranger = svc.check(jpeg(2, 0)).json()
    assert set(stranger) == CONTRACT_KEYS
    assert stranger["decision"] == "deny" and stranger["person_id"] is None and stranger["name"] is None
    assert stranger["score"] is not None and stranger["score"] < 0.9

    noface = svc.check(blank()).json()
    assert noface["decision"] == "deny" and noface["faces"] == 0 and noface["score"] is None and noface["person_id"] is None
    ids = [stranger["event_id"], noface["event_id"]]
    assert len(set(ids)) == 2


def test_gate_check_empty_gallery_and_several_faces(svc):
    r = svc.check(jpeg(1)).json()
    assert r["decision"] == "deny" and r["score"] is None and r["faces"] == 1
    svc.enrol("Eight", jpeg(8, 1))
    r = svc.check(two_faces()).json()
    assert r["faces"] == 2  # the largest face decides; both are the same size here, one of them is Eight


# -- analysis endpoints ---------------------------------------------------------------------------
def test_identify_detect_verify(svc):
    svc.enrol("Seven", jpeg(7, 1))
    r = svc.client.post(f"{API}/identify?k=2", headers=svc.h("gate"), files={"image": ("x.jpg", two_faces(), "image/jpeg")})
    assert r.status_code == 200
    faces = r.json()["faces"]
    assert len(faces) == 2
    assert sorted(f["identity"] for f in faces) == ["Seven", "unknown"]
    assert {f["decision"] for f in faces} == {"allow", "deny"}
    assert all(len(f["box"]) == 4 and len(f["landmarks"]) == 5 for f in faces)
    assert r.json()["faces_found"] == 2 and r.json()["face_used"]["box"] == faces[r.json()["face_used"]["index"]]["box"]
    # no face: the same answer as verify's and the CLI's (exit 4)
    r = svc.client.post(f"{API}/identify", headers=svc.h("gate"), files={"image": ("x.jpg", blank(), "image/jpeg")})
    assert r.status_code == 422 and r.json()["code"] == "no_face"

    r = svc.client.post(f"{API}/detect", headers=svc.h("gate"), files={"image": ("x.jpg", jpeg(3), "image/jpeg")})
    assert r.status_code == 200 and r.json()["width"] == 200 and len(r.json()["faces"]) == 1

    same = svc.client.post(f"{API}/verify", headers=svc.h("gate"),
                           files={"image1": ("a.jpg", jpeg(4, 0), "image/jpeg"), "image2": ("b.jpg", jpeg(4, 1), "image/jpeg")})
    assert same.status_code == 200 and same.json()["same"] is True and same.json()["far"] == 1e-3
    diff = svc.client.post(f"{API}/verify", headers=svc.h("gate"), json={
        "image1_base64": base64.b64encode(jpeg(4)).decode(), "image2_base64": base64.b64encode(jpeg(5)).decode()})
    assert diff.status_code == 200 and diff.json()["same"] is False
    noface = svc.client.post(f"{API}/verify", headers=svc.h("gate"),
                             files={"image1": ("a.jpg", blank(), "image/jpeg"), "image2": ("b.jpg", jpeg(4), "image/jpeg")})
    assert noface.status_code == 422 and noface.json()["code"] == "no_face"


# -- people CRUD ------------------------------------------------------------------------------------
def test_people_crud(svc):
    c, h = svc.client, svc.h("admin")
    r = svc.enrol("Ada", jpeg(1, 0))
    assert r.status_code == 201 and r.json()["created"] is True
    pid = r.json()["person"]["id"]
    r = svc.enrol("Ada", jpeg(1, 1))  # same name: photos added to the same person
    assert r.status_code == 200 and r.json()["created"] is False and r.json()["person"]["faces"] == 2
    assert svc.enrol("Bob", jpeg(2)).status_code == 201
    b64 = base64.b64encode(jpeg(3)).decode()
    r = c.post(f"{API}/people", headers=h, json={"name": "Cy", "images_base64": [b64]})
    assert r.status_code == 201

    listed = c.get(f"{API}/people", headers=h).json()
    assert listed["total"] == 3 and [p["name"] for p in listed["people"]] == ["Ada", "Bob", "Cy"]
    page = c.get(f"{API}/people?limit=1&offset=1", headers=h).json()
    assert [p["name"] for p in page["people"]] == ["Bob"]
    assert [p["name"] for p in c.get(f"{API}/people?q=ad", headers=h).json()["people"]] == ["Ada"]

    detail = c.get(f"{API}/people/{pid}", headers=h).json()
    assert detail["person"]["name"] == "Ada" and len(detail["faces"]) == 2
    fid = detail["faces"][0]["id"]
    thumb = c.get(f"{API}/people/{pid}/faces/{fid}/thumbnail", headers=h)
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg" and thumb.content[:2] == b"\xff\xd8"

    r = c.patch(f"{API}/people/{pid}", headers=h, json={"name": "Ada L."})
    assert r.status_code == 200 and r.json()["name"] == "Ada L."
    r = c.patch(f"{API}/people/{pid}", headers=h, json={"name": "Bob"})
    assert r.status_code == 409 and r.json()["code"] == "name_taken"

    r = c.post(f"{API}/people/{pid}/faces", headers=h, files=[("images", ("n.jpg", jpeg(1, 3), "image/jpeg"))])
    assert r.status_code == 200 and r.json()["person"]["faces"] == 3

    r = c.delete(f"{API}/people/{pid}/faces/{fid}", headers=h)
    assert r.status_code == 200 and r.json()["person_deleted"] is False
    assert c.get(f"{API}/people/{pid}", headers=h).json()["person"]["faces"] == 2
    assert c.delete(f"{API}/people/{pid}/faces/{fid}", headers=h).status_code == 404

    r = c.delete(f"{API}/people/{pid}", headers=h)
    assert r.status_code == 200 and r.json()["faces_deleted"] == 2
    assert c.get(f"{API}/people/{pid}", headers=h).status_code == 404
    assert c.delete(f"{API}/people/{pid}", headers=h).json()["code"] == "not_found"
    stats = c.get(f"{API}/gallery", headers=h).json()
    assert stats["people"] == 2 and stats["threshold"] == 0.9 and stats["model"] == "synthetic-grid@0"

    # the admin actions are in the audit trail
    actions = [e["action"] for e in c.get(f"{API}/events?kind=audit&limit=100", headers=h).json()["events"]]
    assert {"enrol", "rename_person", "delete_face", "delete_person"} <= set(actions)


def test_enrolment_quality_reasons(svc):
    files = [
        ("images", ("good.jpg", jpeg(1), "image/jpeg")),
        ("images", ("tiny.jpg", jpeg(1, 1, size=64), "image/jpeg")),
        ("images", ("empty-wall.jpg", blank(), "image/jpeg")),
        ("images", ("group.jpg", two_faces(), "image/jpeg")),
        ("images", ("broken.jpg", jpeg(1)[:300], "image/jpeg")),
    ]
    r = svc.client.post(f"{API}/people", headers=svc.h("admin"), data={"name": "Ada"}, files=files,
                        params={"pick": "single"})
    assert r.status_code == 201
    out = r.json()
    assert len(out["face_ids"]) == 1
    by_file = {x["filename"]: x for x in out["rejected"]}
    assert by_file["tiny.jpg"]["code"] == "too_small" and "too small" in by_file["tiny.jpg"]["reason"]
    assert by_file["tiny.jpg"]["reason"].startswith("tiny.jpg: ")
    assert by_file["empty-wall.jpg"]["code"] == "no_face"
    assert by_file["group.jpg"]["code"] == "multiple_faces"
    assert by_file["broken.jpg"]["code"] == "invalid_image"

    # every photo refused: 422 with the reasons, nothing stored
    r = svc.client.post(f"{API}/people", headers=svc.h("admin"), data={"name": "Nobody"},
                        files=[("images", ("tiny.jpg", jpeg(2, size=64), "image/jpeg"))])
    assert r.status_code == 422 and r.json()["code"] == "rejected"
    assert r.json()["details"]["rejected"][0]["filename"] == "tiny.jpg"
    assert svc.client.get(f"{API}/people?q=Nobody", headers=svc.h("admin")).json()["total"] == 0
    # every photo refused for one reason that is an error of its own elsewhere: that error's code, as on the CLI
    r = svc.client.post(f"{API}/people", headers=svc.h("admin"), data={"name": "Nobody"}, params={"pick": "single"},
                        files=[("images", ("group.jpg", two_faces(), "image/jpeg"))])
    assert r.status_code == 422 and r.json()["code"] == "multiple_faces"
    r = svc.enrol("Nobody", blank())
    assert r.status_code == 422 and r.json()["code"] == "no_face"

    # by default the largest face is enrolled, and the answer says which of how many
    r = svc.client.post(f"{API}/people", headers=svc.h("admin"), data={"name": "Grace"},
                        files=[("images", ("group.jpg", two_faces(), "image/jpeg"))])
    assert r.status_code == 201, r.text
    (face,) = r.json()["faces"]
    assert face["filename"] == "group.jpg" and face["faces_found"] == 2 and face["pick"] == "largest"
    assert face["face_used"]["index"] in (0, 1) and len(face["face_used"]["box"]) == 4


# -- enrolment integrity --------------------------------------------------------------------------------
def test_enrolment_integrity_refuses_with_who_it_matched_and_force_records_it(svc):
    """The same photo under a second name, and another person's photo into an existing name, are refused (409)
    with who they matched; force=true stores them, recorded as forced in the answer, the person's faces and
    the audit event; the same photo again for the same person is skipped; the gallery check finds the result."""
    c, h = svc.client, svc.h("admin")
    ada = svc.enrol("Ada", jpeg(1, 0)).json()["person"]["id"]
    bob = svc.enrol("Bob", jpeg(2, 0)).json()["person"]["id"]

    # the same bytes under another name
    r = svc.enrol("Ada Twin", jpeg(1, 0))
    assert r.status_code == 409 and r.json()["code"] == "enrolment_conflict", r.text
    assert "force=true" in r.json()["message"] and "Ada" in r.json()["message"]
    codes = {x["code"]: x for x in r.json()["details"]["rejected"]}
    assert codes["duplicate_photo"]["metrics"]["person_id"] == ada
    # another shot of Ada (other bytes) under a new name: the gallery identifies it as Ada
    r = svc.enrol("Ada Twin", jpeg(1, 3))
    assert r.status_code == 409 and r.json()["details"]["rejected"][0]["code"] == "matches_other_person"
    assert r.json()["details"]["rejected"][0]["metrics"]["name"] == "Ada"
    # a stranger's photo added to Ada: does not verify against her photos
    r = c.post(f"{API}/people/{ada}/faces", headers=h, files=[("images", ("x.jpg", jpeg(5, 0), "image/jpeg"))])
    assert r.status_code == 409 and r.json()["details"]["rejected"][0]["code"] == "not_same_person"
    # Bob's photo added to Ada: both rules say no
    r = c.post(f"{API}/people/{ada}/faces", headers=h, files=[("images", ("b.jpg", jpeg(2, 1), "image/jpeg"))])
    assert {x["code"] for x in r.json()["details"]["rejected"]} == {"matches_other_person", "not_same_person"}
    assert svc.client.get(f"{API}/people?q=Twin", headers=h).json()["total"] == 0  # nothing stored
    # the same bytes for the same person: skipped and said, not stored twice
    r = c.post(f"{API}/people/{ada}/faces", headers=h, files=[("images", ("again.jpg", jpeg(1, 0), "image/jpeg"))])
    assert r.status_code == 200 and r.json()["face_ids"] == [] and r.json()["skipped"][0]["code"] == "already_enrolled"
    assert r.json()["skipped"][0]["filename"] == "again.jpg"

    # forced: stored, and recorded as forced everywhere
    r = c.post(f"{API}/people", headers=h, params={"force": True}, data={"name": "Ada Twin"},
               files=[("images", ("a.jpg", jpeg(1, 0), "image/jpeg"))])
    assert r.status_code == 201 and {x["code"] for x in r.json()["forced"]} == {"duplicate_photo", "matches_other_person"}
    # the gallery check finds what was forced in: Ada and Ada Twin look like one person
    r = c.get(f"{API}/gallery/check", headers=h)
    assert r.status_code == 200 and not r.json()["consistent"] and r.json()["disagreeing"] == []
    assert [sorted(p["name"] for p in x["people"]) for x in r.json()["lookalikes"]] == [["Ada", "Ada Twin"]]
    r = c.post(f"{API}/people/{ada}/faces", headers=h, params={"force": "true"},
               files=[("images", ("b.jpg", jpeg(2, 1), "image/jpeg"))])
    assert r.status_code == 200 and len(r.json()["face_ids"]) == 1, r.text
    forced = r.json()["forced"]
    assert {x["code"] for x in forced} == {"matches_other_person", "not_same_person"}
    assert all(x["filename"] == "b.jpg" and x["face_id"] == r.json()["face_ids"][0] for x in forced)
    faces = c.get(f"{API}/people/{ada}", headers=h).json()["faces"]
    assert [bool(f["forced"]) for f in faces] == [False, True]
    assert faces[1]["forced"][0]["name"] == "Bob"
    audit = [e for e in c.get(f"{API}/events?kind=audit", headers=h).json()["events"] if e["action"] == "enrol"]
    assert audit[0]["person_id"] == ada and {x["code"] for x in audit[0]["detail"]["forced"]} == forced_codes(forced)

    # ... and Ada's photos disagree with each other (her template, half Bob now, no longer looks like Ada Twin)
    r = c.get(f"{API}/gallery/check", headers=h)
    assert r.status_code == 200 and not r.json()["consistent"]
    (bad,) = r.json()["disagreeing"]
    assert bad["name"] == "Ada" and bad["pairs"][0]["face_ids"] == [f["id"] for f in faces]
    assert c.get(f"{API}/gallery/check", headers=svc.h("viewer")).status_code == 403
    assert bob


def forced_codes(forced: list[dict[str, Any]]) -> set[str]:
    return {x["code"] for x in forced}


def test_bulk_enrolment_reports_integrity_refusals_per_photo(svc):
    c, h = svc.client, svc.h("admin")
    svc.enrol("Ada", jpeg(1, 0))
    files = [("images", ("Bob/1.jpg", jpeg(2, 0), "image/jpeg")),
             ("images", ("Bob/ada.jpg", jpeg(1, 2), "image/jpeg")),  # Ada's face in Bob's folder
             ("images", ("Cy/1.jpg", jpeg(1, 0), "image/jpeg")),  # Ada's enrolled photo as Cy
             ("images", ("Ada/2.jpg", jpeg(1, 1), "image/jpeg"))]
    r = c.post(f"{API}/enrol/batch", headers=h, files=files)
    assert r.status_code == 200, r.text
    out = {p["name"]: p for p in r.json()["people"]}
    assert out["Bob"]["status"] == "enrolled" and len(out["Bob"]["face_ids"]) == 1
    assert out["Bob"]["rejected"][0]["code"] == "matches_other_person"
    assert out["Cy"]["status"] == "rejected" and out["Cy"]["rejected"][0]["code"] == "duplicate_photo"
    assert out["Ada"]["status"] == "enrolled"
    assert r.json()["rejected_photos"] == 2 and r.json()["forced_photos"] == 0
    r = c.post(f"{API}/enrol/batch", headers=h, params={"force": "true"}, files=files[2:3])
    assert r.json()["people"][0]["status"] == "enrolled" and r.json()["forced_photos"] == 2


# -- events ------------------------------------------------------------------------------------------
def test_event_log_filters(svc):
    c, h = svc.client, svc.h("viewer")
    ada = svc.enrol("Ada", jpeg(1)).json()["person"]["id"]
    bob = svc.enrol("Bob", jpeg(2)).json()["person"]["id"]
    svc.check(jpeg(1, 1), gate="north")
    svc.check(jpeg(2, 1), gate="south")
    svc.check(jpeg(9, 1), gate="south")
    access = c.get(f"{API}/events?kind=access", headers=h).json()["events"]
    assert [(e["gate"], e["decision"], e["name"]) for e in access] == [
        ("south", "deny", None), ("south", "allow", "Bob"), ("north", "allow", "Ada")]
    assert access[0]["time"].endswith("Z") and not access[0]["has_image"]
    assert [e["name"] for e in c.get(f"{API}/events?kind=access&person_id={ada}", headers=h).json()["events"]] == ["Ada"]
    assert len(c.get(f"{API}/events?gate=south", headers=h).json()["events"]) == 2
    assert len(c.get(f"{API}/events?decision=allow&gate=south", headers=h).json()["events"]) == 1
    assert c.get(f"{API}/events?person_id={bob}&kind=access", headers=h).json()["events"][0]["score"] > 0.9
    t = access[1]["at"]
    newer = c.get(f"{API}/events?kind=access&since={t}", headers=h).json()["events"]
    assert [e["id"] for e in newer] == [access[0]["id"], access[1]["id"]]
    older = c.get(f"{API}/events", headers=h, params={"kind": "access", "until": access[1]["at"]}).json()["events"]
    assert [e["id"] for e in older] == [access[2]["id"]]
    assert c.get(f"{API}/events?since=2999-01-01T00:00:00", headers=h).json()["events"] == []
    assert len(c.get(f"{API}/events?kind=access&since=2000-01-01T00:00:00Z&until=2999-01-01", headers=h).json()["events"]) == 3
    # paging backwards
    page1 = c.get(f"{API}/events?kind=access&limit=2", headers=h).json()
    assert len(page1["events"]) == 2 and page1["next_before_id"] == access[1]["id"]
    page2 = c.get(f"{API}/events?kind=access&limit=2&before_id={page1['next_before_id']}", headers=h).json()
    assert [e["id"] for e in page2["events"]] == [access[2]["id"]] and page2["next_before_id"] is None
    # no face images kept by default
    assert c.get(f"{API}/events/{access[0]['id']}/image", headers=h).status_code == 404


# -- roles -------------------------------------------------------------------------------------------
def test_role_table_is_the_documented_one():
    assert ROLE_PERMISSIONS["admin"] == frozenset(PERMISSIONS)
    assert ROLE_PERMISSIONS["gate"] == {"gate:check", "faces:analyse"}
    assert ROLE_PERMISSIONS["viewer"] == {"people:read", "events:read", "metrics:read"}


def _setup_world(svc: Svc) -> dict[str, Any]:
    """A person with two faces, an access event with an image, a spare key: targets for every route."""
    r = svc.enrol("Ada", jpeg(1, 0), jpeg(1, 1)).json()
    ev = svc.check(jpeg(1, 2)).json()
    spare = create_key(svc.app.state.svc.db, "viewer", "spare")["id"]
    return {"pid": r["person"]["id"], "fid": r["face_ids"][0], "eid": ev["event_id"], "spare": spare}


def _img(field: str = "image", person: int = 1) -> dict[str, Any]:
    return {"files": {field: ("x.jpg", jpeg(person, 4), "image/jpeg")}}


# (route name, method, path template, request kwargs, permission needed; None = any valid key)
ROUTES: list[tuple[str, str, str, Callable[[], dict[str, Any]], str | None]] = [
    ("gate check", "POST", "/gates/g1/check", _img, "gate:check"),
    ("identify", "POST", "/identify", _img, "faces:analyse"),
    ("detect", "POST", "/detect", _img, "faces:analyse"),
    ("verify", "POST", "/verify", lambda: {"files": {"image1": ("a.jpg", jpeg(1), "image/jpeg"),
                                                     "image2": ("b.jpg", jpeg(1, 1), "image/jpeg")}}, "faces:analyse"),
    ("list people", "GET", "/people", dict, "people:read"),
    ("show person", "GET", "/people/{pid}", dict, "people:read"),
    ("thumbnail", "GET", "/people/{pid}/faces/{fid}/thumbnail", dict, "people:read"),
    ("gallery stats", "GET", "/gallery", dict, "people:read"),
    ("gallery check", "GET", "/gallery/check", dict, "people:write"),
    ("enrol", "POST", "/people",
     lambda: {"data": {"name": "New"}, "files": [("images", ("n.jpg", jpeg(5), "image/jpeg"))]}, "people:write"),
    ("rename", "PATCH", "/people/{pid}", lambda: {"json": {"name": "Renamed"}}, "people:write"),
    ("add faces", "POST", "/people/{pid}/faces", lambda: {"files": [("images", ("m.jpg", jpeg(1, 7), "image/jpeg"))]}, "people:write"),
    ("delete face", "DELETE", "/people/{pid}/faces/{fid}", dict, "people:write"),
    ("delete person", "DELETE", "/people/{pid}", dict, "people:write"),
    ("events", "GET", "/events", dict, "events:read"),
    ("event image", "GET", "/events/{eid}/image", dict, "events:read"),
    ("list keys", "GET", "/keys", dict, "keys:manage"),
    ("create key", "POST", "/keys", lambda: {"json": {"role": "gate", "name": "cam"}}, "keys:manage"),
    ("revoke key", "DELETE", "/keys/{spare}", dict, "keys:manage"),
    ("metrics", "GET", "@/metrics", dict, "metrics:read"),
    ("whoami", "GET", "/whoami", dict, None),
]


@pytest.fixture
def world(tmp_path):
    s = Svc(tmp_path, keep_event_images=True)
    w = _setup_world(s)
    yield s, w
    s.close()


@pytest.mark.parametrize("route", ROUTES, ids=[r[0] for r in ROUTES])
def test_every_route_for_every_role(world, route):
    """Each role may do exactly what its permissions say: allowed -> 2xx, refused -> 403; no key -> 401."""
    svc, w = world
    name, method, path, kwargs, perm = route
    url = path[1:] if path.startswith("@") else API + path
    url = url.format(**w)
    for role in ("viewer", "gate", "admin"):  # admin last: its (destructive) call must not spoil the others
        r = svc.client.request(method, url, headers=svc.h(role), **kwargs())
        allowed = perm is None or perm in ROLE_PERMISSIONS[role]
        if allowed:
            assert 200 <= r.status_code < 300, (role, name, r.status_code, r.text)
        else:
            assert r.status_code == 403, (role, name, r.status_code, r.text)
            assert r.json()["code"] == "forbidden" and perm in r.json()["message"]
    r = svc.client.request(method, url, **kwargs())
    assert r.status_code == 401 and r.json()["code"] == "unauthenticated"
    r = svc.client.request(method, url, headers={"X-API-Key": "fg_0123456789_" + "x" * 43}, **kwargs())
    assert r.status_code == 401


def test_keys_are_hashed_revocable_and_bearer_works(svc, tmp_path):
    c = svc.client
    r = c.post(f"{API}/keys", headers=svc.h("admin"), json={"role": "viewer", "name": "auditor"})
    assert r.status_code == 201
    new = r.json()
    assert new["key"].startswith(f"fg_{new['id']}_")
    assert c.get(f"{API}/whoami", headers={"Authorization": f"Bearer {new['key']}"}).json()["role"] == "viewer"
    listed = c.get(f"{API}/keys", headers=svc.h("admin")).json()["keys"]
    assert {k["id"] for k in listed} >= {new["id"]} and all("key" not in k and "hash" not in k for k in listed)
    # only the hash is stored
    secret = new["key"].rsplit("_", 1)[1]
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("g.service.sqlite*"))
    assert secret.encode() not in raw and new["key"].encode() not in raw
    # a key cannot revoke itself (an admin locking the service out by accident)
    admin_id = svc.keys["admin"].split("_")[1]
    assert c.delete(f"{API}/keys/{admin_id}", headers=svc.h("admin")).json()["code"] == "self_revoke"
    assert c.delete(f"{API}/keys/{new['id']}", headers=svc.h("admin")).status_code == 200
    assert c.get(f"{API}/whoami", headers={"X-API-Key": new["key"]}).status_code == 401
    assert c.delete(f"{API}/keys/{new['id']}", headers=svc.h("admin")).json()["code"] == "already_revoked"
    assert c.delete(f"{API}/keys/00000000aa", headers=svc.h("admin")).status_code == 404
    assert c.post(f"{API}/keys", headers=svc.h("admin"), json={"role": "root"}).status_code == 422


def test_failed_authentication_is_rate_limited_and_logged(tmp_path, caplog):
    s = Svc(tmp_path, auth_fail_limit=3, auth_fail_window=60)
    try:
        c = s.client
        with caplog.at_level(logging.WARNING, logger="facegate.service"):
            for i in range(3):
                r = c.get(f"{API}/people", headers={"X-API-Key": f"fg_00000000{i:02d}_{'y' * 43}"})
                assert r.status_code == 401
            r = c.get(f"{API}/people", headers=s.h("admin"))  # even a valid key waits out the lockout
            assert r.status_code == 429 and r.json()["code"] == "too_many_failures"
            assert 0 < int(r.headers["retry-after"]) <= 60
        assert sum("authentication failed" in m for m in caplog.messages) == 3
        assert all("y" * 43 not in m for m in caplog.messages)  # secrets never logged
        fails = s.app.state.svc.db.events(kind="auth_failure")
        assert len(fails) == 3 and fails[0]["key_id"] == "0000000002" and fails[0]["client"] == "testclient"
        assert fails[0]["action"] == "unknown key"
        # the limiter forgets after the window
        s.app.state.svc.limiter.window = 0.0
        assert c.get(f"{API}/people", headers=s.h("admin")).status_code == 200
    finally:
        s.close()


def test_cors_closed_by_default_and_open_when_configured(tmp_path):
    pre = {"Origin": "https://ops.example", "Access-Control-Request-Method": "GET",
           "Access-Control-Request-Headers": "x-api-key"}
    s = Svc(tmp_path / "a")
    try:
        r = s.client.options(f"{API}/people", headers=pre)
        assert "access-control-allow-origin" not in r.headers
        r = s.client.get(f"{API}/people", headers={**s.h("admin"), "Origin": "https://ops.example"})
        assert "access-control-allow-origin" not in r.headers
    finally:
        s.close()
    s = Svc(tmp_path / "b", cors_origins=("https://ops.example",))
    try:
        r = s.client.options(f"{API}/people", headers=pre)
        assert r.headers["access-control-allow-origin"] == "https://ops.example"
        r = s.client.options(f"{API}/people", headers={**pre, "Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in r.headers
    finally:
        s.close()


# -- bad input -----------------------------------------------------------------------------------------
def test_bad_input_is_a_4xx_json_error(svc):
    from helpers import huge_png

    c, h = svc.client, svc.h("admin")
    url = f"{API}/gates/g1/check"
    cases = [
        ("wrong content type", dict(content=b"hello", headers={**h, "Content-Type": "text/plain"}), 415, "unsupported_media_type"),
        ("no content type", dict(content=b"hello", headers=h), 415, "unsupported_media_type"),
        ("invalid json", dict(content=b'{"image_base64": ', headers={**h, "Content-Type": "application/json"}), 400, "invalid_json"),
        ("json not an object", dict(json=[1, 2], headers=h), 400, "invalid_json"),
        ("json missing field", dict(json={"image": "x"}, headers=h), 422, "validation"),
        ("json wrong type", dict(json={"image_base64": 5}, headers=h), 422, "validation"),
        ("bad base64", dict(json={"image_base64": "***not base64***"}, headers=h), 400, "invalid_base64"),
        ("base64 of text", dict(json={"image_base64": base64.b64encode(b"just text").decode()}, headers=h), 400, "invalid_image"),
        ("truncated image", dict(files={"image": ("t.jpg", jpeg(1)[:500], "image/jpeg")}, headers=h), 400, "invalid_image"),
        ("empty file", dict(files={"image": ("e.jpg", b"", "image/jpeg")}, headers=h), 400, "invalid_image"),
        ("not an image", dict(files={"image": ("a.pdf", b"%PDF-1.4 " * 50, "application/pdf")}, headers=h), 400, "invalid_image"),
        ("decompression bomb", dict(files={"image": ("b.png", huge_png(20_000, 20_000), "image/png")}, headers=h), 413, "image_too_large"),
        ("text instead of file", dict(data={"image": "abc"}, files={"other": ("x", b"x", "text/plain")}, headers=h), 400, "invalid_field"),
        ("no image field", dict(data={"x": "1"}, files={"other": ("x", b"x", "text/plain")}, headers=h), 422, "validation"),
        ("nine frames (a burst takes at most eight)",
         dict(files=[("image", (f"{i}.jpg", jpeg(1), "image/jpeg")) for i in range(9)], headers=h),
         422, "too_many_frames"),
        ("malformed multipart", dict(content=b"--b\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a\"\r\n\r\nabc",
                                     headers={**h, "Content-Type": "multipart/form-data; boundary=b"}), 422, None),
        ("multipart without boundary", dict(content=b"abc", headers={**h, "Content-Type": "multipart/form-data"}),
         400, "malformed_multipart"),
        ("multipart header garbage", dict(content=b"--b\r\n\x00\x01garbage\r\n\r\n--b--\r\n",
                                          headers={**h, "Content-Type": "multipart/form-data; boundary=b"}), 400, "malformed_multipart"),
    ]
    for label, kw, status, code in cases:
        r = c.post(url, **kw)
        assert r.status_code == status, (label, r.status_code, r.text)
        body = r.json()
        assert set(body) >= {"code", "message"} and body["message"], label
        if code:
            assert body["code"] == code, (label, body)

    big = b"\xff\xd8" + b"\0" * (50 * 1024 * 1024)
    r = c.post(url, headers=h, files={"image": ("big.jpg", big, "image/jpeg")})
    assert r.status_code == 413 and r.json()["code"] == "payload_too_large"

    def chunked():  # no Content-Length: counted while it streams
        for _ in range(20):
            yield b"\0" * (1024 * 1024)

    for method, path in (("POST", url), ("POST", f"{API}/people"), ("PATCH", f"{API}/people/1"), ("POST", f"{API}/keys")):
        r = c.request(method, path, headers={**h, "Content-Type": "application/json"}, content=chunked())
        assert r.status_code == 413 and r.json()["code"] == "payload_too_large", (method, path, r.text)

    unknown = [
        ("GET", f"{API}/people/999999"), ("DELETE", f"{API}/people/999999"), ("PATCH", f"{API}/people/999999"),
        ("GET", f"{API}/people/1/faces/999999/thumbnail"), ("DELETE", f"{API}/people/999999/faces/1"),
        ("GET", f"{API}/events/999999/image"), ("DELETE", f"{API}/keys/abcdef0123"), ("GET", f"{API}/nothing-here"),
    ]
    for method, path in unknown:
        kw = {"json": {"name": "x"}} if method == "PATCH" else {}
        r = c.request(method, path, headers=h, **kw)
        assert r.status_code == 404 and r.json()["code"] == "not_found", (method, path, r.text)
    for path in (f"{API}/people/0", f"{API}/people/-1", f"{API}/people/abc", f"{API}/people/{2**70}",
                 f"{API}/events?person_id={2**70}", f"{API}/events?since=yesterday", f"{API}/events?limit=0",
                 f"{API}/people?limit=100000", f"{API}/identify?k=0"):
        r = c.request("POST" if "identify" in path else "GET", path, headers=h)
        assert r.status_code == 422 and r.json()["code"] == "validation", (path, r.text)
    assert c.post(f"{API}/gates/bad gate!/check", headers=h, files=_img()["files"]).status_code == 422
    r = c.put(f"{API}/people", headers=h)
    assert r.status_code == 405 and set(r.headers["allow"].split(", ")) == {"GET", "POST"}

    # names are text a person can read
    photo = base64.b64encode(jpeg(1)).decode()
    for bad in ("", "   ", "a\x00b", "x" * 201, "\ud800", 17):  # a lone surrogate is legal JSON, not text
        body = json.dumps({"name": bad, "images_base64": [photo]}).encode()  # ASCII escapes: sent as is
        r = c.post(f"{API}/people", headers={**h, "Content-Type": "application/json"}, content=body)
        assert r.status_code == 422 and r.json()["code"] == "validation", (repr(bad), r.text)


# -- erasure -------------------------------------------------------------------------------------------
def _raw(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(root.iterdir()) if p.is_file())


def test_delete_person_leaves_nothing(tmp_path):
    """Deleting a person removes their faces, embeddings, crops, index entries and event images;
    the decisions stay in the audit log. Checked in SQLite, in the index, and in the raw files."""
    s = Svc(tmp_path, keep_event_images=True)
    c, h = s.client, s.h("admin")
    ada = s.enrol("Ada", jpeg(1, 0), jpeg(1, 1)).json()
    bob = s.enrol("Bob", jpeg(2, 0)).json()
    pid = ada["person"]["id"]
    allow = s.check(jpeg(1, 2)).json()
    assert allow["decision"] == "allow" and allow["person_id"] == pid
    assert c.get(f"{API}/events/{allow['event_id']}/image", headers=h).status_code == 200

    gdb = sqlite3.connect(tmp_path / "g.sqlite")
    q = ",".join("?" * len(ada["face_ids"]))
    blobs = [bytes(b) for (b,) in gdb.execute(f"SELECT embedding FROM faces WHERE id IN ({q})", ada["face_ids"])]
    crops = [bytes(j) for (j,) in gdb.execute(f"SELECT jpeg FROM face_crops WHERE face_id IN ({q})", ada["face_ids"])]
    sdb = sqlite3.connect(tmp_path / "g.service.sqlite")
    (event_jpeg,) = sdb.execute("SELECT jpeg FROM event_images WHERE event_id = ?", (allow["event_id"],)).fetchone()
    assert len(blobs) == 2 and len(crops) == 2
    backend = s.engine.gallery.backend
    backend.index.sync()
    idx = backend.index.index
    (template,) = idx.vectors()[(idx.labels.view == pid) & idx.alive.view].astype("<f4")  # rule "mean": one entry
    assert backend.save_index(force=True)  # a snapshot file holding Ada's template
    snapshot = backend.index.snapshot
    assert snapshot.exists()
    raw = _raw(tmp_path)  # the byte search below can see them before the delete
    assert all(b in raw for b in blobs + [template.tobytes()])
    assert all(j[len(j) // 2 : len(j) // 2 + 64] in raw for j in crops + [bytes(event_jpeg)])

    r = c.delete(f"{API}/people/{pid}", headers=h)
    assert r.status_code == 200
    out = r.json()
    assert out["faces_deleted"] == 2 and out["event_images_deleted"] == 1
    assert out["index_vectors_zeroed"] >= 1 and out["snapshot_removed"] is True

    # the database: nothing of Ada's
    assert gdb.execute("SELECT COUNT(*) FROM people WHERE id = ?", (pid,)).fetchone()[0] == 0
    assert gdb.execute("SELECT COUNT(*) FROM faces WHERE person_id = ?", (pid,)).fetchone()[0] == 0
    assert gdb.execute(f"SELECT COUNT(*) FROM face_crops WHERE face_id IN ({q})", ada["face_ids"]).fetchone()[0] == 0
    assert sdb.execute("SELECT COUNT(*) FROM event_images WHERE person_id = ?", (pid,)).fetchone()[0] == 0
    # ... while the decision stays in the audit log
    (ev,) = c.get(f"{API}/events?kind=access&person_id={pid}", headers=h).json()["events"]
    assert ev["decision"] == "allow" and ev["name"] == "Ada" and ev["has_image"] is False
    # the index: no live entry, and the tombstoned vectors are zeros
    mgr = backend.index
    mgr.sync()
    labels, alive = mgr.index.labels.view, mgr.index.alive.view
    assert not np.any((labels == pid) & alive)
    assert np.all(mgr.index.vectors()[labels == pid] == 0)
    assert backend.check()["ok"]
    assert not snapshot.exists()
    # nobody is recognised as Ada; Bob still is
    assert s.check(jpeg(1, 3)).json()["decision"] == "deny"
    assert s.check(jpeg(2, 3)).json()["name"] == "Bob"
    assert bob["person"]["id"] != pid

    # and no copy of the embeddings, crops or event image is left in any file (WAL included),
    # before and after a clean shutdown (which may write a new index snapshot)
    gdb.close()
    sdb.close()
    for phase in ("running", "closed"):
        if phase == "closed":
            s.close()
        raw = _raw(tmp_path)
        for blob in blobs + [template.tobytes()]:
            assert blob not in raw, phase
        for jpg in crops + [bytes(event_jpeg)]:
            assert jpg[len(jpg) // 2 : len(jpg) // 2 + 64] not in raw, phase


# -- restart -------------------------------------------------------------------------------------------
def test_restart_keeps_people_events_and_keys(tmp_path):
    s = Svc(tmp_path)
    pid = s.enrol("Ada", jpeg(1)).json()["person"]["id"]
    eid = s.check(jpeg(1, 1)).json()["event_id"]
    api_key = s.client.post(f"{API}/keys", headers=s.h("admin"), json={"role": "gate"}).json()["key"]
    keys = dict(s.keys)
    s.close()

    s2 = Svc.__new__(Svc)
    s2.root, s2.config = tmp_path, Config(home=tmp_path, gallery=tmp_path / "g.sqlite")
    s2.app = create_app(s2.config, ServiceSettings(), pipeline=SyntheticPipeline(s2.config))
    s2.client = TestClient(s2.app)
    s2.client.__enter__()
    s2.keys = keys
    try:
        c = s2.client
        assert c.get(f"{API}/people/{pid}", headers=s2.h("viewer")).json()["person"]["name"] == "Ada"
        assert c.get(f"{API}/events?kind=access", headers=s2.h("viewer")).json()["events"][0]["id"] == eid
        r = c.post(f"{API}/gates/g1/check", headers={"X-API-Key": api_key}, files=_img(person=1)["files"])
        assert r.json()["decision"] == "allow" and r.json()["event_id"] > eid
    finally:
        s2.close()


# -- metrics -------------------------------------------------------------------------------------------
def test_metrics(svc):
    svc.enrol("Ada", jpeg(1))
    svc.check(jpeg(1, 1), gate="east")
    svc.client.get(f"{API}/people", headers={"X-API-Key": "nope"})
    r = svc.client.get("/metrics", headers=svc.h("viewer"))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert 'facegate_gate_decisions_total{decision="allow",gate="east"} 1.0' in text
    assert "facegate_gallery_people 1.0" in text
    assert 'facegate_auth_failures_total{reason="malformed key"} 1.0' in text
    assert 'route="/api/v1/gates/{gate}/check"' in text and "process_resident_memory_bytes" in text
    assert 'facegate_inference_seconds_count{stage="embed"}' in text


def test_metrics_can_be_public(tmp_path):
    s = Svc(tmp_path, metrics_public=True)
    try:
        assert s.client.get("/metrics").status_code == 200
    finally:
        s.close()


# -- CLI -----------------------------------------------------------------------------------------------
def test_cli_keys_and_serve_options(tmp_path, capsys):
    from facegate.cli import main

    base = ["--home", str(tmp_path)]
    assert main(base + ["keys", "create", "--role", "gate", "--name", "cam 1", "--json"]) == 0
    created = json.loads(capsys.readouterr().out)
    assert created["role"] == "gate" and created["key"].startswith("fg_")
    assert main(base + ["keys", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["keys"]
    assert [k["id"] for k in listed] == [created["id"]] and "hash" not in listed[0]
    assert main(base + ["keys", "revoke", created["id"]]) == 0
    capsys.readouterr()
    assert main(base + ["keys", "revoke", created["id"]]) == 2
    assert "already revoked" in capsys.readouterr().err
    assert (tmp_path / "gallery.service.sqlite").exists()
    # serve refuses to start without a usable threshold, in one line
    assert main(base + ["serve", "--far", "0.5", "--port", "1"]) == 2
    err = capsys.readouterr().err
    assert "no calibrated threshold" in err and "Traceback" not in err
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    assert "--cors-origin" in capsys.readouterr().out


# -- hardening (issue 14) ----------------------------------------------------------------------------
def test_deeply_nested_json_is_a_400(svc):
    """A body of 100,000 nested brackets overflows the JSON parser's stack: a 400 like any malformed
    JSON, on every route that reads JSON (it used to escape as a RecursionError and drop the connection)."""
    deep = ("[" * 100_000 + "]" * 100_000).encode()
    deep_obj = ('{"a":' * 100_000 + "1" + "}" * 100_000).encode()
    routes = [("POST", f"{API}/gates/g1/check"), ("POST", f"{API}/identify"), ("POST", f"{API}/detect"),
              ("POST", f"{API}/verify"), ("POST", f"{API}/people"), ("POST", f"{API}/people/1/faces"),
              ("PATCH", f"{API}/people/1"), ("POST", f"{API}/keys")]
    for method, path in routes:
        for body in (deep, deep_obj):
            r = svc.client.request(method, path, content=body,
                                   headers={**svc.h("admin"), "Content-Type": "application/json"})
            assert r.status_code == 400, (method, path, r.status_code, r.text[:200])
            assert r.json()["code"] == "invalid_json" and "nested too deeply" in r.json()["message"]


def test_json_bodies_are_parsed_only_after_authentication(svc):
    """PATCH /people/{id} and POST /keys check the key before they look at the body: an unauthenticated
    caller learns nothing about the body's schema (401, not 422), a wrong role gets 403."""
    pid = svc.enrol("Ada", jpeg(1)).json()["person"]["id"]
    bad_bodies = [dict(content=b"{not json", headers={"Content-Type": "application/json"}),
                  dict(json={"name": 17, "role": "root"}), dict(json=[]), dict(content=b"x", headers={"Content-Type": "text/plain"})]
    for method, path, role in (("PATCH", f"{API}/people/{pid}", "viewer"), ("POST", f"{API}/keys", "gate")):
        for kw in bad_bodies:
            r = svc.client.request(method, path, **kw)
            assert r.status_code == 401 and r.json()["code"] == "unauthenticated", (method, kw, r.text)
            hdr = {**kw.get("headers", {}), **svc.h(role)}
            r = svc.client.request(method, path, **{**kw, "headers": hdr})
            assert r.status_code == 403, (method, role, kw, r.text)
    h = svc.h("admin")
    r = svc.client.patch(f"{API}/people/{pid}", headers=h, json={"name": 17})
    assert r.status_code == 422 and r.json()["code"] == "validation" and r.json()["message"].startswith("name")
    assert svc.client.patch(f"{API}/people/{pid}", headers=h, json={"name": "Ada L."}).json()["name"] == "Ada L."
    r = svc.client.post(f"{API}/keys", headers=h, json={"role": "root"})
    assert r.status_code == 422 and r.json()["message"].startswith("role")
    assert svc.client.post(f"{API}/keys", headers=h, json={"role": "viewer"}).status_code == 201
    schema = svc.client.get("/openapi.json").json()["paths"]
    assert "name" in schema[f"{API}/people/{{person_id}}"]["patch"]["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert schema[f"{API}/keys"]["post"]["requestBody"]["required"] is True


def test_files_at_rest_are_private_under_umask_022(tmp_path):
    """Gallery, service database, their WAL and shm, and the index snapshot hold face crops, embeddings,
    names and key hashes: 0600 files in 0700 folders even under the common umask 022; an older
    world-readable gallery is tightened when opened."""
    import os
    import stat

    old = os.umask(0o022)
    try:
        root = tmp_path / "new" / "home"
        s = Svc(root)
        try:
            s.enrol("Ada", jpeg(1))
            s.check(jpeg(1, 1))
            assert s.engine.gallery.save_index(force=True)
            files = sorted(p for p in root.iterdir() if p.is_file())
            names = {p.name for p in files}
            assert {"g.sqlite", "g.sqlite-wal", "g.sqlite-shm", "g.sqlite.index", "g.service.sqlite",
                    "g.service.sqlite-wal", "g.service.sqlite-shm"} <= names, names
            for p in files:
                assert stat.S_IMODE(p.stat().st_mode) == 0o600, (p.name, oct(p.stat().st_mode))
            for d in (root, root.parent):
                assert stat.S_IMODE(d.stat().st_mode) == 0o700, d
        finally:
            s.close()
        for p in root.iterdir():
            os.chmod(p, 0o644)  # as an older facegate left them
        Svc(root).close()
        assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in root.iterdir())
    finally:
        os.umask(old)


def test_delete_person_erases_images_of_their_denied_attempts(tmp_path):
    """With --keep-event-images, a person's denied attempts (person_id NULL: here, before they were
    enrolled) keep their face crop too; deleting the person erases those images, checked in the raw
    files, and leaves a stranger's denied image alone."""
    s = Svc(tmp_path, keep_event_images=True)
    try:
        c, h = s.client, s.h("admin")
        before = s.check(jpeg(1, 4)).json()
        stranger = s.check(jpeg(2, 4)).json()
        assert before["decision"] == stranger["decision"] == "deny" and before["person_id"] is None
        sdb = sqlite3.connect(tmp_path / "g.service.sqlite")
        (img,) = sdb.execute("SELECT jpeg FROM event_images WHERE event_id = ?", (before["event_id"],)).fetchone()
        img = bytes(img)
        sdb.close()
        pid = s.enrol("Ada", jpeg(1, 0), jpeg(1, 1)).json()["person"]["id"]
        r = c.delete(f"{API}/people/{pid}", headers=h)
        assert r.status_code == 200 and r.json()["event_images_deleted"] == 1
        assert c.get(f"{API}/events/{before['event_id']}/image", headers=h).status_code == 404
        assert c.get(f"{API}/events/{stranger['event_id']}/image", headers=h).status_code == 200
        assert img[len(img) // 2 : len(img) // 2 + 64] not in _raw(tmp_path)
    finally:
        s.close()
    assert img[len(img) // 2 : len(img) // 2 + 64] not in _raw(tmp_path)


def test_engine_uses_only_public_gallery_methods(tmp_path):
    """The service works over any backend that implements the public GalleryBackend interface: here
    one that hides the SQLite backend's store and index. Delete person, delete face, thumbnails and
    gate checks need nothing else (no gallery._pipeline, backend.store, faiss pointers or raw SQL)."""
    import inspect

    from facegate.gallery import Gallery, GalleryBackend, SqliteBackend
    from facegate.service import engine as engine_module

    class PublicOnly(GalleryBackend):
        name = "public-only"

        def __init__(self, inner: SqliteBackend) -> None:
            self._inner = inner
            self.rule = inner.rule

        def __getattribute__(self, name: str) -> Any:
            if name in ("store", "index"):
                raise AttributeError(name)
            return object.__getattribute__(self, name)

    for m in ("model", "add_faces", "add_many", "people", "person", "faces", "rename", "delete", "search", "counts",
              "erase", "delete_face", "face_crop", "embeddings", "close", "stats", "check"):
        setattr(PublicOnly, m, (lambda name: lambda self, *a, **k: getattr(self._inner, name)(*a, **k))(m))
    PublicOnly.__abstractmethods__ = frozenset()

    cfg = Config(home=tmp_path, gallery=tmp_path / "g.sqlite")
    pipe = SyntheticPipeline(cfg)
    gallery = Gallery(PublicOnly(SqliteBackend(cfg.gallery_path)), cfg, pipeline=pipe)
    app = create_app(cfg, ServiceSettings(keep_event_images=True), pipeline=pipe, gallery=gallery)
    try:
        with TestClient(app) as c:
            h = {"X-API-Key": create_key(app.state.svc.db, "admin")["key"]}
            ada = c.post(f"{API}/people", headers=h, data={"name": "Ada"},
                         files=[("images", (f"{i}.jpg", jpeg(1, i), "image/jpeg")) for i in range(2)]).json()
            pid, (f1, _f2) = ada["person"]["id"], ada["face_ids"]
            assert c.get(f"{API}/people/{pid}/faces/{f1}/thumbnail", headers=h).content[:2] == b"\xff\xd8"
            r = c.post(f"{API}/gates/g/check", headers=h, files={"image": ("a.jpg", jpeg(1, 3), "image/jpeg")})
            assert r.json()["decision"] == "allow"
            r = c.delete(f"{API}/people/{pid}/faces/{f1}", headers=h)
            assert r.status_code == 200 and r.json()["person_deleted"] is False
            r = c.delete(f"{API}/people/{pid}", headers=h)
            assert r.status_code == 200 and r.json()["event_images_deleted"] == 1
    finally:
        gallery.close()
    src = inspect.getsource(engine_module)
    for private in ("._pipeline", ".store", "faiss", "face_crops", "rev_swig_ptr", "backend.index"):
        assert private not in src, private


def test_docs_offline_with_csp_and_one_cache_control(tmp_path, monkeypatch):
    """/docs loads nothing from another origin (a plain page of the operations without Swagger UI
    installed; Swagger UI from the installed package's files with it), under a CSP; thumbnails carry
    one Cache-Control; a refused CORS preflight is {code, message} JSON."""
    import sys
    import types

    s = Svc(tmp_path / "a", cors_origins=("https://ops.example",))
    try:
        c = s.client
        monkeypatch.setitem(sys.modules, "swagger_ui_bundle", None)  # not installed
        r = c.get("/docs")
        assert r.status_code == 200 and f"{API}/gates/{{gate}}/check" in r.text and "/openapi.json" in r.text
        assert "http://" not in r.text and "https://" not in r.text and "<script" not in r.text
        csp = r.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp
        ada = s.enrol("Ada", jpeg(1)).json()
        r = c.get(f"{API}/people/{ada['person']['id']}/faces/{ada['face_ids'][0]}/thumbnail", headers=s.h("viewer"))
        assert r.status_code == 200 and r.headers.get_list("cache-control") == ["no-store"]
        r = c.options(f"{API}/people", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
        assert r.status_code == 400 and r.headers["content-type"] == "application/json"
        assert r.json()["code"] == "cors_rejected" and "origin" in r.json()["message"]
    finally:
        s.close()

    assets = tmp_path / "swagger"
    assets.mkdir()
    (assets / "swagger-ui-bundle.js").write_text("/* bundle */")
    (assets / "swagger-ui.css").write_text("/* css */")
    monkeypatch.setitem(sys.modules, "swagger_ui_bundle", types.SimpleNamespace(swagger_ui_path=str(assets)))
    s = Svc(tmp_path / "b")
    try:
        r = s.client.get("/docs")
        assert "/docs/assets/swagger-ui-bundle.js" in r.text and "https://" not in r.text and "<script>" not in r.text
        assert s.client.get("/docs/assets/swagger-ui-bundle.js").text == "/* bundle */"
        init = s.client.get("/docs/init.js")
        assert "SwaggerUIBundle" in init.text and "script-src 'self'" in init.headers["content-security-policy"]
    finally:
        s.close()


def test_audit_and_gallery_agree_after_a_crash(tmp_path):
    """The gallery and the service database are two files: an enrolment committed in the gallery whose
    audit event never got written (the process died in between) is recorded at the next start, from
    the note the gallery committed with it; replaying a note already recorded adds nothing."""
    s = Svc(tmp_path)
    db, gallery = s.app.state.svc.db, s.engine.gallery
    real_add, real_clear = db.add_event, gallery.clear_notes

    def crash(kind, **kw):
        if kind == "audit":
            raise RuntimeError("killed between the two commits")
        return real_add(kind, **kw)

    db.add_event = crash
    try:
        s.enrol("Ada", jpeg(1, 0), jpeg(1, 1))
    except RuntimeError:
        pass  # TestClient re-raises what the server hit; over HTTP the client saw a 500
    db.add_event = real_add
    pid = gallery.person("Ada").id  # committed
    assert not [e for e in db.events(kind="audit") if e["action"] == "enrol"]
    # a second write dies after its audit event, before the gallery's note is cleared
    gallery.clear_notes = lambda tokens: (_ for _ in ()).throw(RuntimeError("killed"))
    try:
        s.client.patch(f"{API}/people/{pid}", headers=s.h("admin"), json={"name": "Ada L."})
    except RuntimeError:
        pass
    gallery.clear_notes = real_clear
    s.close()

    s2 = Svc(tmp_path)  # the next start reconciles
    try:
        events = s2.app.state.svc.db.events(kind="audit")
        (enrol,) = [e for e in events if e["action"] == "enrol"]
        assert enrol["person_id"] == pid and enrol["name"] == "Ada" and enrol["key_id"] == s.keys["admin"].split("_")[1]
        assert len(enrol["detail"]["faces"]) == 2 and enrol["detail"]["created"] is True
        (rename,) = [e for e in events if e["action"] == "rename_person"]
        assert rename["name"] == "Ada L." and rename["detail"]["from"] == "Ada"
        assert s2.engine.gallery.notes() == []
        # and in normal operation every gallery write leaves its event and no note behind
        r = s2.client.delete(f"{API}/people/{pid}", headers=s2.h("admin"))
        assert r.status_code == 200 and s2.engine.gallery.notes() == []
        assert [e["action"] for e in s2.app.state.svc.db.events(kind="audit")][0] == "delete_person"
    finally:
        s2.close()


def test_http_errors_say_what_to_send_not_which_flag(svc):
    """REST messages carry HTTP hints (a query parameter, an endpoint), never CLI advice."""
    c, h = svc.client, svc.h("admin")
    svc.enrol("Ada", jpeg(1))
    for r in (c.get(f"{API}/people/999999", headers=h), c.patch(f"{API}/people/999999", headers=h, json={"name": "X"})):
        assert r.status_code == 404 and r.json()["code"] == "not_found"
        assert "GET /api/v1/people" in r.json()["message"] and "facegate " not in r.json()["message"]
    r = c.post(f"{API}/verify", headers=svc.h("gate"), params={"pick": "single"},
               files={"image1": ("a.jpg", two_faces(), "image/jpeg"), "image2": ("b.jpg", jpeg(1), "image/jpeg")})
    assert r.status_code == 422 and r.json()["code"] == "multiple_faces"
    assert "pick=largest" in r.json()["message"]
    r = c.post(f"{API}/people", headers=h, data={"name": "Bob"}, params={"pick": "single"},
               files=[("images", ("group.jpg", two_faces(), "image/jpeg"))])
    assert r.status_code == 422
    reason = r.json()["details"]["rejected"][0]["reason"]
    assert "pick=largest" in reason
    for text in (r.json()["message"], reason):
        assert "--pick" not in text and "facegate " not in text and "people list" not in text


def test_cli_people_delete_erases_kept_event_images_too(tmp_path):
    """`facegate people delete` (no service running) erases what the API's delete erases: the face
    images kept with the person's access events and those of their denied attempts."""
    from facegate.cli import main

    s = Svc(tmp_path, keep_event_images=True)
    try:
        before = s.check(jpeg(1, 4)).json()  # a denied attempt before enrolment
        sdb = sqlite3.connect(tmp_path / "g.service.sqlite")
        (img,) = sdb.execute("SELECT jpeg FROM event_images WHERE event_id = ?", (before["event_id"],)).fetchone()
        img = bytes(img)
        sdb.close()
        pid = s.enrol("Ada", jpeg(1, 0), jpeg(1, 1)).json()["person"]["id"]
        allowed = s.check(jpeg(1, 2)).json()
        assert allowed["decision"] == "allow"
    finally:
        s.close()
    pipe_home = tmp_path  # the synthetic service pipeline wrote its gallery here
    code = main(["people", "delete", str(pid), "--gallery", str(pipe_home / "g.sqlite"), "--home", str(pipe_home)])
    assert code == 0
    sdb = sqlite3.connect(tmp_path / "g.service.sqlite")
    left = sdb.execute("SELECT COUNT(*) FROM event_images WHERE event_id IN (?, ?)",
                       (before["event_id"], allowed["event_id"])).fetchone()[0]
    sdb.close()
    assert left == 0
    assert img[len(img) // 2 : len(img) // 2 + 64] not in _raw(tmp_path)


def test_answers_give_iso_times_and_access_lists_give_names(svc):
    """Every time in an answer is ISO 8601 with the site's offset; access rules and groups name their people; a
    rule naming a group that does not exist is a 404, like any unknown record."""
    from datetime import datetime

    c, h = svc.client, svc.h("admin")
    r = svc.enrol("Ada", jpeg(1)).json()
    ada = r["person"]["id"]
    for t in (r["person"]["created"], r["person"]["updated"]):
        assert datetime.fromisoformat(t).utcoffset() is not None
    detail = c.get(f"{API}/people/{ada}", headers=h).json()
    assert datetime.fromisoformat(detail["faces"][0]["created"]).tzinfo is not None
    assert all(isinstance(k["created"], str) for k in c.get(f"{API}/keys", headers=h).json()["keys"])
    r = c.post(f"{API}/access/rules", headers=h, json={"gate": "front", "group": "nobody-here"})
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    g = c.post(f"{API}/access/groups/staff/members", headers=h, json={"person_ids": [ada]}).json()
    assert g["people"] == [{"id": ada, "name": "Ada"}] and datetime.fromisoformat(g["created"]).tzinfo is not None
    rule = c.post(f"{API}/access/rules", headers=h, json={"gate": "front", "person_id": ada}).json()
    assert rule["person_name"] == "Ada" and datetime.fromisoformat(rule["created"]).tzinfo is not None
    assert c.get(f"{API}/access/rules", headers=h).json()["rules"][0]["person_name"] == "Ada"
    ev = c.get(f"{API}/events", headers=h).json()["events"][0]
    assert datetime.fromisoformat(ev["at"]).timestamp() == pytest.approx(
        datetime.fromisoformat(ev["time"].replace("Z", "+00:00")).timestamp(), abs=1e-6)
