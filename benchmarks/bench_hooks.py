"""Gate-check latency with hooks off and on: does a webhook receiver that is slow, refuses
connections or hangs slow down the door? Loopback only (127.0.0.1).

    .venv/bin/python benchmarks/bench_hooks.py                 # model-free pipeline: the service's own cost
    .venv/bin/python benchmarks/bench_hooks.py --real          # the real models (each check costs their time too)

Five services run side by side in this process (uvicorn in threads), each over its own gallery and
service database in a temp folder, identical but for their hook targets:

* ``off``: no target (the baseline);
* ``ok``: a webhook receiver that answers 200 at once;
* ``slow``: a receiver that takes ``--slow`` seconds (default 1) per request, so the outbox grows;
* ``dead``: a closed port (connection refused);
* ``hung``: a socket that accepts connections and never answers (every attempt waits the 5 s timeout).

Requests are interleaved, one check per service per round, so machine load drifts alike for all;
each client is one keep-alive ``httpx.Client``, sequential (latency, not throughput). Every
service's decisions are written to its outbox in the decision's own transaction; delivery runs on
the background worker. Printed: p50 and p95 per service, the p50 ratio and difference against
``off`` (the goal: at most 5 ms added at p50), and what each outbox did.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))  # the tests' webhook receiver (a real HTTP server)
API = "/api/v1"
SECRET = "bench-secret-0123456789abcdef"


def hung_socket() -> tuple[socket.socket, int]:
    """A listening socket that accepts (the kernel's backlog) and never reads or answers."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1024)
    return s, int(s.getsockname()[1])


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--real", action="store_true", help="the real models instead of the model-free pipeline")
    p.add_argument("--rounds", type=int, default=300, help="timed checks per service (default 300)")
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--slow", type=float, default=1.0, help="seconds the slow receiver takes per request")
    args = p.parse_args()

    import httpx
    from hook_receiver import Receiver

    from facegate.config import Config
    from facegate.service import ServiceSettings, create_app
    from facegate.service.auth import create_key
    from facegate.service.events_out.targets import add_target
    from facegate.service.server import serve_in_thread
    from facegate.service.synthetic import SyntheticPipeline, encode, synthetic_face

    if args.real:
        import matplotlib.cbook

        from facegate.image import load_image
        from facegate.pipeline import Pipeline

        hopper = load_image(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
        pipe_home = Path(tempfile.mkdtemp(prefix="bench-hooks-models-"))
        shared = Pipeline(Config(home=pipe_home, threshold=0.93))
        enrol_photo, probe = hopper, encode(np.ascontiguousarray(hopper[:, ::-1]))
    else:
        enrol_photo, probe = synthetic_face(1), encode(synthetic_face(1, 2))

    scenarios = ["off", "ok", "slow", "dead", "hung"]
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="bench-hooks-") as tmp:
        ok_rx = Receiver(SECRET).start()
        slow_rx = Receiver(SECRET, delay=args.slow).start()
        stack.callback(ok_rx.stop)
        stack.callback(slow_rx.stop)
        hung, hung_port = hung_socket()
        stack.callback(hung.close)
        urls = {"ok": ok_rx.url, "slow": slow_rx.url, "dead": f"http://127.0.0.1:{closed_port()}/hook",
                "hung": f"http://127.0.0.1:{hung_port}/hook"}
        clients: dict[str, Any] = {}
        apps: dict[str, Any] = {}
        for name in scenarios:
            root = Path(tmp) / name
            root.mkdir()
            if args.real:
                cfg = shared.config.replace(gallery=root / "g.sqlite")
                pipeline: Any = shared
            else:
                cfg = Config(home=root, gallery=root / "g.sqlite")
                pipeline = SyntheticPipeline(cfg)
            app = create_app(cfg, ServiceSettings(warmup=False), pipeline=pipeline)
            db = app.state.svc.db
            key = create_key(db, "gate")["key"]
            app.state.svc.engine.gallery.enroll("Ada", [enrol_photo])
            if name in urls:
                add_target(db, name, urls[name], secret=SECRET, allow_private=True)
            url = stack.enter_context(serve_in_thread(app))
            clients[name] = stack.enter_context(httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=60))
            apps[name] = app

        def check(name: str) -> float:
            t0 = time.perf_counter()
            r = clients[name].post(f"{API}/gates/main/check", files={"image": ("f.jpg", probe, "image/jpeg")})
            dt = time.perf_counter() - t0
            if r.status_code != 200 or r.json()["decision"] != "allow":
                raise SystemExit(f"{name}: unexpected answer {r.status_code} {r.text[:200]}")
            return dt * 1000

        for _ in range(args.warmup):
            for name in scenarios:
                check(name)
        times: dict[str, list[float]] = {n: [] for n in scenarios}
        t_start = time.perf_counter()
        for i in range(args.rounds):
            order = scenarios[i % len(scenarios):] + scenarios[: i % len(scenarios)]  # rotate who goes first
            for name in order:
                times[name].append(check(name))
        wall = time.perf_counter() - t_start
        time.sleep(0.5)
        states = {}
        for name in scenarios:
            db = apps[name].state.svc.db
            rows = dict(db.query("SELECT state, COUNT(*) FROM outbox GROUP BY state"))
            t = db.query("SELECT delivered, failures FROM hook_targets")
            states[name] = {"pending": rows.get("pending", 0), "dead": rows.get("dead", 0),
                            "delivered": t[0][0] if t else 0, "failures": t[0][1] if t else 0}
        threads = threading.active_count()

    base50 = pct(times["off"], 50)
    print(f"gate check latency, {'real models' if args.real else 'model-free pipeline'}, {args.rounds} checks per "
          f"service interleaved ({wall:.0f} s), loopback HTTP, python {sys.version.split()[0]}, {threads} threads")
    print(f"{'hooks':<6} {'p50 ms':>8} {'p95 ms':>8} {'mean ms':>8} {'p50 ratio':>9} {'p50 +ms':>8}   outbox at the end")
    for name in scenarios:
        xs = times[name]
        p50, p95 = pct(xs, 50), pct(xs, 95)
        st = states[name]
        extra = "-" if name == "off" else (f"delivered {st['delivered']}, pending {st['pending']}, failed attempts "
                                           f"{st['failures']}")
        print(f"{name:<6} {p50:>8.2f} {p95:>8.2f} {statistics.fmean(xs):>8.2f} {p50 / base50:>9.3f} {p50 - base50:>+8.2f}   {extra}")
    worst = max(pct(times[n], 50) - base50 for n in scenarios[1:])
    print(f"largest p50 added by hooks: {worst:+.2f} ms (goal: <= 5 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
