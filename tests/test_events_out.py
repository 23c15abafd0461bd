"""Events out (issue 24): the outbox, signed webhooks, dead letters, configuration checks, and the
restart guarantee, against a real HTTP receiver on loopback and a real server (uvicorn in a thread).

Delivery timings are shortened (back-off from 50 ms) so the tests wait seconds, not minutes; the
receiver checks every signature with the same function the docs show receivers."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import time
import warnings
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from hook_receiver import Receiver

from facegate.config import Config
from facegate.service import ServiceSettings, create_app
from facegate.service.auth import create_key
from facegate.service.events_out import EventsOutSettings, signature, verify_signature
from facegate.service.events_out.targets import HookError, add_target, check_url, list_targets, template_fields
from facegate.service.server import serve_in_thread
from facegate.service.synthetic import SyntheticPipeline, encode, synthetic_face

API = "/api/v1"
SECRET = "s3cret-for-the-tests-0123456789"
FAST = EventsOutSettings(backoff_base=0.05, backoff_cap=0.3, poll=0.05, refresh=0.1, timeout=2.0)


def jpeg(person: int, shot: int = 0) -> bytes:
    return encode(synthetic_face(person, shot))


def make_app(root: Path, events_out: EventsOutSettings = FAST, **settings: Any) -> Any:
    cfg = Config(home=root, gallery=root / "g.sqlite")
    return create_app(cfg, ServiceSettings(events_out=events_out, **settings), pipeline=SyntheticPipeline(cfg))


def outbox_rows(root: Path) -> list[tuple]:
    with sqlite3.connect(root / "g.service.sqlite") as c:
        return c.execute("SELECT id, event_id, state, attempts, idem FROM outbox ORDER BY id").fetchall()


@pytest.fixture
def world(tmp_path):
    app = make_app(tmp_path)
    with TestClient(app) as c:
        db = app.state.svc.db
        admin = {"X-API-Key": create_key(db, "admin")["key"]}
        gate = {"X-API-Key": create_key(db, "gate")["key"]}
        app.state.svc.engine.gallery.enroll("Ada", [synthetic_face(1), synthetic_face(1, 1)])
        yield app, c, admin, gate


def check(c: Any, gate: dict[str, str], person: int = 1, shot: int = 2, name: str = "g1") -> dict[str, Any]:
    r = c.post(f"{API}/gates/{name}/check", headers=gate, files={"image": ("f.jpg", jpeg(person, shot), "image/jpeg")})
    assert r.status_code == 200, r.text
    return r.json()


# -- signatures -----------------------------------------------------------------------------------
def test_signature_checks_body_secret_and_replay_window():
    body = b'{"id":"x"}'
    h = signature(SECRET, body, 1_700_000_000)
    assert h.startswith("t=1700000000,v1=") and len(h.split("v1=")[1]) == 64
    assert verify_signature(SECRET, h, body, now=1_700_000_100)
    assert not verify_signature(SECRET, h, body + b" ", now=1_700_000_100)  # body changed
    assert not verify_signature("another-secret-xxxxxxxx", h, body, now=1_700_000_100)
    assert not verify_signature(SECRET, h, body, now=1_700_000_000 + 301)  # outside the 300 s window: a replay
    assert not verify_signature(SECRET, "garbage", body) and not verify_signature(SECRET, None, body)


# -- configuration checks -------------------------------------------------------------------------------
@pytest.mark.parametrize("url, why", [
    ("ftp://example.com/x", "unsupported URL scheme"),
    ("http://user:pw@127.0.0.1/x", "credentials"),
    ("http://127.0.0.1/x#frag", "fragment"),
    ("http:///nohost", "names no host"),
    ("http://127.0.0.1:99999/x", "not a valid URL"),
    ("http://exa mple.com/", "printable ASCII"),
    ("mqtt://127.0.0.1:1883/topic", "mqtt(s)://host[:port] only"),
])
def test_bad_urls_are_refused_with_a_reason(url, why):
    with pytest.raises(HookError) as err:
        check_url(url)
    assert why in str(err.value)


def test_private_and_loopback_targets_need_an_explicit_allowance(world):
    app, c, admin, _ = world
    for url in ("http://127.0.0.1:9/x", "http://169.254.169.254/latest", "http://10.1.2.3/x", "http://[::1]:9/x",
                "http://localhost:9/x"):
        r = c.post(f"{API}/hooks", headers=admin, json={"name": "t", "url": url})
        assert r.status_code == 422 and r.json()["code"] == "invalid_hook", (url, r.text)
        assert "refusing" in r.json()["message"] and "--allow-private" in r.json()["message"]
    r = c.post(f"{API}/hooks", headers=admin, json={"name": "t", "url": "http://0.0.0.0:9/x", "allow_private": True})
    assert r.status_code == 422 and "unspecified" in r.json()["message"]
    r = c.post(f"{API}/hooks", headers=admin, json={"name": "t", "url": "http://127.0.0.1:9/x", "allow_private": True})
    assert r.status_code == 201, r.text


def test_bad_templates_and_fields_are_refused_at_configuration_time(world):
    app, c, admin, _ = world
    base = {"name": "t", "url": "http://127.0.0.1:9/x", "allow_private": True}
    cases = [
        ({"template": {"text": "{nope}"}}, "not a field"),
        ({"template": {"text": "{name!r}"}}, "format or conversion"),
        ({"template": {"text": "{name"}}, "bad placeholder"),
        ({"events": ["everything"]}, "events.0"),
        ({"gates": ["no/slashes"]}, "not a gate name"),
        ({"secret": "short"}, "at least 16"),
        ({"kind": "mqtt"}, "mqtt"),
        ({"topic_prefix": "a/#"}, "apply to MQTT"),
        ({"name": "bad name"}, "name:"),
    ]
    for extra, why in cases:
        r = c.post(f"{API}/hooks", headers=admin, json={**base, **extra})
        assert r.status_code == 422, (extra, r.text)
        body = r.json()
        assert set(body) >= {"code", "message"} and why in body["message"], (extra, body)
    r = c.post(f"{API}/hooks", headers={**admin, "Content-Type": "application/json"}, content=b"{not json")
    assert r.status_code == 400 and r.json()["code"] == "invalid_json"
    with pytest.raises(HookError, match="JSON object"):
        template_fields("[1, 2]")
    assert template_fields('{"t": "{name} at {gate}", "n": [1, {"d": "{decision}"}]}') == {"name", "gate", "decision"}


def test_secrets_are_stored_0600_never_echoed_and_changes_are_audited(world, tmp_path):
    app, c, admin, gate = world
    r = c.post(f"{API}/hooks", headers=admin, json={"name": "given", "url": "http://127.0.0.1:9/a/token123?k=v",
                                                    "secret": SECRET, "allow_private": True})
    assert r.status_code == 201 and r.json()["secret"] is None and r.json()["has_secret"] is True
    assert r.json()["url"] == "http://127.0.0.1:9/a/…?…"  # tokens in the path or query are not shown back
    gen = c.post(f"{API}/hooks", headers=admin, json={"name": "generated", "url": "http://127.0.0.1:9/x",
                                                      "allow_private": True}).json()
    assert gen["secret"].startswith("whsec_")  # shown once, like an API key
    listing = c.get(f"{API}/hooks", headers=admin)
    text = listing.text
    assert SECRET not in text and gen["secret"] not in text and "token123" not in text
    assert {t["name"] for t in listing.json()["targets"]} == {"given", "generated"}
    assert c.get(f"{API}/hooks", headers=gate).status_code == 403
    audit = c.get(f"{API}/events?kind=audit", headers=admin).json()["events"]
    adds = [e for e in audit if e["action"] == "hook_add"]
    assert len(adds) == 2 and SECRET not in json.dumps(audit) and gen["secret"] not in json.dumps(audit)
    mode = stat.S_IMODE(os.stat(tmp_path / "g.service.sqlite").st_mode)
    assert mode & 0o077 == 0, oct(mode)
    assert c.delete(f"{API}/hooks/given", headers=admin).status_code == 200
    assert c.delete(f"{API}/hooks/given", headers=admin).status_code == 404
    assert any(e["action"] == "hook_remove" for e in c.get(f"{API}/events?kind=audit", headers=admin).json()["events"])


# -- the outbox -----------------------------------------------------------------------------------------
def test_the_outbox_row_commits_with_the_decision_and_a_broken_outbox_never_fails_a_check(tmp_path):
    app = make_app(tmp_path)  # no lifespan: nothing delivers, rows stay
    db = app.state.svc.db
    add_target(db, "down", "http://127.0.0.1:9/x", allow_private=True, secret=SECRET)
    app.state.svc.engine.gallery.enroll("Ada", [synthetic_face(1)])
    out = app.state.svc.engine.gate_check("g1", jpeg(1, 2), key_id=None, client="t")
    rows = outbox_rows(tmp_path)
    assert [(r[1], r[2]) for r in rows] == [(out["event_id"], "pending")]
    payload = json.loads(db.query("SELECT payload FROM outbox")[0][0])
    assert payload["decision"] == out["decision"] == "allow" and payload["name"] == "Ada"
    assert payload["event_id"] == out["event_id"] and payload["id"] == rows[0][4] and payload["type"] == "gate.decision"
    # the outbox table gone (a disk fault, a bug): the decision is still recorded and answered
    with db.write() as c:
        c.execute("DROP TABLE outbox")
    out2 = app.state.svc.engine.gate_check("g1", jpeg(1, 3), key_id=None, client="t")
    assert out2["decision"] == "allow" and db.events(kind="access")[0]["id"] == out2["event_id"]
    app.state.svc.close()


def test_the_outbox_is_bounded_and_says_what_it_dropped(tmp_path, caplog, monkeypatch):
    from facegate.service.events_out import outbox

    monkeypatch.setattr(outbox, "DROP_LOG_EVERY", 0.0)  # every drop warns here (normally once a minute)
    app = make_app(tmp_path, FAST.replace(max_pending=3))
    db = app.state.svc.db
    add_target(db, "down", "http://127.0.0.1:9/x", allow_private=True, secret=SECRET)
    app.state.svc.engine.gallery.enroll("Ada", [synthetic_face(1)])
    ids = [app.state.svc.engine.gate_check("g1", jpeg(1, i), key_id=None, client="t")["event_id"] for i in range(5)]
    assert [r[1] for r in outbox_rows(tmp_path)] == ids[2:]  # the oldest two went
    (t,) = list_targets(db)
    assert t.stats["dropped"] == 2 and t.stats["pending"] == 3
    assert dict(db.query("SELECT name, value FROM outbox_counters"))["dropped"] == 2
    assert "outbox is full" in caplog.text
    app.state.svc.close()


def test_gate_filter_and_refused_payloads_become_dead_letters_admins_can_retry(tmp_path):
    rx = Receiver(SECRET, status=400).start()
    try:
        app = make_app(tmp_path)
        with TestClient(app) as c:
            db = app.state.svc.db
            admin = {"X-API-Key": create_key(db, "admin")["key"]}
            gate = {"X-API-Key": create_key(db, "gate")["key"]}
            app.state.svc.engine.gallery.enroll("Ada", [synthetic_face(1)])
            r = c.post(f"{API}/hooks", headers=admin, json={"name": "rx", "url": rx.url, "secret": SECRET,
                                                            "allow_private": True, "gates": ["front"]})
            assert r.status_code == 201
            check(c, gate, name="back")  # another gate: not for this target
            ev = check(c, gate, name="front")
            rx.wait_for(1)
            dead: list[dict[str, Any]] = []
            for _ in range(200):
                dead = c.get(f"{API}/outbox/dead-letters", headers=admin).json()["dead_letters"]
                if dead:
                    break
                time.sleep(0.02)
            assert len(dead) == 1 and dead[0]["event_id"] == ev["event_id"] and "HTTP 400" in dead[0]["last_error"]
            assert dead[0]["payload"]["gate"] == "front"
            rx.status = 200
            assert c.post(f"{API}/outbox/dead-letters/retry", headers=admin).json() == {"requeued": 1}
            got = rx.wait_for(2)
            assert len(got) == 2 and all(g["valid"] for g in got)
            assert got[0]["json"]["id"] == got[1]["json"]["id"]  # the same event: the same idempotency key
            assert got[1]["headers"]["Idempotency-Key"] == got[1]["json"]["id"]
            for _ in range(200):
                if not c.get(f"{API}/outbox/dead-letters", headers=admin).json()["dead_letters"]:
                    break
                time.sleep(0.02)
            assert c.get(f"{API}/outbox/dead-letters", headers=admin).json()["dead_letters"] == []
            listing = c.get(f"{API}/hooks", headers=admin).json()
            assert listing["targets"][0]["delivered"] == 1 and listing["counters"]["dead"] >= 1
            assert c.get(f"{API}/outbox/dead-letters?target=nope", headers=admin).status_code == 404
    finally:
        rx.stop()


def test_hook_test_and_templates(tmp_path):
    rx = Receiver(SECRET).start()
    try:
        app = make_app(tmp_path)
        with TestClient(app) as c:
            db = app.state.svc.db
            admin = {"X-API-Key": create_key(db, "admin")["key"]}
            gate = {"X-API-Key": create_key(db, "gate")["key"]}
            app.state.svc.engine.gallery.enroll("Ada \"the\" Countess", [synthetic_face(1)])
            r = c.post(f"{API}/hooks", headers=admin, json={
                "name": "chat", "url": rx.url, "secret": SECRET, "allow_private": True,
                "template": {"text": "{name} at {gate}: {decision}", "meta": {"score": "{score}"}}})
            assert r.status_code == 201 and r.json()["template"] is True
            t = c.post(f"{API}/hooks/chat/test", headers=admin).json()
            assert t["delivered"] is True and t["status"] == 200, t
            check(c, gate)
            got = rx.wait_for(2)
            assert [g["headers"]["X-Facegate-Event"] for g in got] == ["hook.test", "gate.decision"]
            body = got[1]["json"]
            assert body["text"] == 'Ada "the" Countess at g1: allow' and float(body["meta"]["score"]) > 0.9
            assert all(g["valid"] for g in got)
            assert c.post(f"{API}/hooks/none/test", headers=admin).status_code == 404
            rx.stop()
            t = c.post(f"{API}/hooks/chat/test", headers=admin).json()
            assert t["delivered"] is False and "no answer" in t["error"]
    finally:
        rx.stop()


# -- the restart guarantee (must show) ---------------------------------------------------------------
def test_decisions_pending_across_a_receiver_outage_and_a_facegate_restart_are_all_delivered(tmp_path):
    """Stop the receiver, make decisions, restart facegate (a new server over the same home), bring the
    receiver back on its port: every decision arrives, signed, each with its own idempotency key."""
    import httpx

    rx = Receiver(SECRET).start()
    port = rx.port
    app = make_app(tmp_path)
    db = app.state.svc.db
    admin = create_key(db, "admin")["key"]
    gate = create_key(db, "gate")["key"]
    app.state.svc.engine.gallery.enroll("Ada", [synthetic_face(1), synthetic_face(1, 1)])
    decided: list[dict[str, Any]] = []
    with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=30) as http:
        r = http.post(f"{API}/hooks", headers={"X-API-Key": admin},
                      json={"name": "door", "url": rx.url, "secret": SECRET, "allow_private": True})
        assert r.status_code == 201, r.text
        for i in range(3):  # delivered while the receiver is up
            decided.append(http.post(f"{API}/gates/g1/check", headers={"X-API-Key": gate},
                                     files={"image": ("f.jpg", jpeg(1 if i % 2 == 0 else 9, i + 2), "image/jpeg")}).json())
        assert len(rx.wait_for(3)) == 3
        rx.stop()  # the receiver goes down
        for i in range(5):
            decided.append(http.post(f"{API}/gates/g1/check", headers={"X-API-Key": gate},
                                     files={"image": ("f.jpg", jpeg(1 if i % 2 else 9, 10 + i), "image/jpeg")}).json())
        time.sleep(0.3)  # a few failed attempts
    pending = [r for r in outbox_rows(tmp_path) if r[2] == "pending"]
    assert len(pending) == 5, pending  # facegate stopped with the decisions still to deliver
    assert any(r[3] > 0 for r in pending)  # and it had tried

    app2 = make_app(tmp_path)  # facegate restarts over the same home
    with serve_in_thread(app2):
        time.sleep(0.2)
        rx2 = Receiver(SECRET, port=port).start()  # the receiver comes back
        try:
            got = rx2.wait_for(5, timeout=30)
        finally:
            rx2.stop()
    everything = rx.got + got
    assert all(g["valid"] for g in everything), [g["headers"] for g in everything if not g["valid"]]
    by_event: dict[int, set[str]] = {}
    for g in everything:
        by_event.setdefault(g["json"]["event_id"], set()).add(g["json"]["id"])
        assert g["headers"]["Idempotency-Key"] == g["headers"]["X-Facegate-Delivery"] == g["json"]["id"]
    assert set(by_event) == {d["event_id"] for d in decided}  # every decision, none invented
    assert all(len(keys) == 1 for keys in by_event.values())  # one key per event, the same on every retry
    assert len({k for keys in by_event.values() for k in keys}) == len(decided)  # and unique across events
    decisions = {d["event_id"]: d["decision"] for d in decided}
    assert {g["json"]["event_id"]: g["json"]["decision"] for g in everything} == decisions
    assert {"allow", "deny"} <= set(decisions.values())
    assert [r for r in outbox_rows(tmp_path) if r[2] == "pending"] == []
    retried = [g for g in got if int(g["headers"]["X-Facegate-Attempt"]) > 1]
    assert retried, "the pending ones were retries"


# -- watch identifications (watch --events-out) ---------------------------------------------------------
def test_watch_identifications_go_to_the_targets_that_asked_for_them(tmp_path):
    from facegate.service.db import ServiceDB
    from facegate.service.events_out import IdentificationSink, safe_source
    from facegate.track import events as ev

    rx_watch, rx_gate = Receiver(SECRET).start(), Receiver(SECRET).start()
    try:
        path = tmp_path / "g.service.sqlite"
        db = ServiceDB(path)
        add_target(db, "cams", rx_watch.url, secret=SECRET, allow_private=True, events="watch.identified")
        add_target(db, "door", rx_gate.url, secret=SECRET, allow_private=True)  # gate decisions only
        db.close()
        sink = ev.FanOut(ev.MemorySink(), IdentificationSink(path, "rtsp://admin:hunter2@cam.local/stream", FAST))
        sink.emit(ev.make_event("start", 3, 0.1, track=1))
        sink.emit(ev.make_event("identified", 9, 0.3, track=1, name="Ada", person_id=4, score=0.81234, threshold=0.55,
                                far=1e-4, fpir=0.01))
        sink.emit(ev.make_event("identified", 30, 1.0, track=2, name=None, person_id=None, score=0.2, threshold=0.55,
                                far=1e-4, fpir=0.01))
        sink.close()  # drains the queue before returning
        got = rx_watch.got
        assert [g["json"]["name"] for g in got] == ["Ada", None] and all(g["valid"] for g in got)
        first = got[0]["json"]
        assert first["type"] == "watch.identified" and first["track"] == 1 and first["score"] == 0.8123
        assert first["source"] == "rtsp://cam.local/stream" and "hunter2" not in json.dumps(got[0]["json"])
        assert rx_gate.got == []
        assert safe_source("clip.mp4") == "clip.mp4" and safe_source("0") == "0"
    finally:
        rx_watch.stop()
        rx_gate.stop()
