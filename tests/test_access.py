"""Per-gate access lists through the REST service (model-free pipeline), and bulk enrolment over REST
and from folders: allow, deny-not-permitted, deny-unknown, time windows, the audited rule."""

from __future__ import annotations

import datetime as dt
import json
import warnings

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("multipart")

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from facegate.config import Config
from facegate.gallery import open_gallery
from facegate.gallery.folders import enrol_folders
from facegate.service import ServiceSettings, create_app
from facegate.service.access import AccessRule, parse_days
from facegate.service.auth import create_key
from facegate.service.synthetic import SyntheticPipeline, encode, synthetic_face

API = "/api/v1"


def jpeg(person: int, shot: int = 0) -> bytes:
    return encode(synthetic_face(person, shot))


@pytest.fixture()
def svc(tmp_path):
    cfg = Config(home=tmp_path, gallery=tmp_path / "g.sqlite")
    app = create_app(cfg, ServiceSettings(warmup=False), pipeline=SyntheticPipeline(cfg))
    with TestClient(app) as client:
        db = app.state.svc.db
        keys = {r: {"X-API-Key": create_key(db, r)["key"]} for r in ("admin", "gate", "viewer")}
        ids = {}
        for i, name in ((1, "Ada"), (2, "Bob")):
            r = client.post(f"{API}/people", headers=keys["admin"], data={"name": name},
                            files=[("images", ("a.jpg", jpeg(i), "image/jpeg"))])
            ids[name] = r.json()["person"]["id"]
        yield client, keys, ids, app


def check(client, keys, person: int, gate: str = "lab") -> dict:
    r = client.post(f"{API}/gates/{gate}/check", headers=keys["gate"], files={"image": ("f.jpg", jpeg(person, 9), "image/jpeg")})
    assert r.status_code == 200, r.text
    return r.json()


def test_gate_lists_allow_deny_and_audit_the_rule(svc):
    client, keys, ids, app = svc
    assert check(client, keys, 2)["rule"]["reason"] == "no_list"  # no list: today's behaviour
    r = client.post(f"{API}/access/rules", headers=keys["admin"], json={"gate": "lab", "person_id": ids["Ada"]})
    assert r.status_code == 201, r.text
    rule_id = r.json()["id"]
    assert client.post(f"{API}/access/rules", headers=keys["viewer"], json={"gate": "lab", "person_id": 1}).status_code == 403
    ada, bob, stranger = check(client, keys, 1), check(client, keys, 2), check(client, keys, 3)
    assert ada["decision"] == "allow" and ada["rule"]["reason"] == "permitted" and ada["rule"]["rule"]["id"] == rule_id
    assert bob["decision"] == "deny" and bob["name"] == "Bob" and bob["rule"]["reason"] == "not_permitted"
    assert stranger["decision"] == "deny" and stranger["person_id"] is None and stranger["rule"]["reason"] == "unknown"
    assert check(client, keys, 2, gate="hall")["decision"] == "allow"  # other gates keep admitting everyone
    events = client.get(f"{API}/events", headers=keys["viewer"], params={"kind": "access", "gate": "lab"}).json()["events"]
    by_id = {e["id"]: e for e in events}
    assert by_id[ada["event_id"]]["detail"]["rule"]["rule"]["id"] == rule_id
    assert by_id[bob["event_id"]]["detail"]["rule"]["reason"] == "not_permitted"
    assert by_id[ada["event_id"]]["detail"]["fpir"] == ada["fpir"]
    # a group admits its members; deleting the person removes their rules and memberships
    r = client.post(f"{API}/access/groups/staff/members", headers=keys["admin"], json={"person_ids": [ids["Bob"]]})
    assert r.status_code == 200 and r.json()["members"] == [ids["Bob"]]
    client.post(f"{API}/access/rules", headers=keys["admin"], json={"gate": "lab", "group": "staff"})
    assert check(client, keys, 2)["rule"]["rule"]["group"] == "staff"
    assert client.delete(f"{API}/people/{ids['Ada']}", headers=keys["admin"]).status_code == 200
    rules = client.get(f"{API}/access/rules", headers=keys["viewer"], params={"gate": "lab"}).json()["rules"]
    assert [r["group"] for r in rules] == ["staff"]
    assert client.delete(f"{API}/access/rules/{rules[0]['id']}", headers=keys["admin"]).status_code == 200
    assert check(client, keys, 2)["rule"]["reason"] == "no_list"
    bad = client.post(f"{API}/access/rules", headers=keys["admin"],
                      json={"gate": "lab", "group": "staff", "start": "25:00", "end": "08:00"})
    assert bad.status_code == 422


def test_time_windows_decide_by_the_clock(svc):
    client, keys, ids, app = svc
    client.post(f"{API}/access/rules", headers=keys["admin"],
                json={"gate": "lab", "person_id": ids["Ada"], "days": "mon-fri", "start": "08:00", "end": "18:00"})
    engine = app.state.svc.engine
    monday_9 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC).timestamp()  # a Monday
    monday_20 = monday_9 + 11 * 3600
    saturday_9 = monday_9 + 5 * 86400
    assert engine.gate_check("lab", jpeg(1, 3), key_id=None, client=None, when=monday_9)["decision"] == "allow"
    late = engine.gate_check("lab", jpeg(1, 3), key_id=None, client=None, when=monday_20)
    assert late["decision"] == "deny" and late["rule"]["reason"] == "outside_window"
    assert engine.gate_check("lab", jpeg(1, 3), key_id=None, client=None, when=saturday_9)["decision"] == "deny"


