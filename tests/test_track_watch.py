"""The watch loop, its JSONL events and gate mode, on a scripted synthetic video (no models, no files).

A fake detector reads the frame number written into each synthetic frame and returns the
scripted faces; a fake embedder returns a noisy version of each scripted person's "true"
embedding; the gallery is a real SQLite gallery holding those true embeddings. The gate
service is a small HTTP server on 127.0.0.1 started by the test.
"""

from __future__ import annotations

import io
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from facegate.align import template
from facegate.config import Config
from facegate.gallery import open_gallery
from facegate.track.events import END, GATE, IDENTIFIED, LEFT, START, JsonlSink, MemorySink, check_order, read_events
from facegate.track.gate import GateClient, GateDispatcher, GateError, GateRequest
from facegate.track.sources import Frame, VideoSource
from facegate.track.watch import Watcher, WatchOptions
from facegate.types import Face

DIM = 16
MODEL = "fake-16"
FPS = 30.0
W, H = 480, 320


def unit(v):
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


CENTRES = unit(np.random.default_rng(7).standard_normal((3, DIM)))  # 0 Ada, 1 Bob (enrolled), 2 a stranger


# -- fakes ---------------------------------------------------------------------------------------
class ScriptedVideo(VideoSource):
    """Blank frames with their number written into pixel (0, 0); ``frames`` frames at 30 fps."""

    kind = "file"

    def __init__(self, n: int) -> None:
        super().__init__("scripted")
        self.fps = FPS
        self.frame_count = n
        self.size = (W, H)

    def frames(self):
        for i in range(self.frame_count):
            img = np.full((H, W, 3), 90, np.uint8)
            img[0, 0, 0], img[0, 0, 1] = i % 256, i // 256
            yield Frame(i, i / FPS, img, time.time())


def walk(who: int, first: int, last: int, x0: float, vx: float, y: float = 120.0, size: float = 80.0):
    """A person crossing the picture: {frame: (who, box)}."""
    return {f: (who, np.array([x0 + vx * (f - first), y, x0 + vx * (f - first) + size, y + size], np.float32))
            for f in range(first, last + 1)}


class ScriptedDetector:
    """Returns the faces scripted for the frame number found in the image."""

    def __init__(self, script: list[dict[int, tuple[int, np.ndarray]]]) -> None:
        self.script = script
        self.calls = 0
        tm = template(150, 0.25)
        self._unit_lm = (tm.points - tm.points.min(0)) / 150.0

    def detect(self, image: np.ndarray) -> list[Face]:
        self.calls += 1
        idx = int(image[0, 0, 0]) + 256 * int(image[0, 0, 1])
        faces = []
        for person in self.script:
            if idx in person:
                who, box = person[idx]
                side = box[2] - box[0]
                lm = box[:2] + self._unit_lm * side * 0.8 + side * 0.1
                faces.append(Face(box=box.copy(), landmarks=lm.astype(np.float32), score=0.9, extra={"who": who}))
        return faces


class FakeEmbedder:
    model_id = MODEL
    dim = DIM

    def __init__(self) -> None:
        self.rng = np.random.default_rng(11)
        self.calls = 0

    def embed(self, chips: np.ndarray) -> np.ndarray:
        self.calls += 1
        who = chips[:, 0, 0, 0].astype(int)
        return unit(CENTRES[who] + 0.3 * self.rng.standard_normal((len(who), DIM)) / np.sqrt(DIM))


class FakePipeline:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.embedder = FakeEmbedder()

    def chips(self, image: np.ndarray, faces: list[Face]) -> np.ndarray:
        out = np.random.default_rng(0).integers(0, 255, (len(faces), 150, 150, 3), dtype=np.uint8)
        for i, f in enumerate(faces):
            out[i, 0, 0, 0] = f.extra["who"]
        return out


def scene() -> list[dict[int, tuple[int, np.ndarray]]]:
    """Ada crosses (0-59); a stranger crosses (20-79); Ada comes back (100-139)."""
    return [
        walk(0, 0, 59, 20, 4),
        walk(2, 20, 79, 380, -3, y=60),
        walk(0, 100, 139, 30, 3, y=150),
    ]


