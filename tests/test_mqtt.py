"""Gate decisions over MQTT to a real broker (Debian's mosquitto, started here on a free loopback port
with its own config): the decision on its documented topic, Home Assistant's discovery config
retained, availability (online, offline on exit), and delivery after the broker restarts."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import warnings
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("paho.mqtt.client", reason="paho-mqtt is not installed (pip install paho-mqtt==2.2.0)")
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

import paho.mqtt.client as mqtt

from facegate.config import Config
from facegate.service import ServiceSettings, create_app
from facegate.service.auth import create_key
from facegate.service.events_out import EventsOutSettings
from facegate.service.server import free_port
from facegate.service.synthetic import SyntheticPipeline, encode, synthetic_face

MOSQUITTO = shutil.which("mosquitto") or next((p for p in ("/usr/sbin/mosquitto", "/usr/bin/mosquitto") if Path(p).exists()), None)
pytestmark = pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto is not installed (Debian package 'mosquitto'; "
                                "'make system-deps' installs it)")
FAST = EventsOutSettings(backoff_base=0.05, backoff_cap=0.5, poll=0.05, refresh=0.1, timeout=3.0)
# production-like back-off (30 s after a failure): a broker coming back must not wait it out
PATIENT = FAST.replace(backoff_base=30.0, backoff_cap=300.0)


class Broker:
    def __init__(self, root: Path, port: int | None = None) -> None:
        self.root = root
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Broker:
        conf = self.root / f"mosquitto-{self.port}.conf"
        conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
        self.proc = subprocess.Popen([str(MOSQUITTO), "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.proc.stderr.read().decode()[-500:] if self.proc.stderr else ''}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start listening")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None


class Listener:
    """A subscriber that keeps every message (topic, payload, retain flag)."""

    def __init__(self, port: int, topics: tuple[str, ...] = ("facegate/#", "homeassistant/#")) -> None:
        self.got: list[tuple[str, bytes, bool]] = []
        self.client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id=f"listener-{time.time_ns()}")
        self.client.on_message = lambda c, u, m: self.got.append((m.topic, bytes(m.payload), bool(m.retain)))
        self.client.connect("127.0.0.1", port)
        for t in topics:
            self.client.subscribe(t, qos=1)
        self.client.loop_start()

    def wait(self, pred: Any, timeout: float = 15.0) -> list[tuple[str, bytes, bool]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            hits = [m for m in list(self.got) if pred(m)]
            if hits:
                return hits
            time.sleep(0.02)
        return []

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path).start()
    yield b
    b.stop()


def test_a_gate_decision_arrives_on_its_topic_with_home_assistant_discovery(tmp_path, broker):
    cfg = Config(home=tmp_path, gallery=tmp_path / "g.sqlite")
    app = create_app(cfg, ServiceSettings(events_out=PATIENT), pipeline=SyntheticPipeline(cfg))
    early = Listener(broker.port)
    with TestClient(app) as c:
        db = app.state.svc.db
        admin = {"X-API-Key": create_key(db, "admin")["key"]}
        gate = {"X-API-Key": create_key(db, "gate")["key"]}
        app.state.svc.engine.gallery.enroll("Ada", [synthetic_face(1)])
        r = c.post("/api/v1/hooks", headers=admin, json={"name": "ha", "url": f"mqtt://127.0.0.1:{broker.port}",
                                                         "allow_private": True})
        assert r.status_code == 201, r.text
        assert r.json()["kind"] == "mqtt" and r.json()["options"]["discovery_prefix"] == "homeassistant"
        assert early.wait(lambda m: m[0] == "facegate/status" and m[1] == b"online")  # available
        out = c.post("/api/v1/gates/front.door/check", headers=gate,
                     files={"image": ("f.jpg", encode(synthetic_face(1, 2)), "image/jpeg")}).json()
        hits = early.wait(lambda m: m[0] == "facegate/gate/front.door/decision")
        assert hits, early.got
        topic, payload, retained = hits[0]
        msg = json.loads(payload)
        assert not retained  # a replayed "allow" must never open a door again
        assert msg["decision"] == "allow" == out["decision"] and msg["name"] == "Ada" and msg["event_id"] == out["event_id"]
        assert msg["reason"] == "no_list" and msg["type"] == "gate.decision" and msg["fpir"] == 0.01

        # discovery: one retained config per gate, as a late subscriber (Home Assistant starting) sees it
        late = Listener(broker.port, ("homeassistant/#", "facegate/status"))
        cfg_topic = "homeassistant/sensor/facegate_front_door_"
        conf = late.wait(lambda m: m[0].startswith(cfg_topic) and m[0].endswith("/decision/config"))
        assert conf and conf[0][2] is True, late.got  # retained
        d = json.loads(conf[0][1])
        assert d["state_topic"] == "facegate/gate/front.door/decision" and d["value_template"] == "{{ value_json.decision }}"
        assert d["availability_topic"] == "facegate/status" and d["unique_id"].endswith("_decision")
        assert "person" in d["json_attributes_template"] and "reason" in d["json_attributes_template"]
        assert late.wait(lambda m: m[0] == "facegate/status" and m[1] == b"online" and m[2])

        # the broker restarts (retained state gone, connection dropped): a decision made meanwhile
        # waits in the outbox, facegate reconnects, announces itself again and delivers it
        early.close()
        late.close()
        broker.stop()
        out2 = c.post("/api/v1/gates/front.door/check", headers=gate,
                      files={"image": ("f.jpg", encode(synthetic_face(5, 2)), "image/jpeg")}).json()
        assert out2["decision"] == "deny"
        time.sleep(0.5)
        broker.start()
        again = Listener(broker.port)
        t0 = time.monotonic()
        hits = again.wait(lambda m: m[0] == "facegate/gate/front.door/decision" and json.loads(m[1])["event_id"] == out2["event_id"],
                          timeout=14)  # paho reconnects within seconds; the 15-30 s back-off is cut short
        assert hits, (again.got, time.monotonic() - t0)
        late = Listener(broker.port, ("homeassistant/#",))  # discovery re-published, retained
        assert late.wait(lambda m: m[0].startswith(cfg_topic) and m[2])
        late.close()
        listing = c.get("/api/v1/hooks", headers=admin).json()["targets"][0]
        assert listing["delivered"] >= 2 and listing["pending"] == 0
    # a clean exit says offline (retained), as the Last Will would on a crash
    assert again.wait(lambda m: m[0] == "facegate/status" and m[1] == b"offline")
    again.close()


def test_hooks_test_publishes_to_a_real_broker_and_reports_a_dead_one(tmp_path, broker):
    from facegate.service.db import ServiceDB
    from facegate.service.events_out import send_test
    from facegate.service.events_out.targets import add_target

    db = ServiceDB(tmp_path / "s.sqlite")
    t, _ = add_target(db, "ha", f"mqtt://127.0.0.1:{broker.port}", allow_private=True, options={"topic_prefix": "site/a"})
    ln = Listener(broker.port, ("site/#",))
    assert send_test(t, FAST)["delivered"] is True
    assert ln.wait(lambda m: m[0] == "site/a/test" and json.loads(m[1])["type"] == "hook.test")
    ln.close()
    broker.stop()
    out = send_test(t, FAST.replace(timeout=1.0))
    assert out["delivered"] is False and out["error"]
    db.close()
