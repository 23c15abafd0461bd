"""The service over real loopback sockets (uvicorn in a thread), with the model-free pipeline:
oversized uploads as a real client sends them, and concurrent enrolments while gate checks run.

Bounded: one server per module on 127.0.0.1, a fixed number of requests, timeouts on all of them.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn")
pytest.importorskip("fastapi")

from facegate.config import Config  # noqa: E402
from facegate.service import ServiceSettings, create_app  # noqa: E402
from facegate.service.auth import create_key  # noqa: E402
from facegate.service.server import serve_in_thread  # noqa: E402
from facegate.service.synthetic import SyntheticPipeline, encode, synthetic_face  # noqa: E402

API = "/api/v1"


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    root = tmp_path_factory.mktemp("live")
    cfg = Config(home=root, gallery=root / "g.sqlite")
    app = create_app(cfg, ServiceSettings(max_upload_bytes=8 * 1024 * 1024), pipeline=SyntheticPipeline(cfg))
    db = app.state.svc.db
    keys = {r: create_key(db, r)["key"] for r in ("admin", "gate", "viewer")}
    with serve_in_thread(app) as url:
        yield url, keys, app


def test_oversized_uploads_get_a_413_over_the_wire(live):
    url, keys, _ = live
    h = {"X-API-Key": keys["gate"]}
    big = b"\xff\xd8" + b"\0" * (50 * 1024 * 1024)
    with httpx.Client(base_url=url, timeout=60) as c:
        t0 = time.monotonic()
        r = c.post(f"{API}/gates/g1/check", headers={**h, "Content-Type": "image/jpeg"}, content=big)
        assert r.status_code == 413 and r.json()["code"] == "payload_too_large"
        r = c.post(f"{API}/gates/g1/check", headers=h, files={"image": ("big.jpg", big, "image/jpeg")})
        assert r.status_code == 413

        def chunks():  # no Content-Length: counted while streaming and cut off at the limit
            for _ in range(50):
                yield b"\0" * (1024 * 1024)

        try:
            r = c.post(f"{API}/gates/g1/check", headers={**h, "Content-Type": "application/json"}, content=chunks())
            assert r.status_code == 413 and r.json()["code"] == "payload_too_large"
        except (httpx.WriteError, httpx.RemoteProtocolError, httpx.ReadError):
            pass  # the server may close mid-stream after its 413; either way nothing was parsed
        assert time.monotonic() - t0 < 30
        # a client that waits for "100 Continue" (curl does, for big uploads) gets the 413 before sending
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall((f"POST {API}/gates/g1/check HTTP/1.1\r\nHost: {host}\r\nX-API-Key: {keys['gate']}\r\n"
                          f"Content-Type: image/jpeg\r\nContent-Length: {50 * 1024 * 1024}\r\n"
                          "Expect: 100-continue\r\n\r\n").encode())
            head = sock.recv(4096).decode("latin-1")
            assert head.startswith("HTTP/1.1 413") and "payload_too_large" in head + sock.recv(4096).decode("latin-1")
        # the server is fine afterwards
        r = c.post(f"{API}/gates/g1/check", headers=h, files={"image": ("a.jpg", encode(synthetic_face(1)), "image/jpeg")})
        assert r.status_code == 200


def test_malformed_bodies_over_the_wire(live):
    url, keys, _ = live
    h = {"X-API-Key": keys["gate"]}
    with httpx.Client(base_url=url, timeout=30) as c:
        for ctype, body in [
            ("multipart/form-data; boundary=xyz",
             b"--xyz\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.jpg\"\r\n\r\n\xff\xd8\xff"),
            ("multipart/form-data; boundary=xyz", b"garbage without any boundary"),
            ("multipart/form-data", b"--\r\n\r\n"),
            ("application/json", b"\xff\xfe{not json"),
            ("application/json", b'{"image_base64": "' + b"A" * 1001 + b'"}'),
            ("image/png", b"\x89PNG"),
        ]:
            r = c.post(f"{API}/gates/g1/check", headers={**h, "Content-Type": ctype}, content=body)
            assert 400 <= r.status_code < 500, (ctype, body[:40], r.status_code, r.text)
            assert r.json()["code"] and r.json()["message"]


def test_concurrent_enrolments_while_gates_check(live):
    """Every acknowledged enrolment is in the gallery afterwards and recognised; no 5xx anywhere."""
    url, keys, app = live
    clients, per_client = 8, 4
    acked: dict[str, int] = {}
    statuses: list[int] = []
    lock = threading.Lock()
    stop = threading.Event()

    def enroller(ci: int) -> None:
        with httpx.Client(base_url=url, timeout=60, headers={"X-API-Key": keys["admin"]}) as c:
            for j in range(per_client):
                person = 100 + ci * per_client + j
                files = [("images", (f"{person}-{s}.jpg", encode(synthetic_face(person, s)), "image/jpeg")) for s in range(2)]
                r = c.post(f"{API}/people", data={"name": f"person {person}"}, files=files)
                with lock:
                    statuses.append(r.status_code)
                    if r.status_code == 201:
                        acked[f"person {person}"] = r.json()["person"]["id"]

    def checker(gi: int) -> None:
        with httpx.Client(base_url=url, timeout=60, headers={"X-API-Key": keys["gate"]}) as c:
            n = 0
            while not stop.is_set() and n < 200:
                r = c.post(f"{API}/gates/gate-{gi}/check",
                           files={"image": ("f.jpg", encode(synthetic_face(100 + n % 32, 9)), "image/jpeg")})
                with lock:
                    statuses.append(r.status_code)
                assert set(r.json()) >= {"decision", "event_id"}
                n += 1

    checkers = [threading.Thread(target=checker, args=(i,)) for i in range(2)]
    for t in checkers:
        t.start()
    t0 = time.monotonic()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(enroller, range(clients)))
    stop.set()
    for t in checkers:
        t.join(60)
    assert time.monotonic() - t0 < 120
    assert all(s < 500 for s in statuses), sorted(set(statuses))
    assert len(acked) == clients * per_client

    with httpx.Client(base_url=url, timeout=60) as c:
        listed = c.get(f"{API}/people?limit=1000", headers={"X-API-Key": keys["viewer"]}).json()["people"]
        by_name = {p["name"]: p for p in listed}
        for name, pid in acked.items():
            assert by_name[name]["id"] == pid and by_name[name]["faces"] == 2
        for name in list(acked)[:: max(1, len(acked) // 6)]:  # a sample is recognised at a gate
            person = int(name.split()[1])
            r = c.post(f"{API}/gates/after/check", headers={"X-API-Key": keys["gate"]},
                       files={"image": ("f.jpg", encode(synthetic_face(person, 5)), "image/jpeg")}).json()
            assert r["decision"] == "allow" and r["name"] == name
    assert app.state.svc.engine.gallery.check()["ok"]


# -- hardening (issue 14): proxy headers and slow clients ---------------------------------------------
def _server(root, **settings):
    cfg = Config(home=root, gallery=root / "g.sqlite")
    app = create_app(cfg, ServiceSettings(**settings), pipeline=SyntheticPipeline(cfg))
    keys = {r: create_key(app.state.svc.db, r)["key"] for r in ("admin", "gate")}
    return app, keys


def test_forwarded_for_counts_only_from_a_trusted_proxy(tmp_path):
    """From a client that is not a configured proxy (loopback included), X-Forwarded-For is ignored:
    it neither dodges the failed-authentication lockout nor forges the audited address."""
    app, keys = _server(tmp_path / "a", auth_fail_limit=5)
    with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=30) as c:
        r = c.post(f"{API}/keys", json={"role": "gate"}, headers={"X-API-Key": keys["admin"], "X-Forwarded-For": "10.0.0.5"})
        assert r.status_code == 201
        codes = [c.get(f"{API}/whoami", headers={"X-API-Key": f"wrong{i}", "X-Forwarded-For": f"10.9.{i}.1"}).status_code
                 for i in range(8)]
        assert codes[:5] == [401] * 5 and set(codes[5:]) == {429}
        db = app.state.svc.db
        assert {e["client"] for e in db.events(kind="auth_failure")} == {"127.0.0.1"}
        (created,) = [e for e in db.events(kind="audit") if e["action"] == "key_create"]
        assert created["client"] == "127.0.0.1"

    app, keys = _server(tmp_path / "b", auth_fail_limit=5, trusted_proxies=("127.0.0.0/8",))
    with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=30) as c:
        r = c.post(f"{API}/keys", json={"role": "gate"},
                   headers={"X-API-Key": keys["admin"], "X-Forwarded-For": "6.6.6.6, 10.0.0.5, 127.0.0.1"})
        assert r.status_code == 201
        (created,) = [e for e in app.state.svc.db.events(kind="audit") if e["action"] == "key_create"]
        assert created["client"] == "10.0.0.5"  # the nearest hop that is not a trusted proxy


def _closed(sock: socket.socket, within: float) -> bool:
    """Whether the server closes ``sock`` within ``within`` seconds (reading and discarding any reply)."""
    sock.settimeout(within)
    try:
        while True:
            if not sock.recv(65536):
                return True
    except TimeoutError:
        return False
    except ConnectionError:
        return True


def test_slow_clients_are_timed_out_and_bounded_per_address(tmp_path):
    app, keys = _server(tmp_path / "a", header_timeout=0.5, body_timeout=0.5, keep_alive_timeout=0.5)
    with serve_in_thread(app) as url:
        host, port = url.removeprefix("http://").split(":")
        addr = (host, int(port))
        idle = socket.create_connection(addr)
        half = socket.create_connection(addr)
        half.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        drip = socket.create_connection(addr)  # header bytes trickling in do not extend the deadline
        slow_body = socket.create_connection(addr)
        slow_body.sendall(f"POST {API}/identify HTTP/1.1\r\nHost: x\r\nX-API-Key: {keys['gate']}\r\n"
                          "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"image".encode())
        with contextlib.suppress(ConnectionError):
            for ch in b"GET /healthz HTTP/1.1\r\nHost: x\r\n":
                drip.sendall(bytes([ch]))
                time.sleep(0.05)
        for s in (idle, half, drip, slow_body):
            assert _closed(s, 20)
            s.close()
        # a keep-alive connection that starts a second request and stalls is closed too
        with socket.create_connection(addr) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert s.recv(4096).startswith(b"HTTP/1.1 200")
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            assert _closed(s, 20)

    app, keys = _server(tmp_path / "b", max_connections_per_client=4, header_timeout=60, body_timeout=60)
    with serve_in_thread(app) as url:
        host, port = url.removeprefix("http://").split(":")
        addr = (host, int(port))
        stalled = [socket.create_connection(addr) for _ in range(10)]
        for s in stalled:
            s.sendall(b"GET /healthz HTTP/1.1\r\n")
        # the oldest waiting connections made room for the newer ones: only 4 stay open ...
        assert [_closed(s, 3) for s in stalled[:6]] == [True] * 6
        # ... and a real request from the same address still gets in (evicting one more)
        with httpx.Client(base_url=url, timeout=10) as c:
            assert c.get("/healthz").status_code == 200
        assert sum(not _closed(s, 0.5) for s in stalled[6:]) == 3
        for s in stalled:
            s.close()
        # connections busy with a request (a body on its way) are not evicted: the next one gets a JSON 503
        busy = [socket.create_connection(addr) for _ in range(4)]
        for s in busy:
            s.sendall(f"POST {API}/identify HTTP/1.1\r\nHost: x\r\nX-API-Key: {keys['gate']}\r\n"
                      "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{".encode())
        time.sleep(0.3)
        with socket.create_connection(addr, timeout=10) as s:
            head = s.recv(4096)
            assert head.startswith(b"HTTP/1.1 503") and b'"code": "overloaded"' in head
        for s in busy:
            s.close()
