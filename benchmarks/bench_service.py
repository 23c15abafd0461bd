"""Service load benchmark: concurrent gate checks against a 10k-person gallery, enrolments from
many clients while checks run, and a memory soak. Loopback only (127.0.0.1).

    .venv/bin/python benchmarks/bench_service.py                       # real models, 10-minute soak
    .venv/bin/python benchmarks/bench_service.py --soak 120            # shorter soak
    .venv/bin/python benchmarks/bench_service.py --synthetic           # model-free: the service's own overhead

The server runs in a child process (``--serve-child``), so its memory is measured alone and
the load generator (threads with one keep-alive ``httpx.Client`` each, in this process)
does not share its interpreter. On a 2-core machine the two still share the CPU: the
figures are end-to-end on that machine, clients included.

Gallery: ``--people`` identities (default 10,000) imported as random unit embeddings under
the pipeline's model id, plus the people whose photos the checks use (Grace Hopper from
matplotlib and Eileen Collins from scikit-image, enrolled through the real pipeline; with
``--synthetic``, synthetic faces). Two thirds of the checks show an enrolled person in a
640x480 camera frame (allow), one third a stranger (scikit-image's cameraman: a face that
is detected and embedded, then denied), so both paths cost what they cost.

Phases
------
1. checks: ``--clients`` concurrent clients, ``--requests`` gate checks in all; requests/s,
   p50/p90/p99 latency, error count.
2. enrol under load: ``--enrollers`` clients enrol ``--enrolments`` people (two photos each)
   while two clients keep checking; then every acknowledged (201) enrolment is looked up:
   present, same id, two faces.
3. soak: ``--clients`` clients check for ``--soak`` seconds; the server's RSS is sampled
   every 5 s; reported as the value after the first minute, the last, the peak and the
   least-squares slope (MB per minute) over the rest.

Results: printed, and as JSON under ``--out`` (default ``results/``, ignored by git).
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("bench_service")
REPO = Path(__file__).resolve().parent.parent
API = "/api/v1"


# -- the server (child process) ----------------------------------------------------------------------
def serve_child(args: argparse.Namespace) -> int:
    """Build the gallery if needed and serve it until killed."""
    import uvicorn

    from facegate.config import Config
    from facegate.service import ServiceSettings, create_app

    root = Path(args.workdir)
    cfg = Config(home=root, gallery=root / "g.sqlite", threshold=args.threshold if not args.synthetic else None)
    pipeline = None
    if args.synthetic:
        from facegate.service.synthetic import SyntheticPipeline

        pipeline = SyntheticPipeline(cfg)
    app = create_app(cfg, ServiceSettings(auth_fail_limit=10**9, warmup=True), pipeline=pipeline)
    engine = app.state.svc.engine
    engine.warmup()
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False,
                timeout_keep_alive=30, limit_concurrency=1000)
    return 0


def build_gallery(args: argparse.Namespace) -> dict[str, Any]:
    """10k imported identities + the probe people enrolled from photos. Returns the photos to send."""
    from facegate.config import Config
    from facegate.gallery import model_id, open_gallery
    from facegate.service.auth import create_key
    from facegate.service.db import ServiceDB
    from facegate.service.settings import default_service_db
    from facegate.service.synthetic import SyntheticPipeline, encode, synthetic_face

    root = Path(args.workdir)
    cfg = Config(home=root, gallery=root / "g.sqlite", threshold=None if args.synthetic else args.threshold)
    if args.synthetic:
        pipeline = SyntheticPipeline(cfg)
        known = [encode(synthetic_face(i, 1)) for i in range(4)]
        strangers = [encode(synthetic_face(10_000_000 + i, 1)) for i in range(4)]
        enrol = {f"probe {i}": [synthetic_face(i, 0)] for i in range(4)}
        extra = lambda i, s: encode(synthetic_face(1_000_000 + i, s))  # noqa: E731
    else:
        import matplotlib.cbook
        import skimage
        from PIL import Image, ImageEnhance

        from facegate.pipeline import Pipeline

        pipeline = Pipeline(cfg)
        hopper = np.asarray(Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).convert("RGB"))
        astro = np.asarray(Image.open(Path(skimage.__file__).parent / "data" / "astronaut.png").convert("RGB"))
        frame = camera_frame(hopper)
        known = [jpeg(frame), jpeg(camera_frame(np.asarray(ImageEnhance.Brightness(Image.fromarray(hopper)).enhance(0.8))))]
        import skimage.data

        strangers = [jpeg(camera_frame(np.repeat(skimage.data.camera()[:, :, None], 3, axis=2)))]
        enrol = {"Grace Hopper": [hopper], "Eileen Collins": [astro]}
        variants = [hopper, np.ascontiguousarray(hopper[:, ::-1]), astro, np.ascontiguousarray(astro[:, ::-1])]
        extra = lambda i, s: jpeg(variants[(i + s) % 4])  # noqa: E731
    t0 = time.perf_counter()
    with open_gallery(cfg, pipeline=pipeline) as g:
        mid = model_id(pipeline)
        dim = int(pipeline.embedder.dim)
        if g.backend.counts()[0] < args.people:
            rng = np.random.default_rng(0)

            def items():
                for i in range(args.people):
                    v = rng.standard_normal(dim).astype(np.float32)
                    yield f"imported {i:06d}", v / np.linalg.norm(v)

            g.import_embeddings(items(), model=mid)
            for name, photos in enrol.items():
                g.enroll(name, photos)
        people = g.backend.counts()[0]
    db = ServiceDB(default_service_db(cfg))
    keys = {r: create_key(db, r, "bench")["key"] for r in ("admin", "gate", "viewer")}
    db.close()
    log.info("gallery: %d people, model %s, built in %.1f s", people, mid, time.perf_counter() - t0)
    return {"known": known, "strangers": strangers, "extra": extra, "keys": keys, "people": people, "model": mid}


def camera_frame(face: np.ndarray, w: int = 640, h: int = 480) -> np.ndarray:
    import cv2

    scale = h / face.shape[0]
    fw = min(w, int(face.shape[1] * scale))
    resized = cv2.resize(face, (fw, h), interpolation=cv2.INTER_AREA)
    frame = np.full((h, w, 3), 90, np.uint8)
    x = (w - fw) // 2
    frame[:, x : x + fw] = resized
    return frame


def jpeg(img: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(img, np.uint8)).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


# -- load generation --------------------------------------------------------------------------------------
def percentiles(lat: list[float]) -> dict[str, float]:
    if not lat:
        return {"p50_ms": float("nan"), "p90_ms": float("nan"), "p99_ms": float("nan"), "max_ms": float("nan")}
    a = np.asarray(lat) * 1000
    return {"p50_ms": round(float(np.percentile(a, 50)), 1), "p90_ms": round(float(np.percentile(a, 90)), 1),
            "p99_ms": round(float(np.percentile(a, 99)), 1), "max_ms": round(float(a.max()), 1)}


def check_load(url: str, key: str, photos: list[bytes], clients: int, requests: int | None,
               seconds: float | None, stop: threading.Event | None = None) -> dict[str, Any]:
    """``clients`` threads posting gate checks until ``requests`` are done or ``seconds`` pass."""
    import httpx

    lat: list[float] = []
    statuses: dict[int, int] = {}
    decisions: dict[str, int] = {}
    lock = threading.Lock()
    counter = iter(range(10**12))
    deadline = time.monotonic() + seconds if seconds else None

    def worker(ci: int) -> None:
        with httpx.Client(base_url=url, timeout=120, headers={"X-API-Key": key}) as c:
            while True:
                with lock:
                    n = next(counter)
                if requests is not None and n >= requests:
                    return
                if deadline is not None and time.monotonic() > deadline:
                    return
                if stop is not None and stop.is_set():
                    return
                photo = photos[n % len(photos)]
                t0 = time.perf_counter()
                try:
                    r = c.post(f"{API}/gates/bench-{ci % 4}/check", files={"image": ("f.jpg", photo, "image/jpeg")})
                    status = r.status_code
                    decision = r.json().get("decision", "?") if status == 200 else "error"
                except httpx.HTTPError:
                    status, decision = -1, "error"
                dt = time.perf_counter() - t0
                with lock:
                    statuses[status] = statuses.get(status, 0) + 1
                    decisions[decision] = decisions.get(decision, 0) + 1
                    if status == 200:
                        lat.append(dt)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(worker, range(clients)))
    wall = time.perf_counter() - t0
    done = sum(statuses.values())
    return {"clients": clients, "requests": done, "seconds": round(wall, 2),
            "requests_per_s": round(len(lat) / wall, 2) if wall else 0.0, **percentiles(lat),
            "statuses": {str(k): v for k, v in sorted(statuses.items())}, "decisions": decisions}


def enrol_under_load(url: str, keys: dict[str, str], extra: Any, known: list[bytes], enrollers: int, total: int) -> dict[str, Any]:
    import httpx

    acked: dict[str, int] = {}
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    stop = threading.Event()
    checks: dict[str, Any] = {}
    checker = threading.Thread(target=lambda: checks.update(check_load(url, keys["gate"], known, 2, None, None, stop)))
    checker.start()
    names = iter(range(total))
    lat: list[float] = []

    def worker(_: int) -> None:
        with httpx.Client(base_url=url, timeout=300, headers={"X-API-Key": keys["admin"]}) as c:
            while True:
                with lock:
                    i = next(names, None)
                if i is None:
                    return
                name = f"enrolled under load {i:05d}"
                files = [("images", (f"{i}-{s}.jpg", extra(i, s), "image/jpeg")) for s in range(2)]
                t0 = time.perf_counter()
                try:
                    r = c.post(f"{API}/people", data={"name": name}, files=files)
                    status = r.status_code
                except httpx.HTTPError:
                    status = -1
                with lock:
                    statuses[status] = statuses.get(status, 0) + 1
                    if status == 201:
                        acked[name] = r.json()["person"]["id"]
                        lat.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(enrollers) as pool:
        list(pool.map(worker, range(enrollers)))
    wall = time.perf_counter() - t0
    stop.set()
    checker.join()
    # every acknowledged enrolment must be there
    with httpx.Client(base_url=url, timeout=300, headers={"X-API-Key": keys["viewer"]}) as c:
        found: dict[str, dict] = {}
        offset = 0
        while True:
            page = c.get(f"{API}/people", params={"q": "enrolled under load", "limit": 1000, "offset": offset}).json()
            for p in page["people"]:
                found[p["name"]] = p
            offset += 1000
            if offset >= page["total"]:
                break
    missing = [n for n, pid in acked.items() if n not in found or found[n]["id"] != pid or found[n]["faces"] != 2]
    return {"enrollers": enrollers, "attempted": total, "acknowledged": len(acked), "missing_after": len(missing),
            "seconds": round(wall, 2), "enrolments_per_s": round(len(acked) / wall, 2), **percentiles(lat),
            "statuses": {str(k): v for k, v in sorted(statuses.items())}, "checks_meanwhile": checks}


def soak(url: str, key: str, photos: list[bytes], clients: int, seconds: float, pid: int) -> dict[str, Any]:
    import psutil

    proc = psutil.Process(pid)
    samples: list[tuple[float, float]] = []
    stop = threading.Event()

    def sampler() -> None:
        t0 = time.monotonic()
        while not stop.is_set():
            samples.append((time.monotonic() - t0, proc.memory_info().rss / 2**20))
            stop.wait(5.0)

    th = threading.Thread(target=sampler, daemon=True)
    th.start()
    load = check_load(url, key, photos, clients, None, seconds)
    stop.set()
    th.join()
    t = np.array([s[0] for s in samples])
    m = np.array([s[1] for s in samples])
    settled = t >= min(60.0, seconds / 4)
    slope = float(np.polyfit(t[settled] / 60, m[settled], 1)[0]) if settled.sum() >= 3 else float("nan")
    return {"seconds": seconds, "checks": load, "rss_mb_start": round(float(m[settled][0] if settled.any() else m[0]), 1),
            "rss_mb_end": round(float(m[-1]), 1), "rss_mb_peak": round(float(m.max()), 1),
            "rss_slope_mb_per_min": round(slope, 3), "samples": [(round(a, 1), round(b, 1)) for a, b in samples]}


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 600) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError("server not ready in time")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--synthetic", action="store_true", help="model-free pipeline: measures the service, not the models")
    p.add_argument("--people", type=int, default=10_000)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--requests", type=int, default=None, help="gate checks in phase 1 (default 200, 2000 synthetic)")
    p.add_argument("--enrollers", type=int, default=8)
    p.add_argument("--enrolments", type=int, default=None, help="people enrolled in phase 2 (default 40, 400 synthetic)")
    p.add_argument("--soak", type=float, default=600.0, help="soak seconds (0 = skip)")
    p.add_argument("--threshold", type=float, default=0.93, help="explicit threshold for the real models")
    p.add_argument("--workdir", default=None, help="gallery folder (default: a temp dir, removed)")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--out", default=str(REPO / "results"))
    p.add_argument("--serve-child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if args.serve_child:
        return serve_child(args)

    from facegate.service.server import free_port

    tmp = None
    if args.workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="bench-service-")
        args.workdir = tmp.name
    args.port = args.port or free_port()
    requests = args.requests or (2000 if args.synthetic else 200)
    enrolments = args.enrolments or (400 if args.synthetic else 40)
    setup = build_gallery(args)
    url = f"http://127.0.0.1:{args.port}"
    cmd = [sys.executable, __file__, "--serve-child", "--workdir", args.workdir, "--port", str(args.port),
           "--threshold", str(args.threshold)] + (["--synthetic"] if args.synthetic else [])
    server = subprocess.Popen(cmd, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "loadavg_at_start": os.getloadavg()},
        "pipeline": "synthetic" if args.synthetic else "real", "model": setup["model"], "gallery_people": setup["people"],
    }
    try:
        wait_ready(url, server)
        log.info("server ready at %s (pid %d)", url, server.pid)
        mixed = setup["known"] + setup["strangers"]
        check_load(url, setup["keys"]["gate"], mixed, 2, 2 * args.clients, None)  # warm the connections
        log.info("phase 1: %d gate checks from %d clients", requests, args.clients)
        results["checks"] = check_load(url, setup["keys"]["gate"], mixed, args.clients, requests, None)
        log.info("checks: %s", {k: v for k, v in results["checks"].items() if k != "decisions"})
        log.info("phase 2: %d enrolments from %d clients while 2 clients check", enrolments, args.enrollers)
        results["enrol_under_load"] = enrol_under_load(url, setup["keys"], setup["extra"], setup["known"],
                                                       args.enrollers, enrolments)
        log.info("enrolments: %s", {k: v for k, v in results["enrol_under_load"].items() if k != "checks_meanwhile"})
        if args.soak > 0:
            log.info("phase 3: soak for %.0f s with %d clients", args.soak, args.clients)
            results["soak"] = soak(url, setup["keys"]["gate"], mixed, args.clients, args.soak, server.pid)
            log.info("soak: %s", {k: v for k, v in results["soak"].items() if k not in ("samples", "checks")})
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
        results["machine"]["loadavg_at_end"] = os.getloadavg()
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        name = f"bench_service_{'synthetic' if args.synthetic else 'real'}.json"
        (out / name).write_text(json.dumps(results, indent=2))
        if tmp is not None:
            tmp.cleanup()
    c = results.get("checks", {})
    e = results.get("enrol_under_load", {})
    s = results.get("soak", {})
    print(f"\n{results['pipeline']} pipeline, {setup['people']:,} people, {os.cpu_count()} CPUs")
    print(f"gate checks : {c.get('requests_per_s')} req/s, p50 {c.get('p50_ms')} ms, p99 {c.get('p99_ms')} ms "
          f"({c.get('requests')} requests, {args.clients} clients, statuses {c.get('statuses')})")
    print(f"enrol+checks: {e.get('acknowledged')}/{e.get('attempted')} acknowledged, {e.get('missing_after')} missing "
          f"afterwards, {e.get('enrolments_per_s')} enrolments/s, statuses {e.get('statuses')}")
    if s:
        print(f"soak {s['seconds']:.0f} s: RSS {s['rss_mb_start']} -> {s['rss_mb_end']} MB (peak {s['rss_mb_peak']}, "
              f"slope {s['rss_slope_mb_per_min']} MB/min), {s['checks']['requests_per_s']} req/s, "
              f"p50 {s['checks']['p50_ms']} ms, p99 {s['checks']['p99_ms']} ms")
    print(f"results: {Path(args.out) / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