def test_window_rules_cross_midnight_and_time_zones():
    night = AccessRule(1, "g", 1, None, parse_days("fri"), "22:00", "06:00", "Europe/Paris", 0.0)
    fri_23 = dt.datetime(2026, 3, 6, 23, 0, tzinfo=dt.timezone(dt.timedelta(hours=1))).timestamp()
    assert night.in_window(fri_23) and night.in_window(fri_23 + 3 * 3600)  # Saturday 02:00 belongs to Friday's
    assert not night.in_window(fri_23 + 24 * 3600)  # Saturday 23:00
    assert parse_days("fri-mon") == "mon,fri,sat,sun" and parse_days(None) is None


def test_rest_batch_enrolment_skips_what_is_enrolled(svc):
    client, keys, ids, app = svc
    files = [("images", (f"Cy/{i}.jpg", jpeg(5, i), "image/jpeg")) for i in range(2)]
    blank = encode(np.full((200, 200, 3), 128, np.uint8))
    files += [("images", ("Ada/a.jpg", jpeg(1), "image/jpeg")), ("images", ("Dee/blank.jpg", blank, "image/jpeg"))]
    r = client.post(f"{API}/enrol/batch", headers=keys["admin"], files=files)
    assert r.status_code == 200, r.text
    out = {p["name"]: p for p in r.json()["people"]}
    assert out["Cy"]["status"] == "enrolled" and len(out["Cy"]["face_ids"]) == 2
    assert out["Ada"]["status"] == "skipped" and out["Ada"]["skipped"] == ["Ada/a.jpg"]  # same photo as enrolled
    assert out["Dee"]["status"] == "rejected" and out["Dee"]["rejected"][0]["code"] == "no_face"
    again = client.post(f"{API}/enrol/batch", headers=keys["admin"], files=files[:2]).json()
    assert again["enrolled_faces"] == 0 and again["skipped_photos"] == 2


def test_folder_enrolment_resumes_and_reports_refusals(tmp_path):
    from PIL import Image

    root = tmp_path / "people"
    for person, shots in ((1, 2), (2, 1), (3, 0)):
        d = root / f"person {person}"
        d.mkdir(parents=True)
        for s in range(shots):
            Image.fromarray(synthetic_face(person, s)).save(d / f"{s}.png")
    Image.fromarray(np.full((200, 200, 3), 128, np.uint8)).save(root / "person 3" / "blank.png")
    cfg = Config(home=tmp_path, gallery=tmp_path / "g.sqlite")
    with open_gallery(cfg, pipeline=SyntheticPipeline(cfg)) as g:
        first = enrol_folders(g, root, progress=False)
        assert (first.created, first.enrolled_photos, first.refused_photos) == (2, 3, 1)
        assert first.refusals[0]["code"] == "no_face"
        Image.fromarray(synthetic_face(2, 7)).save(root / "person 2" / "new.png")
        second = enrol_folders(g, root, progress=False)
        assert (second.enrolled_photos, second.skipped_photos, second.previously_refused) == (1, 3, 1)
        assert second.added == 1 and g.person("person 2").faces == 2 and g.backend.counts() == (2, 4)
        assert json.loads(open(first.journal).readline())["code"] == "no_face"


def test_group_members_out_of_range_are_refused_not_a_server_error(svc):
    """Person ids beyond what SQLite stores (found by schemathesis: a 500 from an OverflowError) or
    below 1 are refused as invalid fields, like the same ids in a path or an access rule."""
    client, keys, ids, app = svc
    for bad in (26212873569400264851456, 2**63, 0, -3):
        r = client.post(f"{API}/access/groups/staff/members", headers=keys["admin"], json={"person_ids": [ids["Ada"], bad]})
        assert r.status_code == 422 and r.json()["code"] == "validation", (bad, r.text)
    assert client.get(f"{API}/access/groups", headers=keys["admin"]).json()["groups"] == []  # nothing half-added
    r = client.post(f"{API}/access/groups/staff/members", headers=keys["admin"], json={"person_ids": [ids["Ada"]]})
    assert r.status_code == 200 and r.json()["members"] == [ids["Ada"]]

def test_rule_hours_are_in_the_site_time_zone_unless_given(tmp_path):
    """A rule made over REST without a zone gets the service's (ServiceSettings.time_zone, facegate serve
    --time-zone); one with a zone keeps it; both are shown with their hours."""
    cfg = Config(home=tmp_path, gallery=tmp_path / "g.sqlite")
    app = create_app(cfg, ServiceSettings(warmup=False, time_zone="Asia/Tokyo"), pipeline=SyntheticPipeline(cfg))
    with TestClient(app) as client:
        admin = {"X-API-Key": create_key(app.state.svc.db, "admin")["key"]}
        ada = client.post(f"{API}/people", headers=admin, data={"name": "Ada"},
                          files=[("images", ("a.jpg", jpeg(1), "image/jpeg"))]).json()["person"]["id"]
        client.post(f"{API}/access/groups/staff/members", headers=admin, json={"person_ids": [ada]})
        site = client.post(f"{API}/access/rules", headers=admin,
                           json={"gate": "lab", "group": "staff", "start": "08:00", "end": "18:00"}).json()
        given = client.post(f"{API}/access/rules", headers=admin, json={"gate": "lab", "group": "staff", "days": "sat",
                                                                        "tz": "Europe/Paris"}).json()
        assert site["tz"] == "Asia/Tokyo" and site["window"] == "every day 08:00-18:00 Asia/Tokyo"
        assert given["tz"] == "Europe/Paris" and given["window"] == "sat Europe/Paris"
        r = client.post(f"{API}/access/groups/staff/members", headers=admin, json={"person_ids": [2**63]})
        assert r.status_code == 422 and r.json()["code"] == "validation"  # an id past 64 bits: not a 500