@pytest.fixture()
def gallery(tmp_path):
    cfg = Config(gallery=tmp_path / "g.sqlite", threshold=0.7, home=tmp_path)
    pipe = FakePipeline(cfg)
    g = open_gallery(cfg, pipeline=pipe)
    g.enroll_embeddings("Ada", CENTRES[0:1], model=MODEL)
    g.enroll_embeddings("Bob", CENTRES[1:2], model=MODEL)
    yield g, pipe
    g.close()


def run(gallery_pipe, sink, gate=None, n=150, **opts):
    g, pipe = gallery_pipe
    det = ScriptedDetector(scene())
    views: dict[int, list] = {}
    w = Watcher(pipe, g, sink, WatchOptions(progress=False, **opts), gate=gate,
                on_frame=lambda fr, vs: views.__setitem__(fr.index, vs), detector=det)
    res = w.run(ScriptedVideo(n))
    return res, det, views


# -- watch and events ----------------------------------------------------------------------------
def test_watch_names_tracks_and_writes_ordered_jsonl(gallery, tmp_path):
    path = tmp_path / "events.jsonl"
    sink = JsonlSink(path)
    mem = MemorySink()

    class Both:
        def emit(self, e):
            sink.emit(e)
            mem.emit(e)

        def close(self):
            sink.close()

    res, det, views = run(gallery, Both())
    sink.close()
    events = read_events(path)
    assert events == json.loads(json.dumps(mem.events))  # the file is exactly what was emitted
    assert check_order(events) == []
    assert events[-1]["event"] == END and events[-1]["tracks"] == 3
    kinds = [e["event"] for e in events]
    assert kinds.count(START) == 3 and kinds.count(LEFT) == 3
    named = {e["track"]: e["name"] for e in events if e["event"] == IDENTIFIED}
    assert named == {1: "Ada", 2: "unknown", 3: "Ada"}
    assert all(not e["switch"] for e in events if e["event"] == IDENTIFIED)
    # an explicit threshold (FAR unknown) is the template threshold too, and the event says so
    assert all(e["threshold"] == 0.7 and e["far"] is None and e["effective_samples"] >= 2.5
               for e in events if e["event"] == IDENTIFIED)
    # per track: start < identified < left, with timestamps that match the frames
    for tid in (1, 2, 3):
        mine = [e for e in events if e.get("track") == tid]
        assert [e["event"] for e in mine] == [START, IDENTIFIED, LEFT]
        assert all(abs(e["t"] - e["frame"] / FPS) < 1e-3 for e in mine)
    left = {e["track"]: e for e in events if e["event"] == LEFT}
    assert left[1]["last_frame"] == 57 and left[1]["reason"] == "lost"  # last detection frame (every 3rd)
    assert left[3]["reason"] == "end" and left[3]["name"] == "Ada"
    # Cost: the detector ran on every 3rd frame only, embeddings were few
    assert det.calls == 50
    assert res.embeddings <= 30 and res.switches == 0 and res.fps > 0
    # Views carry the names for annotation
    assert any(v.label == "Ada" for v in views[50]) and any(v.label == "unknown" for v in views[70])


