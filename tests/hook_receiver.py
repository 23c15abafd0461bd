"""A real webhook receiver for the tests and the benchmark: an HTTP server on a loopback port that
checks each request's signature the way the docs tell users to, and can be slow, refuse, or stop."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from facegate.service.events_out import verify_signature


class Receiver:
    def __init__(self, secret: str, port: int = 0, status: int = 200, delay: float = 0.0) -> None:
        self.secret = secret
        self.port = port
        self.status = status
        self.delay = delay
        self.got: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> Receiver:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if outer.delay:
                    time.sleep(outer.delay)
                valid = verify_signature(outer.secret, self.headers.get("X-Facegate-Signature"), body)
                with outer.lock:
                    outer.got.append({"headers": dict(self.headers.items()), "body": body, "valid": valid,
                                      "json": json.loads(body) if body else None})
                self.send_response(outer.status if valid else 401)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def wait_for(self, n: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.got) >= n:
                    return list(self.got)
            time.sleep(0.02)
        with self.lock:
            return list(self.got)
