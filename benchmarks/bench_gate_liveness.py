"""What liveness costs a REST gate check, end to end: the gate without liveness and with it, side by side.

The real service (``create_app`` over the real models, in-process through FastAPI's TestClient:
parsing, decoding, detection, embedding, the gallery search, the access list and the audit
event all included) answers ``POST /api/v1/gates/{gate}/check`` for one enrolled person, on
three gates that differ only in their liveness setting (``off``, ``still``, ``burst``):

* ``off, 1 frame``     the gate as it was before liveness;
* ``still, 1 frame``   the still check on that frame;
* ``off, N frames``    a burst sent to a gate with liveness off: every frame decoded and
                       detected, the person identified from the best one (what a burst costs
                       before any liveness work);
* ``burst, N frames``  the burst check: the same, plus each frame's face embedded to check
                       that the frames show one person, plus the burst cues.

Requests are interleaved round by round (off, still, off-N, burst-N, ...), so a busy machine
slows every mode alike. Frames are a nuaa_dev live take when ../shared/datasets is present
(read at run time, never stored), else generated: Grace Hopper's photo moving in front of a
pale room (as in tests/test_gate_liveness.py).

    python benchmarks/bench_gate_liveness.py --threads 2 --repeat 30 [--frames 5]

Prints median and 90th-percentile ms per mode, what liveness adds (still: still-1 minus off-1;
burst: burst-N minus off-N, and burst-N minus off-1) and the ratios. Budget (issue 21): at most
30 ms added for a still, 80 ms for a burst of 5, on 2 cores. Not a test: numbers depend on the
machine and its load (``os.getloadavg`` is printed with them).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np


def _nuaa(root: Path, n: int) -> tuple[bytes, list[bytes]] | None:
    take = sorted((root / "real" / "0001").glob("0001_00_00_01_*.jpg"), key=lambda p: int(p.stem.rsplit("_", 1)[1]))
    if len(take) < n + 1:
        return None
    return take[0].read_bytes(), [p.read_bytes() for p in take[1 : n + 1]]


def _generated(n: int) -> tuple[bytes, list[bytes]]:
    import cv2
    import matplotlib.cbook
    import skimage.data

    from facegate.image import load_image
    from facegate.service.synthetic import encode

    room = cv2.resize(skimage.data.coffee(), (640, 480), interpolation=cv2.INTER_AREA).astype(np.float32)
    grey = room.mean(axis=2, keepdims=True)
    room = np.clip(grey + 0.15 * (room - grey), 0, 255).astype(np.uint8)
    path = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    hopper = load_image(path)
    ell = np.zeros(hopper.shape[:2], np.uint8)
    cv2.ellipse(ell, (262, 218), (120, 150), 0, 0, 360, 255, -1)
    frames = []
    for t in range(n):
        c, s = np.cos(0.03 * t), np.sin(0.03 * t)
        h = np.array([[0.55 * c, -0.55 * s, 180 + 9 * t], [0.55 * s, 0.55 * c, 60 + 4 * t], [0, 0, 1.0]])
        warped = cv2.warpPerspective(hopper, h, (640, 480))
        mask = cv2.warpPerspective(ell, h, (640, 480)) > 0
        frame = room.copy()
        frame[mask] = warped[mask]
        frames.append(encode(frame, quality=92))
    return Path(path).read_bytes(), frames


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for OpenCV and the models (default 2)")
    parser.add_argument("--repeat", type=int, default=30, help="requests per mode (default 30)")
    parser.add_argument("--frames", type=int, default=5, help="frames of the burst (default 5)")
    parser.add_argument("--datasets", type=Path, default=Path(os.environ.get("FACEGATE_DATASETS", "../shared/datasets")))
    args = parser.parse_args(argv)

    import cv2

    cv2.setNumThreads(args.threads)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    from facegate.config import Config
    from facegate.pipeline import Pipeline
    from facegate.service import ServiceSettings, create_app
    from facegate.service import gates as gate_settings
    from facegate.service.auth import create_key

    data = _nuaa(args.datasets / "nuaa_dev", args.frames) if (args.datasets / "nuaa_dev").is_dir() else None
    source = "nuaa_dev session-1 live take of person 0001 (640x480), enrolled from its first frame"
    if data is None:
        data = _generated(args.frames)
        source = "generated: Grace Hopper's photo as a head moving in front of a pale room (640x480)"
    enrol_photo, frames = data
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Config(home=Path(tmp), gallery=Path(tmp) / "g.sqlite", threads=args.threads)
        app = create_app(cfg, ServiceSettings(warmup=False), pipeline=Pipeline(cfg))
        db = app.state.svc.db
        admin = {"X-API-Key": create_key(db, "admin")["key"]}
        gate = {"X-API-Key": create_key(db, "gate")["key"]}
        for name, mode in (("g-off", "off"), ("g-still", "still"), ("g-burst", "burst")):
            gate_settings.set_liveness(db, name, mode, client="bench")
        with TestClient(app) as client:
            r = client.post("/api/v1/people", headers=admin, data={"name": "probe"},
                            files=[("images", ("e.jpg", enrol_photo, "image/jpeg"))])
            if r.status_code >= 300:
                print(f"enrolment refused: {r.text}", file=sys.stderr)
                return 1

            def check(name: str, n: int) -> dict:
                files = [("image", (f"f{i}.jpg", f, "image/jpeg")) for i, f in enumerate(frames[:n])]
                r = client.post(f"/api/v1/gates/{name}/check", headers=gate, files=files)
                if r.status_code != 200:
                    raise SystemExit(f"gate check failed: {r.status_code} {r.text}")
                return r.json()

            modes = {"off, 1 frame": ("g-off", 1), "still, 1 frame": ("g-still", 1),
                     f"off, {args.frames} frames": ("g-off", args.frames),
                     f"burst, {args.frames} frames": ("g-burst", args.frames)}
            answers = {m: check(*v) for m, v in modes.items()}  # warm: lazy loads, first-call allocations
            for m, a in answers.items():
                lv = a.get("liveness") or {}
                print(f"  {m:18s} -> {a['decision']} ({a['reason']}; liveness {lv.get('mode')}, "
                      f"score {lv.get('score')})", file=sys.stderr)
            times: dict[str, list[float]] = {m: [] for m in modes}
            load0 = os.getloadavg()
            for _ in range(args.repeat):
                for m, (name, n) in modes.items():
                    t0 = time.perf_counter()
                    check(name, n)
                    times[m].append(1000 * (time.perf_counter() - t0))
            load1 = os.getloadavg()
            # where a burst's added time goes, in-process on the same models: the faces of the other frames embedded
            # (one person across the burst, 1:1 at the stated FAR) and the burst cues
            pipe = app.state.svc.engine.pipeline
            images = [pipe.load(f) for f in frames]
            faces, _, probe = pipe.frame_subjects(images)
            others = [i for i, f in enumerate(faces) if f is not None and i != probe]
            det = pipe.liveness_detector

            def embed_others() -> None:
                for i in others:
                    faces[i].embedding = None  # type: ignore[union-attr]
                pipe.embed_frames(images, faces, others)

            parts: dict[str, list[float]] = {f"embed {len(others)} more faces": [], "burst cues": []}
            for _ in range(args.repeat):
                for name, fn in zip(parts, (embed_others, lambda: det.check_burst(images, faces))):
                    t0 = time.perf_counter()
                    fn()
                    parts[name].append(1000 * (time.perf_counter() - t0))

    med = {m: statistics.median(v) for m, v in times.items()}
    base = med["off, 1 frame"]
    print(f"REST gate check, real models, {args.threads} threads, {args.repeat} requests per mode, interleaved")
    print(f"frames: {source}")
    print(f"load average {load0[0]:.1f} at start, {load1[0]:.1f} at end (of {os.cpu_count()} CPUs)")
    for m, v in times.items():
        print(f"  {m:18s} median {med[m]:7.1f} ms   p90 {float(np.percentile(v, 90)):7.1f} ms   {med[m] / base:5.2f}x off-1")
    off_n, burst_n = med[f"off, {args.frames} frames"], med[f"burst, {args.frames} frames"]
    print(f"added by liveness, still: {med['still, 1 frame'] - base:+.1f} ms ({med['still, 1 frame'] / base:.2f}x)  "
          "[budget <= 30 ms]")
    print(f"added by liveness, burst of {args.frames}: {burst_n - off_n:+.1f} ms over the same burst with liveness off "
          f"({burst_n / off_n:.2f}x) [budget <= 80 ms for 5]; {burst_n - base:+.1f} ms over a one-frame check without "
          f"liveness ({burst_n / base:.2f}x), of which {off_n - base:+.1f} ms is decoding and detecting the extra frames")
    print("of which (in-process, same models): " + "; ".join(
        f"{name} {statistics.median(v):.1f} ms" for name, v in parts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