def test_scene_cut_ends_tracks(gallery):
    g, pipe = gallery
    sink = MemorySink()
    script = [walk(0, 0, 89, 100, 0)]
    det = ScriptedDetector(script)

    class CutVideo(ScriptedVideo):
        def frames(self):
            for fr in super().frames():
                if fr.index >= 45:  # another shot: different picture, same place for a face
                    fr.image[1:, :, :] = 220
                    fr.image[1:, : W // 2, 2] = 0
                yield fr

    Watcher(pipe, g, sink, WatchOptions(progress=False), detector=det).run(CutVideo(90))
    left = sink.of(LEFT)
    assert [e["reason"] for e in left] == ["scene_cut", "end"]
    assert left[0]["frame"] == 45 and len(sink.of(START)) == 2


# -- gate: a fake service on loopback --------------------------------------------------------------
class FakeGate:
    """POST /api/v1/gates/<gate>/check on 127.0.0.1: records requests, answers from a script."""

    def __init__(self, statuses=None, delay: float = 0.0, key: str = "k3y") -> None:
        self.requests: list[dict] = []
        self.statuses = list(statuses or [])
        self.delay = delay
        self.key = key
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):  # keep test output quiet
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.requests.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body})
                if outer.delay:
                    time.sleep(outer.delay)
                status = outer.statuses.pop(0) if outer.statuses else 200
                if self.headers.get("X-API-Key") != outer.key:
                    status = 401
                if status == 200:
                    n = len(outer.requests)
                    payload = {"gate": self.path.split("/")[4], "decision": "allow" if n % 2 else "deny",
                               "person_id": 1, "name": "Ada", "score": 0.95, "threshold": 0.93, "far": 1e-3,
                               "event_id": f"ev{n}", "faces": 1}
                else:
                    payload = {"detail": "invalid API key" if status == 401 else "overloaded"}
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def fake_gate():
    servers = []

    def make(**kw):
        s = FakeGate(**kw)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.close()


JPEG = b"\xff\xd8\xff\xe0fake-jpeg\xff\xd9"


def test_gate_client_posts_one_multipart_jpeg(fake_gate):
    srv = fake_gate()
    answer = GateClient(srv.url, "front door", "k3y").check(JPEG)
    assert answer["decision"] == "allow" and answer["event_id"] == "ev1"
    (req,) = srv.requests
    assert req["path"] == "/api/v1/gates/front%20door/check"
    assert req["headers"]["x-api-key"] == "k3y"
    assert req["headers"]["content-type"].startswith("multipart/form-data; boundary=")
    assert b'name="image"; filename="face.jpg"' in req["body"] and JPEG in req["body"]


def test_gate_client_retries_server_errors_not_client_errors(fake_gate, caplog):
    srv = fake_gate(statuses=[503, 502])
    client = GateClient(srv.url, "door", "k3y", backoff=0.01)
    assert client.check(JPEG)["decision"] in ("allow", "deny")
    assert len(srv.requests) == 3
    srv = fake_gate()
    with pytest.raises(GateError) as exc:
        GateClient(srv.url, "door", "wrong", backoff=0.01).check(JPEG)
    assert exc.value.status == 401 and "invalid API key" in str(exc.value)
    assert len(srv.requests) == 1  # a wrong key is not retried
    assert "attempt 1/3" in caplog.text


def test_gate_client_timeouts_and_dead_server_end_in_gate_error(fake_gate):
    srv = fake_gate(delay=0.6)
    t0 = time.monotonic()
    with pytest.raises(GateError):
        GateClient(srv.url, "door", "k3y", timeout=0.15, retries=2, backoff=0.01).check(JPEG)
    assert time.monotonic() - t0 < 3
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    with pytest.raises(GateError, match="gate check failed"):
        GateClient(f"http://127.0.0.1:{port}", "door", "k", retries=2, backoff=0.01).check(JPEG)


def test_dispatcher_one_decision_per_track_and_per_person(fake_gate):
    srv = fake_gate()
    d = GateDispatcher(GateClient(srv.url, "door", "k3y"), cooldown=5.0)
    assert d.submit(GateRequest(1, "Ada", JPEG, 10, 0.3)) is None
    assert d.submit(GateRequest(1, "Ada", JPEG, 40, 1.3))["deduplicated"]  # same track again
    dup = d.submit(GateRequest(2, "Ada", JPEG, 50, 1.7))  # Ada again while her first track lives
    assert dup["deduplicated"] and dup["same_as_track"] == 1
    assert d.submit(GateRequest(3, "unknown", JPEG, 55, 1.8)) is None  # strangers: per track
    d.track_ended(1, 2.0)
    assert d.submit(GateRequest(4, "Ada", JPEG, 100, 4.0))["deduplicated"]  # within the cooldown
    assert d.submit(GateRequest(5, "Ada", JPEG, 300, 9.0)) is None  # after it
    results = d.close()
    assert len(srv.requests) == 3 and sorted(r["track"] for r in results) == [1, 3, 5]
    assert d.deduplicated == 3 and d.failed == 0


def test_watch_gate_mode_posts_once_per_person(gallery, fake_gate):
    srv = fake_gate()
    gate = GateDispatcher(GateClient(srv.url, "door", "k3y"), cooldown=10.0)
    sink = MemorySink()
    run(gallery, sink, gate=gate)
    assert check_order(sink.events) == []
    gates = sink.of(GATE)
    answered = [e for e in gates if not e.get("deduplicated")]
    # Ada (track 1) and the stranger (track 2) are asked about; Ada's return (track 3) is within the cooldown
    assert sorted(e["track"] for e in answered) == [1, 2] and len(srv.requests) == 2
    assert [e["track"] for e in gates if e.get("deduplicated")] == [3]
    assert all(e["decision"] in ("allow", "deny") and e["event_id"] for e in answered)
    # every request carried the track's last frames as a burst (the field `image` repeated, oldest first): real
    # JPEGs of the face with margin, all cut to one rectangle so the service can measure motion across them
    import cv2

    for req in srv.requests:
        body = req["body"]
        assert body.count(b'name="image"') == 3
        shapes = set()
        for part in body.split(b"\r\n--")[:-1]:
            start = part.index(b"\xff\xd8")
            img = cv2.imdecode(np.frombuffer(part[start:], np.uint8), cv2.IMREAD_COLOR)
            assert img is not None and min(img.shape[:2]) >= 256
            shapes.add(img.shape)
        assert len(shapes) == 1
    assert all(e["sent_frames"] == 3 for e in answered)


def test_watch_gate_mode_sends_one_frame_when_asked(gallery, fake_gate):
    srv = fake_gate()
    gate = GateDispatcher(GateClient(srv.url, "door", "k3y"), cooldown=10.0)
    run(gallery, MemorySink(), gate=gate, gate_burst=1)
    assert srv.requests and all(r["body"].count(b'name="image"') == 1 for r in srv.requests)


def test_watch_survives_a_dead_gate_service(gallery, caplog):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    gate = GateDispatcher(GateClient(f"http://127.0.0.1:{port}", "door", "k", retries=2, backoff=0.01))
    sink = MemorySink()
    res, _, _ = run(gallery, sink, gate=gate)
    assert res.frames == 150 and sink.events[-1]["event"] == END
    errors = [e for e in sink.of(GATE) if e.get("error")]
    assert errors and all(e["decision"] is None for e in errors)
    assert "no decision for track" in caplog.text


def test_jsonl_sink_to_stream():
    buf = io.StringIO()
    sink = JsonlSink(buf)
    sink.emit({"event": "start", "frame": 0})
    sink.close()
    assert buf.getvalue() == '{"event":"start","frame":0}\n' and not buf.closed


def test_watch_refuses_a_gallery_of_another_model(tmp_path):
    from facegate.gallery import ModelMismatchError

    cfg = Config(gallery=tmp_path / "g.sqlite", threshold=0.7, home=tmp_path)
    pipe = FakePipeline(cfg)
    with open_gallery(cfg, pipeline=pipe) as g:
        g.enroll_embeddings("Ada", CENTRES[0:1], model="other-model")
        with pytest.raises(ModelMismatchError):
            Watcher(pipe, g, MemorySink(), detector=ScriptedDetector([]))


def test_empty_gallery_everyone_unknown(tmp_path):
    cfg = Config(gallery=tmp_path / "g.sqlite", threshold=0.7, home=tmp_path)
    pipe = FakePipeline(cfg)
    sink = MemorySink()
    with open_gallery(cfg, pipeline=pipe) as g:
        Watcher(pipe, g, sink, WatchOptions(progress=False), detector=ScriptedDetector(scene())).run(ScriptedVideo(150))
    assert {e["name"] for e in sink.of(IDENTIFIED)} == {"unknown"}


def test_events_file_is_valid_jsonl(tmp_path: Path, gallery):
    path = tmp_path / "e.jsonl"
    sink = JsonlSink(path)
    run(gallery, sink, n=60)
    sink.close()
    lines = path.read_text().splitlines()
    assert lines and all(json.loads(line)["event"] for line in lines)
